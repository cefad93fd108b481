"""`create_app(services)`: the Falcon ASGI application of the REST edge."""

from __future__ import annotations

import uuid
from typing import Any

import falcon
import falcon.asgi
import falcon.media
import msgspec
import swagger_ui_bundle
from loguru import logger

from strongroom.http import problems
from strongroom.http.auth import AuthMiddleware
from strongroom.http.context import Services
from strongroom.http.resources import (
    api_keys,
    applications,
    balances,
    management,
    markets,
    mtf,
    orders,
    page,
    payments,
    rates,
    system,
    transfers,
    users,
    wallets,
    webhooks,
    withdrawal_info,
    withdrawals,
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


def routes(services: Services) -> list[tuple[str, object]]:
    """Every route with its resource: what is served, and what the OpenAPI document says."""
    info = withdrawal_info.WithdrawalInfo(services)  # the withdrawal rules, made once
    served: list[tuple[str, object]] = [
        ("/", page.PageResource(services)),
        ("/status/", system.StatusResource(services)),
        ("/o/token/", system.TokenResource(services)),
        ("/o/revoke_token/", system.RevokeTokenResource(services)),
        ("/o/apps/", applications.ApplicationsResource(services)),
        ("/o/apps/{application_id}/", applications.ApplicationResource(services)),
        ("/api-keys/", api_keys.ApiKeysResource(services)),
        ("/api-keys/{api_key}/", api_keys.ApiKeyResource(services)),
        ("/users/register", users.RegisterResource(services)),
        ("/users/login", users.LoginResource(services)),
        ("/users/2fa/setup", users.TwoFactorSetupResource(services)),
        ("/users/2fa/confirm", users.TwoFactorConfirmResource(services)),
        ("/users/master-password", users.MasterPasswordResource(services)),
        ("/users/me/profile", users.ProfileResource(services)),
        ("/users/me/profile/basic", users.ProfileResource(services, basic=True)),
        ("/users/me/deposit-keys", users.DepositKeysResource(services)),
        ("/user/me/", users.TenantResource(services)),
        ("/user/fees/", users.FeesResource(services)),
        ("/user/balances/", balances.BalancesResource(services)),
        ("/user/balances/history/", balances.BalanceHistoryResource(services)),
        ("/user/webhooks/", webhooks.WebhooksResource(services)),
        ("/user/webhooks/deliveries/", webhooks.WebhookDeliveriesResource(services)),
        ("/docs", system.DocsResource()),
        ("/wallets/", wallets.WalletsResource(services)),
        ("/wallets/balances/", balances.WalletBalancesResource(services)),
        ("/wallets/{wallet_id}/", wallets.WalletResource(services)),
        ("/wallets/{wallet_id}/mtf-credentials/", mtf.MtfCredentialsResource(services)),
        ("/wallets/{wallet_id}/mtf-credentials/{client_id}/", mtf.MtfCredentialResource(services)),
        ("/management/v2/deposits/new", management.DepositsNewResource(services)),
        ("/management/v2/deposits/get", management.DepositsGetResource(services)),
        ("/management/v2/deposits/state", management.DepositStateResource(services)),
        ("/management/v2/accounts/balance", management.AccountBalanceResource(services)),
        ("/orders/", orders.OrdersResource(services)),
        ("/orders/{order_id}/", orders.OrderResource(services)),
        ("/markets/", markets.MarketsResource(services)),
        ("/markets/{market}/depth", markets.DepthResource(services)),
        ("/markets/{market}/trades", markets.TradesResource(services)),
        ("/currencies/", rates.CurrenciesResource(services)),
        ("/rates/", rates.RatesResource(services)),
        ("/withdrawal/validate-address/", withdrawal_info.ValidateAddressResource(info)),
        ("/withdrawal/fee-estimate/", withdrawal_info.FeeEstimateResource(info)),
        ("/withdrawal/estimate/", withdrawal_info.EstimateResource(info)),
        ("/withdrawal/min-amount/", withdrawal_info.MinAmountResource(info)),
        ("/withdrawal/available-currencies/", withdrawal_info.AvailableCurrenciesResource(info)),
    ]
    # The custody resources name their own routes.
    served.extend(transfers.routes(services))
    served.extend(withdrawals.routes(services, info))
    served.extend(payments.routes(services))
    served.append(("/openapi.json", system.OpenApiResource(served)))
    return served


def create_app(services: Services) -> falcon.asgi.App[Any, Any]:
    middleware: list[Any] = [RequestIdMiddleware(), AuthMiddleware(services.authority)]
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App(middleware=middleware, cors_enable=False)
    handler = _json_handler()
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.strip_url_path_trailing_slash = False
    problems.install(app)
    for path, resource in routes(services):
        app.add_route(path, resource)
    app.add_static_route("/docs/static", swagger_ui_bundle.swagger_ui_path)
    return app
