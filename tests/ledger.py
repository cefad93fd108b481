"""The ledger's invariants, checked over a running server's own database.

After an end-to-end test (`check_ledger(server)`), in one consistent snapshot, the
simulation harness's own checks (`strongroom.sims.invariants.ledger`):

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

from strongroom.sims.invariants import Verdict, ledger
from tests.server import ServerProcess


def database_url(server: ServerProcess) -> str:
    info = PostmasterInfo.read_from_pgdata(server.data_dir / "postgres")
    assert info is not None, "the server's embedded PostgreSQL is not running"
    return info.get_uri()


async def _verdict(url: str) -> Verdict:
    connection = await asyncpg.connect(url)
    verdict = Verdict()
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await ledger(connection, verdict)
    finally:
        await connection.close()
    return verdict


def check_ledger(server: ServerProcess) -> None:
    """AssertionError naming every broken invariant of the server's committed ledger."""
    verdict = asyncio.run(_verdict(database_url(server)))
    assert len(verdict.held) == 3, verdict.held  # the three checks ran
    assert all(verdict.held.values()), f"ledger invariants broken: {verdict.details}"
