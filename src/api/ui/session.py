"""Signing in and out of the UI with an API token.

The sign-in form carries a CSRF token (double submit): the form page sets it in a cookie of its
own and in a hidden field, and a sign-in whose field does not match its cookie is refused with
403, so another site cannot sign a visitor in under the attacker's token (login CSRF). Every
cookie is HttpOnly, SameSite=Strict, scoped to /ui, and `Secure` unless LEDGER_UI_SECURE_COOKIE
is false (a UI served over plain HTTP)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ServicesDep, client_address
from api.services import Services
from api.tokens import TooManyFailures
from api.ui.auth import COOKIE, current_viewer
from api.ui.render import page

router = APIRouter()
CSRF_COOKIE = "ledger_ui_csrf"
_CSRF_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
EXPIRED = "The sign-in form expired or did not come from this page: sign in again."


def _safe_next(next_url: str) -> str:
    """Only a page of the UI itself: never a redirect to another site."""
    return next_url if next_url.startswith("/ui") and not next_url.startswith("//") else "/ui/"


def _csrf_of(request: Request) -> str | None:
    found = request.cookies.get(CSRF_COOKIE, "")
    return found if _CSRF_SHAPE.match(found) else None


def _form(request: Request, svc: Services, next_url: str, error: str | None, status_code: int = 200) -> HTMLResponse:
    """The sign-in page, with the visitor's CSRF token (a new one if it has none)."""
    csrf = _csrf_of(request) or secrets.token_urlsafe(32)
    response = page(request, "login.html", current_viewer(request, svc) if error is None else None,
                    status_code=status_code, next=_safe_next(next_url), error=error, csrf=csrf)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/ui",
                        secure=svc.settings.ui_secure_cookie)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, svc: ServicesDep, next: str = "/ui/") -> HTMLResponse:
    return _form(request, svc, next, None)


@router.post("/login", response_model=None)
def login(request: Request, svc: ServicesDep, token: Annotated[str, Form(max_length=500)],
          next: Annotated[str, Form(max_length=2000)] = "/ui/",
          csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    expected = _csrf_of(request)
    if expected is None or not secrets.compare_digest(csrf.encode(), expected.encode()):
        return _form(request, svc, next, EXPIRED, status_code=403)
    token = token.strip()
    try:
        known = bool(token) and svc.tokens.authenticate(token, client_address(request)) is not None
    except TooManyFailures:
        return _form(request, svc, next, "Too many unknown tokens from this address: wait a minute and try again.",
                     status_code=429)
    if not known:
        return _form(request, svc, next, "That token is not known or was revoked: use a token of "
                                         "LEDGER_API_TOKENS or `ledger tokens create`.", status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui",
                        secure=svc.settings.ui_secure_cookie)
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
