"""The web UI under /ui: server-rendered pages over the same read side as the API, with the
API's tokens and roles. Static files are vendored (static/VENDORED.md); no build step."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.ui import events, finance, overview, risk, session, support, timeline
from api.ui.auth import COOKIE, LoginRequired, NotAllowed, login_url
from api.ui.render import HERE, page

router = APIRouter(prefix="/ui", include_in_schema=False)
for module in (session, overview, events, timeline, finance, risk, support):
    router.include_router(module.router)


async def _login_required(request: Request, error: Exception) -> RedirectResponse:
    assert isinstance(error, LoginRequired)
    response = RedirectResponse(login_url(error.next_url), status_code=303)
    if COOKIE in request.cookies:  # an unknown or revoked token: dropped, not tried again on the sign-in page
        response.delete_cookie(COOKIE, path="/ui")
    return response


async def _not_allowed(request: Request, error: Exception) -> HTMLResponse:
    assert isinstance(error, NotAllowed)
    return page(request, "forbidden.html", error.viewer, status_code=403)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(NotAllowed, _not_allowed)
