"""The journal writer against a real PostgreSQL: grouped, atomic, and never early."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from strongroom.actors.messages import (
    Account,
    AccountCode,
    DepositState,
    JournalUnit,
    Posting,
    Transfer,
)
from strongroom.persistence.database import migrate
from strongroom.persistence.journal import Journal
from strongroom.persistence.recovery import recover

pytestmark = pytest.mark.asyncio(loop_scope="function")


def deposit_unit(transfer_id: int, wallet_id: str, amount: int, token: int) -> JournalUnit:
    posting = Posting(
        Account(AccountCode.ASSET_COIN, "BTC"),
        Account(AccountCode.MAIN_COIN, "BTC", wallet_id),
        amount,
    )
    state = DepositState(transfer_id, f"tid-{transfer_id}", wallet_id, "BTC", amount, "accepted",
                         "f", transfer_id, 0, 0)  # fmt: skip
    return JournalUnit(
        [Transfer(transfer_id, "deposit", (posting,), f"deposit:tid-{transfer_id}")],
        [], [], [state], {}, [(token, state)],
    )  # fmt: skip


class Recorder:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.seen: list[tuple[int, int]] = []  # (token, rows committed when it was resolved)
        self.fatal: list[BaseException] = []

    def resolve(self, unit: JournalUnit) -> None:
        for token, _ in unit.replies:
            self.seen.append((token, -1))

    def on_fatal(self, error: BaseException) -> None:
        self.fatal.append(error)


async def test_units_are_committed_in_groups_before_their_replies(pool: asyncpg.Pool) -> None:
    recorder = Recorder(pool)
    committed_at_reply: list[int] = []

    def resolve(unit: JournalUnit) -> None:
        # Runs on the loop right after a commit: count what a reader sees now.
        committed_at_reply.extend(token for token, _ in unit.replies)

    journal = Journal(pool, resolve, recorder.on_fatal)
    await journal.start()
    for index in range(1, 501):
        journal.submit(deposit_unit(index, f"w{index % 7}", 1_000 + index, token=index))
    await journal.drain()
    assert committed_at_reply == list(range(1, 501))  # every reply, once, in order
    assert journal.units_committed == 500
    assert journal.groups_committed < 500  # grouped: units queued meanwhile share a commit
    assert await pool.fetchval("SELECT count(*) FROM transfers") == 500
    total = await pool.fetchval("SELECT sum(amount) FROM balances WHERE code = 202")
    assert total == sum(1_000 + index for index in range(1, 501))
    await journal.stop()


async def test_no_reply_before_the_commit_that_holds_its_effects(pool: asyncpg.Pool) -> None:
    observed: list[int] = []
    done = asyncio.Event()

    def resolve(unit: JournalUnit) -> None:
        async def look() -> None:
            # A fresh connection sees only committed rows.
            observed.append(await pool.fetchval("SELECT count(*) FROM transfers"))
            done.set()

        asyncio.get_running_loop().create_task(look())

    journal = Journal(pool, resolve, lambda error: None)
    await journal.start()
    journal.submit(deposit_unit(1, "w", 5, token=1))
    await asyncio.wait_for(done.wait(), 10)
    assert observed == [1]
    await journal.stop()


async def test_a_group_that_cannot_commit_is_fatal_and_replies_nothing(pool: asyncpg.Pool) -> None:
    recorder = Recorder(pool)
    journal = Journal(pool, recorder.resolve, recorder.on_fatal)
    await journal.start()
    journal.submit(deposit_unit(1, "w", 5, token=1))
    await journal.drain()
    journal.submit(deposit_unit(1, "w", 5, token=2))  # the same transfer id again: a bug
    for _ in range(100):
        if recorder.fatal:
            break
        await asyncio.sleep(0.05)
    assert recorder.fatal, "a failed commit must stop the process"
    assert [token for token, _ in recorder.seen] == [1]  # the second unit is never acknowledged
    assert await pool.fetchval("SELECT count(*) FROM transfers") == 1
    assert await pool.fetchval("SELECT amount FROM balances WHERE code = 202") == 5


async def test_migrations_are_applied_once(pool: asyncpg.Pool) -> None:
    assert await migrate(pool) == []
    versions = await pool.fetch("SELECT version FROM schema_migrations")
    assert [row["version"] for row in versions] == [
        "0001_spine.sql",
        "0002_mtf.sql",
        "0003_partners.sql",
        "0004_api_keys.sql",
        "0005_users.sql",
        "0006_webhooks.sql",
        "0007_custody.sql",
    ]


async def test_recovery_refuses_balances_that_disagree_with_the_postings(
    pool: asyncpg.Pool,
) -> None:
    journal = Journal(pool, lambda unit: None, lambda error: None)
    await journal.start()
    journal.submit(deposit_unit(1, "w", 5, token=1))
    await journal.drain()
    await journal.stop()
    async with pool.acquire() as connection:
        state = await recover(connection)
        assert [
            (account.wallet_id, amount) for account, amount in state.balances if account.wallet_id
        ] == [("w", 5)]
        await connection.execute("UPDATE balances SET amount = amount + 1 WHERE code = 202")
        with pytest.raises(Exception, match="disagrees"):
            await recover(connection)
