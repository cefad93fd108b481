"""The journal writer process against a real PostgreSQL, through its real socket."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from strongroom.actors.messages import JournalUnit
from strongroom.persistence.writer import JournalClient
from tests.persistence.test_journal import deposit_unit

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_replies_follow_the_child_commits(pool: asyncpg.Pool, database_server: str) -> None:
    resolved: list[tuple[int, int]] = []

    def resolve(unit: JournalUnit) -> None:
        resolved.extend((token, 0) for token, _ in unit.replies)

    database = await pool.fetchval("SELECT current_database()")
    client = JournalClient(
        database_server.replace("/postgres?", f"/{database}?"), resolve, pytest.fail
    )
    await client.start()
    for index in range(1, 301):
        client.submit(deposit_unit(index, f"w{index % 5}", index, token=index))
    await client.drain()
    assert [token for token, _ in resolved] == list(range(1, 301))
    assert client.units_committed == 300
    assert await pool.fetchval("SELECT count(*) FROM transfers") == 300
    await client.stop()


async def test_a_writer_that_dies_is_fatal(pool: asyncpg.Pool, database_server: str) -> None:
    fatal = asyncio.Event()
    database = await pool.fetchval("SELECT current_database()")
    client = JournalClient(
        database_server.replace("/postgres?", f"/{database}?"),
        lambda unit: None,
        lambda error: fatal.set(),
    )
    await client.start()
    assert client._process is not None
    client._process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(fatal.wait(), 10)
