"""The OpenAPI 3.1 document of the REST edge, made from the routes themselves, and the
docs page (Swagger UI from the pip-installed `swagger-ui-bundle-v2`, no CDN).

Each route's security comes from its resource — the scope `AuthMiddleware` requires, and
whether partners and/or users may call it — so the document cannot drift from what is
enforced; `OPERATIONS` adds the words (summary, success status) and must name every
responder of every route, and nothing else (`document` raises otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from strongroom import __version__
from strongroom.http.auth import required_scope
from strongroom.http.resources import payments, transfers, withdrawals
from strongroom.http.resources.api_keys import ApiKeyIn
from strongroom.http.resources.applications import ApplicationIn
from strongroom.http.resources.balances import WalletBalancesIn
from strongroom.http.resources.orders import OrderIn, ReplaceIn
from strongroom.http.resources.users import LoginIn, MasterPasswordIn, OtpIn, RegisterIn
from strongroom.http.resources.wallets import WalletIn
from strongroom.http.resources.webhooks import WebhooksIn
from strongroom.http.resources.withdrawal_info import (
    EstimateIn,
    FeeEstimateIn,
    MinAmountIn,
    ValidateAddressIn,
)

METHODS = ("get", "post", "put", "patch", "delete")
PROBLEM = {"$ref": "#/components/schemas/Problem"}
# (path, method, summary, success status); security comes from the resources
OPERATIONS: tuple[tuple[str, str, str, int], ...] = (
    ("/", "get", "The market page: live book, trades and ticker over the feed", 200),
    ("/openapi.json", "get", "This document", 200),
    ("/docs", "get", "This document, readable (Swagger UI)", 200),
    ("/status/", "get", "Readiness: ok once the database and listeners are up", 200),
    ("/o/token/", "post", "OAuth 2.0 client credentials token", 200),
    ("/o/revoke_token/", "post", "Revoke one of the client's tokens (RFC 7009)", 200),
    ("/o/apps/", "get", "Your partner's OAuth applications", 200),
    (
        "/o/apps/",
        "post",
        "Create an OAuth application {name, scopes}; the secret is shown this once",
        201,
    ),
    ("/o/apps/{application_id}/", "delete", "Delete an application: its tokens stop", 204),
    ("/api-keys/", "get", "Your partner's live API keys", 200),
    (
        "/api-keys/",
        "post",
        "Create an API key {scopes, signature_required}; the secret is shown this once",
        201,
    ),
    ("/api-keys/{api_key}/", "delete", "Revoke an API key at once", 204),
    (
        "/users/register",
        "post",
        "Register a user {email, password, external_id?}: a vault (wallet) PREPARING",
        201,
    ),
    ("/users/login", "post", "A user's token {email, password, otp?} (1 h)", 200),
    ("/users/2fa/setup", "post", "A TOTP secret and otpauth URI (user token)", 200),
    ("/users/2fa/confirm", "post", "Turn 2FA on with a first OTP (user token)", 200),
    (
        "/users/master-password",
        "post",
        "Set the master password {master_password, otp}: the vault is generated (202)",
        202,
    ),
    ("/users/me/profile", "get", "The user's profile, wallet, deposit keys", 200),
    ("/users/me/profile/basic", "get", "The user's profile, basic", 200),
    ("/users/me/deposit-keys", "get", "A deposit address per coin currency", 200),
    ("/user/me/", "get", "The partner's own record and master wallet", 200),
    ("/user/fees/", "get", "Fee revenue per currency, from the ledger", 200),
    (
        "/user/balances/",
        "get",
        "The master wallet's balances, the other wallets per currency, and statistics",
        200,
    ),
    (
        "/user/balances/history/",
        "get",
        "Ledger movements of your wallets, newest first (currency, type, wallet_id,"
        " limit <= 100, offset)",
        200,
    ),
    (
        "/user/webhooks/",
        "post",
        "Set the webhook URL {callback_url}; the signing secret is shown the first time only",
        200,
    ),
    (
        "/user/webhooks/deliveries/",
        "get",
        "Webhook delivery attempts, newest first (event_id, limit <= 100, offset)",
        200,
    ),
    ("/wallets/", "post", "Create a wallet (sub-account)", 201),
    ("/wallets/", "get", "List your wallets", 200),
    ("/wallets/balances/", "post", "A wallet's balances by {wallet_id} or {external_id}", 200),
    ("/wallets/{wallet_id}/", "get", "A wallet with its balances", 200),
    (
        "/wallets/{wallet_id}/mtf-credentials/",
        "post",
        "Issue MTF credentials {client_id, secret}; the secret is shown this once",
        201,
    ),
    ("/wallets/{wallet_id}/mtf-credentials/", "get", "A wallet's MTF credentials", 200),
    (
        "/wallets/{wallet_id}/mtf-credentials/",
        "delete",
        "Revoke all MTF credentials of a wallet; their sessions close",
        200,
    ),
    (
        "/wallets/{wallet_id}/mtf-credentials/{client_id}/",
        "delete",
        "Revoke one MTF credential; its session closes",
        204,
    ),
    ("/management/v2/deposits/new", "post", "Create a deposit (accepted: credit now)", 201),
    ("/management/v2/deposits/get", "post", "A deposit by tid", 201),
    ("/management/v2/deposits/state", "put", "Accept, cancel or reject a deposit", 200),
    ("/management/v2/accounts/balance", "post", "Balance and locked of a wallet", 201),
    ("/orders/", "post", "Place an order (answered after matching)", 201),
    ("/orders/", "get", "A wallet's orders", 200),
    ("/orders/{order_id}/", "get", "An order", 200),
    ("/orders/{order_id}/", "patch", "Replace price and/or quantity", 200),
    ("/orders/{order_id}/", "delete", "Cancel an open order", 200),
    ("/markets/", "get", "Markets with tick and lot sizes", 200),
    (
        "/markets/{market}/depth",
        "get",
        "Committed depth; `sequence` is the feed's book sequence (SPEC §6)",
        200,
    ),
    ("/markets/{market}/trades", "get", "Recent trades, newest first", 200),
    (
        "/currencies/",
        "get",
        "Deposit (or withdrawal=true) currencies; full, min_max, include_usd add details",
        200,
    ),
    (
        "/rates/",
        "get",
        "A rate and conversion {currency_from, currency_to, amount, fee_percentage,"
        " is_fee_paid_by_user, full} from the books' mid prices; 409 no_rate",
        200,
    ),
    (
        "/withdrawal/validate-address/",
        "post",
        "Is {address} a mainnet address for {currency}? 200 with valid and reason",
        200,
    ),
    (
        "/withdrawal/fee-estimate/",
        "post",
        "The fee of withdrawing {amount} of {currency} (received; the fee comes on top)",
        200,
    ),
    (
        "/withdrawal/estimate/",
        "post",
        "A withdrawal's figures {currency, amount, final_amount}: receive, fee, total",
        200,
    ),
    ("/withdrawal/min-amount/", "post", "The limits of a withdrawal currency {currency}", 200),
    (
        "/withdrawal/available-currencies/",
        "get",
        "Withdrawal currencies with a positive available balance (wallet_id narrows)",
        200,
    ),
    # The custody resources list their own operations and request bodies.
    *transfers.OPERATIONS,
    *withdrawals.OPERATIONS,
    *payments.OPERATIONS,
)


REQUESTS: dict[tuple[str, str], type[msgspec.Struct]] = {
    **transfers.REQUESTS,
    **withdrawals.REQUESTS,
    **payments.REQUESTS,
    ("/wallets/", "post"): WalletIn,
    ("/wallets/balances/", "post"): WalletBalancesIn,
    ("/orders/", "post"): OrderIn,
    ("/orders/{order_id}/", "patch"): ReplaceIn,
    ("/o/apps/", "post"): ApplicationIn,
    ("/api-keys/", "post"): ApiKeyIn,
    ("/users/register", "post"): RegisterIn,
    ("/users/login", "post"): LoginIn,
    ("/users/2fa/confirm", "post"): OtpIn,
    ("/users/master-password", "post"): MasterPasswordIn,
    ("/user/webhooks/", "post"): WebhooksIn,
    ("/withdrawal/validate-address/", "post"): ValidateAddressIn,
    ("/withdrawal/fee-estimate/", "post"): FeeEstimateIn,
    ("/withdrawal/estimate/", "post"): EstimateIn,
    ("/withdrawal/min-amount/", "post"): MinAmountIn,
}
_PARAMETER = re.compile(r"{(\w+)}")


class DocumentError(Exception):
    """OPERATIONS and the routes disagree."""


def security(resource: object, method: str) -> list[dict[str, list[str]]] | None:
    """Who may call: None for public routes, else the alternatives OAS 3.1 lists."""
    scope = required_scope(resource, method.upper())
    if scope is None:
        return None
    alternatives: list[dict[str, list[str]]] = []
    if getattr(resource, "partners", True):
        alternatives += [{"oauth2": [scope]}, {"apiKey": [scope]}]
    if getattr(resource, "users", False):
        alternatives.append({"userToken": [scope]})
    return alternatives


def document(routes: Sequence[tuple[str, object]]) -> dict[str, Any]:
    words = {(path, method): (summary, status) for path, method, summary, status in OPERATIONS}
    paths: dict[str, dict[str, Any]] = {}
    served: set[tuple[str, str]] = set()
    for path, resource in routes:
        for method in METHODS:
            if not hasattr(resource, f"on_{method}"):
                continue
            served.add((path, method))
            if (path, method) not in words:
                raise DocumentError(f"{method.upper()} {path} has no entry in OPERATIONS")
            summary, status = words[path, method]
            operation: dict[str, Any] = {
                "summary": summary,
                "responses": {
                    str(status): {"description": "success"},
                    "default": {
                        "description": "RFC 9457 problem details",
                        "content": {"application/problem+json": {"schema": PROBLEM}},
                    },
                },
            }
            allowed = security(resource, method)
            if allowed is not None:
                operation["security"] = allowed
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAMETER.findall(path)
            ]
            if parameters:
                operation["parameters"] = parameters
            request = REQUESTS.get((path, method))
            if request is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{request.__name__}"}
                        }
                    },
                }
            paths.setdefault(path, {})[method] = operation
    unserved = sorted(set(words) - served)
    if unserved:
        raise DocumentError(f"OPERATIONS names routes that are not served: {unserved}")
    _, schemas = msgspec.json.schema_components(
        list(REQUESTS.values()), ref_template="#/components/schemas/{name}"
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "strongroom", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/o/token/",
                            "scopes": {"read": "read", "write": "move money", "admin": "operate"},
                        }
                    },
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "APIKEY",
                    "description": "With TIMESTAMP, CONTENT and SIGNATURE when the key requires"
                    " signatures (SPEC §5); the key's scopes apply.",
                },
                "userToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A user's token from POST /users/login (1 h)",
                },
            },
            "schemas": {
                **schemas,
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strongroom API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs", deepLinking: true});
</script></body></html>
"""
