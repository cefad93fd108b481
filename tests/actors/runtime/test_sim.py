"""The deterministic runtime: seeded scheduling, FIFO per pair, the journal's commit
semantics in memory, and recovery from the committed store."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import msgspec
import pytest

from strongroom.actors.messages import (
    Account,
    AccountCode,
    DepositRequest,
    DepositState,
    JournalUnit,
    OrderKind,
    OrderRequest,
    OrderState,
    Posting,
    Side,
    TimeInForce,
    Transfer,
)
from strongroom.actors.runtime.sim import (
    CommittedStore,
    ConstraintViolation,
    Scheduler,
    SimClock,
    SimJournal,
    boot,
    recovered_state,
)
from strongroom.config import DEFAULT
from strongroom.persistence.errors import PersistenceError
from tests.actors.pipeline import Pipeline

PAIRS = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x")]


def fill(scheduler: Scheduler, count: int = 200) -> None:
    for index in range(count):
        sender, receiver = PAIRS[index % len(PAIRS)]
        scheduler.send(sender, receiver, (index,))


def drain(scheduler: Scheduler) -> list[tuple[str, str, int]]:
    order: list[tuple[str, str, int]] = []
    while scheduler.pending:
        delivery = scheduler.next()
        if delivery is None:  # every ready channel is delayed: time passes
            scheduler.step += 1
            continue
        order.append((delivery.sender, delivery.receiver, delivery.message[0]))
    return order


def test_the_order_of_deliveries_is_the_seeds() -> None:
    def order_of(seed: int) -> list[tuple[str, str, int]]:
        scheduler = Scheduler(random.Random(seed), reorder=True, delay_probability=0.2)
        fill(scheduler)
        return drain(scheduler)

    assert order_of(7) == order_of(7)
    assert order_of(7) != order_of(8)


def test_each_sender_receiver_pair_stays_fifo_under_reordering_and_delays() -> None:
    scheduler = Scheduler(random.Random(3), reorder=True, delay_probability=0.3,
                          delay_steps_max=5)  # fmt: skip
    fill(scheduler, 500)
    order = drain(scheduler)
    assert sorted(index for *_, index in order) == list(range(500))  # nothing lost
    by_pair: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for sender, receiver, index in order:
        by_pair[(sender, receiver)].append(index)
    assert all(indexes == sorted(indexes) for indexes in by_pair.values())
    # ... while across pairs the order is not the send order.
    assert [index for *_, index in order] != list(range(500))
    assert scheduler.reordered > 0 and scheduler.delayed > 0


def test_without_faults_deliveries_follow_the_send_order() -> None:
    scheduler = Scheduler(random.Random(1))
    fill(scheduler, 50)
    assert [index for *_, index in drain(scheduler)] == list(range(50))
    assert scheduler.reordered == scheduler.delayed == 0


def test_a_delayed_message_holds_back_its_channel_only() -> None:
    scheduler = Scheduler(random.Random(0), delay_probability=1.0, delay_steps_max=3)
    scheduler.send("a", "x", ("late",))
    scheduler.delay_probability = 0.0
    scheduler.send("a", "x", ("behind it",))
    scheduler.send("b", "x", ("other pair",))
    first = scheduler.next()
    assert first is not None and first.message == ("other pair",)
    assert scheduler.next() is None  # the delayed channel is not ready yet
    forced = scheduler.next(force=True)
    assert forced is not None and forced.message == ("late",)
    last = scheduler.next(force=True)
    assert last is not None and last.message == ("behind it",)
    assert scheduler.clear() == 0


# --------------------------------------------------------------------------- the store


def deposit_unit(transfer_id: int, tid: str, amount: int = 1_000) -> JournalUnit:
    usdt = DEFAULT.currencies["USDT"]
    posting = Posting(Account(AccountCode.ASSET_COIN, "USDT"),
                      Account(AccountCode.MAIN_COIN, usdt.code, "w"), amount)  # fmt: skip
    transfer = Transfer(transfer_id, "deposit", (posting,), f"deposit:{tid}")
    state = DepositState(transfer_id, tid, "w", "USDT", amount, "accepted", "f", transfer_id,
                         1_000_123, 1_000_123)  # fmt: skip
    return JournalUnit([transfer], [], [], [state], {}, [(transfer_id, state)])


def test_a_group_that_breaks_a_constraint_commits_nothing() -> None:
    store = CommittedStore()
    store.commit([deposit_unit(1, "t1")])
    before = msgspec.json.encode([sorted(store.balances.items()), sorted(store.transfers)])
    for group in (
        [deposit_unit(2, "t2"), deposit_unit(2, "t3")],  # transfer id twice
        [deposit_unit(3, "t1")],  # the key deposit:t1 again
    ):
        with pytest.raises(ConstraintViolation):
            store.commit(group)
    after = msgspec.json.encode([sorted(store.balances.items()), sorted(store.transfers)])
    assert after == before and store.groups_committed == 1


def test_the_journal_commits_in_submission_order_in_groups() -> None:
    store = CommittedStore()
    journal = SimJournal(store, group_units_max=2)
    for index in range(1, 4):
        journal.submit(deposit_unit(index, f"t{index}"))
    first = journal.commit_group()
    assert [unit.transfers[0].transfer_id for unit in first] == [1, 2]
    assert sorted(store.transfers) == [1, 2]
    assert journal.clear() == 1  # the process died: the third unit was never committed
    assert sorted(store.transfers) == [1, 2]
    # Timestamps come back as the database keeps them: whole microseconds.
    assert store.deposits[1].created_ns == 1_000_000


def test_an_order_row_is_upserted_as_the_journal_does() -> None:
    def state(**changes: Any) -> OrderState:
        base = OrderState(1, "w", "BTC-USDT", Side.BUY, OrderKind.LIMIT, 10, 5, 0, 0,
                          TimeInForce.GTC, False, "x", "f", "open", 0, 0, 5, 5, 1,
                          1_000, 1_000)  # fmt: skip
        return msgspec.structs.replace(base, **changes)

    store = CommittedStore()
    store.commit([JournalUnit([], [state()], [], [], {}, [])])
    # ON CONFLICT rewrites the changing columns only (not the wallet, nor the fingerprint).
    changed = state(wallet_id="other", fingerprint="g", status="filled", filled=5, remaining=0,
                    updated_ns=9_000)  # fmt: skip
    store.commit([JournalUnit([], [changed], [], [], {}, [])])
    row = store.orders[1]
    assert (row.wallet_id, row.fingerprint, row.status, row.filled, row.updated_ns) == (
        "w", "f", "filled", 5, 9_000,
    )  # fmt: skip


# --------------------------------------------------------------------------- recovery


def pipeline_store() -> tuple[Pipeline, CommittedStore]:
    """A small market day through the behaviours, its units committed to a store."""
    pipeline = Pipeline()
    for wallet_id in ("maker", "taker"):
        pipeline.deposit(wallet_id, "USDT", 10**12)
        pipeline.deposit(wallet_id, "BTC", 10**10)
    for price in (2_000_000, 2_000_100, 2_000_200):
        pipeline.place("maker", Side.SELL, 5, price)
    pipeline.place("maker", Side.BUY, 3, 1_999_000, display_quantity=1)
    pipeline.place("taker", Side.BUY, 7, 2_000_100)
    pipeline.place("taker", Side.SELL, 2, kind=OrderKind.STOP_LIMIT, price=1_990_000,
                   stop_price=1_995_000)  # fmt: skip
    store = CommittedStore()
    store.commit(pipeline.units)
    return pipeline, store


def test_boot_rebuilds_the_behaviours_from_the_committed_store() -> None:
    pipeline, store = pipeline_store()
    process = boot(DEFAULT, store, Scheduler(random.Random(0)), SimClock(),
                   lambda unit: None, lambda replies: None, shards=2)  # fmt: skip
    assert dict(process.ledger.accounts()) == dict(pipeline.ledger.accounts())
    for market, book in pipeline.books.items():
        assert process.books[market].open_orders() == book.open_orders()
        assert process.books[market].next_trade_id == book.next_trade_id
        assert process.books[market].last_price == book.last_price
        assert process.books[market].sequence == book.sequence
    assert sorted(process.clearing.orders) == sorted(pipeline.clearing.orders)
    # The vault shards know the open orders again (as `RestoreOpenOrder` tells them).
    known = {order_id for shard in process.runtime.shards for vault in shard.vaults.values()
             for order_id in vault.open_orders}  # fmt: skip
    assert known == set(pipeline.clearing.orders)
    assert process.state.next_order_id == 1 + max(store.orders)


def test_recovery_refuses_a_hold_without_a_live_order() -> None:
    _, store = pipeline_store()
    live = store.live_orders()[0]
    store.orders[live.order_id] = msgspec.structs.replace(live, status="canceled")
    with pytest.raises(PersistenceError, match="holds without a live order"):
        recovered_state(store)


def test_replies_leave_only_after_the_commit_of_their_unit() -> None:
    store = CommittedStore()
    journal = SimJournal(store)
    scheduler = Scheduler(random.Random(0))
    replies: list[tuple[int, Any]] = []
    process = boot(DEFAULT, store, scheduler, SimClock(), journal.submit, replies.extend)
    runtime = process.runtime
    runtime.tell("ledger", (DepositRequest(1, 1, "t1", "w", "USDT", 10**10, True, "f", 0),))
    runtime.tell(runtime.shard_name("w"), (
        OrderRequest(2, 1, "w", "BTC-USDT", Side.BUY, OrderKind.LIMIT, 100, 1, 0, 0,
                     TimeInForce.GTC, False, None, "f", 0),
    ))  # fmt: skip
    while (delivery := scheduler.next()) is not None:
        runtime.deliver(delivery)
    assert replies == [] and len(journal.queue) == 2  # effects queued, nothing answered
    committed = journal.commit_group()
    answered = [reply for unit in committed for reply in unit.replies]
    assert [token for token, _ in answered] == [1, 2]
    assert isinstance(answered[1][1], OrderState) and answered[1][1].status == "open"
    assert sorted(store.orders) == [1] and store.deposits[1].state == "accepted"
