"""Who is looking: the UI signs in with an API token (kept in an HttpOnly, SameSite=Strict cookie
scoped to /ui) and each page lets through only the roles whose API routes it shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from api.deps import ServicesDep, client_address, permits
from api.tokens import TooManyFailures

COOKIE = "ledger_ui"


@dataclass(frozen=True)
class Viewer:
    role: str
    token_id: str  # the token's id (api.tokens), shown on the page; never the token

    def may(self, *roles: str) -> bool:
        return permits(self.role, roles)


class LoginRequired(Exception):
    """No (valid) token: the handler redirects to the sign-in page, then back to `next_url`."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class NotAllowed(Exception):
    """A signed-in viewer whose role may not read this page: the handler answers 403 with a page."""

    def __init__(self, viewer: Viewer) -> None:
        super().__init__(viewer.role)
        self.viewer = viewer


def current_viewer(request: Request, svc: ServicesDep) -> Viewer | None:
    """The viewer of the cookie's token; None without one, with an unknown or revoked one (each
    counted as a failure of the client's address), or when the address failed too often."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    try:
        identity = svc.tokens.authenticate(token, client_address(request))
    except TooManyFailures:
        return None
    return None if identity is None else Viewer(identity.role, identity.token_id)


def viewer_for(*roles: str) -> Callable[..., Viewer]:
    """A dependency: the signed-in viewer if its role may read what `roles` may (admin always);
    no roles given: any signed-in viewer."""

    def check(request: Request, svc: ServicesDep) -> Viewer:
        viewer = current_viewer(request, svc)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        if roles and not viewer.may(*roles):
            raise NotAllowed(viewer)
        return viewer

    return check


AnyViewer = Annotated[Viewer, Depends(viewer_for())]


def login_url(next_url: str) -> str:
    return f"/ui/login?next={quote(next_url, safe='')}"
