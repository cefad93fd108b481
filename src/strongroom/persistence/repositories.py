"""Reads of committed state for the edges, and the few writes that are not money."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from strongroom.actors.messages import DepositState, OrderState
from strongroom.persistence.recovery import deposit_from_row, order_from_row

PAGE_SIZE_MAX = 1_000


async def insert_wallet(
    pool: asyncpg.Pool,
    wallet_id: str,
    owner: str,
    name: str,
    external_id: str | None,
    now: datetime,
) -> bool:
    """False when the external id is taken."""
    status: str = await pool.execute(
        "INSERT INTO wallets (wallet_id, owner, name, external_id, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
        wallet_id,
        owner,
        name,
        external_id,
        now,
    )
    return status.endswith(" 1")


async def wallet(pool: asyncpg.Pool, wallet_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM wallets WHERE wallet_id = $1", wallet_id)


async def wallets(
    pool: asyncpg.Pool, owner: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM wallets WHERE ($1::text IS NULL OR owner = $1)"
            " ORDER BY created_at, wallet_id LIMIT $2 OFFSET $3",
            owner,
            limit,
            offset,
        )
    )


async def wallet_count(pool: asyncpg.Pool, owner: str | None) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM wallets WHERE ($1::text IS NULL OR owner = $1)", owner
    )
    return count


async def all_wallet_owners(pool: asyncpg.Pool) -> dict[str, str]:
    return {
        row["wallet_id"]: row["owner"]
        for row in await pool.fetch("SELECT wallet_id, owner FROM wallets")
    }


async def member_balances(
    pool: asyncpg.Pool, wallet_ids: list[str]
) -> dict[str, dict[str, dict[int, int]]]:
    """wallet → currency → account code → amount, for member accounts."""
    result: dict[str, dict[str, dict[int, int]]] = {wallet_id: {} for wallet_id in wallet_ids}
    for row in await pool.fetch(
        "SELECT code, wallet_id, currency, amount FROM balances WHERE wallet_id = ANY($1::text[])",
        wallet_ids,
    ):
        result[row["wallet_id"]].setdefault(row["currency"], {})[row["code"]] = row["amount"]
    return result


async def order(pool: asyncpg.Pool, order_id: int) -> OrderState | None:
    row = await pool.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
    return None if row is None else order_from_row(row)


async def order_by_external_id(
    pool: asyncpg.Pool, wallet_id: str, external_id: str
) -> OrderState | None:
    row = await pool.fetchrow(
        "SELECT * FROM orders WHERE wallet_id = $1 AND external_id = $2 ORDER BY order_id LIMIT 1",
        wallet_id,
        external_id,
    )
    return None if row is None else order_from_row(row)


async def orders(
    pool: asyncpg.Pool, wallet_id: str, status: str | None, limit: int, offset: int
) -> list[OrderState]:
    rows = await pool.fetch(
        "SELECT * FROM orders WHERE wallet_id = $1 AND ($2::text IS NULL OR status = $2)"
        " ORDER BY order_id DESC LIMIT $3 OFFSET $4",
        wallet_id,
        status,
        limit,
        offset,
    )
    return [order_from_row(row) for row in rows]


async def trades(pool: asyncpg.Pool, market: str, limit: int) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM trades WHERE market = $1 ORDER BY trade_id DESC LIMIT $2", market, limit
        )
    )


async def deposit_by_tid(pool: asyncpg.Pool, tid: str) -> DepositState | None:
    row = await pool.fetchrow("SELECT * FROM deposits WHERE tid = $1", tid)
    return None if row is None else deposit_from_row(row)


async def trade_volumes(pool: asyncpg.Pool, since_s: float) -> list[tuple[str, int, int]]:
    """(market, minute since the epoch, lots traded) for every minute since `since_s`."""
    rows = await pool.fetch(
        "SELECT market, (floor(extract(epoch FROM created_at) / 60))::bigint AS minute,"
        " sum(quantity)::bigint AS lots FROM trades WHERE created_at >= to_timestamp($1)"
        " GROUP BY 1, 2",
        since_s,
    )
    return [(row["market"], row["minute"], row["lots"]) for row in rows]


async def recent_deposits(pool: asyncpg.Pool, wallet_id: str, limit: int) -> list[DepositState]:
    rows = await pool.fetch(
        "SELECT * FROM deposits WHERE wallet_id = $1 ORDER BY deposit_id DESC LIMIT $2",
        wallet_id,
        limit,
    )
    return [deposit_from_row(row) for row in rows]


async def master_wallet(pool: asyncpg.Pool, partner_id: str) -> str:
    """The partner's master wallet, made on first use."""
    existing: str | None = await pool.fetchval(
        "SELECT master_wallet_id FROM partners WHERE partner_id = $1", partner_id
    )
    if existing is not None:
        return existing
    wallet_id = str(uuid.uuid4())
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO wallets (wallet_id, owner, name, external_id, created_at, updated_at)"
            " VALUES ($1, $2, 'master', NULL, now(), now())",
            wallet_id,
            partner_id,
        )
        made: str = await connection.fetchval(
            "INSERT INTO partners (partner_id, master_wallet_id) VALUES ($1, $2)"
            " ON CONFLICT (partner_id) DO UPDATE SET partner_id = excluded.partner_id"
            " RETURNING master_wallet_id",
            partner_id,
            wallet_id,
        )
    return made


async def account_totals(pool: asyncpg.Pool, codes: tuple[int, ...]) -> dict[str, int]:
    """Sum per currency of the ledger's balances of the given account codes."""
    rows = await pool.fetch(
        "SELECT currency, sum(amount)::bigint AS amount FROM balances"
        " WHERE code = any($1::smallint[]) GROUP BY currency",
        list(codes),
    )
    return {row["currency"]: row["amount"] for row in rows}


async def wallet_by_external_id(pool: asyncpg.Pool, external_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM wallets WHERE external_id = $1", external_id)


async def owned_wallet_balances(pool: asyncpg.Pool, owner: str) -> list[asyncpg.Record]:
    """Every wallet of `owner` (wallet_id, name) with its member balances (code, currency,
    amount; NULL for a wallet without any), from the ledger's balances table."""
    return list(
        await pool.fetch(
            "SELECT w.wallet_id, w.name, b.code, b.currency, b.amount FROM wallets w"
            " LEFT JOIN balances b ON b.wallet_id = w.wallet_id"
            " WHERE w.owner = $1 ORDER BY w.created_at, w.wallet_id",
            owner,
        )
    )


# One row per (transfer, wallet, currency, account) from the postings: a member account's
# balance is credit-normal, so a credit moves it up and a debit down.
_MOVEMENTS = """
WITH sides AS (
    SELECT transfer_id, credit_wallet AS wallet_id, credit_code AS code, currency,
           amount AS signed
      FROM postings WHERE credit_wallet = ANY($1::text[])
    UNION ALL
    SELECT transfer_id, debit_wallet, debit_code, currency, -amount
      FROM postings WHERE debit_wallet = ANY($1::text[])
), movements AS (
    SELECT s.transfer_id, s.wallet_id, s.currency, s.code, sum(s.signed)::bigint AS amount,
           t.kind, t.created_at
      FROM sides s JOIN transfers t ON t.transfer_id = s.transfer_id
     WHERE ($2::text IS NULL OR s.currency = $2) AND ($3::text IS NULL OR t.kind = $3)
     GROUP BY s.transfer_id, s.wallet_id, s.currency, s.code, t.kind, t.created_at
    HAVING sum(s.signed) <> 0
)
"""


async def balance_movements(
    pool: asyncpg.Pool,
    wallet_ids: list[str],
    currency: str | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """One page of the ledger movements of the wallets' member accounts, newest first
    (transfer id descending; then wallet, currency, account code), and how many there are.
    A movement is the net amount a transfer moved one account; nets of zero are left out."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = list(
            await connection.fetch(
                _MOVEMENTS + "SELECT * FROM movements"
                " ORDER BY transfer_id DESC, wallet_id, currency, code LIMIT $4 OFFSET $5",
                wallet_ids, currency, kind, limit, offset,
            )
        )  # fmt: skip
        total: int = await connection.fetchval(
            _MOVEMENTS + "SELECT count(*) FROM movements", wallet_ids, currency, kind
        )
    return rows, total


async def owned_wallet_ids(pool: asyncpg.Pool, owner: str) -> list[str]:
    return [
        row["wallet_id"]
        for row in await pool.fetch("SELECT wallet_id FROM wallets WHERE owner = $1", owner)
    ]
