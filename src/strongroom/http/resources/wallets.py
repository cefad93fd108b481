"""Wallets (sub-accounts): create, list, details with balances from the ledger.

`GET /wallets/` answers seed 001's `{accounts: [...], total}` (with `limit`, `offset`):
`total` counts every wallet the caller may see, not only this page.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import falcon
import falcon.asgi
import msgspec

from strongroom.http.body import read_json
from strongroom.http.context import Services, int_param, principal
from strongroom.http.problems import Problem, not_found
from strongroom.http.representations import balances_json, iso
from strongroom.persistence import repositories

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class WalletIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    external_id: ExternalId | None = None


async def wallets_json(services: Services, rows: list[Any]) -> list[dict[str, Any]]:
    amounts = await repositories.member_balances(services.pool, [row["wallet_id"] for row in rows])
    return [
        {
            "wallet_id": row["wallet_id"],
            "name": row["name"],
            "external_id": row["external_id"],
            "created": iso(row["created_at"]),
            "updated": iso(row["updated_at"]),
            "balances": balances_json(amounts[row["wallet_id"]], services.config),
        }
        for row in rows
    ]


class WalletsResource:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, WalletIn)
        owner = principal(req).partner_id
        wallet_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        created = await repositories.insert_wallet(
            self.services.pool, wallet_id, owner, body.name, body.external_id, now
        )
        if not created:
            raise Problem(409, "duplicate_external_id", f"external_id {body.external_id} is taken")
        self.services.wallet_owners[wallet_id] = owner
        row = await repositories.wallet(self.services.pool, wallet_id)
        resp.status = falcon.HTTP_201
        resp.media = (await wallets_json(self.services, [row]))[0]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        limit = int_param(req, "limit", 100, 1, repositories.PAGE_SIZE_MAX)
        offset = int_param(req, "offset", 0, 0, 10**9)
        owner = None if caller.admin else caller.partner_id
        rows = await repositories.wallets(self.services.pool, owner, limit, offset)
        resp.media = {
            "accounts": await wallets_json(self.services, rows),
            "total": await repositories.wallet_count(self.services.pool, owner),
            "limit": limit,
            "offset": offset,
        }


class WalletResource:
    users = True  # a user reads its own vault

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, wallet_id: str
    ) -> None:
        self.services.require_wallet(req, wallet_id)
        row = await repositories.wallet(self.services.pool, wallet_id)
        if row is None:
            raise not_found(f"wallet {wallet_id}")
        resp.media = (await wallets_json(self.services, [row]))[0]
