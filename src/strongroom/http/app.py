"""`create_app(services)`: the Falcon ASGI application of the REST edge."""

from __future__ import annotations

import uuid
from typing import Any

import falcon
import falcon.asgi
import falcon.media
import msgspec
from loguru import logger

from strongroom.http import problems
from strongroom.http.auth import AuthMiddleware
from strongroom.http.context import Services
from strongroom.http.resources import (
    api_keys,
    applications,
    management,
    markets,
    mtf,
    orders,
    page,
    system,
    users,
    wallets,
)


class RequestIdMiddleware:
    """Every request carries an id: the caller's `X-Request-ID` or a new one."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        request_id = req.get_header("X-Request-ID") or uuid.uuid4().hex
        req.context.request_id = request_id[:64]
        resp.set_header("X-Request-ID", req.context.request_id)

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        logger.debug(
            "request",
            request_id=req.context.get("request_id"),
            method=req.method,
            path=req.path,
            status=resp.status,
        )


def _json_handler() -> falcon.media.JSONHandler:
    encoder = msgspec.json.Encoder()
    return falcon.media.JSONHandler(dumps=encoder.encode, loads=msgspec.json.decode)


def create_app(services: Services) -> falcon.asgi.App[Any, Any]:
    middleware: list[Any] = [RequestIdMiddleware(), AuthMiddleware(services.authority)]
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App(middleware=middleware, cors_enable=False)
    handler = _json_handler()
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.strip_url_path_trailing_slash = False
    problems.install(app)
    route = app.add_route
    route("/", page.PageResource(services))
    route("/status/", system.StatusResource(services))
    route("/o/token/", system.TokenResource(services))
    route("/o/apps/", applications.ApplicationsResource(services))
    route("/o/apps/{application_id}/", applications.ApplicationResource(services))
    route("/api-keys/", api_keys.ApiKeysResource(services))
    route("/api-keys/{api_key}/", api_keys.ApiKeyResource(services))
    route("/users/register", users.RegisterResource(services))
    route("/users/login", users.LoginResource(services))
    route("/users/2fa/setup", users.TwoFactorSetupResource(services))
    route("/users/2fa/confirm", users.TwoFactorConfirmResource(services))
    route("/users/master-password", users.MasterPasswordResource(services))
    route("/users/me/profile", users.ProfileResource(services))
    route("/users/me/profile/basic", users.ProfileResource(services, basic=True))
    route("/users/me/deposit-keys", users.DepositKeysResource(services))
    route("/user/me/", users.TenantResource(services))
    route("/user/fees/", users.FeesResource(services))
    route("/openapi.json", system.OpenApiResource())
    route("/docs", system.DocsResource())
    route("/wallets/", wallets.WalletsResource(services))
    route("/wallets/{wallet_id}/", wallets.WalletResource(services))
    route("/wallets/{wallet_id}/mtf-credentials/", mtf.MtfCredentialsResource(services))
    route("/wallets/{wallet_id}/mtf-credentials/{client_id}/", mtf.MtfCredentialResource(services))
    route("/management/v2/deposits/new", management.DepositsNewResource(services))
    route("/management/v2/deposits/get", management.DepositsGetResource(services))
    route("/management/v2/deposits/state", management.DepositStateResource(services))
    route("/management/v2/accounts/balance", management.AccountBalanceResource(services))
    route("/orders/", orders.OrdersResource(services))
    route("/orders/{order_id}/", orders.OrderResource(services))
    route("/markets/", markets.MarketsResource(services))
    route("/markets/{market}/depth", markets.DepthResource(services))
    route("/markets/{market}/trades", markets.TradesResource(services))
    return app
