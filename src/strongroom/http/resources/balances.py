"""Balances (seed 001 "Balances"): a partner's aggregate balances, the history of its
wallets' ledger movements, and one wallet's balances by id or external id.

Everything is read from the ledger's committed tables (`balances`, `postings`,
`transfers`); nothing here keeps a copy. For every wallet, a member account's balance is
the sum of its movements in the history (`amount` signed: credit +, debit -).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import falcon
import falcon.asgi
import msgspec

from strongroom.actors.messages import AccountCode
from strongroom.config import TradingConfig
from strongroom.http.body import read_json
from strongroom.http.context import Services, int_param, principal
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.representations import balances_json, iso
from strongroom.money import format_minor
from strongroom.persistence import repositories

WalletId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
HISTORY_LIMIT_DEFAULT = 20
HISTORY_LIMIT_MAX = 100
OFFSET_MAX = 10**9
# What the ledger actor records in `transfers.kind` (the clearing's and the custody desk's).
TRANSFER_KINDS = frozenset(
    {
        "deposit",
        "hold",
        "release",
        "trade",
        "wallet_transfer",
        "withdrawal_hold",
        "withdrawal_release",
        "withdrawal_send",
        "payment",
    }
)
ACCOUNT_NAMES = {
    AccountCode.MAIN_FIAT: "main",
    AccountCode.MAIN_COIN: "main",
    AccountCode.LOCKED_FIAT: "locked",
    AccountCode.LOCKED_COIN: "locked",
}
Amounts = dict[str, dict[int, int]]  # currency -> account code -> amount


class WalletBalancesIn(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of the two."""

    wallet_id: WalletId | None = None
    external_id: ExternalId | None = None


def split(amounts: Amounts, config: TradingConfig) -> dict[str, tuple[int, int]]:
    """currency -> (available, locked) for every configured currency."""
    result = {}
    for code, currency in config.currencies.items():
        by_code = amounts.get(code, {})
        main_code, locked_code = (
            (AccountCode.MAIN_FIAT, AccountCode.LOCKED_FIAT)
            if currency.kind == "fiat"
            else (AccountCode.MAIN_COIN, AccountCode.LOCKED_COIN)
        )
        result[code] = (by_code.get(main_code, 0), by_code.get(locked_code, 0))
    return result


def amounts_json(available: int, locked: int, decimals: int) -> dict[str, str]:
    return {
        "amount": format_minor(available + locked, decimals),
        "pending_amount": format_minor(locked, decimals),
        "available_balance": format_minor(available, decimals),
    }


class BalancesResource:
    """GET /user/balances/: the master wallet ("account"), the other wallets aggregated per
    currency ("sub_accounts") and "statistics" over all of the partner's wallets."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        pool, config = self.services.pool, self.services.config
        master_wallet_id = await repositories.master_wallet(pool, caller.partner_id)
        self.services.wallet_owners[master_wallet_id] = caller.partner_id
        names: dict[str, str] = {}
        amounts: dict[str, Amounts] = {}
        for row in await repositories.owned_wallet_balances(pool, caller.partner_id):
            names[row["wallet_id"]] = row["name"]
            by_currency = amounts.setdefault(row["wallet_id"], {})
            if row["currency"] is not None:
                by_currency.setdefault(row["currency"], {})[row["code"]] = row["amount"]
        amounts.setdefault(master_wallet_id, {})
        names.setdefault(master_wallet_id, "master")
        balances = {wallet_id: split(amounts[wallet_id], config) for wallet_id in amounts}
        others = {key: value for key, value in balances.items() if key != master_wallet_id}

        account = {
            code: amounts_json(*balances[master_wallet_id][code], currency.decimals)
            for code, currency in config.currencies.items()
        }
        sub_accounts: dict[str, dict[str, Any]] = {}
        totals: dict[str, dict[str, str]] = {}
        for code, currency in config.currencies.items():
            accounts = [
                {
                    "account_name": names[wallet_id],
                    "account_id": wallet_id,
                    **amounts_json(*by_currency[code], currency.decimals),
                }
                for wallet_id, by_currency in others.items()
                if by_currency[code] != (0, 0)
            ]
            available = sum(by_currency[code][0] for by_currency in others.values())
            locked = sum(by_currency[code][1] for by_currency in others.values())
            sub_accounts[code] = {
                "total_amount": format_minor(available + locked, currency.decimals),
                "total_pending": format_minor(locked, currency.decimals),
                "total_available": format_minor(available, currency.decimals),
                "accounts_count": len(accounts),
                "accounts": accounts,
            }
            all_available = sum(by_currency[code][0] for by_currency in balances.values())
            all_locked = sum(by_currency[code][1] for by_currency in balances.values())
            totals[code] = amounts_json(all_available, all_locked, currency.decimals)
        funded = [
            wallet_id
            for wallet_id, by_currency in balances.items()
            if any(available + locked > 0 for available, locked in by_currency.values())
        ]
        resp.media = {
            "account": account,
            "master_wallet_id": master_wallet_id,
            "sub_accounts": sub_accounts,
            "statistics": {
                "currencies_count": sum(
                    1
                    for code in config.currencies
                    if any(by_currency[code] != (0, 0) for by_currency in balances.values())
                ),
                "subaccounts_count": len(balances) - 1,
                "wallets_count": len(balances),
                "funded_wallets_count": len(funded),
                "totals": totals,
            },
        }


class BalanceHistoryResource:
    """GET /user/balances/history/: the ledger movements of the partner's wallets, newest
    first. Filters `currency`, `type` (the transfer kind) and `wallet_id` (an operator may
    name any wallet); `limit` 1-100 (20) and `offset` paginate (offsets shift as new
    movements arrive: page with a `wallet_id` filter, or read `total`, to notice)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        config = self.services.config
        currency = req.get_param("currency")
        if currency is not None and currency not in config.currencies:
            raise invalid("currency", f"must be one of {', '.join(sorted(config.currencies))}")
        kind = req.get_param("type")
        if kind is not None and kind not in TRANSFER_KINDS:
            raise invalid("type", f"must be one of {', '.join(sorted(TRANSFER_KINDS))}")
        limit = int_param(req, "limit", HISTORY_LIMIT_DEFAULT, 1, HISTORY_LIMIT_MAX)
        offset = int_param(req, "offset", 0, 0, OFFSET_MAX)
        wallet_id = req.get_param("wallet_id")
        if wallet_id is not None:
            wallet_ids = [self.services.require_wallet(req, wallet_id)]
        else:
            wallet_ids = await repositories.owned_wallet_ids(self.services.pool, caller.partner_id)
        movements, total = await repositories.balance_movements(
            self.services.pool, wallet_ids, currency, kind, limit, offset
        )
        resp.media = {
            "results": [
                {
                    "transfer_id": row["transfer_id"],
                    "wallet_id": row["wallet_id"],
                    "currency": row["currency"],
                    "amount": format_minor(
                        row["amount"], config.currencies[row["currency"]].decimals
                    ),
                    "account": ACCOUNT_NAMES[AccountCode(row["code"])],
                    "type": row["kind"],
                    "created_at": iso(row["created_at"]),
                }
                for row in movements
            ],
            "total": total,
            "limit": limit,
            "offset": offset,
        }


class WalletBalancesResource:
    """POST /wallets/balances/ {wallet_id} or {external_id}: one wallet's balances."""

    scopes: ClassVar[dict[str, str]] = {"POST": "read"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        body = await read_json(req, WalletBalancesIn)
        if (body.wallet_id is None) == (body.external_id is None):
            raise Problem(
                422,
                "validation_error",
                "give exactly one of wallet_id and external_id",
                errors=[{"field": "body", "message": "exactly one of wallet_id, external_id"}],
            )
        pool = self.services.pool
        if body.wallet_id is not None:
            row = await repositories.wallet(pool, body.wallet_id)
            what = f"wallet {body.wallet_id}"
        else:
            assert body.external_id is not None
            row = await repositories.wallet_by_external_id(pool, body.external_id)
            what = f"wallet with external_id {body.external_id}"
        if row is None or not (caller.admin or row["owner"] == caller.partner_id):
            raise not_found(what)
        amounts = await repositories.member_balances(pool, [row["wallet_id"]])
        resp.media = {
            "wallet_id": row["wallet_id"],
            "name": row["name"],
            "external_id": row["external_id"],
            "balances": balances_json(amounts[row["wallet_id"]], self.services.config),
        }
