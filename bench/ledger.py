"""Durable ledger transfers per second through the ledger actor, against raw COPY.

Ours: `Trading.deposit` → ledger actor (`Clearing.deposit`: one transfer of one posting,
asset → main, idempotency key `deposit:<tid>`) → journal group commit in PostgreSQL
(COPY into `transfers` and `postings`, balances and deposits upserted, one transaction)
→ reply. Each reply comes only after the commit holding its transfer, so replies per
second is durable transfers per second; latency is call → reply, in an HDR histogram.
`--concurrency` closed-loop callers share `--transfers` deposits over `--wallets`
wallets (BTC and USDT alternately).

Raw, in the same run and the same database, right after each pass of ours: the rows
that pass committed to `transfers` and `postings`, read back, given ids past ours (and
keys of the same length that cannot collide), and inserted with asyncpg's
`copy_records_to_table` on one connection, one transaction per batch:

- in batches of ours' average group (transfers per group commit): the baseline;
- in one batch (one transaction for the whole pass);
- in batches of ours' average group with every statement the journal runs for such a
  group (the two COPYs plus the balances and deposits upserts over arrays): what the
  database work alone of ours costs, without the actors, the bridge or the writer.

Passes alternate ours / raw; figures are medians over `--passes`, the ratio is ours /
raw (batches of ours' group). Rows made by raw are deleted at the end (and before the
in-loop journal's run, whose recovery would otherwise read them).

    python bench/ledger.py [--transfers 50000] [--concurrency 256] [--wallets 1000]
                           [--passes 3] [--in-loop-journal] [--database-url URL]
                           [--quick] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import json
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]
from loguru import logger

from strongroom.actors.messages import DepositState
from strongroom.config import DEFAULT
from strongroom.persistence.database import EmbeddedPostgres
from strongroom.persistence.journal import (
    UPSERT_BALANCES,
    UPSERT_DEPOSITS,
    columns,
    is_debit_normal,
)
from strongroom.server import Core, start_core

LATENCY_MAX_US = 120_000_000
RAW_ID_OFFSET = 1 << 40  # raw transfer and deposit ids start here, far past ours
RAW_WALLET = "raw:"  # prefix of the wallets raw's balances rows name (deleted at the end)
CURRENCIES = ("BTC", "USDT")
TRANSFER_COLUMNS = ["transfer_id", "kind", "key"]
POSTING_COLUMNS = [
    "transfer_id", "debit_code", "debit_wallet", "credit_code", "credit_wallet",
    "currency", "amount", "hold_id",
]  # fmt: skip


# ------------------------------------------------------------------ processes


class Processes:
    """CPU seconds and peak memory of this process, the journal writer and PostgreSQL."""

    def __init__(self, postmaster: psutil.Process | None) -> None:
        self.postmaster = postmaster
        self.peak_rss: dict[str, int] = {}
        self._known: dict[int, psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process:
        # psutil's cpu_percent-free calls are stateless, but keep one object per pid so
        # that a pid reused by another process is noticed (create_time differs).
        process = self._known.get(pid)
        if process is None or not process.is_running():
            process = self._known[pid] = psutil.Process(pid)
        return process

    def writer(self) -> psutil.Process | None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children():
                if "strongroom.persistence.writer" in " ".join(child.cmdline()):
                    return self._process(child.pid)
        return None

    def groups(self) -> dict[str, tuple[psutil.Process | None, list[psutil.Process]]]:
        """name → (a parent whose reaped children count too, the live processes)."""
        groups: dict[str, tuple[psutil.Process | None, list[psutil.Process]]] = {
            "bench": (None, [self._process(os.getpid())])
        }
        writer = self.writer()
        if writer is not None:
            groups["writer"] = (None, [writer])
        if self.postmaster is not None:
            with contextlib.suppress(psutil.Error):
                children = [self._process(child.pid) for child in self.postmaster.children()]
                groups["postgres"] = (self.postmaster, [self.postmaster, *children])
        return groups

    def cpu(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for name, (parent, processes) in self.groups().items():
            total = 0.0
            if parent is not None:
                with contextlib.suppress(psutil.Error):
                    times = parent.cpu_times()
                    total += times.children_user + times.children_system
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            seconds[name] = total
        return seconds

    def sample_rss(self) -> None:
        for name, (_, processes) in self.groups().items():
            total = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), total)

    async def sample_forever(self, interval_s: float = 0.5) -> None:
        while True:
            self.sample_rss()
            await asyncio.sleep(interval_s)


def high_water_mark(pid: int) -> int | None:
    """VmHWM (Linux): a process's peak RSS, whether sampled at its peak or not."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def cpu_per_transfer(
    before: dict[str, float], after: dict[str, float], transfers: int
) -> dict[str, float]:
    """µs of CPU per transfer, per process group, over an interval."""
    return {
        name: 1e6 * (after[name] - before[name]) / max(1, transfers)
        for name in after
        if name in before
    }


# ------------------------------------------------------------------ ours


@dataclass(slots=True)
class OursPass:
    transfers: int
    seconds: float
    histogram: HdrHistogram
    groups: int
    units: int
    refused: int
    first_transfer_id: int
    last_transfer_id: int
    cpu_us: dict[str, float]

    @property
    def rate(self) -> float:
        return self.transfers / self.seconds

    @property
    def per_group(self) -> float:
        return self.transfers / max(1, self.groups)


async def ours(
    core: Core,
    processes: Processes,
    *,
    count: int,
    concurrency: int,
    wallets: list[str],
    run_tag: str,
    deposit_numbers: itertools.count[int],
    profiler: cProfile.Profile | None = None,
) -> OursPass:
    """`count` deposits through the ledger actor, `concurrency` callers at a time."""
    trading = core.trading
    stream = []
    for _ in range(count):
        number = next(deposit_numbers)
        currency = CURRENCIES[number % len(CURRENCIES)]
        amount = DEFAULT.currencies[currency].min_amount + number % 1_000
        stream.append((f"{run_tag}-{number:09d}", wallets[number % len(wallets)], currency, amount))
    pending = iter(stream)
    histogram = HdrHistogram(1, LATENCY_MAX_US, 3)
    transfer_ids: list[int] = []
    refused = 0

    async def caller() -> None:
        nonlocal refused
        for tid, wallet_id, currency, amount in pending:
            started = time.perf_counter_ns()
            reply = await trading.deposit(
                tid=tid, wallet_id=wallet_id, currency=currency, amount=amount,
                accept=True, fingerprint=currency,
            )  # fmt: skip
            histogram.record_value(
                min(LATENCY_MAX_US, max(1, (time.perf_counter_ns() - started) // 1_000))
            )
            if isinstance(reply, DepositState) and reply.transfer_id is not None:
                transfer_ids.append(reply.transfer_id)
            else:
                refused += 1

    journal = core.journal
    groups_before, units_before = journal.groups_committed, journal.units_committed
    cpu_before = processes.cpu()
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    cpu_after = processes.cpu()
    return OursPass(
        transfers=len(transfer_ids),
        seconds=seconds,
        histogram=histogram,
        groups=journal.groups_committed - groups_before,
        units=journal.units_committed - units_before,
        refused=refused,
        first_transfer_id=min(transfer_ids, default=0),
        last_transfer_id=max(transfer_ids, default=0),
        cpu_us=cpu_per_transfer(cpu_before, cpu_after, len(transfer_ids)),
    )


# ------------------------------------------------------------------ raw


@dataclass(slots=True)
class Rows:
    """One pass of ours' rows, renumbered for raw."""

    transfers: list[tuple[Any, ...]]
    postings: list[tuple[Any, ...]]
    deposits: list[tuple[Any, ...]]


async def rows_of(connection: asyncpg.Connection, first: int, last: int, offset: int) -> Rows:
    """The `transfers`, `postings` and `deposits` rows ours committed for transfers
    `first`..`last`, with ids moved by `offset` and keys and tids made unique (same
    length: `deposit:` → `raw-dep:`), in transfer id order."""
    transfers = [
        (row["transfer_id"] + offset, row["kind"], "raw-dep:" + row["key"][len("deposit:") :])
        for row in await connection.fetch(
            "SELECT transfer_id, kind, key FROM transfers"
            " WHERE transfer_id BETWEEN $1 AND $2 ORDER BY transfer_id",
            first,
            last,
        )
    ]
    postings = [
        (row[0] + offset, *row[1:])
        for row in await connection.fetch(
            "SELECT transfer_id, debit_code, debit_wallet, credit_code, credit_wallet,"
            " currency, amount, hold_id FROM postings"
            " WHERE transfer_id BETWEEN $1 AND $2 ORDER BY transfer_id",
            first,
            last,
        )
    ]
    deposits = [
        (row[0] + offset, "raw:" + row[1], *row[2:7], row[7] + offset, *row[8:])
        for row in await connection.fetch(
            "SELECT deposit_id, tid, wallet_id, currency, amount, state, fingerprint,"
            " transfer_id, created_at, completed_at FROM deposits"
            " WHERE transfer_id BETWEEN $1 AND $2 ORDER BY transfer_id",
            first,
            last,
        )
    ]
    return Rows(transfers, postings, deposits)


def balances_of(postings: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A group's balance deltas as the journal computes them, on raw's own wallets."""
    deltas: defaultdict[tuple[int, str, str], int] = defaultdict(int)
    for _, debit_code, debit_wallet, credit_code, credit_wallet, currency, amount, _ in postings:
        debit = (debit_code, RAW_WALLET + (debit_wallet or ""), currency)
        credit = (credit_code, RAW_WALLET + (credit_wallet or ""), currency)
        deltas[debit] += amount if is_debit_normal(debit_code) else -amount
        deltas[credit] += -amount if is_debit_normal(credit_code) else amount
    return [(*account, delta) for account, delta in deltas.items() if delta]


@dataclass(slots=True)
class RawPass:
    transfers: int
    seconds: float
    batches: int
    batch_ms: list[float] = field(default_factory=list)
    cpu_us: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.transfers / self.seconds


async def raw(
    connection: asyncpg.Connection,
    processes: Processes,
    rows: Rows,
    batch: int,
    *,
    everything: bool = False,
) -> RawPass:
    """Insert `rows` in transactions of `batch` transfers; `everything`: also run the
    journal's balances and deposits upserts for each batch, as a group commit does."""
    batches = []
    posting_index = 0
    postings = rows.postings
    for start in range(0, len(rows.transfers), batch):
        transfers = rows.transfers[start : start + batch]
        last_id = transfers[-1][0]
        end = posting_index
        while end < len(postings) and postings[end][0] <= last_id:
            end += 1
        chunk = postings[posting_index:end]
        posting_index = end
        extra: list[tuple[str, list[list[Any]]]] = []
        if everything:
            extra.append((UPSERT_BALANCES, columns(balances_of(chunk))))
            extra.append((UPSERT_DEPOSITS, columns(rows.deposits[start : start + batch])))
        batches.append((transfers, chunk, extra))
    batch_ms = []
    cpu_before = processes.cpu()
    started = time.perf_counter()
    for transfers, chunk, extra in batches:
        began = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "transfers", records=transfers, columns=TRANSFER_COLUMNS
            )
            await connection.copy_records_to_table(
                "postings", records=chunk, columns=POSTING_COLUMNS
            )
            for statement, arguments in extra:
                await connection.execute(statement, *arguments)
        batch_ms.append((time.perf_counter() - began) * 1e3)
    seconds = time.perf_counter() - started
    cpu_after = processes.cpu()
    return RawPass(
        len(rows.transfers),
        seconds,
        len(batches),
        batch_ms,
        cpu_per_transfer(cpu_before, cpu_after, len(rows.transfers)),
    )


async def delete_raw(connection: asyncpg.Connection) -> None:
    async with connection.transaction():
        await connection.execute("DELETE FROM postings WHERE transfer_id >= $1", RAW_ID_OFFSET)
        await connection.execute("DELETE FROM transfers WHERE transfer_id >= $1", RAW_ID_OFFSET)
        await connection.execute("DELETE FROM deposits WHERE deposit_id >= $1", RAW_ID_OFFSET)
        await connection.execute("DELETE FROM balances WHERE wallet_id LIKE 'raw:%'")


# ------------------------------------------------------------------ one mode


@dataclass(slots=True)
class ModeResult:
    journal: str
    ours: list[OursPass]
    grouped: list[RawPass]
    one_batch: list[RawPass]
    everything: list[RawPass]
    batch: int
    rss: dict[str, int]
    settings: dict[str, str]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def merged(passes: list[OursPass]) -> HdrHistogram:
    histogram = HdrHistogram(1, LATENCY_MAX_US, 3)
    for one in passes:
        histogram.add(one.histogram)
    return histogram


async def postmaster_of(connection: asyncpg.Connection) -> psutil.Process | None:
    """PostgreSQL's postmaster, when it runs on this machine: the parent of a backend."""
    with contextlib.suppress(psutil.Error):
        backend = psutil.Process(await connection.fetchval("SELECT pg_backend_pid()"))
        return backend.parent()
    return None


async def run_mode(
    arguments: argparse.Namespace, url: str, journal_process: bool, run_tag: str
) -> ModeResult:
    name = "writer process" if journal_process else "in-loop journal"
    core = await start_core(
        DEFAULT, url, vault_shards=arguments.shards, journal_process=journal_process
    )
    connection = await asyncpg.connect(url)
    await delete_raw(connection)  # left over by an interrupted run on the same database
    processes = Processes(await postmaster_of(connection))
    sampler = asyncio.create_task(processes.sample_forever())
    settings = {
        setting: await connection.fetchval(f"SHOW {setting}")
        for setting in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
    }
    wallets = [f"bench-{index:05d}" for index in range(arguments.wallets)]
    numbers = itertools.count()
    profiler = cProfile.Profile() if arguments.profile else None
    if arguments.warmup:
        await ours(
            core, processes, count=arguments.warmup, concurrency=arguments.concurrency,
            wallets=wallets, run_tag=f"{run_tag}-warm", deposit_numbers=numbers,
        )  # fmt: skip
    result = ModeResult(name, [], [], [], [], 0, {}, settings)
    offset = RAW_ID_OFFSET
    for number in range(1, arguments.passes + 1):
        one = await ours(
            core, processes, count=arguments.transfers, concurrency=arguments.concurrency,
            wallets=wallets, run_tag=run_tag, deposit_numbers=numbers, profiler=profiler,
        )  # fmt: skip
        result.ours.append(one)
        batch = max(1, round(one.per_group))
        result.batch = batch
        # Three renumberings of the same rows: one per raw variant, none colliding.
        span = one.last_transfer_id - one.first_transfer_id + 1
        variants = []
        for _ in range(3):
            rows = await rows_of(connection, one.first_transfer_id, one.last_transfer_id, offset)
            offset += span
            variants.append(rows)
        grouped = await raw(connection, processes, variants[0], batch)
        whole = await raw(connection, processes, variants[1], len(variants[1].transfers))
        everything = await raw(connection, processes, variants[2], batch, everything=True)
        result.grouped.append(grouped)
        result.one_batch.append(whole)
        result.everything.append(everything)
        print(
            f"  {name}, pass {number}: ours {one.rate:,.0f} transfers/s"
            f" ({one.groups:,} groups, {one.per_group:,.0f} a group),"
            f" raw batches of {batch:,} {grouped.rate:,.0f}/s,"
            f" one batch {whole.rate:,.0f}/s, all statements {everything.rate:,.0f}/s;"
            f" ours / raw {one.rate / grouped.rate:.2f}",
            flush=True,
        )
    processes.sample_rss()
    writer = processes.writer()
    result.rss = dict(processes.peak_rss)
    result.rss["bench"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if writer is not None:
        result.rss["writer"] = high_water_mark(writer.pid) or result.rss.get("writer", 0)
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    await delete_raw(connection)
    await connection.close()
    await core.stop()
    if profiler is not None:
        print(f"\nprofile of the event-loop thread ({name}; actors run on their own threads):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return result


# ------------------------------------------------------------------ report


def ms(histogram: HdrHistogram, percentile: float) -> float:
    return float(histogram.get_value_at_percentile(percentile)) / 1e3


def report(arguments: argparse.Namespace, results: list[ModeResult]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "bench": "ledger",
        "transfers_per_pass": arguments.transfers,
        "passes": arguments.passes,
        "concurrency": arguments.concurrency,
        "wallets": arguments.wallets,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "postgres": results[0].settings if results else {},
    }
    for result in results:
        ours_rate = median([one.rate for one in result.ours])
        grouped_rate = median([one.rate for one in result.grouped])
        whole_rate = median([one.rate for one in result.one_batch])
        everything_rate = median([one.rate for one in result.everything])
        histogram = merged(result.ours)
        groups = sum(one.groups for one in result.ours)
        units = sum(one.units for one in result.ours)
        transfers = sum(one.transfers for one in result.ours)
        refused = sum(one.refused for one in result.ours)
        ratios = [one.rate / raw_.rate for one, raw_ in zip(result.ours, result.grouped, strict=True)]

        def cpu(passes: list[Any], group: str) -> float:
            return median([one.cpu_us.get(group, 0.0) for one in passes])

        def batch_ms(passes: list[RawPass]) -> str:
            values = sorted(value for one in passes for value in one.batch_ms)
            if not values:
                return "-"
            return (
                f"{values[len(values) // 2]:.1f} / {values[min(len(values) - 1, int(0.99 * len(values)))]:.1f}"
            )

        headers = (
            f"ours ({result.journal})",
            f"raw, batches of {result.batch:,}",
            "raw, one batch",
            "raw + upserts",
        )
        rows: list[tuple[str, ...]] = [
            (
                f"transfers/s (median of {len(result.ours)})",
                f"{ours_rate:,.0f}",
                f"{grouped_rate:,.0f}",
                f"{whole_rate:,.0f}",
                f"{everything_rate:,.0f}",
            ),
            (
                "  range over passes",
                f"{min(o.rate for o in result.ours):,.0f}–{max(o.rate for o in result.ours):,.0f}",
                f"{min(o.rate for o in result.grouped):,.0f}–{max(o.rate for o in result.grouped):,.0f}",
                f"{min(o.rate for o in result.one_batch):,.0f}–{max(o.rate for o in result.one_batch):,.0f}",
                f"{min(o.rate for o in result.everything):,.0f}–{max(o.rate for o in result.everything):,.0f}",
            ),
            (
                "ours / this",
                "",
                f"{ours_rate / grouped_rate:.2f}",
                f"{ours_rate / whole_rate:.2f}",
                f"{ours_rate / everything_rate:.2f}",
            ),
            ("latency p50 ms (call → reply)", f"{ms(histogram, 50):.2f}", "", "", ""),
            ("latency p99 ms", f"{ms(histogram, 99):.2f}", "", "", ""),
            ("latency p99.9 ms", f"{ms(histogram, 99.9):.2f}", "", "", ""),
            ("latency max ms", f"{histogram.get_max_value() / 1e3:.2f}", "", "", ""),
            (
                "commit ms a batch, p50 / p99",
                "",
                batch_ms(result.grouped),
                batch_ms(result.one_batch),
                batch_ms(result.everything),
            ),
            (
                "group commits (transactions)",
                f"{groups:,}",
                f"{sum(o.batches for o in result.grouped):,}",
                f"{sum(o.batches for o in result.one_batch):,}",
                f"{sum(o.batches for o in result.everything):,}",
            ),
            (
                "transfers a commit",
                f"{transfers / max(1, groups):,.0f}",
                f"{result.batch:,}",
                f"{arguments.transfers:,}",
                f"{result.batch:,}",
            ),
            ("journal units a commit", f"{units / max(1, groups):,.1f}", "", "", ""),
            (
                "CPU µs a transfer: this process",
                f"{cpu(result.ours, 'bench'):.1f}",
                f"{cpu(result.grouped, 'bench'):.1f}",
                f"{cpu(result.one_batch, 'bench'):.1f}",
                f"{cpu(result.everything, 'bench'):.1f}",
            ),
            (
                "  journal writer process",
                f"{cpu(result.ours, 'writer'):.1f}" if "writer" in result.rss else "-",
                "",
                "",
                "",
            ),
            (
                "  PostgreSQL",
                f"{cpu(result.ours, 'postgres'):.1f}",
                f"{cpu(result.grouped, 'postgres'):.1f}",
                f"{cpu(result.one_batch, 'postgres'):.1f}",
                f"{cpu(result.everything, 'postgres'):.1f}",
            ),
        ]
        widths = [max(len(row[0]) for row in rows) + 2] + [
            max(len(headers[index]), *(len(row[index + 1]) for row in rows)) + 3
            for index in range(4)
        ]
        print(
            f"\n  durable ledger transfers: {arguments.transfers:,} deposits a pass,"
            f" {arguments.concurrency:,} concurrent callers, {arguments.wallets:,} wallets\n"
        )
        print("  " + "figure".ljust(widths[0]) + "".join(
            header.rjust(width) for header, width in zip(headers, widths[1:], strict=True)
        ))  # fmt: skip
        print("  " + "─" * (sum(widths)))
        for row in rows:
            print(
                "  "
                + row[0].ljust(widths[0])
                + "".join(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
            )
        rss = ", ".join(
            f"{name} {value / 2**20:,.0f} MiB"
            for name, value in sorted(result.rss.items())
        )
        print(f"\n  peak RSS: {rss} (PostgreSQL: sum over its processes, shared buffers counted in each)")
        print(f"  per-pass ours / raw: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
        if refused:
            print(f"  refused or no transfer: {refused:,}")
        key = "process" if result.journal == "writer process" else "in_loop"
        summary[key] = {
            "ours_transfers_per_s": round(ours_rate),
            "raw_transfers_per_s": round(grouped_rate),
            "ratio": round(ours_rate / grouped_rate, 3),
            "ratios_per_pass": [round(ratio, 3) for ratio in ratios],
            "raw_one_batch_transfers_per_s": round(whole_rate),
            "raw_with_upserts_transfers_per_s": round(everything_rate),
            "latency_ms": {
                "p50": ms(histogram, 50),
                "p99": ms(histogram, 99),
                "p99.9": ms(histogram, 99.9),
                "max": histogram.get_max_value() / 1e3,
            },
            "groups": groups,
            "transfers_per_group": round(transfers / max(1, groups), 1),
            "units_per_group": round(units / max(1, groups), 1),
            "cpu_us_per_transfer": {
                group: round(cpu(result.ours, group), 1) for group in ("bench", "writer", "postgres")
            },
            "peak_rss_mib": {name: round(value / 2**20) for name, value in result.rss.items()},
            "refused": refused,
        }
    print(
        f"\n  machine: {os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}"
        f" {platform.release()}, Python {platform.python_version()};"
        f" PostgreSQL {summary['postgres'].get('server_version', '?')}"
        f" (fsync {summary['postgres'].get('fsync', '?')},"
        f" synchronous_commit {summary['postgres'].get('synchronous_commit', '?')},"
        f" wal_sync_method {summary['postgres'].get('wal_sync_method', '?')});"
        " this process, the writer and PostgreSQL share the CPUs"
    )
    return summary


async def main_async(arguments: argparse.Namespace) -> None:
    embedded = None
    url = arguments.database_url
    if url is None:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="strongroom-bench-")))
        url = await asyncio.to_thread(embedded.start)
    run_tag = f"ledger-{time.time_ns():x}"  # tids unique even on a reused database
    try:
        modes = [True, False] if arguments.in_loop_journal else [True]
        results = []
        for journal_process in modes:
            results.append(await run_mode(arguments, url, journal_process, f"{run_tag}-{int(journal_process)}"))
        summary = report(arguments, results)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    print(json.dumps(summary, indent=2 if arguments.json else None, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--transfers", type=int, default=50_000, help="deposits a pass")
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent callers")
    parser.add_argument("--wallets", type=int, default=1_000)
    parser.add_argument("--passes", type=int, default=3, help="ours / raw alternations")
    parser.add_argument("--warmup", type=int, default=5_000, help="deposits before measuring")
    parser.add_argument("--shards", type=int, default=4, help="vault shards (unused here)")
    parser.add_argument(
        "--in-loop-journal",
        action="store_true",
        help="also measure with the journal on the service's event loop (after the writer"
        " process, same database)",
    )
    parser.add_argument("--database-url")
    parser.add_argument("--quick", action="store_true", help="10,000 a pass, 2 passes")
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop")
    parser.add_argument("--json", action="store_true", help="indent the JSON summary")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.transfers, arguments.passes, arguments.warmup = 10_000, 2, 1_000
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(main_async(arguments))


if __name__ == "__main__":
    main()
