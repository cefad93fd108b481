"""API keys of a partner (seed 003 "Authorization"): create, list, revoke.

A key authenticates with `APIKEY` alone, or — created with `signature_required` — with
`TIMESTAMP`, `CONTENT` and `SIGNATURE` as SPEC §5 says (checked in `AuthMiddleware`). The
secret is in the answer to the create only; it is derived, never stored. A key never gets
more scopes than its creator holds.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import msgspec

from strongroom.http.auth import ApiKey
from strongroom.http.body import read_json
from strongroom.http.context import Services, principal
from strongroom.http.problems import Problem, not_found
from strongroom.http.representations import iso
from strongroom.http.resources.applications import grantable_scopes

API_KEYS_PER_PARTNER_MAX = 100


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    scopes: str | list[str]
    signature_required: bool = True


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "apikey": key.api_key,
        "scopes": key.scopes,
        "signature_required": key.signature_required,
        "created": iso(key.created_at),
    }


class ApiKeysResource:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        keys = await self.services.authority.live_api_keys(principal(req).partner_id)
        resp.media = [api_key_json(key) for key in keys]

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        body = await read_json(req, ApiKeyIn)
        scopes = grantable_scopes(caller, body.scopes)
        authority = self.services.authority
        if len(await authority.live_api_keys(caller.partner_id)) >= API_KEYS_PER_PARTNER_MAX:
            raise Problem(
                409, "too_many_api_keys", f"a partner has at most {API_KEYS_PER_PARTNER_MAX} keys"
            )
        key, secret = await authority.create_api_key(caller, scopes, body.signature_required)
        resp.status = falcon.HTTP_201
        resp.media = {**api_key_json(key), "secret": secret}


class ApiKeyResource:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, api_key: str
    ) -> None:
        if not await self.services.authority.revoke_api_key(principal(req).partner_id, api_key):
            raise not_found(f"API key {api_key}")
        resp.status = falcon.HTTP_204
