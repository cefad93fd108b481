"""Readiness, the OAuth token endpoint, the OpenAPI document and its page."""

from __future__ import annotations

from collections.abc import Sequence

import falcon
import falcon.asgi
import msgspec

from strongroom.http.auth import TokenError
from strongroom.http.body import read_form_or_json
from strongroom.http.context import Services
from strongroom.http.openapi import DOCS_PAGE, document
from strongroom.http.problems import Problem


class StatusResource:
    public = True

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        readiness = self.services.readiness
        resp.media = {
            "status": "ok" if readiness.ready else "starting",
            "database": readiness.database,
            "listeners": readiness.listeners,
            "ports": readiness.ports,
            "feed": self.services.feed.statistics(),
        }
        if not readiness.ready:
            resp.status = 503


class TokenResource:
    """RFC 6749 §4.4; errors are RFC 6749 §5.2 objects, not problem details."""

    public = True
    FIELDS = frozenset({"grant_type", "client_id", "client_secret", "scope"})

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Pragma", "no-cache")
        try:
            form = await read_form_or_json(req)
            unknown = set(form) - self.FIELDS
            if unknown:
                raise TokenError(400, "invalid_request", f"unknown fields: {sorted(unknown)}")
            resp.media = await self.services.authority.issue_token(
                form.get("grant_type"),
                form.get("client_id"),
                form.get("client_secret"),
                form.get("scope"),
            )
        except Problem as problem:
            error = TokenError(
                problem.status if problem.status == 413 else 400, "invalid_request", problem.detail
            )
            render_token_error(resp, error)
        except TokenError as error:
            render_token_error(resp, error)


class RevokeTokenResource:
    """RFC 7009: the client that holds a token revokes it; 200 whether or not it was live."""

    public = True
    FIELDS = frozenset({"token", "token_type_hint", "client_id", "client_secret"})

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.set_header("Cache-Control", "no-store")
        try:
            form = await read_form_or_json(req)
            unknown = set(form) - self.FIELDS
            if unknown:
                raise TokenError(400, "invalid_request", f"unknown fields: {sorted(unknown)}")
            if not form.get("token"):
                raise TokenError(400, "invalid_request", "token is required")
            await self.services.authority.revoke_token(
                form.get("client_id"), form.get("client_secret"), form["token"]
            )
        except Problem as problem:
            status = problem.status if problem.status == 413 else 400
            render_token_error(resp, TokenError(status, "invalid_request", problem.detail))
            return
        except TokenError as error:
            render_token_error(resp, error)
            return
        resp.media = {}


def render_token_error(resp: falcon.asgi.Response, error: TokenError) -> None:
    """An RFC 6749 §5.2 error object."""
    resp.status = error.status
    resp.data = msgspec.json.encode({"error": error.error, "error_description": error.description})
    resp.content_type = falcon.MEDIA_JSON
    if error.status == 401:
        resp.set_header("WWW-Authenticate", 'Basic realm="strongroom"')


class OpenApiResource:
    public = True

    def __init__(self, routes: Sequence[tuple[str, object]]) -> None:
        # Made once, with itself among the routes: it is part of what is served.
        self.document = document([*routes, ("/openapi.json", self)])

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = self.document


class DocsResource:
    public = True

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = DOCS_PAGE
