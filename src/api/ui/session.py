"""Signing in and out of the UI with an API token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ServicesDep, client_address
from api.tokens import TooManyFailures
from api.ui.auth import COOKIE, current_viewer
from api.ui.render import page

router = APIRouter()


def _safe_next(next_url: str) -> str:
    """Only a page of the UI itself: never a redirect to another site."""
    return next_url if next_url.startswith("/ui") and not next_url.startswith("//") else "/ui/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, svc: ServicesDep, next: str = "/ui/") -> HTMLResponse:
    return page(request, "login.html", current_viewer(request, svc), next=_safe_next(next), error=None)


@router.post("/login", response_model=None)
def login(request: Request, svc: ServicesDep, token: Annotated[str, Form(max_length=500)],
          next: Annotated[str, Form(max_length=2000)] = "/ui/") -> Response:
    token = token.strip()
    try:
        known = bool(token) and svc.tokens.authenticate(token, client_address(request)) is not None
    except TooManyFailures:
        return page(request, "login.html", None, status_code=429, next=_safe_next(next),
                    error="Too many unknown tokens from this address: wait a minute and try again.")
    if not known:
        return page(request, "login.html", None, status_code=401, next=_safe_next(next),
                    error="That token is not known or was revoked: use a token of LEDGER_API_TOKENS or "
                    "`ledger tokens create`.")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
