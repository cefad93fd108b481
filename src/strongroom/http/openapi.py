"""The OpenAPI 3.1 document of the REST edge and a page that renders it without a CDN."""

from __future__ import annotations

from typing import Any

from strongroom import __version__

PROBLEM = {"$ref": "#/components/schemas/Problem"}
# (path, method, summary, scope or None for public, success status)
OPERATIONS: tuple[tuple[str, str, str, str | None, int], ...] = (
    ("/", "get", "The market page: live book, trades and ticker over the feed", None, 200),
    ("/status/", "get", "Readiness: ok once the database and listeners are up", None, 200),
    ("/o/token/", "post", "OAuth 2.0 client credentials token", None, 200),
    ("/o/apps/", "get", "Your partner's OAuth applications", "read", 200),
    (
        "/o/apps/",
        "post",
        "Create an OAuth application {name, scopes}; the secret is shown this once",
        "write",
        201,
    ),
    ("/o/apps/{application_id}/", "delete", "Delete an application: its tokens stop", "write", 204),
    ("/api-keys/", "get", "Your partner's live API keys", "read", 200),
    (
        "/api-keys/",
        "post",
        "Create an API key {scopes, signature_required}; the secret is shown this once",
        "write",
        201,
    ),
    ("/api-keys/{api_key}/", "delete", "Revoke an API key at once", "write", 204),
    (
        "/users/register",
        "post",
        "Register a user {email, password, external_id?}: a vault (wallet) PREPARING",
        "write",
        201,
    ),
    ("/users/login", "post", "A user's token {email, password, otp?} (1 h)", None, 200),
    ("/users/2fa/setup", "post", "A TOTP secret and otpauth URI (user token)", "write", 200),
    ("/users/2fa/confirm", "post", "Turn 2FA on with a first OTP (user token)", "write", 200),
    (
        "/users/master-password",
        "post",
        "Set the master password {master_password, otp}: the vault is generated (202)",
        "write",
        202,
    ),
    ("/users/me/profile", "get", "The user's profile, wallet, deposit keys", "read", 200),
    ("/users/me/profile/basic", "get", "The user's profile, basic", "read", 200),
    ("/users/me/deposit-keys", "get", "A deposit address per coin currency", "read", 200),
    ("/user/me/", "get", "The partner's own record and master wallet", "read", 200),
    ("/user/fees/", "get", "Fee revenue per currency, from the ledger", "admin", 200),
    ("/wallets/", "post", "Create a wallet (sub-account)", "write", 201),
    ("/wallets/", "get", "List your wallets", "read", 200),
    ("/wallets/{wallet_id}/", "get", "A wallet with its balances", "read", 200),
    (
        "/wallets/{wallet_id}/mtf-credentials/",
        "post",
        "Issue MTF credentials {client_id, secret}; the secret is shown this once",
        "write",
        201,
    ),
    ("/wallets/{wallet_id}/mtf-credentials/", "get", "A wallet's MTF credentials", "read", 200),
    (
        "/wallets/{wallet_id}/mtf-credentials/",
        "delete",
        "Revoke all MTF credentials of a wallet; their sessions close",
        "write",
        200,
    ),
    (
        "/wallets/{wallet_id}/mtf-credentials/{client_id}/",
        "delete",
        "Revoke one MTF credential; its session closes",
        "write",
        204,
    ),
    (
        "/management/v2/deposits/new",
        "post",
        "Create a deposit (accepted: credit now)",
        "admin",
        201,
    ),
    ("/management/v2/deposits/get", "post", "A deposit by tid", "admin", 201),
    ("/management/v2/deposits/state", "put", "Accept, cancel or reject a deposit", "admin", 200),
    ("/management/v2/accounts/balance", "post", "Balance and locked of a wallet", "admin", 201),
    ("/orders/", "post", "Place an order (answered after matching)", "write", 201),
    ("/orders/", "get", "A wallet's orders", "read", 200),
    ("/orders/{order_id}/", "get", "An order", "read", 200),
    ("/orders/{order_id}/", "patch", "Replace price and/or quantity", "write", 200),
    ("/orders/{order_id}/", "delete", "Cancel an open order", "write", 200),
    ("/markets/", "get", "Markets with tick and lot sizes", None, 200),
    (
        "/markets/{market}/depth",
        "get",
        "Committed depth; `sequence` is the feed's book sequence (SPEC §6)",
        None,
        200,
    ),
    ("/markets/{market}/trades", "get", "Recent trades, newest first", None, 200),
)


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, scope, status in OPERATIONS:
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
        if scope is not None:
            operation["security"] = [{"oauth2": [scope]}]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("wallet_id", "order_id", "market", "client_id")
            if "{" + name + "}" in path
        ]
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(path, {})[method] = operation
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
                }
            },
            "schemas": {
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
                }
            },
        },
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strongroom API</title>
<style>body{font:15px system-ui,sans-serif;margin:2rem;max-width:60rem}
code{background:#f3f3f3;padding:0 .3em}td,th{padding:.3em .8em;text-align:left}</style>
</head><body><h1>strongroom API</h1>
<p>The machine-readable document is <a href="/openapi.json">/openapi.json</a>.</p>
<table id="ops"><thead><tr><th>method</th><th>path</th><th>scope</th><th>summary</th></tr></thead>
<tbody></tbody></table>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const body = document.querySelector('#ops tbody');
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const row = body.insertRow();
      const scope = op.security ? op.security[0].oauth2.join(' ') : 'public';
      for (const text of [method.toUpperCase(), path, scope, op.summary]) {
        row.insertCell().textContent = text;
      }
    }
  }
});
</script></body></html>
"""
