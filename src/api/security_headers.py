"""Headers every response carries for a browser's sake. Everywhere: `X-Content-Type-Options:
nosniff` (a body is what its Content-Type says, never sniffed into a script or a page). On the
UI's pages (/ui): a Content-Security-Policy that lets a page load only the server's own files
(htmx and the stylesheet are vendored; no inline script or style, no plug-ins), send forms only
to itself, and be framed by no one (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for
older browsers), and a Referrer-Policy that keeps the UI's addresses (which may carry a
customer's id) on this site. FastAPI's /docs loads Swagger UI from a CDN, so the policy is the
UI's only."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from api.middleware import HttpMiddleware

UI_PREFIX = "/ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
EVERYWHERE = {"X-Content-Type-Options": "nosniff"}
ON_THE_UI = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class SecurityHeaders(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        extra = {**EVERYWHERE, **(ON_THE_UI if path == UI_PREFIX or path.startswith(UI_PREFIX + "/") else {})}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
