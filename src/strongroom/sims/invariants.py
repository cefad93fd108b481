"""The invariants, checked over the real database at the end of a run, in one snapshot.

- `ledger_balanced`: per currency, assets + expenses − liabilities − revenues = 0 over
  the balances table, and that table equals the sum of the postings account by account;
- `no_negative_member_balance`: no member account (main or locked) below zero;
- `holds_accounted`: every hold still holding funds belongs to a live order or a live
  withdrawal;
- `acked_orders_once`: every order the run saw acknowledged (REST 201, in-process
  answer, MTF `A`) is in `orders` exactly once (by id; MTF ones by wallet and
  external id);
- `acked_transfers_once`: every acknowledged deposit is one row, credited by one ledger
  transfer of exactly its amount, retries included; every acknowledged withdrawal is
  one row; a retry was answered with the first answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from strongroom.persistence.recovery import BALANCES_FROM_POSTINGS, HOLDS_FROM_POSTINGS
from strongroom.sims.edges import Acked

NAMES = (
    "ledger_balanced",
    "no_negative_member_balance",
    "holds_accounted",
    "acked_orders_once",
    "acked_transfers_once",
)
DETAIL_MAX = 10


@dataclass(slots=True)
class Verdict:
    held: dict[str, bool] = field(default_factory=dict)
    details: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, problems: list[str]) -> None:
        self.held[name] = not problems
        if problems:
            self.details[name] = problems[:DETAIL_MAX] + (
                [f"… and {len(problems) - DETAIL_MAX} more"] if len(problems) > DETAIL_MAX else []
            )


@dataclass(frozen=True, slots=True)
class TradeRow:
    market: str
    at: datetime
    price: int
    quantity: int
    taker_side: int
    maker_wallet: str
    taker_wallet: str


async def ledger(connection: asyncpg.Connection, verdict: Verdict) -> None:
    """The three ledger invariants (`ledger_balanced`, `no_negative_member_balance`,
    `holds_accounted`), in the caller's snapshot; the test suite checks them too."""
    problems = [
        f"{row['currency']} is out of balance by {row['total']}"
        for row in await connection.fetch(
            "SELECT currency, sum(CASE WHEN code < 200 OR code >= 400 THEN amount"
            " ELSE -amount END) AS total FROM balances GROUP BY currency"
        )
        if row["total"] != 0
    ]
    table = {
        (row["code"], row["wallet_id"], row["currency"]): row["amount"]
        for row in await connection.fetch("SELECT * FROM balances WHERE amount <> 0")
    }
    summed = {
        (row["code"], row["wallet"] or "", row["currency"]): row["amount"]
        for row in await connection.fetch(BALANCES_FROM_POSTINGS)
    }
    for key in sorted(table.keys() | summed.keys()):
        if table.get(key) != summed.get(key):
            problems.append(f"account {key}: balance {table.get(key)}, postings {summed.get(key)}")
    verdict.add("ledger_balanced", problems)
    verdict.add(
        "no_negative_member_balance",
        [
            f"member account {key} is {amount}"
            for key, amount in sorted(table.items())
            if 200 <= key[0] < 300 and amount < 0
        ],
    )
    holds = {row["hold_id"] for row in await connection.fetch(HOLDS_FROM_POSTINGS)}
    live = {
        row["id"]
        for row in await connection.fetch(
            "SELECT order_id AS id FROM orders WHERE status IN ('new', 'open', 'pending')"
            " UNION SELECT withdrawal_id FROM withdrawals"
            " WHERE state IN ('accepted', 'processing', 'confirming', 'errored')"
        )
    }
    verdict.add(
        "holds_accounted",
        [f"hold {hold} has no live order or withdrawal" for hold in sorted(holds - live)],
    )


async def _orders(connection: asyncpg.Connection, acked: Acked, verdict: Verdict) -> None:
    problems: list[str] = []
    ids = sorted(acked.order_ids)
    found = {
        row["order_id"]: row["count"]
        for row in await connection.fetch(
            "SELECT order_id, count(*) AS count FROM orders WHERE order_id = ANY($1::bigint[])"
            " GROUP BY order_id",
            ids,
        )
    }
    problems += [f"order {ident} is in orders {found.get(ident, 0)} times"
                 for ident in ids if found.get(ident, 0) != 1]  # fmt: skip
    pairs = sorted(acked.mtf_orders)
    counted = {
        (row["wallet_id"], row["external_id"]): row["count"]
        for row in await connection.fetch(
            "SELECT wallet_id, external_id, count(*) AS count FROM orders"
            " WHERE external_id = ANY($1::text[]) GROUP BY wallet_id, external_id",
            [external for _, external in pairs],
        )
    }
    problems += [f"MTF order {pair} is in orders {counted.get(pair, 0)} times"
                 for pair in pairs if counted.get(pair, 0) != 1]  # fmt: skip
    verdict.add("acked_orders_once", problems)


async def _transfers(connection: asyncpg.Connection, acked: Acked, verdict: Verdict) -> None:
    problems = list(acked.retry_mismatches)
    tids = sorted(acked.deposits)
    rows = {
        row["tid"]: row
        for row in await connection.fetch(
            "SELECT d.tid, count(*) OVER (PARTITION BY d.tid) AS count, d.wallet_id,"
            " d.currency, d.amount, d.state, d.transfer_id,"
            " (SELECT count(*) FROM transfers t WHERE t.transfer_id = d.transfer_id) AS transfers,"
            " (SELECT coalesce(sum(p.amount), 0) FROM postings p"
            "   WHERE p.transfer_id = d.transfer_id AND p.credit_wallet = d.wallet_id) AS credited"
            " FROM deposits d WHERE d.tid = ANY($1::text[])",
            tids,
        )
    }
    for tid in tids:
        wallet_id, currency, amount = acked.deposits[tid]
        row = rows.get(tid)
        if row is None:
            problems.append(f"deposit {tid} is not in deposits")
            continue
        if row["count"] != 1:
            problems.append(f"deposit {tid} is in deposits {row['count']} times")
        if (row["wallet_id"], row["currency"], row["amount"]) != (wallet_id, currency, amount):
            problems.append(f"deposit {tid} differs: {dict(row)} vs {acked.deposits[tid]}")
        if row["state"] != "accepted" or row["transfers"] != 1 or row["credited"] != amount:
            problems.append(
                f"deposit {tid}: state {row['state']}, {row['transfers']} ledger transfers,"
                f" {row['credited']} credited of {amount}"
            )
    ids = sorted(acked.withdrawals)
    found = {
        row["withdrawal_id"]: row
        for row in await connection.fetch(
            "SELECT withdrawal_id, custom_id, count(*) OVER (PARTITION BY withdrawal_id) AS count"
            " FROM withdrawals WHERE withdrawal_id = ANY($1::bigint[])",
            ids,
        )
    }
    for ident in ids:
        row = found.get(ident)
        if row is None or row["count"] != 1:
            problems.append(
                f"withdrawal {ident} is in withdrawals {0 if row is None else row['count']} times"
            )
        elif row["custom_id"] != acked.withdrawals[ident]:
            problems.append(f"withdrawal {ident} has custom_id {row['custom_id']}")
    verdict.add("acked_transfers_once", problems)


async def check(database_url: str, acked: Acked) -> Verdict:
    connection = await asyncpg.connect(database_url)
    verdict = Verdict()
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await ledger(connection, verdict)
            await _orders(connection, acked, verdict)
            await _transfers(connection, acked, verdict)
    finally:
        await connection.close()
    return verdict


KIND_NAMES = {0: "limit", 1: "market", 2: "stop_limit", 3: "stop_market"}


async def order_statuses(database_url: str, wallets: set[str]) -> dict[str, dict[str, int]]:
    """How the run's orders ended, by type: {type: {status or status/reason: count}}."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT kind, status, reason, count(*) AS count FROM orders"
            " WHERE wallet_id = ANY($1::text[]) GROUP BY kind, status, reason",
            sorted(wallets),
        )
    finally:
        await connection.close()
    result: dict[str, dict[str, int]] = {}
    for row in sorted(rows, key=lambda row: (row["kind"], row["status"], row["reason"])):
        name = row["status"] + (f"/{row['reason']}" if row["reason"] else "")
        result.setdefault(KIND_NAMES.get(row["kind"], str(row["kind"])), {})[name] = row["count"]
    return result


async def withdrawal_states(database_url: str, wallets: set[str]) -> dict[str, int]:
    """Where the run's withdrawals stand (the custody worker moves them on meanwhile)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT state, count(*) AS count FROM withdrawals"
            " WHERE wallet_id = ANY($1::text[]) GROUP BY state ORDER BY state",
            sorted(wallets),
        )
    finally:
        await connection.close()
    return {row["state"]: row["count"] for row in rows}


async def trades(database_url: str, wallets: set[str], since: datetime) -> list[TradeRow]:
    """The run's trades with the wallets of both sides, oldest first."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT t.market, t.created_at, t.price, t.quantity, t.taker_side,"
            " maker.wallet_id AS maker_wallet, taker.wallet_id AS taker_wallet"
            " FROM trades t"
            " JOIN orders maker ON maker.order_id = t.maker_order_id"
            " JOIN orders taker ON taker.order_id = t.taker_order_id"
            " WHERE t.created_at >= $1 AND (maker.wallet_id = ANY($2::text[])"
            "   OR taker.wallet_id = ANY($2::text[]))"
            " ORDER BY t.created_at, t.market, t.trade_id",
            since,
            sorted(wallets),
        )
    finally:
        await connection.close()
    return [
        TradeRow(row["market"], row["created_at"], row["price"], row["quantity"],
                 row["taker_side"], row["maker_wallet"], row["taker_wallet"])
        for row in rows
    ]  # fmt: skip
