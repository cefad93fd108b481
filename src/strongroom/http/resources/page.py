"""`GET /`: the market page (live book, trades and ticker over the websocket feed)."""

from __future__ import annotations

from importlib import resources

import falcon
import falcon.asgi

from strongroom.http.context import Services

PLACEHOLDER = "__FEED_PORT__"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def template() -> str:
    """The page as shipped, with the feed port still a placeholder."""
    return resources.files("strongroom.http").joinpath("static/index.html").read_text("utf-8")


class PageResource:
    public = True

    def __init__(self, services: Services) -> None:
        self.services = services
        self.template = template()
        self._rendered: tuple[int, bytes] | None = None

    def page(self) -> bytes:
        """The page for the feed's current port (rendered again only if the port changes)."""
        port = self.services.feed_port
        if self._rendered is None or self._rendered[0] != port:
            self._rendered = (port, self.template.replace(PLACEHOLDER, str(port)).encode())
        return self._rendered[1]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = self.page()
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
