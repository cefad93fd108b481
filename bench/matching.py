"""OrderBook alone on exchange-core's benchmark mix: throughput, latency, memory.

    python bench/matching.py [--orders N] [--seed S] [--batch B] [--repeat R] [--profile]

The command stream is generated (seeded) before anything is timed: 9 % GTC limit, 3 % IOC,
6 % cancel, 82 % move (a `ReplaceOrder` of a live order to a new price near the mid, same
total quantity), about 1,000 live orders over about 750 price levels, 1,000 wallets. The
generator runs its own book to know which orders are live; every timed pass replays the
same stream on a fresh book (after the same untimed prefill) and must produce the same
events. Throughput is `handle_batch` over batches of `--batch` commands (the actor hands
its book batches); latency is `handle` per command, timed one by one in a separate pass.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import platform
import pstats
import random
import resource
import statistics
import sys
import time
import tracemalloc
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if importlib.util.find_spec("strongroom") is None:  # else as installed, or a mypyc build
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from baseline_book import PlainBook

from strongroom.actors import book as book_module
from strongroom.actors.book import OrderBook
from strongroom.actors.messages import (
    BookCommand,
    BookEvent,
    BookOrder,
    CancelOrder,
    OrderCanceled,
    OrderKind,
    OrderRested,
    PlaceOrder,
    ReplaceOrder,
    Side,
    TimeInForce,
    Trade,
)

KIND_NAMES = ("gtc", "ioc", "cancel", "move")
GTC, IOC, CANCEL, MOVE = range(4)
MID_PRICE = 100_000  # ticks
HALF_RANGE = 800  # ticks a side: 1,000 orders at random over 1,600 prices ≈ 750 levels
LIVE_TARGET = 1_000
USERS = 1_000


@dataclass
class Stream:
    prefill: list[BookCommand]
    commands: list[BookCommand]
    kinds: bytes  # one of GTC, IOC, CANCEL, MOVE per command
    events: int  # events the generator's own book produced for `commands`
    trades: int
    mean_live: float
    mean_levels: float


class _Live:
    """The generator's view of the live orders: id → (wallet, side, total quantity, price)."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.index: dict[int, int] = {}
        self.terms: dict[int, tuple[str, Side, int, int]] = {}

    def add(self, order_id: int, terms: tuple[str, Side, int, int]) -> None:
        if order_id not in self.index:
            self.index[order_id] = len(self.ids)
            self.ids.append(order_id)
        self.terms[order_id] = terms

    def remove(self, order_id: int) -> None:
        position = self.index.pop(order_id, None)
        if position is None:
            return
        last = self.ids.pop()
        if last != order_id:
            self.ids[position] = last
            self.index[last] = position
        del self.terms[order_id]


def generate(orders: int, seed: int) -> Stream:
    rng = random.Random(seed)
    book = OrderBook(1)
    live = _Live()
    wallets = [f"user-{number:04d}" for number in range(USERS)]
    pending_terms: dict[int, tuple[str, Side, int, int]] = {}
    next_order_id = 1

    def track(events: list[BookEvent]) -> int:
        trades = 0
        for event in events:
            event_type = type(event)
            if event_type is OrderRested:
                assert isinstance(event, OrderRested)
                terms = pending_terms.get(event.order_id) or live.terms[event.order_id]
                wallet_id, side, quantity, _ = terms
                live.add(event.order_id, (wallet_id, side, quantity, event.price))
            elif event_type is Trade:
                assert isinstance(event, Trade)
                trades += 1
                if event.maker_remaining == 0:
                    live.remove(event.maker_order_id)
                if event.taker_remaining == 0:
                    live.remove(event.taker_order_id)
            elif event_type is OrderCanceled:
                assert isinstance(event, OrderCanceled)
                live.remove(event.order_id)
        pending_terms.clear()
        return trades

    def passive_price(side: Side) -> int:
        offset = rng.randint(1, HALF_RANGE)
        return MID_PRICE - offset if side == Side.BUY else MID_PRICE + offset

    def aggressive_price(side: Side) -> int:
        if side == Side.BUY:
            best = book.best_ask()
            return (best if best is not None else MID_PRICE) + rng.randint(0, 4)
        best = book.best_bid()
        return (best if best is not None else MID_PRICE) - rng.randint(0, 4)

    def new_order(price_of: str, time_in_force: TimeInForce) -> PlaceOrder:
        nonlocal next_order_id
        order_id = next_order_id
        next_order_id += 1
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        price = passive_price(side) if price_of == "passive" else aggressive_price(side)
        quantity = rng.randint(1, 100)
        wallet_id = wallets[rng.randrange(USERS)]
        pending_terms[order_id] = (wallet_id, side, quantity, price)
        terms = BookOrder(
            order_id, wallet_id, side, OrderKind.LIMIT, price, quantity, time_in_force=time_in_force
        )
        return PlaceOrder(terms)

    prefill: list[BookCommand] = []
    for _ in range(LIVE_TARGET):
        prefill.append(new_order("passive", TimeInForce.GTC))
        track(book.handle(prefill[-1]))

    commands: list[BookCommand] = []
    kinds = bytearray()
    events_total = trades_total = 0
    live_samples: list[int] = []
    level_samples: list[int] = []
    for step in range(orders):
        draw = rng.random()
        kind = GTC if draw < 0.09 else IOC if draw < 0.12 else CANCEL if draw < 0.18 else MOVE
        if kind in (CANCEL, MOVE) and not live.ids:
            kind = GTC
        # Keep about LIVE_TARGET orders live: new limits and moves cross more often when
        # the book holds too many, less when it holds too few.
        excess = (len(live.ids) - LIVE_TARGET) / LIVE_TARGET
        crossing = min(0.5, max(0.0, 0.03 + 2.0 * excess))
        command: BookCommand
        if kind == GTC:
            command = new_order(
                "aggressive" if rng.random() < crossing else "passive", TimeInForce.GTC
            )
        elif kind == IOC:
            command = new_order("aggressive", TimeInForce.IOC)
        else:
            order_id = live.ids[rng.randrange(len(live.ids))]
            wallet_id, side, quantity, price = live.terms[order_id]
            if kind == CANCEL:
                command = CancelOrder(order_id, wallet_id)
            else:
                new_price = price
                while new_price == price:
                    cross = rng.random() < crossing / 4
                    new_price = aggressive_price(side) if cross else passive_price(side)
                pending_terms[order_id] = (wallet_id, side, quantity, new_price)
                command = ReplaceOrder(order_id, wallet_id, new_price, quantity)
        commands.append(command)
        kinds.append(kind)
        events = book.handle(command)
        events_total += len(events)
        trades_total += track(events)
        if step % 1000 == 0:
            live_samples.append(len(book))
            bids, asks = book.depth(10_000)
            level_samples.append(len(bids) + len(asks))
    return Stream(
        prefill,
        commands,
        bytes(kinds),
        events_total,
        trades_total,
        statistics.fmean(live_samples),
        statistics.fmean(level_samples),
    )


def fresh_book(stream: Stream) -> OrderBook:
    book = OrderBook(1)
    book.handle_batch(stream.prefill)
    return book


def throughput(stream: Stream, batch: int) -> tuple[float, int]:
    """Seconds for the whole stream through `handle_batch`, and the events it produced."""
    book = fresh_book(stream)
    commands = stream.commands
    handle_batch = book.handle_batch
    events = 0
    started = time.perf_counter()
    for start in range(0, len(commands), batch):
        events += len(handle_batch(commands[start : start + batch]))
    elapsed = time.perf_counter() - started
    return elapsed, events


def baseline_throughput(stream: Stream, batch: int) -> float:
    """Seconds for the same stream through the plain baseline book (see baseline_book.py)."""
    book = PlainBook()
    book.handle_batch(stream.prefill)
    commands = stream.commands
    handle_batch = book.handle_batch
    started = time.perf_counter()
    for start in range(0, len(commands), batch):
        handle_batch(commands[start : start + batch])
    return time.perf_counter() - started


def latencies(stream: Stream) -> array[int]:
    """Nanoseconds of each `handle` call, in stream order."""
    book = fresh_book(stream)
    handle = book.handle
    clock = time.perf_counter_ns
    result = array("q", bytes(8 * len(stream.commands)))
    for position, command in enumerate(stream.commands):
        started = clock()
        handle(command)
        result[position] = clock() - started
    return result


def percentile(ordered: Sequence[int], fraction: float) -> int:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def memory_peak(stream: Stream, limit: int) -> tuple[int, int]:
    """tracemalloc (current, peak) bytes of a book replaying the first `limit` commands."""
    tracemalloc.start()
    book = fresh_book(stream)
    handle = book.handle
    for command in stream.commands[:limit]:
        handle(command)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del book
    return current, peak


def profile(stream: Stream, limit: int) -> str:
    book = fresh_book(stream)
    commands = stream.commands[:limit]
    profiler = cProfile.Profile()
    profiler.enable()
    for start in range(0, len(commands), 1024):
        book.handle_batch(commands[start : start + 1024])
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="timed commands")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1024, help="commands per handle_batch")
    parser.add_argument("--repeat", type=int, default=3, help="throughput passes")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top 10")
    arguments = parser.parse_args(argv)

    compiled = not str(book_module.__file__).endswith(".py")
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}),"
        f" OrderBook from {book_module.__file__}{' (compiled)' if compiled else ''}"
    )
    started = time.perf_counter()
    stream = generate(arguments.orders, arguments.seed)
    counts = [stream.kinds.count(kind) for kind in range(4)]
    print(
        f"generated {len(stream.commands):,} commands in {time.perf_counter() - started:.1f} s"
        f" (seed {arguments.seed}): "
        + ", ".join(
            f"{name} {100 * count / len(stream.commands):.1f} %"
            for name, count in zip(KIND_NAMES, counts, strict=True)
        )
    )
    print(
        f"book: {stream.mean_live:,.0f} live orders, {stream.mean_levels:,.0f} price levels"
        f" on average; {stream.events:,} events, {stream.trades:,} trades"
    )
    # The pregenerated stream is not the book's: keep the collector from rescanning it.
    gc.collect()
    gc.freeze()

    # Ours and the baseline alternate, pass by pass, so that both see the same machine.
    runs, baseline_seconds = [], []
    for _ in range(arguments.repeat):
        runs.append(throughput(stream, arguments.batch))
        baseline_seconds.append(baseline_throughput(stream, arguments.batch))
    for _, events in runs:
        assert events == stream.events, f"replay produced {events} events, not {stream.events}"
    seconds = [elapsed for elapsed, _ in runs]
    operations = len(stream.commands)
    print(
        f"throughput: {operations:,} ops, best {operations / min(seconds):,.0f} ops/s,"
        f" median {operations / statistics.median(seconds):,.0f} ops/s"
        f" (handle_batch, batches of {arguments.batch}, {arguments.repeat} passes)"
    )
    baseline = operations / statistics.median(baseline_seconds)
    ours = operations / statistics.median(seconds)
    print(
        f"baseline (plain price-time book, no stops/icebergs/STP/checks, same stream, same run):"
        f" median {baseline:,.0f} ops/s; ours / baseline = {ours / baseline:.2f}"
    )

    measured = latencies(stream)
    ordered = sorted(measured)
    print(
        f"latency per op (handle): p50 {percentile(ordered, 0.50) / 1000:.2f} µs,"
        f" p99 {percentile(ordered, 0.99) / 1000:.2f} µs,"
        f" p99.9 {percentile(ordered, 0.999) / 1000:.2f} µs,"
        f" max {ordered[-1] / 1000:.1f} µs;"
        f" loop {operations / (sum(measured) / 1e9):,.0f} ops/s"
    )
    print("per command type:        count    share   mean µs    p50 µs    p99 µs  p99.9 µs")
    for kind, name in enumerate(KIND_NAMES):
        of_kind = sorted(
            value for value, code in zip(measured, stream.kinds, strict=True) if code == kind
        )
        if not of_kind:
            continue
        print(
            f"  {name:<16} {len(of_kind):>12,} {100 * len(of_kind) / operations:7.1f} %"
            f" {statistics.fmean(of_kind) / 1000:9.2f} {percentile(of_kind, 0.5) / 1000:9.2f}"
            f" {percentile(of_kind, 0.99) / 1000:9.2f} {percentile(of_kind, 0.999) / 1000:9.2f}"
        )

    limit = min(operations, 200_000)
    current, peak = memory_peak(stream, limit)
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"memory: book after {limit:,} ops {current / 2**20:.1f} MiB traced,"
        f" peak {peak / 2**20:.1f} MiB (tracemalloc);"
        f" process max RSS {maxrss_kib / 1024:.0f} MiB (includes the pregenerated stream)"
    )
    if arguments.profile:
        print(profile(stream, min(operations, 300_000)))

    import summary  # bench/summary.py: the line `python -m bench` reads

    plain = "plain price-time book (bench/baseline_book.py)"
    summary.emit(
        "matching",
        [
            summary.figure(
                "throughput, median (handle_batch)",
                ours,
                "ops/s",
                baseline=baseline,
                baseline_name=plain,
            ),
            summary.figure("throughput, best (handle_batch)", operations / min(seconds), "ops/s"),
            *(
                summary.figure(
                    f"latency {name} (handle)",
                    percentile(ordered, fraction) / 1000,
                    "µs",
                    better="lower",
                )
                for name, fraction in (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999))
            ),
            summary.figure(
                f"book memory peak after {limit:,} ops (tracemalloc)",
                peak / 2**20,
                "MiB",
                better="lower",
            ),
        ],
        orders=operations,
        compiled=compiled,
    )


if __name__ == "__main__":
    main()
