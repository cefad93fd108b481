"""The ledger's invariants, checked over a running server's own database.

After an end-to-end test (`check_ledger(server)`), in one consistent snapshot:

- per currency, assets + expenses − liabilities − revenues = 0 over the balances table;
- the balances table equals the sum of the postings, account by account, so every
  wallet's balance is the sum of its history;
- no member account (main or locked) is negative;
- every hold that still holds funds belongs to a live order or a live withdrawal.
"""

from __future__ import annotations

import asyncio

import asyncpg
from pgserver.utils import PostmasterInfo

from strongroom.persistence.recovery import BALANCES_FROM_POSTINGS, HOLDS_FROM_POSTINGS
from tests.server import ServerProcess


def database_url(server: ServerProcess) -> str:
    info = PostmasterInfo.read_from_pgdata(server.data_dir / "postgres")
    assert info is not None, "the server's embedded PostgreSQL is not running"
    return info.get_uri()


async def _violations(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            found: list[str] = []
            for row in await connection.fetch(
                "SELECT currency, sum(CASE WHEN code < 200 OR code >= 400 THEN amount"
                " ELSE -amount END) AS total FROM balances GROUP BY currency"
            ):
                if row["total"] != 0:
                    found.append(f"{row['currency']} is out of balance by {row['total']}")
            table = {
                (row["code"], row["wallet_id"], row["currency"]): row["amount"]
                for row in await connection.fetch("SELECT * FROM balances WHERE amount <> 0")
            }
            summed = {
                (row["code"], row["wallet"] or "", row["currency"]): row["amount"]
                for row in await connection.fetch(BALANCES_FROM_POSTINGS)
            }
            if table != summed:
                differ = {
                    key: (table.get(key), summed.get(key))
                    for key in table.keys() | summed.keys()
                    if table.get(key) != summed.get(key)
                }
                found.append(f"balances differ from the sum of postings: {differ}")
            for key, amount in table.items():
                if 200 <= key[0] < 300 and amount < 0:
                    found.append(f"member account {key} is negative: {amount}")
            holds = {row["hold_id"] for row in await connection.fetch(HOLDS_FROM_POSTINGS)}
            live = {
                row["id"]
                for row in await connection.fetch(
                    "SELECT order_id AS id FROM orders WHERE status IN ('new', 'open', 'pending')"
                    " UNION SELECT withdrawal_id FROM withdrawals"
                    " WHERE state IN ('accepted', 'processing', 'confirming', 'errored')"
                )
            }
            if holds - live:
                found.append(f"holds without a live order or withdrawal: {sorted(holds - live)}")
            return found
    finally:
        await connection.close()


def check_ledger(server: ServerProcess) -> None:
    """AssertionError naming every broken invariant of the server's committed ledger."""
    violations = asyncio.run(_violations(database_url(server)))
    assert not violations, "ledger invariants broken:\n" + "\n".join(violations)
