"""The websocket price feed (SPEC §6): the `websockets` asyncio server on `--ws-port`.

Committed units reach `on_committed` in commit order (`serve` hosts the feed on a loop and
thread of its own, `FeedThread`): `MarketData` takes them in, and one flush per loop
iteration of the feed publishes what changed — book deltas, trades, private order
updates — each message encoded and framed
once per encoding, and everything a flush has for one subscriber written in one write (no
task, no await, no syscall per message and client). Tickers go out at most every
`ticker_interval_s` per market, prices every `prices_interval_s`.

A slow client never delays anyone: writes never wait. A housekeeping tick looks at every
connection's write buffer: past `backlog_bytes` the connection is congested and its book
channels are no longer sent deltas (trades and private updates still are: they cannot be
conflated); once it has drained to half that, it gets a fresh snapshot of each book it
missed. A connection past `backlog_close_bytes`, or congested for `stall_s`, is closed
with 1008.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import OPEN
from websockets.typing import Subprotocol

from strongroom.actors.messages import JournalUnit, OrderState
from strongroom.config import TradingConfig
from strongroom.http import feed_protocol as protocol
from strongroom.http.auth import Principal
from strongroom.http.feed_protocol import Channel, ChannelKind, Encoding, Encodings, FeedError
from strongroom.http.market_data import Level, MarketData
from strongroom.limits import TokenBucket

CLOSE_TOO_SLOW = 1008
CLOSE_TRY_AGAIN_LATER = 1013

Authenticate = Callable[[str], Coroutine[Any, Any, Principal | None]]
WalletVisible = Callable[[Principal, str], bool]


@dataclass(frozen=True, slots=True)
class FeedSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    max_connections: int = 10_000
    max_subscriptions: int = 100  # channels per connection
    max_message_bytes: int = 4_096  # a client message; larger: closed with 1009
    message_rate_per_s: float = 50.0  # client messages; beyond (after a burst): rate_limited
    message_burst: int = 100
    backlog_bytes: int = 256 * 1024  # unsent bytes past which the book is conflated
    backlog_close_bytes: int = 16 * 256 * 1024  # unsent bytes past which it is closed
    stall_s: float = 10.0  # congested this long: closed
    compression: bool = False  # permessage-deflate
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 5.0
    housekeeping_interval_s: float = 0.05
    ticker_interval_s: float = 0.1
    prices_interval_s: float = 1.0


@dataclass(eq=False, slots=True)
class _Client:
    connection: ServerConnection
    encoding: Encoding
    bucket: TokenBucket
    plain: bool  # no extension: every frame as pre-serialized bytes
    channels: set[str] = field(default_factory=set)
    stale_books: set[str] = field(default_factory=set)  # book channels it missed deltas of
    congested_since: float | None = None
    principal: Principal | None = None


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """CBOR if asked for, JSON otherwise (whether or not a subprotocol was offered)."""
    for name in ("cbor", "json"):
        if name in offered:
            return Subprotocol(name)
    return None


class FeedServer:
    def __init__(
        self,
        config: TradingConfig,
        market_data: MarketData,
        settings: FeedSettings,
        authenticate: Authenticate,
        wallet_visible: WalletVisible,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.market_data = market_data
        self.settings = settings
        self._authenticate = authenticate
        self._wallet_visible = wallet_visible
        self._clock_ns = clock_ns
        self._clock_s = clock_s
        self._clients: dict[ServerConnection, _Client] = {}
        # channel -> encoding -> its subscribers' connections
        self._audience: dict[str, dict[Encoding, set[ServerConnection]]] = {}
        self._congested: set[ServerConnection] = set()
        self._watched: dict[str, int] = {}  # wallet id -> subscriptions to orders.WALLET_ID
        self._flush_scheduled = False
        self._outgoing: dict[ServerConnection, list[Encodings]] = {}
        self._tickers_due: set[str] = set()
        self._ticker_sent_s: dict[str, float] = {}
        self._prices_sent_s = 0.0
        self._server: Server | None = None
        self._ticks: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.published = 0  # messages published (one per message, not per client)

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    def statistics(self) -> dict[str, int]:
        """For /status/: connections now, congested ones, messages published so far."""
        return {
            "connections": len(self._clients),
            "congested": len(self._congested),
            "published": self.published,
        }

    async def start(self) -> None:
        settings = self.settings
        self._server = await serve(
            self._handle,
            settings.host,
            settings.port,
            select_subprotocol=_select_subprotocol,
            compression="deflate" if settings.compression else None,
            max_size=settings.max_message_bytes,
            max_queue=4,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            open_timeout=settings.open_timeout_s,
            close_timeout=settings.close_timeout_s,
            server_header=None,
        )
        self._ticks = asyncio.get_running_loop().create_task(self._tick(), name="feed-ticks")
        logger.info("feed listening", host=settings.host, port=self.port)

    async def stop(self) -> None:
        if self._ticks is not None:
            self._ticks.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ------------------------------------------------------------------ committed units

    def on_committed(self, unit: JournalUnit) -> None:
        if not unit.orders and not unit.trades:
            return
        self.market_data.apply(unit, self._watched)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Publish everything applied since the last flush."""
        self._flush_scheduled = False
        changes = self.market_data.take_changes(self._clock_ns())
        markets = self.config.markets
        audience = self._audience
        for trade in changes.trades:
            channel = f"trades.{trade.market}"
            if channel in audience:
                self._publish(channel, protocol.trade_message(markets[trade.market], trade))
        for delta in changes.deltas:
            channel = f"book.{delta.market}"
            if channel in audience:
                self._publish(
                    channel, protocol.book_delta(markets[delta.market], delta), conflatable=True
                )
        for item in changes.private:
            channel = f"orders.{item.wallet_id}"
            if channel in audience:
                if isinstance(item, OrderState):
                    message = protocol.order_message(item, self.config)
                else:
                    message = protocol.fill_message(markets[item.market], item)
                self._publish(channel, message)
        self._tickers_due |= changes.tickers
        self._write_out()

    def depth(self, market: str, limit: int) -> tuple[int, list[Level], list[Level]]:
        """The committed depth the feed has published: (sequence, bids, asks), best first."""
        if self._flush_scheduled:
            self.flush()
        view = self.market_data.markets[market]
        bids, asks = view.depth(limit)
        return view.sequence, bids, asks

    # ------------------------------------------------------------------ fan-out

    def _publish(self, channel: str, message: dict[str, Any], *, conflatable: bool = False) -> None:
        """Queue `message` for the channel's subscribers; `_write_out` sends the queues."""
        encoded = Encodings(message)
        congested = self._congested
        outgoing = self._outgoing
        for connections in self._audience[channel].values():
            targets: Iterable[ServerConnection] = connections
            if conflatable and congested:
                missed = connections & congested
                if missed:
                    for connection in missed:
                        self._clients[connection].stale_books.add(channel)
                    targets = connections - missed
            for connection in targets:
                queue = outgoing.get(connection)
                if queue is None:
                    outgoing[connection] = [encoded]
                else:
                    queue.append(encoded)
        self.published += 1

    def _send(self, client: _Client, message: dict[str, Any]) -> None:
        """To one client, after what is queued for it already."""
        self._outgoing.setdefault(client.connection, []).append(Encodings(message))

    def _write_out(self) -> None:
        """One write per connection for everything queued: websockets' `broadcast` writes
        once per message and client, and at a thousand clients those writes are the feed's
        whole cost. Frames are serialized once per message (`Encodings.frame`), except for
        a connection with an extension (compression), which frames its own."""
        if not self._outgoing:
            return
        outgoing, self._outgoing = self._outgoing, {}
        clients = self._clients
        for connection, messages in outgoing.items():
            client = clients.get(connection)
            transport = connection.transport
            if client is None or transport is None or connection.protocol.state is not OPEN:
                continue
            encoding = client.encoding
            if client.plain:
                data = b"".join([message.frame(encoding) for message in messages])
            else:
                protocol = connection.protocol
                send = protocol.send_text if encoding is Encoding.JSON else protocol.send_binary
                for message in messages:
                    send(message.get(encoding))
                data = b"".join(protocol.data_to_send())
            try:
                transport.write(data)
            except Exception as error:  # a broken connection is closing: skip it
                logger.warning("feed write failed", error=str(error))

    def _join(self, client: _Client, channel: str) -> None:
        if channel in client.channels:
            return
        by_encoding = self._audience.setdefault(channel, {})
        by_encoding.setdefault(client.encoding, set()).add(client.connection)
        client.channels.add(channel)
        if channel.startswith("orders."):
            wallet_id = channel.partition(".")[2]
            self._watched[wallet_id] = self._watched.get(wallet_id, 0) + 1

    def _leave(self, client: _Client, channel: str) -> None:
        if channel not in client.channels:
            return
        client.channels.discard(channel)
        client.stale_books.discard(channel)
        if channel.startswith("orders."):
            wallet_id = channel.partition(".")[2]
            self._watched[wallet_id] -= 1
            if not self._watched[wallet_id]:
                del self._watched[wallet_id]
        by_encoding = self._audience.get(channel)
        if by_encoding is None:
            return
        connections = by_encoding.get(client.encoding)
        if connections is not None:
            connections.discard(client.connection)
            if not connections:
                del by_encoding[client.encoding]
        if not by_encoding:
            del self._audience[channel]

    def _first_message(self, channel: Channel) -> dict[str, Any] | None:
        """What a new subscriber gets at once: the book's snapshot, the current ticker or
        prices; nothing for trades and private channels (REST has their history)."""
        now_ns = self._clock_ns()
        if channel.kind is ChannelKind.BOOK:
            market = self.config.markets[channel.subject]
            return protocol.book_snapshot(market, self.market_data.markets[channel.subject], now_ns)
        if channel.kind is ChannelKind.TICKER:
            market = self.config.markets[channel.subject]
            ticker = self.market_data.ticker(channel.subject, now_ns)
            return protocol.ticker_message(market, ticker, now_ns)
        if channel.kind is ChannelKind.PRICES:
            return self._prices_message(now_ns)
        return None

    def _prices_message(self, now_ns: int) -> dict[str, Any]:
        last = {symbol: view.last_price for symbol, view in self.market_data.markets.items()}
        return protocol.prices_message(self.config, last, now_ns)

    # ------------------------------------------------------------------ connections

    async def _handle(self, connection: ServerConnection) -> None:
        if len(self._clients) >= self.settings.max_connections:
            await connection.close(CLOSE_TRY_AGAIN_LATER, "too many connections")
            return
        encoding = Encoding.CBOR if connection.subprotocol == "cbor" else Encoding.JSON
        settings = self.settings
        bucket = TokenBucket(settings.message_rate_per_s, settings.message_burst, self._clock_s())
        client = _Client(connection, encoding, bucket, not connection.protocol.extensions)
        self._clients[connection] = client
        try:
            async for data in connection:
                await self._on_message(client, data)
        except ConnectionClosed:
            pass
        finally:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        for channel in list(client.channels):
            self._leave(client, channel)
        self._clients.pop(client.connection, None)
        self._congested.discard(client.connection)

    async def _on_message(self, client: _Client, data: str | bytes) -> None:
        try:
            if not client.bucket.take(self._clock_s()):
                raise FeedError("rate_limited", "too many messages; slow down")
            message = protocol.parse_client_message(data)
            if isinstance(message, protocol.Subscribe):
                self._subscribe(client, message.channels)
            elif isinstance(message, protocol.Unsubscribe):
                self._unsubscribe(client, message.channels)
            elif isinstance(message, protocol.Ping):
                self._send(client, protocol.PONG)
            else:
                await self._auth(client, message.token)
        except FeedError as error:
            self._send(client, protocol.error(error.code, error.message))
        self._write_out()

    def _subscribe(self, client: _Client, names: list[str]) -> None:
        """All or nothing: every channel is checked before any is joined. A channel already
        subscribed is answered again: a book's fresh snapshot is how a client mends a gap."""
        wanted: dict[str, Channel] = {}
        for name in names:
            channel = protocol.parse_channel(name, self.config)
            if channel.kind is ChannelKind.ORDERS:
                self._check_private(client, channel)
            wanted[channel.name] = channel
        limit = self.settings.max_subscriptions
        if len(client.channels | wanted.keys()) > limit:
            raise FeedError("too_many_subscriptions", f"at most {limit} channels on one connection")
        if self._flush_scheduled:
            self.flush()  # snapshots must follow the last published delta exactly
        self._send(client, protocol.subscribed(list(wanted)))
        for name, channel in wanted.items():
            first = self._first_message(channel)
            if first is not None:
                self._send(client, first)
            self._join(client, name)
            client.stale_books.discard(name)

    def _check_private(self, client: _Client, channel: Channel) -> None:
        principal = client.principal
        if principal is None:
            raise FeedError("unauthorized", f"{channel.name} needs {{'op': 'auth'}} first")
        if not principal.allows("read") or not self._wallet_visible(principal, channel.subject):
            raise FeedError("forbidden", f"this token may not read wallet {channel.subject}")

    def _unsubscribe(self, client: _Client, names: list[str]) -> None:
        channels = [protocol.parse_channel(name, self.config).name for name in names]
        left = [name for name in channels if name in client.channels]
        for name in left:
            self._leave(client, name)
        self._send(client, protocol.unsubscribed(left))

    async def _auth(self, client: _Client, token: str) -> None:
        principal = await self._authenticate(token)
        if principal is None:
            raise FeedError("unauthorized", "the token is invalid, expired or revoked")
        client.principal = principal
        for name in [name for name in client.channels if name.startswith("orders.")]:
            wallet_id = name.partition(".")[2]
            if not (principal.allows("read") and self._wallet_visible(principal, wallet_id)):
                self._leave(client, name)  # a new identity keeps only what it may read
        self._send(client, {"type": "authenticated", "client_id": principal.client_id})

    # ------------------------------------------------------------------ timers

    async def _tick(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.housekeeping_interval_s)
            try:
                self.housekeeping()
            except Exception:  # the feed must outlive a bug in one tick
                logger.exception("feed housekeeping failed")

    def housekeeping(self) -> None:
        """Congestion, then tickers and prices that are due."""
        if self._flush_scheduled:
            self.flush()
        now_s = self._clock_s()
        self._watch_backlogs(now_s)
        settings = self.settings
        now_ns = self._clock_ns()
        if self._tickers_due:
            due = [
                market
                for market in self._tickers_due
                if now_s - self._ticker_sent_s.get(market, -1e9) >= settings.ticker_interval_s
            ]
            for market in due:
                self._tickers_due.discard(market)
                self._ticker_sent_s[market] = now_s
                channel = f"ticker.{market}"
                if channel in self._audience:
                    ticker = self.market_data.ticker(market, now_ns)
                    self._publish(
                        channel,
                        protocol.ticker_message(self.config.markets[market], ticker, now_ns),
                    )
        if now_s - self._prices_sent_s >= settings.prices_interval_s:
            self._prices_sent_s = now_s
            if "prices" in self._audience:
                self._publish("prices", self._prices_message(now_ns))
        self._write_out()

    def _watch_backlogs(self, now_s: float) -> None:
        settings = self.settings
        for connection, client in list(self._clients.items()):
            transport = connection.transport
            size = transport.get_write_buffer_size() if transport is not None else 0
            if client.congested_since is None:
                if size > settings.backlog_bytes:
                    client.congested_since = now_s
                    self._congested.add(connection)
            elif size > settings.backlog_close_bytes or now_s - client.congested_since > (
                settings.stall_s
            ):
                self._close_slow(client, size)
            elif size <= settings.backlog_bytes // 2:
                client.congested_since = None
                self._congested.discard(connection)
                for channel in sorted(client.stale_books):
                    market = channel.partition(".")[2]
                    self._send(
                        client,
                        protocol.book_snapshot(
                            self.config.markets[market],
                            self.market_data.markets[market],
                            self._clock_ns(),
                        ),
                    )
                client.stale_books.clear()

    def _close_slow(self, client: _Client, backlog: int) -> None:
        logger.warning(
            "feed client too slow, closing",
            remote=str(client.connection.remote_address),
            backlog_bytes=backlog,
        )
        self._drop(client)
        task = asyncio.get_running_loop().create_task(
            client.connection.close(CLOSE_TOO_SLOW, "too slow: backlog over the limit")
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class FeedThread:
    """A `FeedServer` on an event loop of its own, in a thread of its own.

    The feed's cost is mostly its writes, which run outside the GIL: on the trading loop
    they held up every REST and MTF answer for as long as a fan-out took. Committed units
    cross over with `call_soon_threadsafe` in commit order, so a depth read asked for after
    an answer (`depth`, run on the feed's loop too) always sees that answer's effects.
    Token checks hop back to the trading loop, where the database pool lives.
    """

    def __init__(
        self,
        config: TradingConfig,
        market_data: MarketData,
        settings: FeedSettings,
        authenticate: Authenticate,
        wallet_visible: WalletVisible,
        *,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._authenticate = authenticate
        self._stop_timeout_s = stop_timeout_s
        self.server = FeedServer(
            config, market_data, settings, self._authenticate_on_main_loop, wallet_visible
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def statistics(self) -> dict[str, int]:
        return self.server.statistics()

    async def start(self) -> None:
        self._main_loop = asyncio.get_running_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="feed", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(started)

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(started))
        except Exception:
            logger.exception("the feed's loop failed")
        finally:
            loop.close()

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        self._stopping = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as error:
            started.set_exception(error)
            return
        started.set_result(None)
        await self._stopping.wait()
        await self.server.stop()

    async def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        await asyncio.to_thread(thread.join, self._stop_timeout_s)

    def on_committed(self, unit: JournalUnit) -> None:
        assert self._loop is not None, "start the feed before units are committed"
        self._loop.call_soon_threadsafe(self.server.on_committed, unit)

    async def depth(self, market: str, limit: int) -> tuple[int, list[Level], list[Level]]:
        assert self._loop is not None
        future: concurrent.futures.Future[tuple[int, list[Level], list[Level]]] = (
            concurrent.futures.Future()
        )

        def read() -> None:
            try:
                future.set_result(self.server.depth(market, limit))
            except Exception as error:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(read)
        return await asyncio.wrap_future(future)

    async def _authenticate_on_main_loop(self, token: str) -> Principal | None:
        assert self._main_loop is not None
        running = asyncio.run_coroutine_threadsafe(self._authenticate(token), self._main_loop)
        return await asyncio.wrap_future(running)
