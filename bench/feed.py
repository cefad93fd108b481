"""The websocket price feed end to end: fan-out rate, delivery lag, memory per connection.

    python bench/feed.py [--subscribers 1000] [--rate 1000] [--duration 20] [--warmup 2]
                         [--cross 0.1] [--processes 2] [--ceiling-speed 3]
                         [--timeout 420] [--seed 1] [--no-baseline] [--keep] [--json]

One run, two feeds, the same subscribers:

1. A real `strongroom serve` (subprocess, embedded PostgreSQL with fsync, fresh temporary
   data dir, free loopback ports, `--mtf-rate 1000000`; `bench/mtf.py`'s `Server`). Six
   funded wallets over REST with MTF credentials: per market one that only buys and one
   that only sells (so no self-trade prevention), each on its own MTF session. Each book
   is seeded over MTF with 20 resting orders a side on the 10 ticks next to the mid.
2. Memory per idle connection: the server's RSS (psutil) before and after opening
   `--subscribers` websocket connections that subscribe to nothing, divided by N.
3. The same connections then subscribe to `book.M` and `trades.M` of all three markets
   (JSON text frames). They live in `--processes` subscriber processes, apart from this
   process, which drives the orders: client-side decoding never takes the generator's
   time, though all of them share the machine's cores with the server and PostgreSQL.
4. Orders go out over MTF on a fixed open-loop schedule, `--rate` book-changing orders a
   second spread round-robin over the three markets: per slot a side of one book is
   picked; its owner adds a GTC order 1-10 ticks off the mid (55 %), cancels one of its
   resting orders (35 %), or the other side's member sends an IOC through the whole
   10-tick band for one order's size (`--cross`, 10 %: one or two trades). Guards keep
   each side between 15 and 40 resting orders, so the book is stationary and every order
   changes it. The feed coalesces what is committed between two of its flushes into one
   delta per market, so deltas/s are at most orders/s, and fewer the longer a flush takes;
   trades are never coalesced.
5. Every subscriber checks that `seq` rises by exactly 1 per market (a snapshot resets
   it and counts as a resync; any other jump is a gap, counted, never hidden) and records
   delivery lag = its receive wall time - the message's `ts` (integer ms: the lag is
   overstated by 0-1 ms) for messages whose `ts` falls in the measured window, whenever
   they arrive (so a backlog shows in the lag, not only in a lower rate). The rate counts
   messages received in the window. Histograms (hdrhistogram, µs) are encoded in each
   subscriber process and merged here. Book-delta ts is the feed's publish time; trade
   ts is the book's match time, so trade lag also holds the commit (fsync) before it.
6. Baseline, in the same run: the strongroom server is stopped, and a plain `websockets`
   asyncio server in its own subprocess replays the messages one subscriber received in
   the window (seq renumbered without holes, `ts` set at send time), at their recorded
   publish times, with `websockets.asyncio.server.broadcast` of pre-encoded frames, to
   the same subscriber processes reconnected (same N, same subscribe). Measured the same
   way, idle-connection memory included. Then the same messages `--ceiling-speed` times
   as fast: whether the baseline itself had headroom at the feed's rate.

The subscriber is a minimal raw asyncio client (`FeedClient`, not the `websockets`
client): it does the HTTP upgrade, parses frame headers, answers pings, and decodes only
`type`/`market`/`seq`/`ts`/`id` with msgspec. Every subscriber receives the same bytes,
so each process decodes a given payload once and looks it up by its bytes for the other
connections; the seq and lag checks are still per connection. In a side test (500
connections, one process) it cost 9.3 µs of CPU per received message, kernel included,
against 19.8 µs for `websockets.asyncio.client` with the same decode: on 2 shared cores
that difference is CPU the server under test would not get.

Bounded: a timeout on every wait, a watchdog that kills everything after `--timeout` s,
and every subprocess killed in `finally`. Loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import pickle
import random
import resource
import secrets
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import psutil
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from strongroom.actors.messages import Side, TimeInForce
from strongroom.wire.mtf import Code, MemberSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtf import Account, Server, Watcher, provision  # bench/mtf.py: server, members

HOST = "127.0.0.1"
CHANNELS_PER_MARKET = ("book", "trades")
FUNDS = (("BTC", "100000"), ("ETH", "1000000"), ("USDT", "1000000000"))
LEVELS = 10  # passive orders go 1..LEVELS ticks off the mid; IOCs cross the whole band
SEED_PER_LEVEL = 2
LOW, HIGH = 15, 40  # resting orders a side is kept between
P_NEW = 0.55  # of the slots; crossing IOCs are --cross, cancels the rest
START_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
LAG_MAX_US = 3_600_000_000
LAG_UNIT_US = 100  # lags are counted in 0.1 ms buckets in the subscribers
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    market_id: int
    symbol: str
    mid: float
    tick: float
    decimals: int  # of the price
    quantity: float  # of every order

    def price(self, ticks: int) -> float:
        return round(self.mid + ticks * self.tick, self.decimals)


MARKETS = (
    MarketSpec(1, "BTC-USDT", 20_000.0, 0.01, 2, 0.001),
    MarketSpec(2, "ETH-USDT", 1_500.0, 0.01, 2, 0.01),
    MarketSpec(3, "ETH-BTC", 0.075, 0.00001, 5, 0.01),
)
SYMBOLS = tuple(spec.symbol for spec in MARKETS)
SUBSCRIBE = json.dumps(
    {
        "op": "subscribe",
        "channels": [f"{kind}.{symbol}" for symbol in SYMBOLS for kind in CHANNELS_PER_MARKET],
    }
).encode()


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# ------------------------------------------------------------------ subscribers

DELTA, SNAPSHOT, TRADE, SUBSCRIBED, ERROR, OTHER = range(6)
KINDS = {"trade": TRADE, "subscribed": SUBSCRIBED, "error": ERROR}


class Head(msgspec.Struct):
    """The only fields a subscriber reads; the levels are skipped by the decoder."""

    type: str
    market: str = ""
    seq: int = -1
    ts: int = 0
    snapshot: bool = False
    id: int = 0


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    else:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + mask + bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload))


class Feeds:
    """One subscriber process: its connections and what they measured, together."""

    def __init__(self, process_index: int) -> None:
        self.process_index = process_index
        self.clients: list[FeedClient] = []
        self.decoder = msgspec.json.Decoder(Head)
        self.cache: dict[bytes, tuple[int, str, int, int]] = {}
        self.decoded = 0
        self.reset_window(0, 0)
        self.gaps = 0
        self.gap_examples: list[tuple[int, str, int | None, int]] = []
        self.resyncs = 0  # snapshots after the first of a market (the feed's conflation)
        self.errors: list[str] = []
        self.closes: dict[str, int] = {}  # close code (or "lost") -> connections
        self.frames = 0  # every data frame received, for the drain
        self.ready = 0
        self.ready_event: asyncio.Event | None = None
        self.ready_target = 0
        self.recorder: FeedClient | None = None
        self.recording: list[tuple[int, bytes]] = []

    def reset_window(self, t0_ns: int, t1_ns: int) -> None:
        self.t0_ns, self.t1_ns = t0_ns, t1_ns
        self.t0_ms, self.t1_ms = t0_ns // 1_000_000, t1_ns // 1_000_000
        self.delivered = 0
        self.delta_lags: dict[int, int] = {}
        self.trade_lags: dict[int, int] = {}
        # the largest lag of each second of the window (by ts)
        self.lag_by_second = [0] * (max(0, self.t1_ms - self.t0_ms) // 1000 + 1)
        # per market (lowest, highest) delta seq with ts in the window; trade ids in it
        self.seq_range: dict[str, tuple[int, int]] = {}
        self.trade_ids: set[tuple[str, int]] = set()  # (market, id)
        self.recording = []
        for client in getattr(self, "clients", ()):
            client.delivered = 0

    def decode(self, payload: bytes) -> tuple[int, str, int, int]:
        """Once per distinct payload in this process (every subscriber gets the same)."""
        try:
            head = self.decoder.decode(payload)
        except msgspec.DecodeError as error:
            self.errors.append(f"undecodable frame: {error}: {payload[:80]!r}")
            return (OTHER, "", -1, 0)
        if head.type == "book":
            kind = SNAPSHOT if head.snapshot else DELTA
        else:
            kind = KINDS.get(head.type, OTHER)
        result = (kind, head.market, head.seq, head.ts)
        if self.t0_ms <= head.ts <= self.t1_ms:
            if kind == DELTA:
                low, high = self.seq_range.get(head.market, (head.seq, head.seq))
                self.seq_range[head.market] = (min(low, head.seq), max(high, head.seq))
            elif kind == TRADE:
                self.trade_ids.add((head.market, head.id))
        if kind == ERROR:
            self.errors.append(payload.decode(errors="replace")[:200])
        self.decoded += 1
        if len(self.cache) > 200_000:
            self.cache.clear()
        self.cache[payload] = result
        return result

    def histogram(self, lags: dict[int, int]) -> str:
        histogram = HdrHistogram(1, LAG_MAX_US, 3)
        for units, count in lags.items():
            histogram.record_value(min(LAG_MAX_US, max(1, units * LAG_UNIT_US)), count)
        encoded: bytes = histogram.encode()
        return encoded.decode()


class FeedClient(asyncio.Protocol):
    """One subscriber: HTTP upgrade, frame headers, the seq check and the lag counts."""

    def __init__(self, feeds: Feeds, index: int, host_port: str) -> None:
        self.feeds = feeds
        self.index = index
        self.host_port = host_port
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.open = False
        self.key = base64.b64encode(os.urandom(16))
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.closing = False  # we closed it
        self.expected: dict[str, int] = {}  # market -> next delta seq
        self.snapshots: set[str] = set()
        self.subscribed = False
        self.is_ready = False
        self.delivered = 0
        self.close_code: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            b"GET / HTTP/1.1\r\nHost: " + self.host_port.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + self.key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            code = self.close_code or "lost"
            self.feeds.closes[code] = self.feeds.closes.get(code, 0) + 1
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _handshake(self, head: bytes) -> None:
        accept = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest())
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if not lines[0].startswith(b"HTTP/1.1 101") or headers.get(b"sec-websocket-accept") != (
            accept
        ):
            error = ConnectionError(f"upgrade refused: {lines[0]!r}")
            if not self.opened.done():
                self.opened.set_exception(error)
            assert self.transport is not None
            self.transport.close()
            return
        self.open = True
        self.opened.set_result(None)

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.send(0x8, struct.pack(">H", 1000))
            self.transport.close()

    def data_received(self, data: bytes) -> None:  # the hot path, inlined
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.pending = data
                return
            self._handshake(data[:end])
            data = data[end + 4 :]
            if not data or not self.open:
                return
        feeds = self.feeds
        now_ns = time.time_ns()
        now_units = now_ns // (LAG_UNIT_US * 1000)
        ms_units = 1000 // LAG_UNIT_US
        in_window = feeds.t0_ns <= now_ns <= feeds.t1_ns
        t0_ms, t1_ms = feeds.t0_ms, feeds.t1_ms
        cache_get = feeds.cache.get
        expected = self.expected
        delta_lags, trade_lags = feeds.delta_lags, feeds.trade_lags
        recording = feeds.recording if feeds.recorder is self else None
        size = len(data)
        position = 0
        frames = delivered = 0
        by_second = feeds.lag_by_second
        while size - position >= 2:
            length = data[position + 1] & 0x7F
            if length < 126:
                start = position + 2
            elif length == 126:
                if size - position < 4:
                    break
                length = (data[position + 2] << 8) | data[position + 3]
                start = position + 4
            else:
                if size - position < 10:
                    break
                length = int.from_bytes(data[position + 2 : position + 10], "big")
                start = position + 10
            end = start + length
            if end > size:
                break
            opcode = data[position] & 0x0F
            position = end
            if opcode not in (0x1, 0x2):
                self._control(opcode, data[start:end])
                continue
            payload = data[start:end]
            head = cache_get(payload)
            if head is None:
                head = feeds.decode(payload)
            kind, market, seq, ts = head
            frames += 1
            if kind == DELTA:
                if expected.get(market) != seq:
                    self._gap(market, seq)
                expected[market] = seq + 1
                if t0_ms <= ts <= t1_ms:
                    lag = now_units - ts * ms_units
                    delta_lags[lag] = delta_lags.get(lag, 0) + 1
                    second = (ts - t0_ms) // 1000
                    if lag > by_second[second]:
                        by_second[second] = lag
                    if recording is not None:
                        recording.append((ts, payload))
            elif kind == TRADE:
                if t0_ms <= ts <= t1_ms:
                    lag = now_units - ts * ms_units
                    trade_lags[lag] = trade_lags.get(lag, 0) + 1
                    second = (ts - t0_ms) // 1000
                    if lag > by_second[second]:
                        by_second[second] = lag
                    if recording is not None:
                        recording.append((ts, payload))
            else:
                self._other(kind, market, seq)
                continue
            if in_window:
                delivered += 1
        if position < size:
            self.pending = data[position:]
        feeds.frames += frames
        if delivered:
            feeds.delivered += delivered
            self.delivered += delivered

    def _gap(self, market: str, seq: int) -> None:
        feeds = self.feeds
        feeds.gaps += 1
        if len(feeds.gap_examples) < 20:
            feeds.gap_examples.append((self.index, market, self.expected.get(market), seq))

    def _other(self, kind: int, market: str, seq: int) -> None:
        if kind == SNAPSHOT:
            if market in self.snapshots:
                self.feeds.resyncs += 1
            self.snapshots.add(market)
            self.expected[market] = seq + 1
        elif kind == SUBSCRIBED:
            self.subscribed = True
        if not self.is_ready and self.subscribed and len(self.snapshots) == len(SYMBOLS):
            self.is_ready = True
            feeds = self.feeds
            feeds.ready += 1
            if feeds.ready_event is not None and feeds.ready >= feeds.ready_target:
                feeds.ready_event.set()

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:  # ping
            self.send(0xA, payload)
        elif opcode == 0x8:  # close
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.close_code = str(code)
            if self.transport is not None:
                self.transport.close()
        elif opcode != 0xA:
            self.feeds.errors.append(f"unexpected opcode {opcode}")


async def open_clients(feeds: Feeds, port: int, count: int, first_index: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    limit = asyncio.Semaphore(64)
    failures: list[str] = []
    host_port = f"{HOST}:{port}"

    async def one(index: int) -> FeedClient | None:
        async with limit:
            try:
                _, client = await asyncio.wait_for(
                    loop.create_connection(lambda: FeedClient(feeds, index, host_port), HOST, port),
                    10.0,
                )
                await asyncio.wait_for(client.opened, 10.0)
                return client
            except (OSError, TimeoutError, ConnectionError) as error:
                failures.append(repr(error))
                return None

    opened = await asyncio.gather(*(one(first_index + index) for index in range(count)))
    feeds.clients = [client for client in opened if client is not None]
    feeds.closes = {}
    return {
        "connected": len(feeds.clients),
        "failed": len(failures),
        "first_failure": failures[0] if failures else None,
        "seconds": time.perf_counter() - started,
    }


async def subscribe_all(feeds: Feeds, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    feeds.ready = 0
    feeds.ready_target = len(feeds.clients)
    feeds.ready_event = asyncio.Event()
    for client in feeds.clients:
        client.send(0x1, SUBSCRIBE)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(feeds.ready_event.wait(), timeout_s)
    return {
        "ready": feeds.ready,
        "of": len(feeds.clients),
        "seconds": time.perf_counter() - started,
        "errors": feeds.errors[:5],
    }


def collect(feeds: Feeds, recording_path: str | None) -> dict[str, Any]:
    per_client = [client.delivered for client in feeds.clients]
    result: dict[str, Any] = {
        "connections": len(feeds.clients),
        "open": sum(1 for client in feeds.clients if not client.closed.done()),
        "delivered": feeds.delivered,
        "delivered_min_per_client": min(per_client, default=0),
        "delivered_max_per_client": max(per_client, default=0),
        "delta_histogram": feeds.histogram(feeds.delta_lags),
        "trade_histogram": feeds.histogram(feeds.trade_lags),
        "lag_by_second": list(feeds.lag_by_second),
        "seq_range": dict(feeds.seq_range),
        "trade_ids": sorted(feeds.trade_ids),
        "gaps": feeds.gaps,
        "gap_examples": feeds.gap_examples,
        "resyncs": feeds.resyncs,
        "closes": dict(feeds.closes),
        "errors": feeds.errors[:10],
        "error_count": len(feeds.errors),
        "frames": feeds.frames,
        "decoded": feeds.decoded,
        "recorded": 0,
    }
    if recording_path is not None and feeds.recorder is not None:
        Path(recording_path).write_bytes(pickle.dumps(feeds.recording))
        result["recorded"] = len(feeds.recording)
    return result


async def close_all(feeds: Feeds) -> dict[str, Any]:
    for client in feeds.clients:
        client.close()
    if feeds.clients:
        await asyncio.wait([client.closed for client in feeds.clients], timeout=10.0)
    still = sum(1 for client in feeds.clients if not client.closed.done())
    feeds.clients = []
    feeds.cache.clear()
    feeds.gaps, feeds.gap_examples, feeds.resyncs, feeds.errors = 0, [], 0, []
    feeds.frames = feeds.decoded = 0
    return {"still_open": still}


async def subscriber_loop(connection: multiprocessing.connection.Connection, index: int) -> None:
    feeds = Feeds(index)
    while True:
        command: dict[str, Any] = await asyncio.to_thread(connection.recv)
        op = command["op"]
        try:
            if op == "connect":
                reply = await open_clients(
                    feeds, command["port"], command["count"], command["first_index"]
                )
                record = command.get("record") and feeds.clients
                feeds.recorder = feeds.clients[0] if record else None
            elif op == "subscribe":
                reply = await subscribe_all(feeds, command["wait_s"])
            elif op == "window":
                feeds.reset_window(command["t0_ns"], command["t1_ns"])
                reply = {"ok": True}
            elif op == "status":
                reply = {"frames": feeds.frames, "delivered": feeds.delivered}
            elif op == "collect":
                reply = collect(feeds, command.get("recording_path"))
            elif op == "close":
                reply = await close_all(feeds)
            elif op == "exit":
                connection.send({"ok": True})
                return
            else:
                reply = {"error": f"unknown op {op}"}
        except Exception as error:  # reported to the parent, which fails the run
            reply = {"error": repr(error)}
        connection.send(reply)


def subscriber_process(
    connection: multiprocessing.connection.Connection, index: int, open_files: int
) -> None:
    raise_open_files(open_files)
    with contextlib.suppress(EOFError, KeyboardInterrupt, BrokenPipeError):
        asyncio.run(subscriber_loop(connection, index))


# ------------------------------------------------------------------ baseline server


def load_replay(
    path: str, t0_ms: int, speed: float, sequence: dict[str, int]
) -> list[tuple[float, bytes]]:
    """(send offset s, JSON up to the ts value) per recorded message, its seq renumbered
    on from `sequence` (so that a second replay on the same connections has no gap).

    The recorded ts of a delta is its publish time; a trade is published in the same
    flush as the next delta (trades go first), so it is scheduled at that delta's time.
    `speed` > 1 compresses the schedule.
    """
    recorded: list[tuple[int, bytes]] = pickle.loads(Path(path).read_bytes())
    messages = [msgspec.json.decode(payload) for _, payload in recorded]
    times: list[float] = [0.0] * len(messages)
    next_delta: float | None = None
    for index in range(len(messages) - 1, -1, -1):
        ts = recorded[index][0]
        if messages[index]["type"] == "book":
            next_delta = ts
        times[index] = next_delta if next_delta is not None else ts
    replay: list[tuple[float, bytes]] = []
    last = 0.0
    encoder = msgspec.json.Encoder()
    for message, at_ms in zip(messages, times, strict=True):
        if message["type"] == "book":
            next_seq = sequence.get(message["market"], 0) + 1
            sequence[message["market"]] = next_seq
            message["seq"] = next_seq
        message.pop("ts")
        message["ts"] = 0  # the last key, as the feed writes it: replaced at send time
        encoded = encoder.encode(message)
        assert encoded.endswith(b'"ts":0}')
        last = max(last, (at_ms - t0_ms) / 1000 / speed)
        replay.append((last, encoded[:-2]))
    return replay


async def baseline_loop(connection: multiprocessing.connection.Connection) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    subscribers: set[ServerConnection] = set()
    sequence: dict[str, int] = {}
    encoder = msgspec.json.Encoder()
    snapshots = [
        encoder.encode(
            {
                "type": "book",
                "market": symbol,
                "snapshot": True,
                "seq": 0,
                "bids": [],
                "asks": [],
                "ts": 0,
            }
        )
        for symbol in SYMBOLS
    ]

    async def handler(websocket: ServerConnection) -> None:
        try:
            async for message in websocket:
                request = msgspec.json.decode(message)
                if request.get("op") == "subscribe":
                    await websocket.send(
                        encoder.encode({"type": "subscribed", "channels": request["channels"]}),
                        text=True,
                    )
                    for snapshot in snapshots:
                        await websocket.send(snapshot, text=True)
                    subscribers.add(websocket)
        except Exception:  # a client going away is not the baseline's concern
            pass
        finally:
            subscribers.discard(websocket)

    async with serve(
        handler, HOST, 0, compression=None, max_queue=4, server_header=None, max_size=4096
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        connection.send({"port": port, "pid": os.getpid()})
        while True:
            command: dict[str, Any] = await asyncio.to_thread(connection.recv)
            if command["op"] == "replay":
                replay = load_replay(
                    command["path"], command["recorded_t0_ms"], command["speed"], sequence
                )
                start = command["start_wall_s"]
                await asyncio.sleep(max(0.0, start - time.time()))
                index, late_max = 0, 0.0
                total = len(replay)
                while index < total:
                    now = time.time()
                    elapsed = now - start
                    stamp = b"%d}" % (time.time_ns() // 1_000_000)
                    while index < total and replay[index][0] <= elapsed:
                        late_max = max(late_max, elapsed - replay[index][0])
                        broadcast(subscribers, replay[index][1] + stamp, text=True)
                        index += 1
                    await asyncio.sleep(0.001)
                connection.send(
                    {"sent": total, "subscribers": len(subscribers), "late_max_s": late_max}
                )
            elif command["op"] == "exit":
                connection.send({"ok": True})
                return


def baseline_process(connection: multiprocessing.connection.Connection, open_files: int) -> None:
    raise_open_files(open_files)
    with contextlib.suppress(EOFError, KeyboardInterrupt, BrokenPipeError):
        asyncio.run(baseline_loop(connection))


# ------------------------------------------------------------------ subprocess control


class Remote:
    """A child process and its pipe: one command at a time, every answer awaited with a
    timeout (in a thread, so that this process's event loop keeps driving orders)."""

    def __init__(self, name: str, target: Callable[..., None], *arguments: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = name
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=target, args=(child, *arguments), name=name, daemon=True
        )
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def receive(self, timeout_s: float) -> dict[str, Any]:
        ready = await asyncio.to_thread(self.connection.poll, timeout_s)
        if not ready:
            raise TimeoutError(f"{self.name}: no answer in {timeout_s:g} s")
        reply: dict[str, Any] = self.connection.recv()
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    async def call(self, timeout_s: float = COMMAND_TIMEOUT_S, **command: Any) -> dict[str, Any]:
        self.connection.send(command)
        return await self.receive(timeout_s)

    def kill(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self.connection.send({"op": "exit"})
            self.process.join(3.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        self.connection.close()


async def call_all(
    remotes: list[Remote], commands: list[dict[str, Any]], timeout_s: float
) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(
            *(
                remote.call(timeout_s, **command)
                for remote, command in zip(remotes, commands, strict=True)
            )
        )
    )


# ------------------------------------------------------------------ order generator


def provision_traders(server: Server, count: int) -> list[Account]:
    """Funded wallets (BTC, ETH, USDT) with MTF credentials: bench/mtf.py's, with ETH."""
    return provision(server, count, funds=FUNDS, prefix="bench-feed")


class Trader(asyncio.Protocol):
    """One MTF member on one market, one side: `MemberSession` encodes, this tracks which
    of its orders rest (A, then E with nothing open or C ends one) so cancels hit."""

    def __init__(self, account: Account, spec: MarketSpec, buyer: bool) -> None:
        self.spec = spec
        self.buyer = buyer
        self.side = Side.BUY if buyer else Side.SELL
        self.direction = -1 if buyer else 1  # passive prices below the mid for a buyer
        self.session = MemberSession(
            account.client_id, account.secret, wall_ns=time.time_ns, monotonic=time.monotonic
        )
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.login_answer: asyncio.Future[int] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.next_id = 1
        self.live: dict[int, None] = {}  # resting, acked
        self.pending: set[int] = set()  # GTC sent, not acked
        self.canceling: set[int] = set()
        self.iocs: set[int] = set()
        self.sent = {"new": 0, "cancel": 0, "cross": 0}
        self.answers = {"A": 0, "J": 0, "E": 0, "C": 0}
        self.reasons: dict[int, int] = {}
        self.cancel_missed = 0
        self.sent_at: dict[int, float] = {}  # order id -> perf_counter at send, until its A/J
        self.acks: HdrHistogram | None = None  # send -> A in µs, while measured

    @property
    def resting(self) -> int:
        return len(self.live) + len(self.pending)

    @property
    def outstanding(self) -> int:
        return len(self.pending) + len(self.canceling) + len(self.iocs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.login_answer.done():
            self.login_answer.set_exception(ConnectionError("closed before the login answer"))

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data)
        for frame in self.session.frames():
            code, order_id = frame.code, frame.order_id
            if code == Code.ACCEPTED:
                self.answers["A"] += 1
                sent = self.sent_at.pop(order_id, None)
                if sent is not None and self.acks is not None:
                    self.acks.record_value(max(1, int((time.perf_counter() - sent) * 1e6)))
                if order_id in self.pending:
                    self.pending.discard(order_id)
                    self.live[order_id] = None
            elif code == Code.EXECUTED:
                self.answers["E"] += 1
                if frame.open_quantity <= 1e-12:
                    self.live.pop(order_id, None)
                    self.iocs.discard(order_id)
            elif code == Code.CANCELED:
                self.answers["C"] += 1
                self.live.pop(order_id, None)
                self.canceling.discard(order_id)
                self.iocs.discard(order_id)
            elif code == Code.REJECTED:
                self.answers["J"] += 1
                reason = frame.order_condition
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
                self.sent_at.pop(order_id, None)
                if order_id in self.canceling:
                    self.canceling.discard(order_id)
                    self.cancel_missed += 1
                else:
                    self.pending.discard(order_id)
                    self.iocs.discard(order_id)
            elif code in (Code.LOGIN_ACCEPTED, Code.LOGIN_REJECTED) and not (
                self.login_answer.done()
            ):
                self.login_answer.set_result(code)

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def tick(self) -> None:
        self.session.tick()
        self.flush()

    def add(self, ticks: int) -> None:
        order_id = self.next_id
        self.next_id += 1
        price = self.spec.price(self.direction * ticks)
        self.session.new_order(self.side, self.spec.market_id, order_id, self.spec.quantity, price)
        self.sent_at[order_id] = time.perf_counter()
        self.pending.add(order_id)
        self.sent["new"] += 1

    def cancel(self, rng: random.Random) -> bool:
        if not self.live:
            return False
        order_id = rng.choice(list(self.live))
        del self.live[order_id]
        self.canceling.add(order_id)
        self.session.cancel(self.spec.market_id, order_id)
        self.sent["cancel"] += 1
        return True

    def cross(self) -> None:
        """An IOC through the other side's whole band, for one order's size."""
        order_id = self.next_id
        self.next_id += 1
        price = self.spec.price(-self.direction * LEVELS)
        self.session.new_order(
            self.side,
            self.spec.market_id,
            order_id,
            self.spec.quantity,
            price,
            time_in_force=TimeInForce.IOC,
        )
        self.sent_at[order_id] = time.perf_counter()
        self.iocs.add(order_id)
        self.sent["cross"] += 1


@dataclass
class Book:
    spec: MarketSpec
    buyer: Trader
    seller: Trader

    def act(self, rng: random.Random, cross: float) -> None:
        """One book-changing order on a random side of this book.

        The guards look at what the member knows: orders sent and not yet acked count as
        resting for the low mark (so a slow ack does not make it pile orders up), only acked
        ones can be canceled or hit. Whatever cannot be done becomes a new order.
        """
        owner, other = (
            (self.buyer, self.seller) if rng.random() < 0.5 else (self.seller, self.buyer)
        )
        if owner.resting < LOW:
            owner.add(rng.randint(1, LEVELS))
        elif len(owner.live) > HIGH:
            owner.cancel(rng)
        else:
            draw = rng.random()
            if draw < cross and owner.live:
                other.cross()
            elif draw >= cross + P_NEW and owner.cancel(rng):
                pass
            else:
                owner.add(rng.randint(1, LEVELS))


async def connect_traders(port: int, accounts: list[Account]) -> list[Book]:
    loop = asyncio.get_running_loop()
    books = []
    for index, spec in enumerate(MARKETS):
        pair = []
        for buyer in (True, False):
            account = accounts[2 * index + (0 if buyer else 1)]
            _, trader = await asyncio.wait_for(
                loop.create_connection(
                    lambda account=account, buyer=buyer, spec=spec: Trader(account, spec, buyer),  # type: ignore[misc]
                    HOST,
                    port,
                ),
                10.0,
            )
            trader.session.login(secrets.randbits(63))
            trader.flush()
            answer = await asyncio.wait_for(trader.login_answer, 10.0)
            if answer != Code.LOGIN_ACCEPTED:
                raise RuntimeError(f"MTF login of {account.client_id} refused")
            pair.append(trader)
        books.append(Book(spec, pair[0], pair[1]))
    return books


def traders_of(books: list[Book]) -> list[Trader]:
    return [trader for book in books for trader in (book.buyer, book.seller)]


async def heartbeats(books: list[Book]) -> None:
    while True:
        await asyncio.sleep(0.2)
        for trader in traders_of(books):
            trader.tick()


async def settle(books: list[Book], timeout_s: float) -> int:
    """Wait until every order and cancel sent is answered; how many were not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(trader.outstanding == 0 for trader in traders_of(books)):
            return 0
        if any(trader.lost.done() for trader in traders_of(books)):
            break
        await asyncio.sleep(0.02)
    return sum(trader.outstanding for trader in traders_of(books))


async def seed(books: list[Book]) -> int:
    for book in books:
        for trader in (book.buyer, book.seller):
            for ticks in range(1, LEVELS + 1):
                for _ in range(SEED_PER_LEVEL):
                    trader.add(ticks)
            trader.flush()
    return await settle(books, 30.0)


async def drive(
    books: list[Book], rate: float, cross: float, until_wall_s: float, seed_value: int
) -> dict[str, Any]:
    """Open loop: slot i at start + i / rate, market i mod 3, whatever the answers do."""
    rng = random.Random(seed_value)
    traders = traders_of(books)
    interval = 1.0 / rate
    start = time.perf_counter()
    started_wall = time.time()
    slot = 0
    late_max = 0.0
    while time.time() < until_wall_s:
        now = time.perf_counter()
        due = int((now - start) / interval) + 1
        if due > slot:
            late_max = max(late_max, now - (start + slot * interval))
            while slot < due:
                books[slot % len(books)].act(rng, cross)
                slot += 1
            for trader in traders:
                trader.flush()
        await asyncio.sleep(0.001)
    seconds = time.time() - started_wall
    return {
        "slots": slot,
        "seconds": seconds,
        "offered_per_s": slot / seconds,
        "sender_late_max_ms": 1000 * late_max,
    }


def order_totals(books: list[Book]) -> dict[str, Any]:
    traders = traders_of(books)
    totals: dict[str, Any] = {}
    for name in ("new", "cancel", "cross"):
        totals[f"sent_{name}"] = sum(trader.sent[name] for trader in traders)
    for name in ("A", "J", "E", "C"):
        totals[name] = sum(trader.answers[name] for trader in traders)
    reasons: dict[int, int] = {}
    for trader in traders:
        for reason, count in trader.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    totals["reject_reasons"] = reasons
    totals["cancel_missed"] = sum(trader.cancel_missed for trader in traders)
    totals["resting"] = {
        book.spec.symbol: (len(book.buyer.live), len(book.seller.live)) for book in books
    }
    return totals


# ------------------------------------------------------------------ measurement


class RssSampler:
    """Peak RSS of one process, sampled every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2.0)
        return self.peak


async def steady_rss(pid: int, settle_s: float = 1.5, samples: int = 5) -> int:
    """The median of a few RSS samples after a pause (what a quiet process holds)."""
    process = psutil.Process(pid)
    await asyncio.sleep(settle_s)
    values = []
    for _ in range(samples):
        values.append(process.memory_info().rss)
        await asyncio.sleep(0.2)
    return sorted(values)[len(values) // 2]


def cpu_of(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def merge(results: list[dict[str, Any]], name: str) -> HdrHistogram:
    merged = HdrHistogram(1, LAG_MAX_US, 3)
    for result in results:
        merged.add(HdrHistogram.decode(result[name].encode()))
    return merged


def lag_figures(histogram: HdrHistogram) -> dict[str, float]:
    if histogram.get_total_count() == 0:
        return {"count": 0}
    return {
        "count": histogram.get_total_count(),
        "p50": histogram.get_value_at_percentile(50) / 1000,
        "p99": histogram.get_value_at_percentile(99) / 1000,
        "p99.9": histogram.get_value_at_percentile(99.9) / 1000,
        "max": histogram.get_max_value() / 1000,
        "mean": histogram.get_mean_value() / 1000,
    }


def summarize(results: list[dict[str, Any]], duration_s: float, subscribers: int) -> dict[str, Any]:
    """Merge the subscriber processes' figures for one feed."""
    ranges: dict[str, tuple[int, int]] = {}
    trade_ids: set[tuple[str, int]] = set()
    for result in results:
        for market, (low, high) in result["seq_range"].items():
            known = ranges.get(market, (low, high))
            ranges[market] = (min(known[0], low), max(known[1], high))
        trade_ids.update(map(tuple, result["trade_ids"]))
    deltas = sum(high - low + 1 for low, high in ranges.values())
    trades = len(trade_ids)
    deltas_h = merge(results, "delta_histogram")
    trades_h = merge(results, "trade_histogram")
    both = HdrHistogram(1, LAG_MAX_US, 3)
    both.add(deltas_h)
    both.add(trades_h)
    delivered = sum(result["delivered"] for result in results)
    closes: dict[str, int] = {}
    for result in results:
        for code, count in result["closes"].items():
            closes[code] = closes.get(code, 0) + count
    by_second: dict[int, int] = {}
    for result in results:
        for second, units in enumerate(result["lag_by_second"]):
            by_second[second] = max(by_second.get(second, 0), units)
    return {
        "subscribers": subscribers,
        "deltas_published": deltas,
        "trades_published": trades,
        "deltas_per_s": deltas / duration_s,
        "trades_per_s": trades / duration_s,
        "published_per_s": (deltas + trades) / duration_s,
        "delivered": delivered,
        "delivered_per_s": delivered / duration_s,
        "expected_per_s": (deltas + trades) * subscribers / duration_s,
        "delivered_min_per_client": min(r["delivered_min_per_client"] for r in results),
        "delivered_max_per_client": max(r["delivered_max_per_client"] for r in results),
        "lag_ms": lag_figures(both),
        "delta_lag_ms": lag_figures(deltas_h),
        "trade_lag_ms": lag_figures(trades_h),
        "lag_count_expected": (deltas + trades) * subscribers,
        "max_lag_ms_by_second": [
            by_second.get(second, 0) * LAG_UNIT_US / 1000 for second in range(int(duration_s))
        ],
        "gaps": sum(result["gaps"] for result in results),
        "gap_examples": [example for result in results for example in result["gap_examples"]][:10],
        "resyncs": sum(result["resyncs"] for result in results),
        "closes": closes,
        "errors": [error for result in results for error in result["errors"]][:10],
        "error_count": sum(result["error_count"] for result in results),
        "still_open": sum(result["open"] for result in results),
        "decoded_per_process": [result["decoded"] for result in results],
        "recorded": sum(result["recorded"] for result in results),
    }


async def wait_drained(subscribers: list[Remote], timeout_s: float) -> float:
    """Until no subscriber process received a frame for a second; the seconds it took."""
    started = time.monotonic()
    last = -1
    quiet_since = time.monotonic()
    while time.monotonic() - started < timeout_s:
        statuses = await call_all(subscribers, [{"op": "status"}] * len(subscribers), 10.0)
        frames = sum(status["frames"] for status in statuses)
        if frames != last:
            last, quiet_since = frames, time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


@dataclass
class Run:
    arguments: argparse.Namespace
    data_dir: Path
    subscribers: list[Remote] = field(default_factory=list)
    baseline: Remote | None = None
    server: Server | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(text, flush=True)

    async def connect_idle(self, port: int, record: bool) -> dict[str, Any]:
        counts = split(self.arguments.subscribers, len(self.subscribers))
        firsts = [sum(counts[:index]) for index in range(len(counts))]
        replies = await call_all(
            self.subscribers,
            [
                {
                    "op": "connect",
                    "port": port,
                    "count": count,
                    "first_index": first,
                    "record": record and index == 0,
                }
                for index, (count, first) in enumerate(zip(counts, firsts, strict=True))
            ],
            CONNECT_TIMEOUT_S,
        )
        connected = sum(reply["connected"] for reply in replies)
        failed = sum(reply["failed"] for reply in replies)
        if failed:
            first = next(reply["first_failure"] for reply in replies if reply["first_failure"])
            self.say(f"!! {failed} connections failed (first: {first})")
        return {
            "connected": connected,
            "failed": failed,
            "seconds": max(reply["seconds"] for reply in replies),
        }

    async def subscribe(self) -> dict[str, Any]:
        replies = await call_all(
            self.subscribers,
            [{"op": "subscribe", "wait_s": 30.0}] * len(self.subscribers),
            45.0,
        )
        ready = sum(reply["ready"] for reply in replies)
        errors = [error for reply in replies for error in reply["errors"]]
        if errors:
            self.say(f"!! subscribe errors: {errors[:3]}")
        return {"ready": ready, "seconds": max(reply["seconds"] for reply in replies)}

    async def window(self, t0_ns: int, t1_ns: int) -> None:
        await call_all(
            self.subscribers,
            [{"op": "window", "t0_ns": t0_ns, "t1_ns": t1_ns}] * len(self.subscribers),
            10.0,
        )

    async def collect(self, recording_path: str | None) -> list[dict[str, Any]]:
        return await call_all(
            self.subscribers,
            [
                {"op": "collect", "recording_path": recording_path if index == 0 else None}
                for index in range(len(self.subscribers))
            ],
            60.0,
        )

    async def close_subscribers(self) -> None:
        await call_all(self.subscribers, [{"op": "close"}] * len(self.subscribers), 30.0)

    def subscriber_pids(self) -> list[int]:
        return [remote.pid for remote in self.subscribers]

    # -------------------------------------------------------------- strongroom

    async def strongroom(self, accounts: list[Account]) -> dict[str, Any]:
        arguments = self.arguments
        server = self.server
        assert server is not None and server.process is not None
        pid = server.process.pid
        result: dict[str, Any] = {}
        books = await connect_traders(server.mtf_port, accounts)
        beats = asyncio.create_task(heartbeats(books))
        sampler = RssSampler(pid)
        try:
            unanswered = await seed(books)
            if unanswered:
                raise RuntimeError(f"{unanswered} seed orders unanswered after 30 s")
            seeded = order_totals(books)
            self.say(
                f"books seeded over MTF: {seeded['A']} resting orders"
                f" ({LEVELS} levels x {SEED_PER_LEVEL} a side, 3 markets), J {seeded['J']}"
            )
            rss_before = await steady_rss(pid)
            idle = await self.connect_idle(server.ws_port, record=True)
            rss_after = await steady_rss(pid, settle_s=2.0)
            result["idle"] = {
                **idle,
                "rss_before": rss_before,
                "rss_after": rss_after,
                "kib_per_connection": (rss_after - rss_before) / 1024 / max(1, idle["connected"]),
            }
            self.say(
                f"{idle['connected']:,} idle feed connections in {idle['seconds']:.1f} s: server"
                f" RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB ="
                f" {result['idle']['kib_per_connection']:.1f} KiB a connection"
            )
            subscribed = await self.subscribe()
            result["subscribe"] = subscribed
            self.say(
                f"{subscribed['ready']:,} subscribed to {len(SYMBOLS) * 2} channels (subscribed"
                f" + 3 snapshots each) in {subscribed['seconds']:.1f} s"
            )
            now_ns = time.time_ns()
            t0_ns = now_ns + int(arguments.warmup * 1e9)
            t1_ns = t0_ns + int(arguments.duration * 1e9)
            await self.window(t0_ns, t1_ns)
            watcher = Watcher(server)
            self.say(
                f"driving {arguments.rate:,.0f} book-changing orders/s over MTF for"
                f" {arguments.warmup:g} s warm-up + {arguments.duration:g} s measured ..."
            )
            driving = asyncio.create_task(
                drive(books, arguments.rate, arguments.cross, t1_ns / 1e9, arguments.seed)
            )
            await asyncio.sleep(max(0.0, t0_ns / 1e9 - time.time()))
            totals_before = order_totals(books)
            acks = HdrHistogram(1, LAG_MAX_US, 3)
            for trader in traders_of(books):
                trader.acks = acks
            cpu_before = watcher.cpu()
            clients_before = cpu_of(self.subscriber_pids())
            cpu_started = time.monotonic()
            generator = await asyncio.wait_for(driving, arguments.duration + 30.0)
            cpu_after = watcher.cpu()
            clients_after = cpu_of(self.subscriber_pids())
            cpu_seconds = time.monotonic() - cpu_started
            after = order_totals(books)
            unanswered = await settle(books, DRAIN_TIMEOUT_S)
            for trader in traders_of(books):
                trader.acks = None
            result["ack_latency_ms"] = lag_figures(acks)
            drained_s = await wait_drained(self.subscribers, DRAIN_TIMEOUT_S)
            result["peak_rss"] = sampler.peak
            result["rss_end"] = psutil.Process(pid).memory_info().rss
            result["generator"] = generator
            result["unanswered"] = unanswered
            result["drain_s"] = drained_s
            window_orders = {
                key: after[key] - totals_before[key]
                for key in ("sent_new", "sent_cancel", "sent_cross", "A", "J", "E", "C")
            }
            result["orders"] = {**window_orders, "all": after}
            result["orders_trades_per_s"] = window_orders["E"] / 2 / arguments.duration
            result["acked_per_s"] = window_orders["A"] / arguments.duration
            cpu = {
                name: 100 * (cpu_after[name] - cpu_before[name]) / cpu_seconds
                for name in cpu_after
                if name in cpu_before
            }
            cpu["subscribers"] = 100 * (clients_after - clients_before) / cpu_seconds
            result["cpu_percent"] = cpu
            recording_path = str(self.data_dir / "recording.pickle")
            replies = await self.collect(recording_path)
            result["feed"] = summarize(replies, arguments.duration, idle["connected"])
            result["recording"] = {
                "path": recording_path,
                "t0_ms": t0_ns // 1_000_000,
                "messages": result["feed"]["recorded"],
            }
        finally:
            beats.cancel()
            sampler.stop()
            for trader in traders_of(books):
                if trader.transport is not None:
                    trader.transport.close()
        await self.close_subscribers()
        return result

    # -------------------------------------------------------------- baseline

    async def run_baseline(self, recording: dict[str, Any]) -> dict[str, Any]:
        arguments = self.arguments
        self.baseline = Remote("baseline", baseline_process, arguments.subscribers * 2 + 256)
        hello = await self.baseline.receive(30.0)
        port, pid = hello["port"], hello["pid"]
        result: dict[str, Any] = {"port": port}
        sampler = RssSampler(pid)
        try:
            rss_before = await steady_rss(pid)
            idle = await self.connect_idle(port, record=False)
            rss_after = await steady_rss(pid, settle_s=2.0)
            result["idle"] = {
                **idle,
                "rss_before": rss_before,
                "rss_after": rss_after,
                "kib_per_connection": (rss_after - rss_before) / 1024 / max(1, idle["connected"]),
            }
            result["subscribe"] = await self.subscribe()
            self.say(
                f"baseline: {idle['connected']:,} connections"
                f" ({result['idle']['kib_per_connection']:.1f} KiB each idle), replaying"
                f" {recording['messages']:,} recorded messages at their recorded times ..."
            )
            result.update(await self.replay(pid, recording, 1.0))
            speed = arguments.ceiling_speed
            if speed > 0:
                self.say(f"baseline ceiling: the same messages {speed:g} x as fast ...")
                ceiling = await self.replay(pid, recording, speed)
                ceiling["feed"]["gaps"] -= result["feed"]["gaps"]
                ceiling["feed"]["resyncs"] -= result["feed"]["resyncs"]
                result["ceiling"] = {"speed": speed, **ceiling}
            result["peak_rss"] = sampler.peak
        finally:
            sampler.stop()
        await self.close_subscribers()
        return result

    async def replay(self, pid: int, recording: dict[str, Any], speed: float) -> dict[str, Any]:
        """One replay of the recording by the baseline server, measured like the feed."""
        assert self.baseline is not None
        duration = self.arguments.duration / speed
        start_s = time.time() + 1.0
        t0_ns = int(start_s * 1e9)
        await self.window(t0_ns, t0_ns + int(duration * 1e9))
        clients_before = cpu_of(self.subscriber_pids())
        baseline_before = cpu_of([pid])
        started = time.monotonic()
        self.baseline.connection.send(
            {
                "op": "replay",
                "path": recording["path"],
                "recorded_t0_ms": recording["t0_ms"],
                "start_wall_s": start_s,
                "speed": speed,
            }
        )
        replayed = await self.baseline.receive(duration + 60.0)
        seconds = time.monotonic() - started
        result: dict[str, Any] = {
            "cpu_percent": {
                "baseline server": 100 * (cpu_of([pid]) - baseline_before) / seconds,
                "subscribers": 100 * (cpu_of(self.subscriber_pids()) - clients_before) / seconds,
            },
            "replay": replayed,
            "drain_s": await wait_drained(self.subscribers, DRAIN_TIMEOUT_S),
        }
        replies = await self.collect(None)
        result["feed"] = summarize(
            replies,
            duration,
            sum(reply["connections"] for reply in replies),
        )
        return result


# ------------------------------------------------------------------ report


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def report(figures: dict[str, Any], arguments: argparse.Namespace) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    ours = figures["strongroom"]
    base = figures.get("baseline") or {}
    ceiling = base.get("ceiling") or {}
    feeds = [ours["feed"], base.get("feed"), ceiling.get("feed")]
    console = Console(width=118)

    def ratio(a: float, b: float | None) -> str:
        return "-" if not b else f"{a / b:.2f}"

    table = Table(
        title=f"price feed: {ours['feed']['subscribers']:,} subscribers x 6 channels,"
        f" {arguments.rate:,.0f} book-changing orders/s offered, {arguments.duration:g} s measured",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("figure", no_wrap=True)
    table.add_column("strongroom feed", justify="right")
    table.add_column("websockets baseline\n(same messages)", justify="right")
    table.add_column("ours /\nbaseline", justify="right")
    if ceiling:
        table.add_column(
            f"baseline, same\nmessages {ceiling['speed']:g} x as fast", justify="right"
        )

    def cells(shown: list[str], middle: str = "") -> list[str]:
        """Ours, the baseline, `middle` (the ratio column), then the ceiling if any."""
        values = [shown[0], shown[1], middle, *shown[2:]]
        return values[:3] if not ceiling else values

    def row(name: str, key: str, *, compare: bool = True) -> None:
        values = [None if feed is None else feed[key] for feed in feeds]
        shown = ["-" if value is None else f"{value:,.0f}" for value in values]
        table.add_row(name, *cells(shown, ratio(values[0], values[1]) if compare else ""))

    row("book deltas published /s", "deltas_per_s", compare=False)
    row("trades published /s", "trades_per_s", compare=False)
    row("messages published /s", "published_per_s", compare=False)
    row("delivered /s, all subscribers", "delivered_per_s")
    row("  published x subscribers /s", "expected_per_s", compare=False)
    for label, key, percentiles in (
        ("lag", "lag_ms", ("p50", "p99", "p99.9", "max")),
        ("  book deltas", "delta_lag_ms", ("p99", "max")),
        ("  trades", "trade_lag_ms", ("p99", "max")),
    ):
        for percentile in percentiles:
            shown = ["-" if feed is None else fmt_ms(feed[key].get(percentile)) for feed in feeds]
            table.add_row(f"{label} {percentile} ms", *cells(shown))
    for name, key in (
        ("seq gaps", "gaps"),
        ("resyncs (snapshot after the first)", "resyncs"),
    ):
        shown = ["-" if feed is None else f"{feed[key]:,}" for feed in feeds]
        table.add_row(name, *cells(shown))
    shown = ["-" if feed is None else str(feed["closes"] or 0) for feed in feeds]
    table.add_row("closed by the server", *cells(shown))
    idle, bidle = ours["idle"], base.get("idle")
    table.add_row(
        "server RSS per idle conn. KiB",
        *cells(
            [
                f"{idle['kib_per_connection']:.1f}",
                f"{bidle['kib_per_connection']:.1f}" if bidle else "-",
                "",
            ],
            ratio(idle["kib_per_connection"], bidle["kib_per_connection"] if bidle else None),
        ),
    )
    table.add_row(
        "server RSS MiB idle/+N/peak",
        *cells(
            [
                f"{idle['rss_before'] / 2**20:.0f} / {idle['rss_after'] / 2**20:.0f}"
                f" / {ours['peak_rss'] / 2**20:.0f}",
                f"{bidle['rss_before'] / 2**20:.0f} / {bidle['rss_after'] / 2**20:.0f}"
                f" / {base['peak_rss'] / 2**20:.0f}"
                if bidle
                else "-",
                "",
            ]
        ),
    )
    cpu = ours["cpu_percent"]

    def base_cpu(result: dict[str, Any]) -> str:
        if not result:
            return "-"
        shares = result["cpu_percent"]
        return f"server {shares['baseline server']:.0f}\nsubscribers {shares['subscribers']:.0f}"

    table.add_row(
        "CPU, % of one core",
        *cells(
            [
                f"server {cpu.get('server', 0):.0f}, writer {cpu.get('server_children', 0):.0f}\n"
                f"PG {cpu.get('postgres', 0):.0f}, generator {cpu.get('generator', 0):.0f}\n"
                f"subscribers {cpu.get('subscribers', 0):.0f}",
                base_cpu(base),
                base_cpu(ceiling),
            ]
        ),
    )
    console.print(table)

    feed, bfeed = feeds[0], feeds[1]
    targets = Table(title="targets (from the issue)", box=box.SIMPLE_HEAD)
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("met?")
    rate_ratio = feed["delivered_per_s"] / bfeed["delivered_per_s"] if bfeed else None
    p99 = feed["lag_ms"].get("p99")
    kib = idle["kib_per_connection"]
    targets.add_row(
        ">= 50 % of the baseline's delivered rate",
        "-" if rate_ratio is None else f"{100 * rate_ratio:.0f} %",
        "-" if rate_ratio is None else ("yes" if rate_ratio >= 0.5 else "NO"),
    )
    updates = feed["deltas_per_s"]
    targets.add_row(
        f"p99 lag <= 50 ms at 1,000 book updates/s (published {updates:,.0f} deltas/s)",
        f"{fmt_ms(p99)} ms",
        ("yes" if p99 is not None and p99 <= 50 else "NO")
        + ("" if updates >= 950 else f" (at {updates:,.0f} updates/s, not 1,000)"),
    )
    targets.add_row(
        "<= 20 KiB server RSS per idle connection",
        f"{kib:.1f} KiB",
        "yes" if kib <= 20 else "NO",
    )
    targets.add_row("seq gaps = 0", f"{feed['gaps']:,}", "yes" if feed["gaps"] == 0 else "NO (bug)")
    console.print(targets)


def print_details(figures: dict[str, Any]) -> None:
    ours = figures["strongroom"]
    feed = ours["feed"]
    orders = ours["orders"]
    generator = ours["generator"]
    reasons = orders["all"]["reject_reasons"]
    print(
        f"orders in the window: {orders['sent_new']:,} new GTC, {orders['sent_cancel']:,} cancels,"
        f" {orders['sent_cross']:,} crossing IOCs; {ours['acked_per_s']:,.0f} A/s"
        " (new orders and IOCs; cancels answer C),"
        f" {ours['orders_trades_per_s']:,.0f} trades/s by E frames / 2;"
        f" J {orders['J']:,} (all run: {reasons or 'none'}; cancels of an order just filled:"
        f" {orders['all']['cancel_missed']:,}); sender at most"
        f" {generator['sender_late_max_ms']:.0f} ms behind its schedule;"
        f" unanswered after the drain {ours['unanswered']}"
    )
    print(f"resting at the end (bids, asks): {orders['all']['resting']}")
    acks = ours["ack_latency_ms"]
    if acks.get("count"):
        print(
            f"MTF order ack latency meanwhile (send -> A, which follows the commit):"
            f" p50 {acks['p50']:.1f} ms, p99 {acks['p99']:.1f}"
            f" ms, max {acks['max']:.1f} ms over {acks['count']:,} orders"
        )
    base = figures.get("baseline") or {}
    for name, result in (
        ("strongroom", ours),
        ("baseline", base or None),
        ("baseline ceiling", base.get("ceiling")),
    ):
        if result is None:
            continue
        f = result["feed"]
        print(
            f"{name}: lag samples {f['lag_ms'].get('count', 0):,} of"
            f" {f['lag_count_expected']:,} expected (published in the window x subscribers);"
            f" per-client deliveries in the window {f['delivered_min_per_client']:,}"
            f"..{f['delivered_max_per_client']:,}; still open at the end {f['still_open']:,};"
            f" drained {result['drain_s']:.1f} s after the window;"
            f" decoded per process {f['decoded_per_process']}"
        )
        print(
            f"{name}: max lag (ms) in each second of the window, by ts:"
            f" {' '.join(f'{value:.0f}' for value in f['max_lag_ms_by_second'])}"
        )
        if f["gaps"]:
            print(
                f"!! {name}: {f['gaps']:,} seq gaps; first (client, market, expected, got):"
                f" {f['gap_examples'][:5]}"
            )
        if f["error_count"]:
            print(f"!! {name}: {f['error_count']} errors: {f['errors'][:3]}")
        if f["closes"]:
            print(f"!! {name}: connections closed by the server: {f['closes']}")
    for name, result in (("baseline", base), ("baseline ceiling", base.get("ceiling"))):
        if not result:
            continue
        replay = result["replay"]
        print(
            f"{name} replay: {replay['sent']:,} messages to {replay['subscribers']:,}"
            f" subscribers, at most {1000 * replay['late_max_s']:.0f} ms behind schedule"
        )
    if base:
        print(
            f"recorded by one subscriber for the replay: {feed['recorded']:,} of the"
            f" {feed['deltas_published'] + feed['trades_published']:,} messages published"
        )
    if ours.get("slow_client_warnings"):
        print(f"server log: {ours['slow_client_warnings']} 'feed client too slow' warnings")


# ------------------------------------------------------------------ main


def watchdog(timeout_s: float, run: Run) -> threading.Timer:
    def fire() -> None:
        print(
            f"\n!! watchdog: still running after {timeout_s:g} s, killing everything",
            file=sys.stderr,
            flush=True,
        )
        for remote in [*run.subscribers, *([run.baseline] if run.baseline else [])]:
            with contextlib.suppress(Exception):
                remote.process.kill()
        if run.server is not None and run.server.process is not None:
            with contextlib.suppress(Exception):
                postmaster = run.server.postmaster()
                run.server.process.kill()
                if postmaster is not None:
                    postmaster.kill()
        os._exit(3)

    timer = threading.Timer(timeout_s, fire)
    timer.daemon = True
    timer.start()
    return timer


async def main_async(run: Run) -> None:
    arguments = run.arguments
    server = run.server
    assert server is not None
    accounts = await asyncio.to_thread(provision_traders, server, 2 * len(MARKETS))
    run.say(f"{len(accounts)} funded wallets with MTF credentials (a buyer and a seller a market)")
    ours = await run.strongroom(accounts)
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    ours["slow_client_warnings"] = log.count("feed client too slow")
    run.figures["strongroom"] = ours
    feed = ours["feed"]
    run.say(
        f"strongroom feed: {feed['delivered_per_s']:,.0f} delivered messages/s,"
        f" {feed['deltas_per_s']:,.0f} deltas/s + {feed['trades_per_s']:,.0f} trades/s published,"
        f" lag p99 {fmt_ms(feed['lag_ms'].get('p99'))} ms, gaps {feed['gaps']}"
    )
    code = await asyncio.to_thread(server.stop)
    run.figures["server_exit_code"] = code
    run.say(f"strongroom server stopped (exit code {code}); baseline next")
    if arguments.no_baseline or not ours["recording"]["messages"]:
        return
    base = await run.run_baseline(ours["recording"])
    run.figures["baseline"] = base
    bfeed = base["feed"]
    run.say(
        f"baseline: {bfeed['delivered_per_s']:,.0f} delivered messages/s,"
        f" {bfeed['published_per_s']:,.0f} published/s, lag p99"
        f" {fmt_ms(bfeed['lag_ms'].get('p99'))} ms, gaps {bfeed['gaps']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="book-changing orders/s")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of orders not measured")
    parser.add_argument("--processes", type=int, default=2, help="subscriber processes")
    parser.add_argument("--timeout", type=float, default=420.0, help="watchdog: kill all after")
    parser.add_argument(
        "--cross", type=float, default=0.1, help="share of the orders that are crossing IOCs"
    )
    parser.add_argument("--seed", type=int, default=1, help="the order mix's random seed")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--ceiling-speed",
        type=float,
        default=3.0,
        help="then replay the same messages this many times as fast (0: skip)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON too")
    arguments = parser.parse_args()
    if arguments.subscribers < arguments.processes or arguments.rate <= 0:
        parser.error("need at least one subscriber per process and a positive rate")

    open_files = arguments.subscribers * 2 + 256
    limit = raise_open_files(open_files)  # inherited by the server and the subprocesses
    print(
        f"price feed benchmark: `strongroom serve` (embedded PostgreSQL, fsync on), the order"
        f" generator (this process), {arguments.processes} subscriber processes and, later,"
        f" the baseline server all share this machine's {os.cpu_count()} CPUs. Python"
        f" {sys.version.split()[0]}; open-file limit {limit:,}.",
        flush=True,
    )
    data_dir = Path(tempfile.mkdtemp(prefix="strongroom-bench-feed-"))
    run = Run(arguments, data_dir)
    run.figures["arguments"] = vars(arguments)
    run.figures["cpus"] = os.cpu_count()
    timer = watchdog(arguments.timeout, run)
    started = time.monotonic()
    try:
        run.subscribers = [
            Remote(f"subscribers-{index}", subscriber_process, index, open_files)
            for index in range(arguments.processes)
        ]
        run.server = Server(data_dir, 1_000_000.0)
        startup_s = run.server.start()
        print(f"server ready in {startup_s:.1f} s (data dir {data_dir})", flush=True)
        asyncio.run(main_async(run))
    except BaseException:
        if run.server is not None and run.server.process is not None:
            print(f"server log (tail):\n{run.server.log()}", file=sys.stderr)
        raise
    finally:
        for remote in [*run.subscribers, *([run.baseline] if run.baseline else [])]:
            remote.kill()
        if run.server is not None:
            run.server.stop()
        timer.cancel()
        if not arguments.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    run.figures["seconds"] = time.monotonic() - started
    print()
    print_details(run.figures)
    report(run.figures, arguments)
    print(
        f"(one run, {run.figures['seconds']:.0f} s in all; server, PostgreSQL, generator and"
        f" subscribers shared {os.cpu_count()} cores; the baseline ran with the strongroom"
        " server stopped)"
    )
    if arguments.json:
        print(json.dumps(run.figures, indent=2, default=str))

    import summary  # bench/summary.py: the line `python -m bench` reads

    ours = run.figures["strongroom"]
    base = run.figures.get("baseline") or {}
    feed, bfeed = ours["feed"], base.get("feed") or {}
    plain = "plain websockets server, same messages"

    def versus(name: str, value: Any, other: Any, unit: str, better: str) -> dict[str, Any]:
        return summary.figure(name, value, unit, baseline=other, baseline_name=plain, better=better)

    lines = [
        versus(
            f"delivered messages/s, {feed['subscribers']:,} subscribers",
            feed["delivered_per_s"],
            bfeed.get("delivered_per_s"),
            "msg/s",
            "higher",
        ),
        summary.figure("book deltas published/s", feed["deltas_per_s"], "deltas/s"),
        *(
            versus(
                f"delivery lag {name}",
                feed["lag_ms"].get(name),
                (bfeed.get("lag_ms") or {}).get(name),
                "ms",
                "lower",
            )
            for name in ("p50", "p99", "p99.9")
        ),
        versus(
            "server RSS per idle connection",
            ours["idle"]["kib_per_connection"],
            (base.get("idle") or {}).get("kib_per_connection"),
            "KiB",
            "lower",
        ),
        versus("seq gaps", feed["gaps"], bfeed.get("gaps"), "gaps", "lower"),
    ]
    summary.emit("feed", lines, rate=arguments.rate, duration_s=arguments.duration)


if __name__ == "__main__":
    main()
