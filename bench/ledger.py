"""Durable ledger transfers per second through the ledger actor, against raw COPY.

Ours: `Trading.deposit` → ledger actor (`Clearing.deposit`: one transfer of one posting,
asset → main, idempotency key `deposit:<tid>`) → journal group commit in PostgreSQL
(COPY into `transfers` and `postings`; balances, deposits, webhook events; one transaction)
→ reply. Each reply comes only after the commit holding its transfer, so replies per
second is durable transfers per second; latency is call → reply, in an HDR histogram.
`--concurrency` closed-loop callers share `--transfers` deposits over `--wallets`
wallets (BTC and USDT alternately).

Raw, in the same run and the same database, right after each pass of ours: the rows
that pass committed to `transfers` and `postings`, read back, given ids past ours (and
keys of the same length that cannot collide), and inserted with asyncpg's
`copy_records_to_table` on one connection, one transaction per batch:

- in batches of ours' average group (transfers per group commit): the baseline;
- in one batch (one transaction for the whole pass).

And, to tell the database's share from the rest: "journal alone", the same deposits
turned into journal units by a `Clearing` of their own before timing (ids past ours),
merged per batch of ours' average group as the ledger actor merges a mailbox batch, and
committed by a `Journal` on this loop, one group at a time (submit, drain): every
statement a group commit runs (the COPYs, balances and deposits upserts, webhook
events), without the actors, the bridge or the writer process.

Passes alternate ours / raw; figures are medians over `--passes`, the ratio is ours /
raw (batches of ours' group). What raw and the journal alone wrote is deleted at the end
(the balances it moved put back), before the in-loop journal's run, whose recovery would
otherwise read it. Without `--database-url` PostgreSQL is embedded (pgserver, fsync on)
in a fresh temporary folder, removed at the end.

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
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]
from loguru import logger

from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import DepositRequest, DepositState, JournalUnit
from strongroom.actors.shells import merge
from strongroom.config import DEFAULT
from strongroom.persistence.database import EmbeddedPostgres, create_pool
from strongroom.persistence.journal import Journal
from strongroom.server import Core, start_core

LATENCY_MAX_US = 120_000_000
RAW_ID_OFFSET = 1 << 40  # raw's transfer ids start here, far past ours
JOURNAL_ID_OFFSET = 2 << 40  # the journal alone's transfer and deposit ids start here
CURRENCIES = ("BTC", "USDT")
TRANSFER_COLUMNS = ["transfer_id", "kind", "key"]
POSTING_COLUMNS = [
    "transfer_id", "debit_code", "debit_wallet", "credit_code", "credit_wallet",
    "currency", "amount", "hold_id",
]  # fmt: skip
Deposit = tuple[str, str, str, int]  # tid, wallet, currency, amount


# ------------------------------------------------------------------ processes


class Processes:
    """CPU seconds and peak memory of this process, the journal writer and PostgreSQL."""

    def __init__(self, postmaster: psutil.Process | None) -> None:
        self.postmaster = postmaster
        self.peak_rss: dict[str, int] = {}
        self.sampling = False  # RSS is sampled while ours runs only
        self._known: dict[int, psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process:
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
        # Everything else on the machine (other processes: the machine is shared).
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        seconds["other"] = busy - sum(seconds.values())
        return seconds

    def sample_rss(self) -> None:
        for name, (_, processes) in self.groups().items():
            total = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), total)

    async def sample_forever(self, interval_s: float = 0.25) -> None:
        while True:
            if self.sampling:
                self.sample_rss()
            await asyncio.sleep(interval_s)


def cpu_per_transfer(
    before: dict[str, float], after: dict[str, float], transfers: int, seconds: float
) -> dict[str, float]:
    """µs of CPU per transfer, per process group, over an interval; and "other_pct": the
    CPU of every other process on the machine meanwhile, in % of one core."""
    spent = {
        name: 1e6 * (after[name] - before[name]) / max(1, transfers)
        for name in after
        if name in before and name != "other"
    }
    spent["other_pct"] = 100 * (after["other"] - before["other"]) / seconds
    return spent


# ------------------------------------------------------------------ ours


@dataclass(slots=True)
class OursPass:
    deposits: list[Deposit]
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


def deposits_for(count: int, wallets: list[str], run_tag: str, numbers: Any) -> list[Deposit]:
    deposits = []
    for _ in range(count):
        number = next(numbers)
        currency = CURRENCIES[number % len(CURRENCIES)]
        amount = DEFAULT.currencies[currency].min_amount + number % 1_000
        tid = f"{run_tag}-{number:09d}"
        deposits.append((tid, wallets[number % len(wallets)], currency, amount))
    return deposits


async def ours(
    core: Core,
    processes: Processes,
    deposits: list[Deposit],
    concurrency: int,
    profiler: cProfile.Profile | None = None,
) -> OursPass:
    """`deposits` through the ledger actor, `concurrency` closed-loop callers at a time."""
    trading = core.trading
    pending = iter(deposits)
    latencies_ns: list[int] = []
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
            latencies_ns.append(time.perf_counter_ns() - started)
            if isinstance(reply, DepositState) and reply.transfer_id is not None:
                transfer_ids.append(reply.transfer_id)
            else:
                refused += 1

    journal = core.journal
    groups_before, units_before = journal.groups_committed, journal.units_committed
    processes.sampling = True
    processes.sample_rss()
    cpu_before = processes.cpu()
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    cpu_after = processes.cpu()
    processes.sample_rss()
    processes.sampling = False
    histogram = HdrHistogram(1, LATENCY_MAX_US, 3)
    for latency in latencies_ns:
        histogram.record_value(min(LATENCY_MAX_US, max(1, latency // 1_000)))
    return OursPass(
        deposits=deposits,
        transfers=len(transfer_ids),
        seconds=seconds,
        histogram=histogram,
        groups=journal.groups_committed - groups_before,
        units=journal.units_committed - units_before,
        refused=refused,
        first_transfer_id=min(transfer_ids, default=0),
        last_transfer_id=max(transfer_ids, default=0),
        cpu_us=cpu_per_transfer(cpu_before, cpu_after, len(transfer_ids), seconds),
    )


# ------------------------------------------------------------------ raw


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


async def raw_rows(
    connection: asyncpg.Connection, first: int, last: int, offset: int, variant: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The `transfers` and `postings` rows ours committed for transfers `first`..`last`,
    in transfer id order, with ids moved by `offset` and keys made unique by a one-letter
    `variant` but kept the same length (`deposit:` → `rawAdep:`)."""
    prefix = f"raw{variant}dep:"
    assert len(prefix) == len("deposit:")
    transfers = [
        (row["transfer_id"] + offset, row["kind"], prefix + row["key"][len("deposit:") :])
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
    return transfers, postings


async def raw(
    connection: asyncpg.Connection,
    processes: Processes,
    transfers: list[tuple[Any, ...]],
    postings: list[tuple[Any, ...]],
    batch: int,
) -> RawPass:
    """COPY `transfers` and their `postings`, one transaction per `batch` transfers."""
    batches = []
    index = 0
    for start in range(0, len(transfers), batch):
        chunk = transfers[start : start + batch]
        last_id = chunk[-1][0]
        end = index
        while end < len(postings) and postings[end][0] <= last_id:
            end += 1
        batches.append((chunk, postings[index:end]))
        index = end
    batch_ms = []
    cpu_before = processes.cpu()
    started = time.perf_counter()
    for transfer_rows, posting_rows in batches:
        began = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "transfers", records=transfer_rows, columns=TRANSFER_COLUMNS
            )
            await connection.copy_records_to_table(
                "postings", records=posting_rows, columns=POSTING_COLUMNS
            )
        batch_ms.append((time.perf_counter() - began) * 1e3)
    seconds = time.perf_counter() - started
    cpu_after = processes.cpu()
    return RawPass(
        len(transfers),
        seconds,
        len(batches),
        batch_ms,
        cpu_per_transfer(cpu_before, cpu_after, len(transfers), seconds),
    )


def journal_units(deposits: list[Deposit], batch: int, first_id: int) -> list[JournalUnit]:
    """The units the ledger actor would commit for `deposits` (tids prefixed, transfer
    and deposit ids from `first_id`), merged per `batch` as one mailbox batch is."""
    clearing = Clearing(DEFAULT, Ledger(DEFAULT.currencies), next_transfer_id=first_id)
    now_ns = time.time_ns()
    units = []
    for start in range(0, len(deposits), batch):
        chunk = []
        for number, (tid, wallet_id, currency, amount) in enumerate(
            deposits[start : start + batch], start
        ):
            request = DepositRequest(
                0, first_id + number, "alone-" + tid, wallet_id, currency, amount, True,
                currency, now_ns,
            )  # fmt: skip
            outcome = clearing.deposit(request)
            assert isinstance(outcome, JournalUnit)
            chunk.append(outcome)
        units.append(merge(chunk))
    return units


async def journal_alone(
    pool: asyncpg.Pool, processes: Processes, units: list[JournalUnit]
) -> RawPass:
    """Commit `units` with a `Journal` on this loop, one group each, one after another."""
    transfers = sum(len(unit.transfers) for unit in units)
    journal = Journal(pool, lambda unit: None, lambda error: print(f"journal failed: {error}"))
    await journal.start()
    batch_ms = []
    cpu_before = processes.cpu()
    started = time.perf_counter()
    for unit in units:
        began = time.perf_counter()
        journal.submit(unit)
        await journal.drain()
        batch_ms.append((time.perf_counter() - began) * 1e3)
    seconds = time.perf_counter() - started
    cpu_after = processes.cpu()
    await journal.stop()
    assert journal.groups_committed == len(units), "a group failed"
    return RawPass(
        transfers,
        seconds,
        len(units),
        batch_ms,
        cpu_per_transfer(cpu_before, cpu_after, transfers, seconds),
    )


# Balances the journal alone moved are put back from its postings, before those go.
PUT_BALANCES_BACK = """
WITH movements AS (
    SELECT credit_code AS code, coalesce(credit_wallet, '') AS wallet, currency,
           CASE WHEN credit_code < 200 OR credit_code >= 400 THEN -amount ELSE amount END AS amount
      FROM postings WHERE transfer_id >= $1
    UNION ALL
    SELECT debit_code, coalesce(debit_wallet, ''), currency,
           CASE WHEN debit_code < 200 OR debit_code >= 400 THEN amount ELSE -amount END
      FROM postings WHERE transfer_id >= $1
), deltas AS (
    SELECT code, wallet, currency, sum(amount)::bigint AS amount FROM movements
     GROUP BY code, wallet, currency
)
UPDATE balances b SET amount = b.amount - d.amount FROM deltas d
 WHERE b.code = d.code AND b.wallet_id = d.wallet AND b.currency = d.currency
"""


async def delete_raw(connection: asyncpg.Connection) -> None:
    """Remove what raw and the journal alone wrote (ids from RAW_ID_OFFSET on)."""
    async with connection.transaction():
        await connection.execute(PUT_BALANCES_BACK, JOURNAL_ID_OFFSET)
        await connection.execute("DELETE FROM postings WHERE transfer_id >= $1", RAW_ID_OFFSET)
        await connection.execute("DELETE FROM transfers WHERE transfer_id >= $1", RAW_ID_OFFSET)
        await connection.execute("DELETE FROM deposits WHERE deposit_id >= $1", RAW_ID_OFFSET)


# ------------------------------------------------------------------ one mode


@dataclass(slots=True)
class ModeResult:
    journal: str
    ours: list[OursPass]
    grouped: list[RawPass]
    one_batch: list[RawPass]
    alone: list[RawPass]
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
    """Start a core with the journal where asked, measure, stop it (whatever happened)."""
    name = "writer process" if journal_process else "in-loop journal"
    connection = await asyncpg.connect(url)
    with contextlib.suppress(asyncpg.UndefinedTableError):  # a fresh database
        await delete_raw(connection)  # left over by an interrupted run on the same database
    core = await start_core(
        DEFAULT, url, vault_shards=arguments.shards, journal_process=journal_process
    )
    pool = await create_pool(url, size_max=2)
    processes = Processes(await postmaster_of(connection))
    sampler = asyncio.create_task(processes.sample_forever())
    profiler = cProfile.Profile() if arguments.profile else None
    try:
        result = await measure(
            arguments, core, connection, pool, processes, name, run_tag, profiler
        )
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await delete_raw(connection)
        await connection.close()
        await pool.close()
        await core.stop()
    if profiler is not None:
        print(f"\nprofile of the event-loop thread ({name}; actors run on their own threads):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return result


async def measure(
    arguments: argparse.Namespace,
    core: Core,
    connection: asyncpg.Connection,
    pool: asyncpg.Pool,
    processes: Processes,
    name: str,
    run_tag: str,
    profiler: cProfile.Profile | None,
) -> ModeResult:
    """Warm up, then `--passes` of ours, each followed by raw and the journal alone."""
    settings = {
        setting: str(await connection.fetchval(f"SHOW {setting}"))
        for setting in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
    }
    wallets = [f"bench-{index:05d}" for index in range(arguments.wallets)]
    numbers = itertools.count()
    if arguments.warmup:
        warm = deposits_for(arguments.warmup, wallets, f"{run_tag}-warm", numbers)
        await ours(core, processes, warm, arguments.concurrency)
    result = ModeResult(name, [], [], [], [], 0, {}, settings)
    raw_offset, alone_offset = RAW_ID_OFFSET, JOURNAL_ID_OFFSET
    for number in range(1, arguments.passes + 1):
        deposits = deposits_for(arguments.transfers, wallets, run_tag, numbers)
        one = await ours(core, processes, deposits, arguments.concurrency, profiler)
        result.ours.append(one)
        batch = result.batch = max(1, round(one.per_group))
        first, last = one.first_transfer_id, one.last_transfer_id
        transfers, postings = await raw_rows(connection, first, last, raw_offset, "A")
        raw_offset += last - first + 1
        grouped = await raw(connection, processes, transfers, postings, batch)
        transfers, postings = await raw_rows(connection, first, last, raw_offset, "B")
        raw_offset += last - first + 1
        whole = await raw(connection, processes, transfers, postings, len(transfers))
        del transfers, postings
        units = journal_units(one.deposits, batch, alone_offset)
        alone_offset += len(one.deposits)
        alone = await journal_alone(pool, processes, units)
        del units
        result.grouped.append(grouped)
        result.one_batch.append(whole)
        result.alone.append(alone)
        print(
            f"  {name}, pass {number}: ours {one.rate:,.0f} transfers/s"
            f" ({one.groups:,} groups, {one.per_group:,.0f} a group),"
            f" raw batches of {batch:,} {grouped.rate:,.0f}/s,"
            f" one batch {whole.rate:,.0f}/s, journal alone {alone.rate:,.0f}/s;"
            f" ours / raw {one.rate / grouped.rate:.2f}",
            flush=True,
        )
    result.rss = dict(processes.peak_rss)
    return result


# ------------------------------------------------------------------ report


def ms(histogram: HdrHistogram, percentile: float) -> float:
    return float(histogram.get_value_at_percentile(percentile)) / 1e3


def spread(passes: list[Any]) -> str:
    return f"{min(one.rate for one in passes):,.0f}–{max(one.rate for one in passes):,.0f}"


def batch_ms(passes: list[RawPass]) -> str:
    values = sorted(value for one in passes for value in one.batch_ms)
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
    return f"{values[len(values) // 2]:.1f} / {p99:.1f}"


def report(arguments: argparse.Namespace, results: list[ModeResult]) -> dict[str, Any]:
    postgres = results[0].settings
    summary: dict[str, Any] = {
        "bench": "ledger",
        "transfers_per_pass": arguments.transfers,
        "passes": arguments.passes,
        "concurrency": arguments.concurrency,
        "wallets": arguments.wallets,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "postgres": postgres,
    }
    for result in results:
        ours_rate = median([one.rate for one in result.ours])
        grouped_rate = median([one.rate for one in result.grouped])
        whole_rate = median([one.rate for one in result.one_batch])
        alone_rate = median([one.rate for one in result.alone])
        histogram = merged(result.ours)
        groups = sum(one.groups for one in result.ours)
        units = sum(one.units for one in result.ours)
        transfers = sum(one.transfers for one in result.ours)
        refused = sum(one.refused for one in result.ours)
        ratios = [
            ours.rate / raw.rate for ours, raw in zip(result.ours, result.grouped, strict=True)
        ]

        def cpu(passes: list[Any], group: str) -> str:
            values = [one.cpu_us[group] for one in passes if group in one.cpu_us]
            return f"{median(values):.1f}" if values else ""

        variants: list[list[Any]] = [result.ours, result.grouped, result.one_batch, result.alone]
        headers = (
            f"ours ({result.journal})",
            f"raw, batches of {result.batch:,}",
            "raw, one batch",
            "journal alone",
        )
        rows: list[tuple[str, ...]] = [
            (
                f"transfers/s (median of {len(result.ours)})",
                *(f"{rate:,.0f}" for rate in (ours_rate, grouped_rate, whole_rate, alone_rate)),
            ),
            ("  range over passes", *(spread(passes) for passes in variants)),
            (
                "ours / this",
                "",
                *(f"{ours_rate / rate:.2f}" for rate in (grouped_rate, whole_rate, alone_rate)),
            ),
            ("latency p50 ms (call → reply)", f"{ms(histogram, 50):.2f}", "", "", ""),
            ("latency p99 ms", f"{ms(histogram, 99):.2f}", "", "", ""),
            ("latency p99.9 ms", f"{ms(histogram, 99.9):.2f}", "", "", ""),
            ("latency max ms", f"{histogram.get_max_value() / 1e3:.2f}", "", "", ""),
            (
                "commit ms, p50 / p99",
                "",
                *(batch_ms(passes) for passes in variants[1:]),
            ),
            (
                "commits (transactions)",
                f"{groups:,}",
                *(f"{sum(one.batches for one in passes):,}" for passes in variants[1:]),
            ),
            (
                "transfers a commit",
                f"{transfers / max(1, groups):,.0f}",
                f"{result.batch:,}",
                f"{arguments.transfers:,}",
                f"{result.batch:,}",
            ),
            ("journal units a commit", f"{units / max(1, groups):,.1f}", "", "", ""),
            ("CPU µs a transfer: this process", *(cpu(passes, "bench") for passes in variants)),
            ("  journal writer process", cpu(result.ours, "writer"), "", "", ""),
            ("  PostgreSQL", *(cpu(passes, "postgres") for passes in variants)),
            ("other processes, % of a core", *(cpu(passes, "other_pct") for passes in variants)),
        ]
        widths = [max(len(row[0]) for row in rows) + 2] + [
            max(len(headers[index]), *(len(row[index + 1]) for row in rows)) + 3
            for index in range(len(headers))
        ]
        print(
            f"\n  durable ledger transfers: {arguments.transfers:,} deposits a pass,"
            f" {arguments.concurrency:,} concurrent callers, {arguments.wallets:,} wallets\n"
        )
        print(
            "  "
            + "figure".ljust(widths[0])
            + "".join(
                header.rjust(width) for header, width in zip(headers, widths[1:], strict=True)
            )
        )
        print("  " + "─" * sum(widths))
        for row in rows:
            print(
                "  "
                + row[0].ljust(widths[0])
                + "".join(
                    cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
                )
            )
        rss = ", ".join(
            f"{name} {value / 2**20:,.0f} MiB" for name, value in sorted(result.rss.items())
        )
        print(
            f"\n  peak RSS while ours ran: {rss} (PostgreSQL: the sum over its processes,"
            " shared buffers counted in each)"
        )
        print(f"  ours / raw per pass: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
        if refused:
            print(f"  refused or without a transfer: {refused:,}")
        key = "process" if result.journal == "writer process" else "in_loop"
        summary[key] = {
            "ours_transfers_per_s": round(ours_rate),
            "raw_transfers_per_s": round(grouped_rate),
            "ratio": round(ours_rate / grouped_rate, 3),
            "ratios_per_pass": [round(ratio, 3) for ratio in ratios],
            "raw_batch": result.batch,
            "raw_one_batch_transfers_per_s": round(whole_rate),
            "journal_alone_transfers_per_s": round(alone_rate),
            "latency_ms": {
                "p50": ms(histogram, 50),
                "p99": ms(histogram, 99),
                "p99.9": ms(histogram, 99.9),
                "max": histogram.get_max_value() / 1e3,
            },
            "groups": groups,
            "transfers_per_group": round(transfers / max(1, groups), 1),
            "units_per_group": round(units / max(1, groups), 2),
            "cpu_us_per_transfer": {
                group: float(cpu(result.ours, group) or 0)
                for group in ("bench", "writer", "postgres")
            },
            "other_processes_cpu_pct": float(cpu(result.ours, "other_pct") or 0),
            "peak_rss_mib": {name: round(value / 2**20) for name, value in result.rss.items()},
            "refused": refused,
        }
    summary["peak_rss_bench_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(
        f"\n  machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()}"
        f" {platform.release()}), Python {platform.python_version()},"
        f" PostgreSQL {postgres['server_version']} (fsync {postgres['fsync']},"
        f" synchronous_commit {postgres['synchronous_commit']},"
        f" wal_sync_method {postgres['wal_sync_method']}); this process, the journal writer"
        f" and PostgreSQL share the CPUs; this process's peak RSS over the whole run"
        f" {summary['peak_rss_bench_mib']:,} MiB"
    )
    return summary


async def main_async(arguments: argparse.Namespace) -> None:
    embedded = None
    url = arguments.database_url
    data_dir = Path(tempfile.mkdtemp(prefix="strongroom-bench-ledger-"))
    if url is None:
        embedded = EmbeddedPostgres(data_dir)
        url = await asyncio.to_thread(embedded.start)
    run_tag = f"ledger-{time.time_ns():x}"  # tids unique even on a reused database
    try:
        results = []
        for journal_process in [True, False] if arguments.in_loop_journal else [True]:
            tag = f"{run_tag}-{'p' if journal_process else 'l'}"
            results.append(await run_mode(arguments, url, journal_process, tag))
        summary = report(arguments, results)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(summary, indent=2 if arguments.json else None, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--transfers", type=int, default=50_000, help="deposits a pass")
    parser.add_argument("--concurrency", type=int, default=256, help="closed-loop callers")
    parser.add_argument("--wallets", type=int, default=1_000)
    parser.add_argument("--passes", type=int, default=3, help="ours / raw alternations")
    parser.add_argument("--warmup", type=int, default=5_000, help="deposits before measuring")
    parser.add_argument("--shards", type=int, default=4, help="vault shards (idle here)")
    parser.add_argument(
        "--in-loop-journal",
        action="store_true",
        help="also measure with the journal on the service's event loop (after the writer\n"
        "process, on the same database)",
    )
    parser.add_argument("--database-url", help="default: an embedded PostgreSQL, fresh")
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
