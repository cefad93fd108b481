"""The pykka shell: real actor threads and a real event loop; the journal is stood in by a
function that 'commits' at once, since durability is tested end to end elsewhere."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from strongroom.actors.book import OrderBook
from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    DepositState,
    JournalUnit,
    OrderKind,
    OrderState,
    Refused,
    Side,
)
from strongroom.actors.runtime import pykka as runtime
from strongroom.actors.system import Bridge
from strongroom.config import DEFAULT
from strongroom.custody.desk import Custody
from strongroom.service import ServiceUnavailable, Trading


class Harness:
    def __init__(self) -> None:
        self.units: list[JournalUnit] = []
        self.fatal: list[BaseException] = []
        self.fatal_seen = threading.Event()

    async def start(self, *, shards: int = 2, vault_idle_s: float = 60.0) -> Trading:
        loop = asyncio.get_running_loop()

        def commit(unit: JournalUnit) -> None:
            self.units.append(unit)
            self.bridge.committed(unit)

        def fatal(error: BaseException) -> None:
            self.fatal.append(error)
            self.fatal_seen.set()

        self.bridge = Bridge(loop, commit, reply_timeout_s=5.0)
        books = {
            symbol: OrderBook(market.market_id, collar_bps=DEFAULT.fees.market_collar_bps)
            for symbol, market in DEFAULT.markets.items()
        }
        clearing = Clearing(DEFAULT, Ledger(DEFAULT.currencies))
        self.runtime, self.tops = runtime.start(
            DEFAULT, clearing, Custody(clearing), books, [], self.bridge, fatal,
            shards=shards, vault_idle_s=vault_idle_s,
        )  # fmt: skip
        return Trading(DEFAULT, self.bridge, self.runtime.directory, next_order_id=1,
                       next_deposit_id=1)  # fmt: skip

    def stop(self) -> None:
        self.runtime.stop()
        self.bridge.close()


@pytest_asyncio.fixture(loop_scope="function")
async def harness() -> AsyncIterator[tuple[Harness, Trading]]:
    harness = Harness()
    trading = await harness.start()
    yield harness, trading
    harness.stop()


async def fund(trading: Trading, wallet_id: str) -> None:
    for currency, amount in (("USDT", 10**12), ("BTC", 10**10)):
        reply = await trading.deposit(
            tid=f"{wallet_id}-{currency}", wallet_id=wallet_id, currency=currency,
            amount=amount, accept=True, fingerprint="f",
        )  # fmt: skip
        assert isinstance(reply, DepositState)


@pytest.mark.asyncio(loop_scope="function")
async def test_orders_cross_through_the_actors(harness: tuple[Harness, Trading]) -> None:
    _, trading = harness
    await fund(trading, "maker")
    await fund(trading, "taker")
    maker = await trading.place(
        wallet_id="maker", market="BTC-USDT", side=Side.SELL, kind=OrderKind.LIMIT,
        price=2_000_000, quantity=10,
    )  # fmt: skip
    taker = await trading.place(
        wallet_id="taker", market="BTC-USDT", side=Side.BUY, kind=OrderKind.LIMIT,
        price=2_000_000, quantity=4,
    )  # fmt: skip
    assert isinstance(maker, OrderState) and maker.status == "open"
    assert isinstance(taker, OrderState) and (taker.status, taker.filled) == ("filled", 4)
    sequence, depth = await trading.inspect_book("BTC-USDT", lambda b: (b.sequence, b.depth(5)))
    assert depth == ([], [(2_000_000, 6)]) and sequence >= 2
    canceled = await trading.cancel("maker", maker.order_id)
    assert isinstance(canceled, OrderState) and canceled.status == "canceled"
    again = await trading.cancel("maker", maker.order_id)
    assert isinstance(again, Refused) and again.code == "order_not_open"


@pytest.mark.asyncio(loop_scope="function")
async def test_commands_of_one_loop_iteration_travel_as_one_batch(
    harness: tuple[Harness, Trading],
) -> None:
    state, trading = harness
    await fund(trading, "w")
    state.units.clear()
    replies = await asyncio.gather(*(
        trading.place(wallet_id="w", market="ETH-USDT", side=Side.BUY, kind=OrderKind.LIMIT,
                      price=100_000 + index, quantity=1)
        for index in range(200)
    ))  # fmt: skip
    assert all(isinstance(reply, OrderState) and reply.status == "open" for reply in replies)
    # 200 orders from one loop iteration: one shard batch, one book batch, one unit.
    assert len(state.units) == 1
    assert len(state.units[0].orders) == 200


@pytest.mark.asyncio(loop_scope="function")
async def test_idle_vaults_are_passivated() -> None:
    harness = Harness()
    trading = await harness.start(shards=1, vault_idle_s=0.0)
    try:
        await fund(trading, "a")
        placed = await trading.place(
            wallet_id="a", market="BTC-USDT", side=Side.BUY, kind=OrderKind.LIMIT,
            price=1_000_000, quantity=1,
        )  # fmt: skip
        assert isinstance(placed, OrderState)
        shard = harness.runtime.directory.shards[0]

        async def vault_ids() -> set[str]:
            future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
            token = harness.bridge.expect(future.set_result)
            harness.bridge.send(shard, runtime.Inspect(token, lambda vaults: set(vaults)))
            return await future

        assert await vault_ids() == {"a"}  # a live order keeps its vault active
        canceled = await trading.cancel("a", placed.order_id)
        assert isinstance(canceled, OrderState) and canceled.status == "canceled", canceled
        # Every message sweeps when idle_s is 0: a vault without live orders is dropped
        # (once the shard has heard that the order ended, which may take a message or two).
        for _ in range(100):
            if "a" not in await vault_ids():
                break
            await asyncio.sleep(0.01)
        assert await vault_ids() == set()
        again = await trading.place(
            wallet_id="a", market="BTC-USDT", side=Side.BUY, kind=OrderKind.LIMIT,
            price=1_000_000, quantity=1,
        )  # fmt: skip
        assert isinstance(again, OrderState) and again.status == "open"  # reactivated on use
    finally:
        harness.stop()


@pytest.mark.asyncio(loop_scope="function")
async def test_a_broken_behaviour_is_fatal_not_silent() -> None:
    harness = Harness()
    trading = await harness.start()
    try:

        def explode(book: object) -> None:
            raise RuntimeError("broken invariant")

        with pytest.raises(Exception):  # noqa: B017 - the reply never comes; the timeout is not the point
            await asyncio.wait_for(trading.inspect_book("BTC-USDT", explode), 1.0)
        assert await asyncio.to_thread(harness.fatal_seen.wait, 5.0)
        assert "broken invariant" in str(harness.fatal[0])
    finally:
        harness.stop()


@pytest.mark.asyncio(loop_scope="function")
async def test_the_edge_refuses_work_beyond_its_in_flight_limit(
    harness: tuple[Harness, Trading],
) -> None:
    _, trading = harness
    await fund(trading, "w")
    trading.in_flight_max = 3
    replies = await asyncio.gather(
        *(
            trading.place(wallet_id="w", market="ETH-USDT", side=Side.BUY, kind=OrderKind.LIMIT,
                          price=100_000, quantity=1)
            for _ in range(5)
        ),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(isinstance(reply, OrderState) for reply in replies) == 3
    assert sum(isinstance(reply, ServiceUnavailable) for reply in replies) == 2
