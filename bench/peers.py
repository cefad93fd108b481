"""The OrderBook behaviour against order-matching libraries from PyPI, on one workload.

    python bench/peers.py [--operations N] [--seed S] [--repeat R] [--budget S] [--quick]
                          [--engines NAME,...] [--no-mypyc]

Peers (the `bench` extra: `pip install -e '.[bench]'`): pure Python `order-matching`,
`pyorderbook`, `fastlob`; native cores `cython-orderbook` (Cython), `liquibook` (C++ by
SWIG), `litebook` (Rust by PyO3). A peer that is not installed is reported, not fatal.

The workload is exchange-core's mix, generated once (seeded, deterministic) as a list of
neutral operations by driving our own book, as `bench/matching.py` does: 9 % GTC limit,
3 % IOC, 6 % cancel, 82 % move (new price, same total quantity) of about 1,000 live orders
over about 750 price levels around a mid, after an untimed prefill of 1,000 resting
orders. Buyers and sellers are distinct owners, so no engine's self-trade rule applies.
Each engine then gets the same operations translated into its own API; a peer without a
move does cancel + new (the remaining quantity, at the new price), and one without IOC
does a limit order and then cancels what rested: each still counts as one operation.

Only the engine calls are timed: requests that carry nothing but the order's terms (our
commands, the peers' order or parameter objects) are built before the clock starts, as
in `bench/matching.py`; whatever depends on the book's state at the time (ids a peer
assigns, cancelling an IOC's remainder) runs inside the timed loop. Each engine runs in
a process of its own: a calibration pass on 1,000 operations, an untimed check pass
(trades counted, failed operations counted, live orders at the end), then `--repeat`
timed passes on a fresh book each, round-robin across the engines so that all of them
see the machine alike. A slow peer runs on a prefix of the workload sized
to its `--budget`; its trades are compared with ours on the same prefix. Throughput is
operations over the timed loop's CPU time (`time.thread_time`: the machine is shared,
and CPU time leaves out the waits for a core that wall time counts); wall time is
reported beside it.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import pickle
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
SOURCE = HERE.parent.parent / "src" / "strongroom"

KIND_NAMES = ("gtc", "ioc", "cancel", "move")
GTC, IOC, CANCEL, MOVE = range(4)
BUY, SELL = 0, 1
MID_PRICE = 100_000  # ticks
HALF_RANGE = 800  # ticks a side: 1,000 orders at random over 1,600 prices ≈ 750 levels
LIVE_TARGET = 1_000
OWNERS_PER_SIDE = 500
PROBE = 1_000  # operations of the calibration pass, and the shortest prefix timed
BATCH = 1_024  # commands per handle_batch, as the book actor and bench/matching.py

# A neutral operation: (kind, order_id, side, price, quantity, total, owner).
# GTC/IOC: a new limit order, quantity == total. CANCEL: price is the order's price,
# quantity what is still open. MOVE: price is the new price, quantity what is still open
# (what a cancel + new places), total the order's total (what a replace names).
Operation = tuple[int, int, int, int, int, int, str]
Step = tuple[Callable[[Any], Any], Any]


# --------------------------------------------------------------------------- workload


@dataclass
class Workload:
    prefill: list[Operation]
    operations: list[Operation]
    trades: array[int]  # our cumulative trade count after each operation
    live: array[int]  # our live orders after each operation
    seed: int
    mean_live: float = 0.0
    mean_levels: float = 0.0
    seconds: float = 0.0


def generate(operations: int, seed: int) -> Workload:
    """The neutral operation stream, from our own book (it knows what is live)."""
    from strongroom.actors.book import OrderBook
    from strongroom.actors.messages import OrderCanceled, OrderRested, Trade

    started = time.perf_counter()
    rng = random.Random(seed)
    book = OrderBook(1)
    owners = (
        [f"buyer-{number:03d}" for number in range(OWNERS_PER_SIDE)],
        [f"seller-{number:03d}" for number in range(OWNERS_PER_SIDE)],
    )
    # live order id → [owner, side, total, price, remaining]
    terms: dict[int, list[Any]] = {}
    ids: list[int] = []
    index: dict[int, int] = {}
    pending: dict[int, list[Any]] = {}
    next_order_id = 1

    def remove(order_id: int) -> None:
        position = index.pop(order_id, None)
        if position is None:
            return
        last = ids.pop()
        if last != order_id:
            ids[position] = last
            index[last] = position
        del terms[order_id]

    def track(operation: Operation) -> int:
        trades = 0
        events = book.handle(ours_command(operation))
        for event in events:
            event_type = type(event)
            if event_type is OrderRested:
                assert isinstance(event, OrderRested)
                entry = pending.get(event.order_id) or terms[event.order_id]
                entry[3] = event.price
                entry[4] = event.remaining
                if event.order_id not in index:
                    index[event.order_id] = len(ids)
                    ids.append(event.order_id)
                terms[event.order_id] = entry
            elif event_type is Trade:
                assert isinstance(event, Trade)
                trades += 1
                if event.maker_remaining == 0:
                    remove(event.maker_order_id)
                else:
                    terms[event.maker_order_id][4] = event.maker_remaining
                if event.taker_remaining == 0:
                    remove(event.taker_order_id)
            elif event_type is OrderCanceled:
                assert isinstance(event, OrderCanceled)
                remove(event.order_id)
        pending.clear()
        return trades

    def passive_price(side: int) -> int:
        offset = rng.randint(1, HALF_RANGE)
        return MID_PRICE - offset if side == BUY else MID_PRICE + offset

    def aggressive_price(side: int) -> int:
        if side == BUY:
            best = book.best_ask()
            return (best if best is not None else MID_PRICE) + rng.randint(0, 4)
        best = book.best_bid()
        return (best if best is not None else MID_PRICE) - rng.randint(0, 4)

    def new_order(kind: int, aggressive: bool) -> Operation:
        nonlocal next_order_id
        order_id = next_order_id
        next_order_id += 1
        side = BUY if rng.random() < 0.5 else SELL
        price = aggressive_price(side) if aggressive else passive_price(side)
        quantity = rng.randint(1, 100)
        owner = owners[side][rng.randrange(OWNERS_PER_SIDE)]
        pending[order_id] = [owner, side, quantity, price, quantity]
        return (kind, order_id, side, price, quantity, quantity, owner)

    prefill: list[Operation] = []
    for _ in range(LIVE_TARGET):
        prefill.append(new_order(GTC, aggressive=False))
        track(prefill[-1])

    stream: list[Operation] = []
    cumulative = array("q")
    live_after = array("q")
    trades_total = 0
    live_samples: list[int] = []
    level_samples: list[int] = []
    for step in range(operations):
        draw = rng.random()
        kind = GTC if draw < 0.09 else IOC if draw < 0.12 else CANCEL if draw < 0.18 else MOVE
        if kind in (CANCEL, MOVE) and not ids:
            kind = GTC
        # Keep about LIVE_TARGET orders live: new limits and moves cross more often when
        # the book holds too many, less when it holds too few (as bench/matching.py).
        excess = (len(ids) - LIVE_TARGET) / LIVE_TARGET
        crossing = min(0.5, max(0.0, 0.03 + 2.0 * excess))
        operation: Operation
        if kind == GTC:
            operation = new_order(GTC, aggressive=rng.random() < crossing)
        elif kind == IOC:
            operation = new_order(IOC, aggressive=True)
        else:
            order_id = ids[rng.randrange(len(ids))]
            owner, side, total, price, remaining = terms[order_id]
            if kind == CANCEL:
                operation = (CANCEL, order_id, side, price, remaining, total, owner)
            else:
                new_price = price
                while new_price == price:
                    cross = rng.random() < crossing / 4
                    new_price = aggressive_price(side) if cross else passive_price(side)
                operation = (MOVE, order_id, side, new_price, remaining, total, owner)
        stream.append(operation)
        trades_total += track(operation)
        cumulative.append(trades_total)
        live_after.append(len(book))
        if step % 1000 == 0:
            live_samples.append(len(book))
            bids, asks = book.depth(10_000)
            level_samples.append(len(bids) + len(asks))
    assert len(book) == len(ids), "the generator lost track of the live orders"
    return Workload(
        prefill,
        stream,
        cumulative,
        live_after,
        seed,
        statistics.fmean(live_samples),
        statistics.fmean(level_samples),
        time.perf_counter() - started,
    )


def ours_command(operation: Operation) -> Any:
    """Our book command for a neutral operation."""
    from strongroom.actors.messages import (
        BookOrder,
        CancelOrder,
        OrderKind,
        PlaceOrder,
        ReplaceOrder,
        Side,
        TimeInForce,
    )

    kind, order_id, side, price, quantity, total, owner = operation
    if kind in (GTC, IOC):
        time_in_force = TimeInForce.GTC if kind == GTC else TimeInForce.IOC
        terms = BookOrder(
            order_id,
            owner,
            Side(side),
            OrderKind.LIMIT,
            price,
            quantity,
            time_in_force=time_in_force,
        )
        return PlaceOrder(terms)
    if kind == CANCEL:
        return CancelOrder(order_id, owner)
    return ReplaceOrder(order_id, owner, price, total)


# --------------------------------------------------------------------------- engines


@dataclass
class Tally:
    """What the check pass counts: trades, and operations the engine refused or failed."""

    trades: int = 0
    misses: int = 0
    notes: list[str] = field(default_factory=list)


class Engine:
    """One engine's translation of the neutral operations into its own calls.

    `steps` turns operations into `(callable, argument)` pairs for a book that has had
    the prefill; the timed loop only calls them. With a `Tally` (the check pass) the
    steps also count trades and failures; without one they do only what the engine needs.
    """

    name = ""
    kind = ""  # "ours", "pure" or "native"
    distribution = ""  # PyPI name, for the version
    note = ""

    def setup(self) -> None:
        """Import the library (ImportError: not installed)."""

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)

    def new_book(self) -> Any:
        raise NotImplementedError

    def prefill(self, book: Any, operations: Sequence[Operation]) -> None:
        for call, argument in self.steps(book, operations, None):
            call(argument)

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        raise NotImplementedError

    def live(self, book: Any) -> int:
        raise NotImplementedError

    def close(self, book: Any, tally: Tally | None) -> None:
        """After a pass: stop what the book started; the check pass may finish its count."""


class Ours(Engine):
    kind = "ours"
    distribution = "strongroom"

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.commands: list[Any] = []
        self.name = "strongroom" if batch else "strongroom per op"
        self.note = (
            f"handle_batch, {BATCH} commands a call" if batch else "handle, one command a call"
        )

    def setup(self) -> None:
        from strongroom.actors import book as book_module

        self.compiled = not str(book_module.__file__).endswith(".py")
        if self.compiled:
            self.name += " (mypyc)"
            self.kind = "ours-mypyc"
            self.note += "; actors/book.py compiled by mypyc"

    def version(self) -> str:
        return importlib.metadata.version("strongroom") + ("+mypyc" if self.compiled else "")

    def new_book(self) -> Any:
        from strongroom.actors.book import OrderBook

        return OrderBook(1)

    def prefill(self, book: Any, operations: Sequence[Operation]) -> None:
        book.handle_batch([ours_command(operation) for operation in operations])

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        from strongroom.actors.messages import OrderRejected, Trade

        # Our commands are immutable: built once, replayed by every pass.
        if len(self.commands) != len(operations):
            self.commands = [ours_command(operation) for operation in operations]
        commands = self.commands
        if tally is not None:

            def counted(command: Any) -> None:
                for event in book.handle(command):
                    if type(event) is Trade:
                        tally.trades += 1
                    elif type(event) is OrderRejected:
                        tally.misses += 1

            return [(counted, command) for command in commands]
        if self.batch:
            handle_batch = book.handle_batch
            return [
                (handle_batch, commands[start : start + BATCH])
                for start in range(0, len(commands), BATCH)
            ]
        return [(book.handle, command) for command in commands]

    def live(self, book: Any) -> int:
        return len(book)


class OrderMatching(Engine):
    """order-matching 0.12: `MatchingEngine.place(Orders)` then `.match(timestamp)`.

    Time priority is the order's `timestamp`, so every operation gets the next tick of a
    fake clock. No IOC: the order is a limit order whose `expiration` is the next tick,
    and the engine cancels expired orders before it matches anything later. A move is
    `cancel_order(id)` + a new order under the same id (allowed once the old one is gone).
    """

    name = "order-matching"
    kind = "pure"
    distribution = "order-matching"
    note = "no move: cancel + new; no IOC: expires at the next tick"

    def setup(self) -> None:
        from loguru import logger

        # The engine logs at DEBUG on every call and loguru's default sink prints DEBUG:
        # disabled as loguru advises for a library (the messages are still formatted).
        logger.disable("order_matching")
        from order_matching import enums, matching_engine, order, orders

        self.engine_type = matching_engine.MatchingEngine
        self.limit_order = order.LimitOrder
        self.orders_type = orders.Orders
        self.sides = (enums.Side.BUY, enums.Side.SELL)
        self.start = datetime(2024, 1, 1)

    def new_book(self) -> Any:
        engine = self.engine_type(seed=1)
        engine._bench_tick = 0  # the fake clock, in microseconds
        return engine

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        place, match, cancel = book.place, book.match, book.cancel_order
        forever = datetime.max

        def submit(item: tuple[Any, datetime]) -> None:
            place(item[0])
            match(timestamp=item[1])

        def submit_counted(item: tuple[Any, datetime]) -> None:
            place(item[0])
            tally.trades += len(match(timestamp=item[1]))  # type: ignore[union-attr]

        def cancel_counted(order_id: str) -> None:
            try:
                cancel(order_id)
            except ValueError:
                tally.misses += 1  # type: ignore[union-attr]

        submit_step = submit if tally is None else submit_counted
        cancel_step = cancel if tally is None else cancel_counted
        result: list[Step] = []
        for kind, order_id, side, price, quantity, _, owner in operations:
            book._bench_tick += 2
            timestamp = self.start + timedelta(microseconds=book._bench_tick)
            key = str(order_id)
            if kind == CANCEL:
                result.append((cancel_step, key))
                continue
            if kind == MOVE:
                result.append((cancel_step, key))
            expiration = timestamp + timedelta(microseconds=1) if kind == IOC else forever
            order = self.limit_order(
                side=self.sides[side],
                price=price,
                size=quantity,
                timestamp=timestamp,
                order_id=key,
                trader_id=owner,
                expiration=expiration,
            )
            result.append((submit_step, (self.orders_type([order]), timestamp)))
        return result

    def live(self, book: Any) -> int:
        # An IOC's remainder waits for the next call to expire it: not counted as live.
        book_orders = book.unprocessed_orders
        return sum(
            1
            for levels in (book_orders.bids, book_orders.offers)
            for level in levels.values()
            for order in level
            if order.expiration == datetime.max
        )


class PyOrderBook(Engine):
    """pyorderbook 0.4.9: `Book.match(Order)` matches then rests; `Book.cancel(Order)`."""

    name = "pyorderbook"
    kind = "pure"
    distribution = "pyorderbook"
    note = "no move: cancel + new; no IOC: match, then cancel the rest"

    def setup(self) -> None:
        import pyorderbook

        self.module = pyorderbook
        self.sides = (pyorderbook.Side.BID, pyorderbook.Side.ASK)

    def new_book(self) -> Any:
        book = self.module.Book()
        book._bench_orders = {}  # neutral id → the peer's order object
        return book

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        match, cancel = book.match, book.cancel
        objects: dict[int, Any] = book._bench_orders

        def ioc(order: Any) -> None:
            match(order)
            if order.quantity:
                cancel(order)

        def match_counted(order: Any) -> None:
            tally.trades += len(match(order).trades)  # type: ignore[union-attr]

        def ioc_counted(order: Any) -> None:
            match_counted(order)
            if order.quantity:
                cancel(order)

        def cancel_counted(order: Any) -> None:
            try:
                cancel(order)
            except (KeyError, ValueError):
                tally.misses += 1  # type: ignore[union-attr]

        match_step = match if tally is None else match_counted
        ioc_step = ioc if tally is None else ioc_counted
        cancel_step = cancel if tally is None else cancel_counted
        result: list[Step] = []
        for kind, order_id, side, price, quantity, _, _ in operations:
            if kind == CANCEL:
                result.append((cancel_step, objects.pop(order_id)))
                continue
            if kind == MOVE:
                result.append((cancel_step, objects[order_id]))
            order = self.module.Order(self.sides[side], "BENCH", price, quantity)
            objects[order_id] = order
            result.append((ioc_step if kind == IOC else match_step, order))
        return result

    def live(self, book: Any) -> int:
        return len(book.order_map)


class FastLob(Engine):
    """fastlob 0.0.24: `Orderbook.process(OrderParams)` and `.cancel(order_id)`.

    The book assigns the order id when it processes the parameters, so the timed loop
    keeps a map from our ids to its ids. A crossing limit order is executed "as market"
    up to its price and the rest placed. No IOC, no move. The result reports whole makers
    filled (`n_orders_matched`) but not the one partial fill that can end a match: the
    check pass counts those by wrapping `Limit.fill_next`.
    """

    name = "fastlob"
    kind = "pure"
    distribution = "fastlob"
    note = "no move: cancel + new; no IOC: process, then cancel the rest"

    def setup(self) -> None:
        import fastlob
        from fastlob import limit

        self.module = fastlob
        self.limit_type = limit.Limit
        self.sides = (fastlob.OrderSide.BID, fastlob.OrderSide.ASK)
        self.resting = {fastlob.ResultType.LIMIT, fastlob.ResultType.PARTIAL_MARKET}
        self.original_fill_next = limit.Limit.fill_next

    def new_book(self) -> Any:
        book = self.module.Orderbook("bench")
        book.start()  # required; starts its thread that expires GTD orders every 0.1 s
        book._bench_ids = {}
        return book

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        ids: dict[int, str] = book._bench_ids
        resting = self.resting
        process: Callable[[Any], Any] = book.process
        cancel: Callable[[str], Any] = book.cancel
        if tally is not None:
            original = self.original_fill_next
            process_plain, cancel_plain = process, cancel

            def fill_next(limit: Any, quantity: Any) -> None:
                tally.trades += 1
                original(limit, quantity)

            self.limit_type.fill_next = fill_next

            def process_counted(params: Any) -> Any:
                result = process_plain(params)
                tally.trades += result.n_orders_matched()
                if not result.success():
                    tally.misses += 1
                return result

            def cancel_counted(order_id: str) -> None:
                if not cancel_plain(order_id).success():
                    tally.misses += 1

            process, cancel = process_counted, cancel_counted

        def place(item: tuple[int, Any]) -> None:
            ids[item[0]] = process(item[1]).orderid()

        def ioc(params: Any) -> None:
            result = process(params)
            if result.kind() in resting:
                cancel(result.orderid())

        def cancel_order(order_id: int) -> None:
            cancel(ids.pop(order_id))

        def move(item: tuple[int, Any]) -> None:
            cancel(ids[item[0]])
            ids[item[0]] = process(item[1]).orderid()

        result: list[Step] = []
        for kind, order_id, side, price, quantity, _, _ in operations:
            if kind == CANCEL:
                result.append((cancel_order, order_id))
                continue
            params = self.module.OrderParams(self.sides[side], price, quantity)
            if kind == GTC:
                result.append((place, (order_id, params)))
            elif kind == IOC:
                result.append((ioc, params))
            else:
                result.append((move, (order_id, params)))
        return result

    def live(self, book: Any) -> int:
        return sum(
            limit.valid_orders()
            for side in (book._bidside, book._askside)
            for limit in side.limits()
        )

    def close(self, book: Any, tally: Tally | None) -> None:
        self.limit_type.fill_next = self.original_fill_next
        book.stop()


class CythonOrderBook(Engine):
    """cython-orderbook 0.1.2: `OrderBook.add_limit_order(Order)`, `.cancel_order(id)`.

    The whole module is Cython-compiled Python (a `SortedDict` of levels holding
    `OrderedDict`s; `Order` and `PriceLevel` are cdef classes). Every fill appends a
    `Trade` dataclass to `trade_log`, which the check pass counts. No IOC, no move.
    """

    name = "cython-orderbook"
    kind = "native"
    distribution = "cython-orderbook"
    note = "Cython; no move: cancel + new; no IOC: add, then cancel the rest"

    def setup(self) -> None:
        import cython_orderbook

        self.module = cython_orderbook
        self.sides = (cython_orderbook.OrderSide.BID, cython_orderbook.OrderSide.ASK)

    def new_book(self) -> Any:
        book = self.module.OrderBook()
        book._bench_orders = {}
        return book

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        add, cancel = book.add_limit_order, book.cancel_order
        objects: dict[int, Any] = book._bench_orders

        def ioc(order: Any) -> None:
            add(order)
            if order.remaining_quantity:
                cancel(order.order_id)

        cancel_step: Callable[[str], Any] = cancel
        if tally is not None:
            book._bench_trades_before = len(book.trade_log)

            def cancel_counted(order_id: str) -> None:
                if not cancel(order_id):
                    tally.misses += 1

            cancel_step = cancel_counted
        result: list[Step] = []
        for kind, order_id, side, price, quantity, _, _ in operations:
            if kind == CANCEL:
                result.append((cancel_step, objects.pop(order_id).order_id))
                continue
            if kind == MOVE:
                result.append((cancel_step, objects[order_id].order_id))
            order = self.module.Order(self.sides[side], quantity, price)
            objects[order_id] = order
            result.append((ioc if kind == IOC else add, order))
        return result

    def live(self, book: Any) -> int:
        return len(book.orders)

    def close(self, book: Any, tally: Tally | None) -> None:
        if tally is not None:
            tally.trades = len(book.trade_log) - book._bench_trades_before


class Liquibook(Engine):
    """liquibook 2.0.1: the C++ `OrderBook<shared_ptr<SimpleOrder>>` through SWIG.

    `add(order, conditions)` with `oc_immediate_or_cancel` for IOC, `cancel(order)`, and
    `replace(order, size_delta, new_price)` for a move (the order loses its time
    priority and may trade, as ours). The book finds an order by the price its
    `SimpleOrder` carries, which only changes when someone calls `SimpleOrder.replace`:
    that is an `OrderListener`'s job (the C++ `SimpleOrderBook` does it in its callbacks).

    Two ways to drive it: without a listener (the C++ core alone, fills not reported to
    Python; the loop itself calls `SimpleOrder.replace` after a move, with the orders
    accepted beforehand, and the check pass adds a listener that only counts), and with
    a Python `OrderListener` that keeps the orders' state as the C++ example does
    (accept, fill both sides, cancel, replace) — what an application that wants its
    fills pays.
    """

    kind = "native"
    distribution = "liquibook"

    def __init__(self, listener: bool) -> None:
        self.listener = listener
        self.name = "liquibook + listener" if listener else "liquibook"
        self.note = (
            "C++ (SWIG); fills reported to a Python OrderListener"
            if listener
            else "C++ (SWIG); no listener: fills not reported to Python"
        )

    def setup(self) -> None:
        import liquibook

        self.module = liquibook

    def listener_for(self, tally: Tally | None, keep_state: bool) -> Any:
        module = self.module

        class Listener(module.OrderListener):  # type: ignore[name-defined,misc]
            def on_accept(self, order: Any) -> None:
                if keep_state:
                    order.accept()

            def on_reject(self, order: Any, reason: Any) -> None:
                if tally is not None:
                    tally.misses += 1

            def on_fill(self, order: Any, matched: Any, quantity: int, cost: int) -> None:
                if keep_state:
                    order.fill(quantity, cost, 0)
                    matched.fill(quantity, cost, 0)
                if tally is not None:
                    tally.trades += 1

            def on_cancel(self, order: Any) -> None:
                if keep_state:
                    order.cancel()

            def on_cancel_reject(self, order: Any, reason: Any) -> None:
                if tally is not None:
                    tally.misses += 1

            def on_replace(self, order: Any, delta: int, price: int) -> None:
                if keep_state:
                    order.replace(delta, price)

            def on_replace_reject(self, order: Any, reason: Any) -> None:
                if tally is not None:
                    tally.misses += 1

            def on_trigger_stop(self, order: Any) -> None:
                pass

        return Listener()

    def new_book(self) -> Any:
        self.orders: dict[int, Any] = {}  # neutral id → SimpleOrder
        return self.module.liquibook_book_OrderBook()

    def attach(self, book: Any, tally: Tally | None) -> None:
        if self.listener or tally is not None:
            listener = self.listener_for(tally, keep_state=self.listener)
            book.set_order_listener(listener)
            self.keep_alive = listener  # the book holds a plain pointer

    def prefill(self, book: Any, operations: Sequence[Operation]) -> None:
        self.attach(book, None)
        super().prefill(book, operations)

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        module = self.module
        if tally is not None:
            self.attach(book, tally)
        objects = self.orders
        add, cancel, replace = book.add, book.cancel, book.replace
        ioc_condition = module.oc_immediate_or_cancel

        def ioc(order: Any) -> None:
            add(order, ioc_condition)

        result: list[Step] = []
        for kind, order_id, side, price, quantity, _, _ in operations:
            if kind == CANCEL:
                result.append((cancel, objects.pop(order_id)))
            elif kind == MOVE:
                order = objects[order_id]
                result.append((partial(replace, order, 0), price))
                if not self.listener:
                    result.append((partial(order.replace, 0), price))
            elif kind == GTC:
                order = module.SimpleOrder(side == BUY, price, quantity)
                if not self.listener:
                    order.accept()  # so that SimpleOrder.replace takes the new price
                objects[order_id] = order
                result.append((add, order))
            else:
                order = module.SimpleOrder(side == BUY, price, quantity, 0, ioc_condition)
                result.append((ioc, order))
        return result

    def live(self, book: Any) -> int:
        return int(book.bids().size() + book.asks().size())

    def close(self, book: Any, tally: Tally | None) -> None:
        book.set_order_listener(None)


class LiteBook(Engine):
    """litebook 0.0.1 (Rust, PyO3): `OrderBook.add(Order) -> [Fill]`, `.cancel(id)`.

    Prices in ticks (`tick_size=1.0`), quantities as floats. No IOC, no move. Its fills
    are priced at the sell order's price whichever side rests (ours: the maker's price),
    so trade prices differ from ours; which orders trade, and how much, does not.
    """

    name = "litebook"
    kind = "native"
    distribution = "litebook"
    note = "Rust (PyO3); no move: cancel + new; no IOC: add, then cancel the rest"

    def setup(self) -> None:
        import litebook

        self.module = litebook
        self.sides = (litebook.OrderType.Buy, litebook.OrderType.Sell)

    def new_book(self) -> Any:
        book = self.module.OrderBook(tick_size=1.0)
        self.objects: dict[int, Any] = {}
        return book

    def steps(self, book: Any, operations: Sequence[Operation], tally: Tally | None) -> list[Step]:
        objects = self.objects
        add_step: Callable[[Any], Any] = book.add
        cancel_step: Callable[[str], Any] = book.cancel
        if tally is not None:
            add, cancel = book.add, book.cancel

            def add_counted(order: Any) -> list[Any]:
                fills = add(order)
                tally.trades += len(fills)
                return fills

            def cancel_counted(order_id: str) -> None:
                if not cancel(order_id):
                    tally.misses += 1

            add_step, cancel_step = add_counted, cancel_counted

        def ioc(item: tuple[Any, float]) -> None:
            fills = add_step(item[0])
            if sum(fill.quantity for fill in fills) < item[1]:
                cancel_step(item[0].id)

        result: list[Step] = []
        for kind, order_id, side, price, quantity, _, _ in operations:
            if kind == CANCEL:
                result.append((cancel_step, objects.pop(order_id).id))
                continue
            if kind == MOVE:
                result.append((cancel_step, objects[order_id].id))
            order = self.module.Order(self.sides[side], price, float(quantity))
            if kind == IOC:
                result.append((ioc, (order, float(quantity))))
            else:
                objects[order_id] = order
                result.append((add_step, order))
        return result

    def live(self, book: Any) -> int:
        return len(book.buy_orders) + len(book.sell_orders)


ENGINES: dict[str, Callable[[], Engine]] = {
    "strongroom": lambda: Ours(batch=True),
    "strongroom-per-op": lambda: Ours(batch=False),
    "order-matching": OrderMatching,
    "pyorderbook": PyOrderBook,
    "fastlob": FastLob,
    "cython-orderbook": CythonOrderBook,
    "liquibook": lambda: Liquibook(listener=False),
    "liquibook-listener": lambda: Liquibook(listener=True),
    "litebook": LiteBook,
}
PEERS = [name for name in ENGINES if not name.startswith("strongroom")]


# --------------------------------------------------------------------------- worker


def drive(steps: list[Step]) -> int:
    """The timed loop: engine calls only. Returns how many raised."""
    failures = 0
    for call, argument in steps:
        try:
            call(argument)
        except Exception:
            failures += 1
    return failures


def one_pass(
    engine: Engine, workload: Workload, limit: int, tally: Tally | None
) -> tuple[float, float, int, int | None]:
    """(CPU seconds, wall seconds, operations that raised, live orders after).

    CPU time is this thread's (`time.thread_time`): on a shared machine it leaves out
    the time the engine waited for a core, which wall time does not.
    """
    book = engine.new_book()
    engine.prefill(book, workload.prefill)
    steps = engine.steps(book, workload.operations[:limit], tally)
    gc.collect()
    gc.freeze()  # the prebuilt requests are not the engine's: no rescans of them
    started, started_cpu = time.perf_counter(), time.thread_time()
    failures = drive(steps)
    cpu = time.thread_time() - started_cpu
    wall = time.perf_counter() - started
    gc.unfreeze()
    live = engine.live(book) if tally is not None else None
    engine.close(book, tally)
    del steps, book
    gc.collect()
    return cpu, wall, failures, live


ANSWER = "@@ "  # marks the worker's answers on its stdout (a library may print too)


def answer(message: dict[str, Any]) -> None:
    sys.stdout.write(ANSWER + json.dumps(message) + "\n")
    sys.stdout.flush()


def serve(name: str, path: str) -> None:
    """A worker: one engine in this process, passes on request (one JSON line each)."""
    engine = ENGINES[name]()
    try:
        engine.setup()
    except ImportError as error:
        answer({"error": f"not installed ({error}); pip install -e '.[bench]'"})
        return
    with open(path, "rb") as handle:
        workload: Workload = pickle.load(handle)
    answer(
        {
            "engine": engine.name,
            "kind": engine.kind,
            "version": engine.version(),
            "note": engine.note,
        }
    )
    for line in sys.stdin:
        request = json.loads(line)
        limit = min(int(request.get("limit", PROBE)), len(workload.operations))
        if request["do"] == "pass":
            cpu, wall, failures, _ = one_pass(engine, workload, limit, None)
            answer({"cpu": cpu, "wall": wall, "failed": failures})
        elif request["do"] == "check":
            tally = Tally()
            _, _, failures, live = one_pass(engine, workload, limit, tally)
            answer(
                {
                    "trades": tally.trades,
                    "failed": tally.misses + failures,
                    "live": live,
                    "our_trades": workload.trades[limit - 1],
                    "our_live": workload.live[limit - 1],
                }
            )
        else:
            return


# --------------------------------------------------------------------------- parent


class Worker:
    """A worker process for one engine, asked for one pass at a time."""

    def __init__(self, key: str, path: str, folder: str, extra_path: str | None) -> None:
        self.key = key
        self.info: dict[str, Any] = {"engine": key}
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.limit = 0
        environment = dict(os.environ)
        if extra_path:
            environment["PYTHONPATH"] = extra_path
        self.errors = tempfile.TemporaryFile(mode="w+", dir=folder)  # noqa: SIM115 (closed in close)
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), "--worker", key, "--workload", path],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(ANSWER):
                message: dict[str, Any] = json.loads(line[len(ANSWER) :])
                return message
        self.process.wait()
        self.errors.seek(0)
        tail = " | ".join(self.errors.read().strip().splitlines()[-3:])
        return {"error": f"worker failed (exit {self.process.returncode}): {tail}"}

    def ask(self, do: str, limit: int) -> dict[str, Any]:
        if "error" in self.info:
            return self.info
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"do": do, "limit": limit}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        message = self.receive()
        if "error" in message:
            self.info.update(message)
        return message

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps({"do": "quit"}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            self.process.wait(timeout=60)
        self.errors.close()

    def result(self) -> dict[str, Any]:
        result = dict(self.info)
        if "error" in result or not self.cpu:
            return result
        result["operations"] = self.limit
        result["passes"] = len(self.cpu)
        result["best"] = self.limit / min(self.cpu)
        result["median"] = self.limit / statistics.median(self.cpu)
        result["best_wall"] = self.limit / min(self.wall)
        result["median_wall"] = self.limit / statistics.median(self.wall)
        return result


def compile_mypyc(folder: str) -> str | None:
    """A copy of the package with actors/book.py compiled (as bench/matching_mypyc.py)."""
    mypyc = Path(sys.executable).with_name("mypyc")
    if not mypyc.exists() or shutil.which("gcc") is None:
        return "mypyc or gcc not available"
    shutil.copytree(SOURCE, Path(folder) / "strongroom")
    done = subprocess.run(
        [str(mypyc), "strongroom/actors/book.py"], cwd=folder, capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"mypyc failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


def agrees(result: dict[str, Any]) -> str:
    if "error" in result or "trades" not in result:
        return "-"
    same_trades = result["trades"] == result["our_trades"]
    same_live = result["live"] == result["our_live"]
    if same_trades and same_live and not result["failed"]:
        return "yes"
    parts = []
    if not same_trades:
        parts.append(f"trades {result['trades']:,} vs our {result['our_trades']:,}")
    if not same_live:
        parts.append(f"live {result['live']} vs our {result['our_live']}")
    if result["failed"]:
        parts.append(f"{result['failed']} operations failed")
    return "NO: " + ", ".join(parts)


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "platform": platform.platform(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
    }


def table(results: list[dict[str, Any]], ours: dict[str, Any], per_op: dict[str, Any]) -> str:
    header = (
        f"{'engine':<26} {'kind':<6} {'version':<12} {'ops timed':>9} {'best ops/s':>10}"
        f" {'median':>10} {'best wall':>10} {'ours/peer':>9} {'per-op/peer':>11}"
        f" {'trades':>7}  agrees"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        if "best" not in result:
            lines.append(f"{result['engine']:<26} {result.get('error', 'no result')}")
            continue
        ratio = ours["best"] / result["best"] if "best" in ours else float("nan")
        ratio_per_op = per_op["best"] / result["best"] if "best" in per_op else float("nan")
        lines.append(
            f"{result['engine']:<26} {result['kind'].replace('ours-mypyc', 'ours'):<6}"
            f" {result['version']:<12} {result['operations']:>9,} {result['best']:>10,.0f}"
            f" {result['median']:>10,.0f} {result['best_wall']:>10,.0f} {ratio:>9.2f}"
            f" {ratio_per_op:>11.2f} {result['trades']:>7,}  {agrees(result)}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=200_000, help="generated operations")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per engine")
    parser.add_argument(
        "--budget",
        type=float,
        default=6.0,
        help="timed seconds per engine: a slower peer runs on a prefix of the workload",
    )
    parser.add_argument("--quick", action="store_true", help="50,000 operations, 3 passes")
    parser.add_argument("--engines", default="", help="comma-separated subset of the peers")
    parser.add_argument("--no-mypyc", action="store_true", help="skip the mypyc-compiled book")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)

    if importlib.util.find_spec("strongroom") is None:  # else as installed, or a mypyc build
        sys.path.insert(0, str(SOURCE.parent))
    if arguments.worker:
        serve(arguments.worker, arguments.workload)
        return

    if arguments.quick:
        arguments.operations = min(arguments.operations, 50_000)
        arguments.repeat = min(arguments.repeat, 3)
        arguments.budget = min(arguments.budget, 3.0)
        arguments.no_mypyc = True
    peers = [name.strip() for name in arguments.engines.split(",") if name.strip()] or PEERS
    unknown = [name for name in peers if name not in PEERS]
    if unknown:
        parser.error(f"unknown engines {unknown}; known: {', '.join(PEERS)}")

    started = time.perf_counter()
    host = machine()
    load_before = os.getloadavg()
    print(
        f"machine: {host['cpus']} CPUs ({host['cpu']}), {host['platform']},"
        f" python {host['python']}; load average {load_before[0]:.2f}"
    )
    workload = generate(arguments.operations, arguments.seed)
    operations = workload.operations
    counts = [sum(1 for operation in operations if operation[0] == kind) for kind in range(4)]
    total = len(operations)
    print(
        f"workload: {total:,} operations (seed {arguments.seed}, generated in"
        f" {workload.seconds:.1f} s): "
        + ", ".join(
            f"{name} {100 * count / total:.1f} %"
            for name, count in zip(KIND_NAMES, counts, strict=True)
        )
        + f"; {workload.mean_live:,.0f} live orders over {workload.mean_levels:,.0f} price"
        f" levels on average; {workload.trades[-1]:,} trades in our book"
    )

    with tempfile.TemporaryDirectory(prefix="strongroom-peers-") as folder:
        path = str(Path(folder) / "workload.pickle")
        with open(path, "wb") as handle:
            pickle.dump(workload, handle, protocol=pickle.HIGHEST_PROTOCOL)
        compiled_path: str | None = None
        mypyc_status = "skipped"
        if not arguments.no_mypyc:
            compiled_path = str(Path(folder) / "mypyc")
            os.mkdir(compiled_path)
            mypyc_started = time.perf_counter()
            error = compile_mypyc(compiled_path)
            mypyc_status = error or f"compiled in {time.perf_counter() - mypyc_started:.0f} s"
            print(f"strongroom (mypyc): {mypyc_status}")
            if error:
                compiled_path = None

        plan: list[tuple[str, str | None]] = [("strongroom", None), ("strongroom-per-op", None)]
        if compiled_path:
            plan += [("strongroom", compiled_path), ("strongroom-per-op", compiled_path)]
        plan += [(name, None) for name in peers]
        workers = [Worker(key, path, folder, extra) for key, extra in plan]
        try:
            for worker in workers:
                worker.info.update(worker.receive())
            # Calibration: a slow peer gets the prefix its budget allows.
            for worker in workers:
                if "error" in worker.info:
                    worker.info["engine"] = worker.key
                    continue
                if worker.info["kind"].startswith("ours"):
                    worker.limit = total
                    continue
                probe = min(total, PROBE)
                seconds = worker.ask("pass", probe).get("cpu")
                if seconds is None:
                    continue
                fitting = int(probe / seconds * arguments.budget / (arguments.repeat + 1))
                worker.limit = min(total, max(probe, fitting // 1000 * 1000))
            for worker in workers:
                print(f"  checking {worker.info['engine']} ...", flush=True)
                check = worker.ask("check", worker.limit)
                worker.info.update(check)
                if "error" not in check:
                    print(
                        f"    {worker.limit:,} ops: {check['trades']:,} trades"
                        f" (ours {check['our_trades']:,}), {check['live']} live"
                        f" (ours {check['our_live']}), {check['failed']} failed",
                        flush=True,
                    )
            # Timed passes, round-robin: every engine sees the machine as the others do.
            for round_number in range(arguments.repeat):
                print(f"  round {round_number + 1} of {arguments.repeat} ...", flush=True)
                for worker in workers:
                    timed = worker.ask("pass", worker.limit)
                    if "cpu" in timed:
                        worker.cpu.append(timed["cpu"])
                        worker.wall.append(timed["wall"])
                        worker.info["failed"] = worker.info.get("failed", 0) + timed["failed"]
        finally:
            for worker in workers:
                worker.close()
        results = [worker.result() for worker in workers]

    ours, per_op = results[0], results[1]
    compiled = [result for result in results if result.get("kind") == "ours-mypyc"]
    peer_results = [result for result in results if result.get("kind") in ("pure", "native")]
    peer_results += [result for result in results[2:] if "kind" not in result or "error" in result]
    print()
    print(table(results, ours, per_op))
    print()
    print(
        "ops/s by CPU time of the timed loop (best and median of the passes), best wall: by"
        " wall time; ours/peer: best ops/s of strongroom (handle_batch) over the peer's"
        " best; per-op/peer: strongroom calling handle once per command, over the peer's best."
    )
    if "best" in ours:
        spread = [ours["operations"] / seconds for seconds in workers[0].cpu]
        spread_wall = [ours["operations"] / seconds for seconds in workers[0].wall]
        print(
            f"noise: strongroom's {len(spread)} passes ranged {min(spread):,.0f}"
            f"–{max(spread):,.0f} ops/s by CPU time, {min(spread_wall):,.0f}"
            f"–{max(spread_wall):,.0f} by wall time; load average {load_before[0]:.2f} at"
            f" the start, {os.getloadavg()[0]:.2f} at the end"
        )
    verdict: dict[str, Any] = {}
    if "best" in ours:
        for kind, target in (("pure", 3.0), ("native", 1.0)):
            measured = [r for r in peer_results if "best" in r and r["kind"] == kind]
            if not measured:
                continue
            worst = min(measured, key=lambda r: ours["best"] / r["best"])
            ratio = ours["best"] / worst["best"]
            verdict[kind] = {
                "target": target,
                "lowest_ratio": ratio,
                "against": worst["engine"],
                "met": ratio >= target,
            }
            line = (
                f"goal vs {kind} peers (>= {target:g}x): {'met' if ratio >= target else 'NOT met'}"
                f", lowest ratio {ratio:.2f} (against {worst['engine']})"
            )
            for build in compiled:
                if "best" in build and build["engine"] == "strongroom (mypyc)":
                    ratio_compiled = build["best"] / worst["best"]
                    verdict[kind]["lowest_ratio_mypyc"] = ratio_compiled
                    line += f"; with mypyc {ratio_compiled:.2f}"
            print(line)
    print(
        f"machine: {host['cpus']} CPUs ({host['cpu']}), {host['platform']},"
        f" python {host['python']}; total {time.perf_counter() - started:.0f} s"
    )
    summary = {
        "benchmark": "peers",
        "seed": arguments.seed,
        "operations": total,
        "repeat": arguments.repeat,
        "mix": dict(zip(KIND_NAMES, (count / total for count in counts), strict=True)),
        "mean_live": workload.mean_live,
        "mean_levels": workload.mean_levels,
        "machine": host,
        "mypyc": mypyc_status,
        "verdict": verdict,
        "engines": [
            result
            | (
                {
                    "ratio_ours": ours["best"] / result["best"],
                    "ratio_ours_median": ours["median"] / result["median"],
                    "ratio_ours_per_op": per_op["best"] / result["best"],
                    "ratio_ours_wall": ours["best_wall"] / result["best_wall"],
                    "agrees": agrees(result),
                }
                if "best" in result and "best" in ours and "best" in per_op
                else {}
            )
            for result in results
        ],
    }
    print(json.dumps(summary))

    import summary as line  # bench/summary.py: the line `python -m bench` reads

    ours_name = "strongroom OrderBook (handle_batch)"
    figures = [
        line.figure(f"{ours_name}, best ops/s by CPU time", ours.get("best"), "ops/s"),
        line.figure(
            "strongroom, handle once per command, best",
            per_op.get("best"),
            "ops/s",
            baseline=ours.get("best"),
            baseline_name=ours_name,
        ),
    ]
    for build in compiled:
        if "best" in build and "best" in ours:
            figures.append(
                line.figure(
                    f"{build['engine']}, best",
                    build["best"],
                    "ops/s",
                    baseline=ours["best"],
                    baseline_name=ours_name,
                )
            )
    for result in peer_results:
        engine = result.get("engine", "?")
        if "best" not in result or "best" not in ours:
            figures.append(
                line.figure(
                    f"ours vs {engine}", None, "ops/s", note=str(result.get("error", "no result"))
                )
            )
            continue
        figures.append(
            line.figure(
                f"ours vs {engine} ({result['kind']}, {result['operations']:,} ops,"
                f" trades agree: {agrees(result)})",
                ours["best"],
                "ops/s",
                baseline=result["best"],
                baseline_name=f"{engine} {result.get('version', '')}".strip(),
            )
        )
    line.emit("peers", figures, operations=total, verdict=verdict)


if __name__ == "__main__":
    main()
