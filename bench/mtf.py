"""The MTF gateway end to end: committed orders per second and ack latency over TCP.

    python bench/mtf.py [--duration 15] [--connections 4] [--window 256] [--warmup 2]
                        [--levels 10,50,100] [--tick-ms 1] [--codec-frames 100000]
                        [--repeat 5] [--keep] [--json]

A real `strongroom serve` (subprocess, embedded PostgreSQL with fsync, fresh temporary
data dir, `--mtf-rate 1000000` so the per-session rate limit never answers `J 8`) and
this process as the load generator: funded member wallets, one MTF connection each,
all on one asyncio loop. Client and server share the machine's cores, so the generator
is kept cheap: frames are packed with `struct` into one buffer per write and received
frames are counted by slicing out their code bytes, never decoded into objects.

Every `A` leaves the server only after the order's effects, fills included, are
committed to PostgreSQL, so acked orders per second is committed throughput.

The mix (BTC-USDT, 0.001 BTC an order, every connection repeating GTC, GTC, GTC, IOC):
half the connections only buy, half only sell, so no wallet ever meets its own orders
(no self-trade prevention). GTC orders go in at the mid, 20,000.00, and trade against
the other side's resting orders or rest; IOC orders cross one tick beyond the mid and
trade or are canceled unfilled. Resting orders therefore exist on one side at a time and
their number is mean-reverting (the IOCs drain it): about 0.4 trades per order (printed
as trades/o), a handful of orders resting at any time, no `J` from the mix itself.

1. Codec micro-benchmark (before the server starts, in this process): `FrameBuffer.feed`
   against a bare `struct.iter_unpack` on the same buffer, and the server's whole decode
   (`GatewaySession.receive_data` + `events()`: framing, sequence, rate limit, validation,
   `OrderEntry` events) on a logged-in session with fake clocks.
2. Phase 1, closed loop: `--window` orders outstanding per connection (pipelined, topped
   up on every `A`/`J`); the maximum sustained rate is the acked orders per second over
   `--duration` after `--warmup`.
3. Phase 2, open loop at `--levels` % of that rate: orders go out on a fixed schedule,
   whatever the answers do, and each order's latency is its `A`'s arrival minus its
   *scheduled* send time (no coordinated omission), into an HDR histogram. At 100 % the
   server runs at its limit, so a dip in capacity leaves a backlog that only drains at
   the end: seconds of latency, and `J 8` once a wallet has 1,000 orders open or in
   flight (the vault's cap) are then what saturation looks like, not a fault of the mix.

Also printed: CPU of each process (% of one core, µs per acked order) and PostgreSQL's
own commit and WAL counters for phase 1 and each level, and peak RSS of the server, its
journal writer, PostgreSQL and this generator. The server is stopped with SIGTERM at the
end and the data dir removed (unless `--keep`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from strongroom.actors.messages import TimeInForce
from strongroom.config import DEFAULT
from strongroom.wire.mtf import (
    FRAME,
    FRAME_SIZE,
    Code,
    Credential,
    FrameBuffer,
    GatewaySession,
    Keyring,
    Limits,
    MemberOrders,
    MemberSession,
    OrderEntry,
    Reject,
    State,
    grids,
)

MARKET_ID = 1  # BTC-USDT: tick 0.01 USDT, lot 0.0001 BTC
MID = 20_000.0
TICK = 0.01
QUANTITY = 0.001
# Every connection repeats this: (time in force, ticks beyond the mid toward the other side).
PATTERN = ((TimeInForce.GTC, 0), (TimeInForce.GTC, 0), (TimeInForce.GTC, 0), (TimeInForce.IOC, 1))
FUNDS = (("BTC", "100000"), ("USDT", "1000000000"))
ADMIN_CLIENT_ID = "bench-admin"
ADMIN_CLIENT_SECRET = secrets.token_hex(16)
START_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 60.0
HEARTBEAT_S = 1.0
CODE_OFFSET = 14  # the code byte within a frame: >H Q I, then B
CONDITION_OFFSET = 47  # order_condition: a J's reason (>H Q I B d d d Q, then B)
ORDER_ID = struct.Struct(">Q")  # the client order id, at offset 2
LATENCY_MAX_US = 120_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ------------------------------------------------------------------ codec micro-benchmark


def order_frames(count: int, client_id: int, wall_ns: int) -> bytes:
    """`count` valid new-order frames numbered 1.., as a member would send them."""
    frames = []
    for number in range(1, count + 1):
        price = round(MID + (number % 100) * TICK, 2)
        quantity = round(QUANTITY * (1 + number % 10), 4)
        code = Code.BUY if number & 1 else Code.SELL
        frames.append(FRAME.pack(MARKET_ID, number, client_id, code, 0.0, price, 0.0, wall_ns,
                                 number & 1, 0.0, quantity, 0.0, 0.0, number))  # fmt: skip
    return b"".join(frames)


def logged_in_session(client_id: int, wall_ns: int) -> GatewaySession:
    """A gateway session past its login, on fake clocks, with no effective rate limit."""
    secret, wallet_id = "bench-secret", "bench-wallet"

    def clock() -> int:
        return wall_ns

    def monotonic() -> float:
        return 1_000.0

    session = GatewaySession(
        Keyring([Credential(client_id, wallet_id, secret)]),
        grids(DEFAULT.markets.values(), DEFAULT.currencies),
        wall_ns=clock,
        monotonic=monotonic,
        limits=Limits(rate_per_s=1e15, burst=10**15),
    )
    member = MemberSession(client_id, secret, wall_ns=clock, monotonic=monotonic)
    member.login(nonce=1)
    session.receive_data(member.data_to_send())
    assert len(session.events()) == 1  # the LoginRequest
    session.accept_login(MemberOrders(client_id, wallet_id))
    session.data_to_send()
    assert session.state is State.ACTIVE
    return session


def seconds_of(function: Callable[..., Any], *arguments: Any) -> float:
    """One timed call (after a collection, so that no earlier garbage is paid for)."""
    gc.collect()
    started = time.perf_counter()
    result = function(*arguments)
    elapsed = time.perf_counter() - started
    del result
    return elapsed


def codec_benchmark(frames: int, repeat: int) -> dict[str, Any]:
    client_id, wall_ns = 4242, time.time_ns()
    buffer = order_frames(frames, client_id, wall_ns)
    bare_struct = struct.Struct(">HQIBdddQBddddQ")
    assert FrameBuffer().feed(buffer) == list(bare_struct.iter_unpack(buffer))
    checked = logged_in_session(client_id, wall_ns)
    checked.receive_data(buffer)
    events = checked.events()
    assert len(events) == frames and all(type(event) is OrderEntry for event in events)
    assert checked.data_to_send() == b"", "the session rejected some of the frames"
    del events, checked

    def bare() -> Any:
        return list(bare_struct.iter_unpack(buffer))

    def codec() -> Any:
        return FrameBuffer().feed(buffer)

    def decode(session: GatewaySession) -> Any:
        session.receive_data(buffer)
        return session.events()

    bare_s, codec_s, session_s = [], [], []
    for _ in range(repeat):  # alternated, so that all three see the same machine
        bare_s.append(seconds_of(bare))
        codec_s.append(seconds_of(codec))
        session_s.append(seconds_of(decode, logged_in_session(client_id, wall_ns)))
    return {
        "frames": frames,
        "repeat": repeat,
        "bare_frames_per_s": frames / min(bare_s),
        "codec_frames_per_s": frames / min(codec_s),
        "codec_over_bare": min(codec_s) / min(bare_s),
        "session_decode_frames_per_s": frames / min(session_s),
        "session_decode_over_bare": min(session_s) / min(bare_s),
    }


# ------------------------------------------------------------------ the server


class Server:
    """`strongroom serve` in a subprocess on a fresh data dir, stopped with SIGTERM."""

    def __init__(self, data_dir: Path, mtf_rate: float) -> None:
        self.data_dir = data_dir
        self.mtf_rate = mtf_rate
        self.http_port, self.ws_port, self.mtf_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "serve.log"
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def start(self) -> float:
        started = time.monotonic()
        environment = dict(os.environ)
        environment.update(
            STRONGROOM_ADMIN_CLIENT_ID=ADMIN_CLIENT_ID,
            STRONGROOM_ADMIN_CLIENT_SECRET=ADMIN_CLIENT_SECRET,
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "strongroom.cli", "--log-level", "WARNING", "serve",
                    "--data-dir", str(self.data_dir),
                    "--http-port", str(self.http_port),
                    "--ws-port", str(self.ws_port),
                    "--mtf-port", str(self.mtf_port),
                    "--mtf-rate", str(self.mtf_rate),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )  # fmt: skip
        deadline = started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = httpx.get(f"{self.base_url}/status/", timeout=1.0)
                if response.status_code == 200 and response.json()["status"] == "ok":
                    return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {START_TIMEOUT_S} s:\n{self.log()}")

    def admin(self) -> httpx.Client:
        response = httpx.post(
            f"{self.base_url}/o/token/",
            data={
                "grant_type": "client_credentials",
                "client_id": ADMIN_CLIENT_ID,
                "client_secret": ADMIN_CLIENT_SECRET,
                "scope": "read write admin",
            },
            timeout=30.0,
        )
        response.raise_for_status()
        client = httpx.Client(base_url=self.base_url, timeout=30.0)
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return client

    def postmaster(self) -> psutil.Process | None:
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
            return psutil.Process(pid)
        return None

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        postmaster = self.postmaster()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        if postmaster is not None:  # stopped by the server as its last user, normally
            with contextlib.suppress(psutil.Error):
                postmaster.wait(10)
            with contextlib.suppress(psutil.Error):
                if postmaster.is_running():
                    postmaster.terminate()
                    postmaster.wait(10)
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


@dataclass(frozen=True, slots=True)
class Account:
    wallet_id: str
    client_id: int
    secret: str


def provision(
    server: Server,
    count: int,
    *,
    funds: tuple[tuple[str, str], ...] = FUNDS,
    prefix: str = "bench-mtf",
) -> list[Account]:
    """Funded wallets with MTF credentials, over the REST API as an admin."""
    accounts = []
    with server.admin() as admin:
        for index in range(count):
            response = admin.post("/wallets/", json={"name": f"{prefix}-{index}"})
            assert response.status_code == 201, response.text
            wallet_id = response.json()["wallet_id"]
            for currency, amount in funds:
                response = admin.post(
                    "/management/v2/deposits/new",
                    json={
                        "uid": wallet_id, "currency": currency, "amount": amount,
                        "tid": f"{prefix}-{index}-{currency}", "state": "accepted",
                    },
                )  # fmt: skip
                assert response.status_code == 201, response.text
            response = admin.post(f"/wallets/{wallet_id}/mtf-credentials/")
            assert response.status_code == 201, response.text
            body = response.json()
            accounts.append(Account(wallet_id, body["client_id"], body["secret"]))
    return accounts


# ------------------------------------------------------------------ the load generator


class Member(asyncio.Protocol):
    """One member connection: packs orders in batches, counts answers by their code byte.

    Client order ids and sequence numbers are the same counter (only orders are sent
    numbered), so an `A` names the order's place in the schedule without any lookup.
    """

    def __init__(self, account: Account, buyer: bool) -> None:
        self.account = account
        self.client_id = account.client_id
        code = Code.BUY if buyer else Code.SELL
        direction = 1 if buyer else -1
        # (code, price, condition) per position in PATTERN.
        self.slots = [
            (code, round(MID + direction * ticks * TICK, 2), int(time_in_force))
            for time_in_force, ticks in PATTERN
        ]
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.next_id = 1
        self.login_answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Counters (cumulative over the whole run).
        self.sent = 0
        self.accepted = 0
        self.rejected = 0
        self.executed = 0
        self.canceled = 0
        self.outstanding = 0
        self.peak_outstanding = 0  # reset by each phase
        self.reasons: dict[int, int] = {}  # reject reason → count
        # Closed loop: keep `window` orders outstanding (0: do not top up).
        self.window = 0
        # Open loop: the schedule of the current level and where latencies go.
        self.histogram: HdrHistogram | None = None
        self.first_id = 0
        self.start_s = 0.0
        self.interval_s = 0.0
        self.last_accepted_s = 0.0

    # -------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.login_answer.done():
            self.login_answer.set_exception(ConnectionError("closed before the login answer"))

    def data_received(self, data: bytes) -> None:
        if self.pending:
            data = self.pending + data
        size = len(data)
        whole = size - size % FRAME_SIZE
        self.pending = data[whole:] if whole != size else b""
        codes = data[CODE_OFFSET:whole:FRAME_SIZE]
        accepted = codes.count(b"A")
        rejected = codes.count(b"J")
        self.executed += codes.count(b"E")
        self.canceled += codes.count(b"C")
        if not self.login_answer.done():
            if b"l" in codes:
                self.login_answer.set_result(Code.LOGIN_ACCEPTED)
            elif b"j" in codes:
                self.login_answer.set_result(Code.LOGIN_REJECTED)
        if accepted:
            now = time.perf_counter()
            self.last_accepted_s = now
            histogram = self.histogram
            if histogram is not None:
                first, start, interval = self.first_id, self.start_s, self.interval_s
                unpack_from = ORDER_ID.unpack_from
                index = codes.find(b"A")
                while index >= 0:
                    order_id = unpack_from(data, index * FRAME_SIZE + 2)[0]
                    if order_id >= first:
                        scheduled = start + (order_id - first) * interval
                        histogram.record_value(max(1, int((now - scheduled) * 1e6)))
                    index = codes.find(b"A", index + 1)
        if rejected:
            reasons = self.reasons
            index = codes.find(b"J")
            while index >= 0:
                reason = data[index * FRAME_SIZE + CONDITION_OFFSET]
                reasons[reason] = reasons.get(reason, 0) + 1
                index = codes.find(b"J", index + 1)
        answered = accepted + rejected
        if answered:
            self.accepted += accepted
            self.rejected += rejected
            self.outstanding -= answered
            if self.window and self.outstanding < self.window:
                self.send_orders(self.window - self.outstanding)

    # -------------------------------------------------------------- sending

    def write(self, data: bytes | bytearray) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def login(self) -> None:
        session = MemberSession(
            self.client_id, self.account.secret, wall_ns=time.time_ns, monotonic=time.monotonic
        )
        session.login(secrets.randbits(63))
        self.write(session.data_to_send())

    def heartbeat(self) -> None:
        self.write(FRAME.pack(0, 0, self.client_id, Code.HEARTBEAT, 0.0, 0.0, 0.0,
                              time.time_ns(), 0, 0.0, 0.0, 0.0, 0.0, 0))  # fmt: skip

    def send_orders(self, count: int) -> None:
        """Pack the next `count` orders of the pattern into one buffer and write it."""
        buffer = bytearray(count * FRAME_SIZE)
        pack_into, slots, client_id = FRAME.pack_into, self.slots, self.client_id
        stamp = time.time_ns()
        number = self.next_id
        for offset in range(0, count * FRAME_SIZE, FRAME_SIZE):
            code, price, condition = slots[number & 3]
            pack_into(buffer, offset, MARKET_ID, number, client_id, code, 0.0, price, 0.0,
                      stamp, condition, 0.0, QUANTITY, 0.0, 0.0, number)  # fmt: skip
            number += 1
        self.next_id = number
        self.sent += count
        self.outstanding += count
        if self.outstanding > self.peak_outstanding:
            self.peak_outstanding = self.outstanding
        self.write(buffer)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, accounts: list[Account]) -> list[Member]:
    loop = asyncio.get_running_loop()
    members = []
    for index, account in enumerate(accounts):
        buyer = index < len(accounts) // 2
        _, member = await loop.create_connection(
            lambda account=account, buyer=buyer: Member(account, buyer),  # type: ignore[misc]
            "127.0.0.1",
            port,
        )
        member.login()
        answer = await asyncio.wait_for(member.login_answer, 10.0)
        if answer != Code.LOGIN_ACCEPTED:
            raise RuntimeError(f"login of client {account.client_id} refused")
        members.append(member)
    return members


async def heartbeats(members: list[Member]) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        for member in members:
            member.heartbeat()


async def drain(members: list[Member], timeout_s: float = DRAIN_TIMEOUT_S) -> int:
    """Wait until every order sent is answered; returns how many never were."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if all(member.outstanding <= 0 for member in members):
            return 0
        if any(member.closed.done() for member in members):
            break
        await asyncio.sleep(0.01)
    return sum(max(0, member.outstanding) for member in members)


def totals(members: list[Member]) -> dict[str, int]:
    return {
        name: sum(getattr(member, name) for member in members)
        for name in ("sent", "accepted", "rejected", "executed", "canceled")
    }


def difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


def reject_reasons(members: list[Member]) -> dict[str, int]:
    """`J` frames received so far by reason (`Reject` names; a number if unknown)."""
    counts: dict[str, int] = {}
    for member in members:
        for reason, count in member.reasons.items():
            name = Reject(reason).name if reason in Reject._value2member_map_ else str(reason)
            counts[name] = counts.get(name, 0) + count
    return counts


def reasons_text(reasons: dict[str, int]) -> str:
    shown = {name: count for name, count in reasons.items() if count}
    return ", ".join(f"{name} {count:,}" for name, count in shown.items()) or "none"


# ------------------------------------------------------------------ resources


@dataclass
class Watcher:
    """CPU seconds and RSS of the server, its writer process, PostgreSQL and this process."""

    server: Server
    peak_rss: dict[str, int] = field(default_factory=dict)
    _processes: dict[int, psutil.Process] = field(default_factory=dict)

    def _process(self, pid: int) -> psutil.Process:
        process = self._processes.get(pid)
        if process is None:
            process = self._processes[pid] = psutil.Process(pid)
        return process

    def groups(self) -> dict[str, tuple[psutil.Process | None, list[psutil.Process]]]:
        """Process groups: (the parent whose reaped children count too, the live ones)."""
        assert self.server.process is not None
        groups: dict[str, tuple[psutil.Process | None, list[psutil.Process]]] = {
            "generator": (None, [self._process(os.getpid())])
        }
        with contextlib.suppress(psutil.Error):
            main = self._process(self.server.process.pid)
            groups["server"] = (None, [main])
            groups["server_children"] = (
                main,
                [self._process(child.pid) for child in main.children(recursive=True)],
            )
        postmaster = self.server.postmaster()
        if postmaster is not None:
            with contextlib.suppress(psutil.Error):
                postmaster = self._process(postmaster.pid)
                groups["postgres"] = (
                    postmaster,
                    [postmaster] + [self._process(child.pid) for child in postmaster.children()],
                )
        return groups

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per group: its live processes, plus the children its parent
        has reaped (PostgreSQL replaces backends: asyncpg recycles a pool connection
        after 50,000 queries), so that totals stay continuous across exits."""
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

    def server_high_water_mark(self) -> int | None:
        """VmHWM of the server's main process (Linux): its peak RSS, sampled or not."""
        assert self.server.process is not None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.server.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None


def cpu_per_order(
    before: dict[str, float], after: dict[str, float], orders: int
) -> dict[str, float]:
    """Per process group, CPU microseconds per acked order over the interval."""
    return {
        name: 1e6 * (spent - before[name]) / max(1, orders)
        for name, spent in after.items()
        if name in before
    }


def cpu_shares(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Per process group, its CPU time over the interval as a % of one core."""
    return {
        name: 100 * (spent - before[name]) / seconds
        for name, spent in after.items()
        if name in before
    }


DATABASE_STATISTICS = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
       wal_records, wal_bytes::bigint AS wal_bytes, wal_sync
FROM pg_stat_wal
"""


class Database:
    """PostgreSQL's own counters (commits, WAL), read over the server's unix socket.

    Backends publish their statistics at most about once a second, so a difference over
    several seconds is right to within about a second's worth.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connection: asyncpg.Connection | None = None

    async def open(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError, asyncpg.PostgresError):
            lines = (self.server.data_dir / "postgres" / "postmaster.pid").read_text().split("\n")
            self.connection = await asyncpg.connect(
                host=lines[4].strip(), port=int(lines[3]), user="postgres", database="postgres"
            )

    async def statistics(self) -> dict[str, int]:
        if self.connection is None:
            return {}
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self.connection.execute("SELECT pg_stat_clear_snapshot()")
            row = await self.connection.fetchrow(DATABASE_STATISTICS)
            if row is not None:
                return {name: int(value) for name, value in row.items()}
        return {}

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self.connection.close()


def commit_figures(
    before: dict[str, int], after: dict[str, int], accepted: int, seconds: float
) -> dict[str, float]:
    if not before or not after:
        return {}
    commits = max(1, after["commits"] - before["commits"])
    return {
        "commits_per_s": commits / seconds,
        "orders_per_commit": accepted / commits,
        "wal_bytes_per_order": (after["wal_bytes"] - before["wal_bytes"]) / max(1, accepted),
        "wal_records_per_order": (after["wal_records"] - before["wal_records"]) / max(1, accepted),
        "wal_syncs_per_s": (after["wal_sync"] - before["wal_sync"]) / seconds,
    }


def commit_line(figures: dict[str, float]) -> str:
    if not figures:
        return "journal: PostgreSQL statistics unavailable"
    return (
        f"journal (PostgreSQL's counters): {figures['commits_per_s']:,.0f} commits/s,"
        f" {figures['orders_per_commit']:,.1f} orders per commit,"
        f" {figures['wal_bytes_per_order'] / 1024:.2f} KiB and"
        f" {figures['wal_records_per_order']:.1f} WAL records per order,"
        f" {figures['wal_syncs_per_s']:,.0f} WAL syncs/s"
    )


# ------------------------------------------------------------------ the phases


async def closed_loop(
    members: list[Member],
    watcher: Watcher,
    database: Database,
    window: int,
    warmup_s: float,
    duration_s: float,
) -> dict[str, Any]:
    for member in members:
        member.window = window
        member.send_orders(window)
    await asyncio.sleep(warmup_s)
    before, cpu_before, started = totals(members), watcher.cpu(), time.perf_counter()
    reasons_before = reject_reasons(members)
    database_before = await database.statistics()
    await asyncio.sleep(duration_s)
    after, cpu_after, ended = totals(members), watcher.cpu(), time.perf_counter()
    reasons = difference(reject_reasons(members), reasons_before)
    database_after = await database.statistics()
    for member in members:
        member.window = 0
    unanswered = await drain(members)
    elapsed = ended - started
    counts = difference(after, before)
    rate = counts["accepted"] / elapsed
    return {
        "window_per_connection": window,
        "seconds": elapsed,
        "acked_per_s": rate,
        "answered_per_s": (counts["accepted"] + counts["rejected"]) / elapsed,
        **counts,
        "trades_per_order": counts["executed"] / 2 / max(1, counts["accepted"]),
        "reject_reasons": reasons,
        "littles_law_mean_latency_ms": 1000 * window * len(members) / max(rate, 1e-9),
        "cpu_percent_of_one_core": cpu_shares(cpu_before, cpu_after, elapsed),
        "cpu_us_per_order": cpu_per_order(cpu_before, cpu_after, counts["accepted"]),
        "journal": commit_figures(database_before, database_after, counts["accepted"], elapsed),
        "unanswered_after_drain": unanswered,
    }


async def open_loop(
    members: list[Member],
    watcher: Watcher,
    database: Database,
    rate: float,
    duration_s: float,
    tick_s: float,
) -> dict[str, Any]:
    """Send `rate` orders/s in all on a fixed schedule; latency from the scheduled time."""
    histogram = HdrHistogram(1, LATENCY_MAX_US, 3)
    per_member = rate / len(members)
    interval = 1.0 / per_member
    count = max(1, int(duration_s * per_member))
    start = time.perf_counter() + 0.01
    for index, member in enumerate(members):
        member.histogram = histogram
        member.first_id = member.next_id
        member.start_s = start + index * interval / len(members)  # interleaved schedules
        member.interval_s = interval
        member.peak_outstanding = 0
    before, cpu_before = totals(members), watcher.cpu()
    reasons_before = reject_reasons(members)
    database_before = await database.statistics()
    scheduled = [0] * len(members)
    late_max_s = 0.0  # how far behind its schedule the sender ever was
    while True:
        now = time.perf_counter()
        for index, member in enumerate(members):
            due = (
                min(count, int((now - member.start_s) / interval) + 1)
                if now >= member.start_s
                else 0
            )
            if due > scheduled[index]:
                late_max_s = max(late_max_s, now - (member.start_s + scheduled[index] * interval))
                member.send_orders(due - scheduled[index])
                scheduled[index] = due
        if all(done >= count for done in scheduled):
            break
        await asyncio.sleep(tick_s)
    sent_s = time.perf_counter() - start
    cpu_sent, accepted_sent = watcher.cpu(), totals(members)["accepted"] - before["accepted"]
    database_sent = await database.statistics()
    unanswered = await drain(members)
    for member in members:
        member.histogram = None
    counts = difference(totals(members), before)
    last = max(member.last_accepted_s for member in members)
    elapsed = max(last - start, 1e-9)
    return {
        "target_per_s": rate,
        "offered_per_s": counts["sent"] / sent_s,
        "achieved_per_s": counts["accepted"] / elapsed,
        **counts,
        "trades_per_order": counts["executed"] / 2 / max(1, counts["accepted"]),
        "reject_reasons": difference(reject_reasons(members), reasons_before),
        "unanswered_after_drain": unanswered,
        "sender_late_max_ms": 1000 * late_max_s,
        "peak_outstanding_per_connection": max(member.peak_outstanding for member in members),
        "latency_ms": {
            "count": histogram.get_total_count(),
            "p50": histogram.get_value_at_percentile(50) / 1000,
            "p90": histogram.get_value_at_percentile(90) / 1000,
            "p99": histogram.get_value_at_percentile(99) / 1000,
            "p99.9": histogram.get_value_at_percentile(99.9) / 1000,
            "max": histogram.get_max_value() / 1000,
            "mean": histogram.get_mean_value() / 1000,
        },
        "cpu_percent_of_one_core": cpu_shares(cpu_before, cpu_sent, sent_s),
        "cpu_us_per_order": cpu_per_order(cpu_before, cpu_sent, accepted_sent),
        "journal": commit_figures(database_before, database_sent, accepted_sent, sent_s),
    }


def cpu_line(result: dict[str, Any]) -> str:
    names = {
        "server": "server process (event loop, actors, REST)",
        "server_children": "its journal writer",
        "postgres": "PostgreSQL",
        "generator": "this generator",
    }
    shares, per_order = result["cpu_percent_of_one_core"], result["cpu_us_per_order"]
    return ", ".join(
        f"{label} {shares[name]:.0f} % ({per_order[name]:,.0f} µs/order)"
        for name, label in names.items()
        if name in shares
    )


async def load(
    arguments: argparse.Namespace, server: Server, accounts: list[Account]
) -> dict[str, Any]:
    watcher = Watcher(server)
    database = Database(server)
    await database.open()
    members = await connect(server.mtf_port, accounts)
    tasks = [
        asyncio.create_task(heartbeats(members)),
        asyncio.create_task(watcher.sample_forever()),
    ]
    results: dict[str, Any] = {}
    try:
        print(
            f"\n-- phase 1: closed loop, {arguments.window} orders outstanding on each of"
            f" {len(members)} connections, {arguments.warmup:g} s warm-up, {arguments.duration:g} s"
        )
        phase1 = await closed_loop(
            members, watcher, database, arguments.window, arguments.warmup, arguments.duration
        )
        results["closed_loop"] = phase1
        print(
            f"max sustained: {phase1['acked_per_s']:,.0f} acked (committed) orders/s"
            f"  ({phase1['accepted']:,} A in {phase1['seconds']:.1f} s;"
            f" J rejects {phase1['rejected']:,}; trades/order {phase1['trades_per_order']:.2f};"
            f" Little's-law mean ack latency {phase1['littles_law_mean_latency_ms']:,.0f} ms)"
        )
        if phase1["rejected"]:
            print(f"!! J reasons: {reasons_text(phase1['reject_reasons'])}")
        print(f"CPU, % of one core (µs per acked order): {cpu_line(phase1)}")
        print(commit_line(phase1["journal"]))
        if phase1["unanswered_after_drain"]:
            print(f"!! {phase1['unanswered_after_drain']:,} orders unanswered after the drain")

        maximum = phase1["acked_per_s"]
        print(
            f"\n-- phase 2: open loop at {', '.join(f'{level:g} %' for level in arguments.levels)}"
            f" of {maximum:,.0f}/s, {arguments.duration:g} s each;"
            " latency = A received - scheduled send time"
        )
        header = (
            f"{'load':>6} {'target/s':>9} {'offered/s':>9} {'acked/s':>9}"
            f" {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8} {'max ms':>8} {'J':>5} {'trades/o':>8}"
        )
        print(header)
        levels = []
        for level in arguments.levels:
            result = await open_loop(
                members,
                watcher,
                database,
                maximum * level / 100,
                arguments.duration,
                arguments.tick_ms / 1000,
            )
            result["percent_of_max"] = level
            levels.append(result)
            latency = result["latency_ms"]
            print(
                f"{level:>5g}% {result['target_per_s']:>9,.0f} {result['offered_per_s']:>9,.0f}"
                f" {result['achieved_per_s']:>9,.0f} {latency['p50']:>8.2f} {latency['p99']:>8.2f}"
                f" {latency['p99.9']:>8.2f} {latency['max']:>8.2f} {result['rejected']:>5,}"
                f" {result['trades_per_order']:>8.2f}"
            )
            if result["rejected"]:
                print(
                    f"!! J reasons: {reasons_text(result['reject_reasons'])}; up to"
                    f" {result['peak_outstanding_per_connection']:,} orders of one connection"
                    " were unanswered at once (a wallet may have 1,000 open, in-flight included)"
                )
            if result["unanswered_after_drain"]:
                print(f"!! {result['unanswered_after_drain']:,} orders unanswered after the drain")
            if result["sender_late_max_ms"] > 50:
                print(f"   (the sender fell {result['sender_late_max_ms']:.0f} ms behind its"
                      " schedule at worst; those ms are in the latencies)")  # fmt: skip
        for result in levels:
            print(
                f"at {result['percent_of_max']:g} %: CPU, % of one core (µs per acked order):"
                f" {cpu_line(result)}"
            )
            print(f"  {commit_line(result['journal'])}")
        results["open_loop"] = levels
        watcher.sample_rss()
        results["peak_rss_bytes"] = dict(watcher.peak_rss)
        results["server_vm_hwm_bytes"] = watcher.server_high_water_mark()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for member in members:
            member.close()
        await asyncio.gather(
            *(asyncio.wait_for(member.closed, 5.0) for member in members), return_exceptions=True
        )
        await database.close()
    results["totals"] = totals(members)
    results["reject_reasons"] = reject_reasons(members)
    return results


# ------------------------------------------------------------------ main


def print_codec(codec: dict[str, Any]) -> None:
    print(
        f"-- codec: {codec['frames']:,} valid new-order frames"
        f" ({codec['frames'] * FRAME_SIZE / 2**20:.1f} MiB), best of {codec['repeat']}"
    )
    bare = codec["bare_frames_per_s"]
    print(f"bare struct.iter_unpack:            {bare:>12,.0f} frames/s")
    print(
        f"FrameBuffer.feed (the codec):       {codec['codec_frames_per_s']:>12,.0f} frames/s"
        f"   codec / bare time = {codec['codec_over_bare']:.2f} (target <= 1.5)"
    )
    print(
        f"session decode (validation + events): GatewaySession.receive_data + events():"
        f" {codec['session_decode_frames_per_s']:,.0f} frames/s,"
        f" {codec['session_decode_over_bare']:.1f} x the bare unpack time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds measured in phase 1 and at each open-loop level",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="phase 1 seconds not measured")
    parser.add_argument(
        "--connections", type=int, default=4, help="member connections (even: half buy, half sell)"
    )
    parser.add_argument(
        "--window", type=int, default=256, help="phase 1: orders outstanding per connection"
    )
    parser.add_argument(
        "--levels",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[10.0, 50.0, 100.0],
        help="phase 2: load levels, %% of the phase 1 rate",
    )
    parser.add_argument(
        "--tick-ms",
        type=float,
        default=1.0,
        help="phase 2: the sender's wake-up interval (orders due are sent at each wake-up;"
        " the wait until then counts in their latency)",
    )
    parser.add_argument("--codec-frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="codec passes (best is kept)")
    parser.add_argument(
        "--mtf-rate",
        type=float,
        default=1_000_000.0,
        help="the server's per-session rate limit (--mtf-rate of serve)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON too")
    arguments = parser.parse_args()
    if arguments.connections < 2 or arguments.connections % 2:
        parser.error("--connections must be even and at least 2")
    if not 1 <= arguments.window <= 800:
        parser.error(
            "--window must be 1..800: a wallet may have 1,000 open orders, in-flight ones included"
        )

    print(
        f"MTF benchmark: `strongroom serve` (embedded PostgreSQL, fsync on) and this load"
        f" generator share one machine ({os.cpu_count()} CPUs): client and server compete"
        f" for the same cores. Python {sys.version.split()[0]}."
    )
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "arguments": vars(arguments)}
    codec = codec_benchmark(arguments.codec_frames, arguments.repeat)
    figures["codec"] = codec
    print_codec(codec)

    data_dir = Path(tempfile.mkdtemp(prefix="strongroom-bench-mtf-"))
    server = Server(data_dir, arguments.mtf_rate)
    try:
        startup_s = server.start()
        accounts = provision(server, arguments.connections)
        figures["server_startup_s"] = startup_s
        print(
            f"\nserver ready in {startup_s:.1f} s (data dir {data_dir}); {len(accounts)} funded"
            f" wallets with MTF credentials; mix on BTC-USDT: {len(accounts) // 2} buying and"
            f" {len(accounts) // 2} selling connections, each repeating GTC@mid x3, IOC@mid±1 tick,"
            f" {QUANTITY} BTC an order"
        )
        figures.update(asyncio.run(load(arguments, server, accounts)))
        exit_code = server.stop()
        figures["server_exit_code"] = exit_code
    except BaseException:
        if server.process is not None:
            print(f"server log (tail):\n{server.log()}", file=sys.stderr)
        raise
    finally:
        server.stop()
        if not arguments.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    figures["generator_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    phase1 = figures["closed_loop"]
    rss = figures["peak_rss_bytes"]
    mib = 2**20
    print("\n== summary (client and server share the same cores; one run on a noisy machine)")
    print(f"max sustained (closed loop): {phase1['acked_per_s']:,.0f} committed orders/s")
    for result in figures["open_loop"]:
        latency = result["latency_ms"]
        print(
            f"open loop {result['percent_of_max']:>3g} % ({result['target_per_s']:,.0f}/s):"
            f" acked {result['achieved_per_s']:,.0f}/s, p50 {latency['p50']:.2f} ms,"
            f" p99 {latency['p99']:.2f} ms, p99.9 {latency['p99.9']:.2f} ms,"
            f" max {latency['max']:.2f} ms, rejects {result['rejected']:,}"
        )
    totals_run = figures["totals"]
    resting = totals_run["accepted"] - totals_run["executed"] - totals_run["canceled"]
    figures["resting_at_end"] = resting
    print(
        f"all orders: {totals_run['sent']:,} sent, {totals_run['accepted']:,} A,"
        f" {totals_run['rejected']:,} J ({reasons_text(figures['reject_reasons'])}),"
        f" {totals_run['executed']:,} E, {totals_run['canceled']:,} C;"
        f" left resting {resting:,} (A - E - C: every order is {QUANTITY} BTC, so one E ends it)"
    )
    print(
        f"codec: {codec['codec_frames_per_s']:,.0f} frames/s vs bare"
        f" {codec['bare_frames_per_s']:,.0f} (x{codec['codec_over_bare']:.2f});"
        f" session decode (validation + events) {codec['session_decode_frames_per_s']:,.0f}"
        f" frames/s (x{codec['session_decode_over_bare']:.1f} bare)"
    )
    hwm = figures["server_vm_hwm_bytes"]
    print(
        f"peak RSS: server process {(hwm or rss.get('server', 0)) / mib:,.0f} MiB,"
        f" its journal writer {rss.get('server_children', 0) / mib:,.0f} MiB,"
        f" PostgreSQL {rss.get('postgres', 0) / mib:,.0f} MiB (sum over its processes,"
        " sampled; shared buffers counted in each), generator"
        f" {rss.get('generator', 0) / mib:,.0f} MiB during the load (sampled),"
        f" {figures['generator_peak_rss_bytes'] / mib:,.0f} MiB with the codec micro-benchmark"
    )
    print(f"server stopped with SIGTERM, exit code {figures['server_exit_code']}")
    if arguments.json:
        print(json.dumps(figures, indent=2, default=str))

    import summary  # bench/summary.py: the line `python -m bench` reads

    bare_name = "bare struct.iter_unpack, same buffer"
    lines = [
        summary.figure(
            "max sustained, closed loop (committed orders/s)", phase1["acked_per_s"], "orders/s"
        )
    ]
    for result in figures["open_loop"]:
        latency = result["latency_ms"]
        for name in ("p50", "p99", "p99.9"):
            lines.append(
                summary.figure(
                    f"ack latency {name}, open loop at {result['percent_of_max']:g} %"
                    f" ({result['target_per_s']:,.0f}/s)",
                    latency[name],
                    "ms",
                    better="lower",
                )
            )
    lines += [
        summary.figure(
            "codec FrameBuffer.feed",
            codec["codec_frames_per_s"],
            "frames/s",
            baseline=codec["bare_frames_per_s"],
            baseline_name=bare_name,
        ),
        summary.figure(
            "session decode (validation + events)",
            codec["session_decode_frames_per_s"],
            "frames/s",
            baseline=codec["bare_frames_per_s"],
            baseline_name=bare_name,
        ),
        summary.figure(
            "peak RSS, server process", (hwm or rss.get("server", 0)) / mib, "MiB", better="lower"
        ),
    ]
    summary.emit("mtf", lines, server_exit_code=figures["server_exit_code"])


if __name__ == "__main__":
    main()
