"""Orders per second through the actors with durable commit (in-process, no HTTP).

Path per order: vault shard (admission) → ledger actor (hold) → book actor (match) →
ledger actor (settle) → journal group commit in PostgreSQL → reply. Latency is from the
call to the reply, which arrives only after the commit holding every effect. By default
it runs twice, on fresh databases: journal on the event loop, then in a writer process.

    python bench/spine.py [--orders 100000] [--window 5000] [--wallets 1000]
                          [--database-url URL] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from loguru import logger

from strongroom.actors.messages import OrderKind, OrderState, Refused, Side, TimeInForce
from strongroom.config import DEFAULT
from strongroom.persistence.database import EmbeddedPostgres
from strongroom.server import start_core

MID_TICKS = 2_000_000  # 20,000.00 USDT
RUNS: list[dict[str, float]] = []  # each run's figures, for the summary line


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1e6  # ns → ms


async def run(arguments: argparse.Namespace, journal_process: bool) -> float:
    """One measured run on a fresh database; returns its orders per second."""
    embedded = None
    url = arguments.database_url
    if url is None:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="strongroom-bench-")))
        url = await asyncio.to_thread(embedded.start)
    core = await start_core(
        DEFAULT, url, vault_shards=arguments.shards, journal_process=journal_process
    )
    trading = core.trading
    wallets = [f"bench-{index:05d}" for index in range(arguments.wallets)]
    for wallet_id in wallets:
        await trading.deposit(
            tid=f"{wallet_id}-usdt", wallet_id=wallet_id, currency="USDT",
            amount=10**15, accept=True, fingerprint="usdt",
        )  # fmt: skip
        await trading.deposit(
            tid=f"{wallet_id}-btc", wallet_id=wallet_id, currency="BTC",
            amount=10**13, accept=True, fingerprint="btc",
        )  # fmt: skip
    randomness = random.Random(arguments.seed)
    stream = [
        (
            randomness.choice(wallets),
            Side.BUY if randomness.random() < 0.5 else Side.SELL,
            MID_TICKS + randomness.randint(-200, 200),
            randomness.randint(1, 100),
            TimeInForce.IOC if randomness.random() < 0.1 else TimeInForce.GTC,
        )
        for _ in range(arguments.orders)
    ]
    latencies: list[int] = []
    outcomes = {"filled": 0, "open": 0, "canceled": 0, "refused": 0}
    pending = iter(stream)

    async def client() -> None:
        """One of `window` clients, each with one order in flight at a time."""
        for wallet_id, side, price, quantity, tif in pending:
            started = time.perf_counter_ns()
            reply = await trading.place(
                wallet_id=wallet_id, market="BTC-USDT", side=side, kind=OrderKind.LIMIT,
                price=price, quantity=quantity, time_in_force=tif,
            )  # fmt: skip
            latencies.append(time.perf_counter_ns() - started)
            if isinstance(reply, Refused):
                outcomes["refused"] += 1
            elif isinstance(reply, OrderState):
                outcomes[reply.status] = outcomes.get(reply.status, 0) + 1

    groups_before = core.journal.groups_committed
    profiler = cProfile.Profile() if arguments.profile else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(arguments.window)))
    elapsed = time.perf_counter() - started
    if profiler:
        profiler.disable()
    groups = core.journal.groups_committed - groups_before
    latencies.sort()
    where = "a writer process" if journal_process else "the event loop (in-process)"
    print(f"\n-- journal committed by {where}")
    print(f"orders: {len(stream):,}  window: {arguments.window:,}  wallets: {len(wallets):,}")
    print(f"throughput: {len(stream) / elapsed:,.0f} orders/s  ({elapsed:.2f} s)")
    print(
        "latency ms (call → reply after commit): "
        f"p50 {percentile(latencies, 0.50):.2f}  p99 {percentile(latencies, 0.99):.2f}  "
        f"p99.9 {percentile(latencies, 0.999):.2f}  max {latencies[-1] / 1e6:.2f}"
    )
    print(
        f"journal: {groups:,} group commits, {len(stream) / max(groups, 1):,.0f} orders per group"
    )
    print(f"outcomes: {outcomes}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mib:,.0f} MiB (this process)")
    RUNS.append(
        {
            "journal_process": journal_process,
            "orders_per_s": len(stream) / elapsed,
            **{name: percentile(latencies, q) for name, q in LATENCY_PERCENTILES},
            "peak_rss_mib": peak_mib,
        }
    )
    if profiler:
        print("\nprofile of the event-loop thread (actors run on their own threads):")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    await core.stop()
    if embedded is not None:
        await asyncio.to_thread(embedded.stop)
    return len(stream) / elapsed


async def compare(arguments: argparse.Namespace) -> None:
    modes = {"process": [True], "inproc": [False], "both": [False, True]}[arguments.journal]
    rates = {mode: await run(arguments, mode) for mode in modes}
    if len(rates) == 2:
        print(f"\nwriter process / in-process journal = {rates[True] / rates[False]:.2f}")

    import summary  # bench/summary.py: the line `python -m bench` reads

    by_mode = {bool(one["journal_process"]): one for one in RUNS}
    ours = by_mode.get(True) or by_mode[False]  # `strongroom serve` commits in a writer process
    other = by_mode.get(False) if ours is by_mode.get(True) else None
    where = "journal in a writer process" if ours is by_mode.get(True) else "journal in-process"
    figures = [
        summary.figure(
            f"orders/s, {where}",
            ours["orders_per_s"],
            "orders/s",
            baseline=other["orders_per_s"] if other else None,
            baseline_name="journal on the event loop",
        )
    ]
    for name, _ in LATENCY_PERCENTILES:
        figures.append(
            summary.figure(
                f"latency {name} (call → reply after commit), {where}",
                ours[name],
                "ms",
                baseline=other[name] if other else None,
                baseline_name="journal on the event loop",
                better="lower",
            )
        )
    summary.emit("spine", figures, orders=arguments.orders, window=arguments.window)


LATENCY_PERCENTILES = (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=5_000, help="concurrent clients")
    parser.add_argument("--wallets", type=int, default=1_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--journal",
        choices=["both", "process", "inproc"],
        default="both",
        help="where commits run; both = measure the two in one run and print the ratio",
    )
    arguments = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(compare(arguments))


if __name__ == "__main__":
    main()
