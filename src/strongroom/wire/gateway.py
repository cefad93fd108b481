"""The MTF gateway: an asyncio TCP server (optionally TLS) around `GatewaySession`s.

Frames read in one `data_received` become commands sent in the same loop iteration,
so the bridge hands them to the actors as one batch. The way back is the committed
book results (`Bridge.committed` → `on_results`): every event of an order a member
entered over MTF becomes a frame on that member's current session, written once per
committed unit — so an `A`, `E` or `C` is only ever sent for a durable effect, and in
the order the book produced it. Rejections the actors answer without touching a book
(insufficient funds, unknown order, ...) come back as replies and leave as `J`.

Every session has a bounded outbound buffer: a member who does not read is cut off
(the transport's high-water mark) rather than allowed to hold memory or anyone else up.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import asyncpg
from loguru import logger

from strongroom.actors.messages import (
    BookResults,
    DuplicateOrder,
    OrderAccepted,
    OrderCanceled,
    OrderReplaced,
    OrderState,
    Refused,
    Reply,
    Trade,
)
from strongroom.config import TradingConfig
from strongroom.service import OrderTerms, ServiceUnavailable, Trading
from strongroom.wire.credentials import CredentialStore, external_id
from strongroom.wire.mtf import (
    CancelEntry,
    GatewaySession,
    Limits,
    LiveOrder,
    LoginRequest,
    MemberOrders,
    OrderEntry,
    Reject,
    ReplaceEntry,
    grids,
)

TICK_INTERVAL_S = 0.2
LOGIN_TIMEOUT_S = 10.0

# Refusal codes of the actors (snake_case problem codes) → MTF reject reasons.
REFUSALS: dict[str, Reject] = {
    "unknown_market": Reject.UNKNOWN_MARKET,
    "invalid_quantity": Reject.INVALID_QUANTITY,
    "invalid_price": Reject.INVALID_PRICE,
    "insufficient_funds": Reject.INSUFFICIENT_FUNDS,
    "duplicate_order": Reject.DUPLICATE_ORDER,
    "order_not_open": Reject.UNKNOWN_ORDER,
    "unknown_order": Reject.UNKNOWN_ORDER,
    "would_trade": Reject.WOULD_TRADE,
    "too_many_open_orders": Reject.THROTTLED,
    "not_allowed": Reject.NOT_ALLOWED,
}


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 9100
    limits: Limits = field(default_factory=Limits)
    ssl_context: ssl.SSLContext | None = None
    outbound_buffer_max: int = 1024 * 1024  # bytes queued for one member before cut-off
    connections_max: int = 1_000


def certificate_client_id(transport: asyncio.BaseTransport) -> int | None:
    """The client id a verified client certificate names (its subject CN), if any."""
    certificate = transport.get_extra_info("peercert")
    if not certificate:
        return None
    for entry in certificate.get("subject", ()):
        for name, value in entry:
            if name == "commonName" and value.isdigit():
                return int(value)
    return -1  # a certificate naming no client id matches none


class _Connection(asyncio.Protocol):
    def __init__(self, gateway: MtfGateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self.session: GatewaySession | None = None
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        self.session = self.gateway.open_session(self, certificate_client_id(transport))
        transport.set_write_buffer_limits(high=self.gateway.settings.outbound_buffer_max)
        if self.session.closed:  # over the connection limit
            transport.close()

    def data_received(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        session.receive_data(data)
        self.gateway.handle(self, session)
        self.flush()

    def pause_writing(self) -> None:
        # The member does not read what it is sent: cut it off, never buffer without end.
        logger.warning("mtf member not reading, disconnected", peer=self.peer)
        if self.session is not None:
            self.session.close("outbound buffer full")
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.forget(self)

    def flush(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None or transport.is_closing():
            return
        data = session.data_to_send()
        if data:
            transport.write(data)
        if session.closed:
            transport.close()


class MtfGateway:
    def __init__(
        self,
        trading: Trading,
        store: CredentialStore,
        config: TradingConfig,
        settings: GatewaySettings,
    ) -> None:
        self.trading = trading
        self.store = store
        store.on_revoke.append(self.disconnect)
        self.settings = settings
        self.grids = grids(config.markets.values(), config.currencies)
        self._grids_by_symbol = {grid.market.symbol: grid for grid in self.grids.values()}
        self.members: dict[int, MemberOrders] = {}
        # System order id → the member and echo data of every live MTF order.
        self.orders: dict[int, tuple[MemberOrders, LiveOrder]] = {}
        self.sessions: dict[int, _Connection] = {}  # client id → its logged-in connection
        self.connections: set[_Connection] = set()
        self._member_loads: dict[int, asyncio.Task[MemberOrders]] = {}
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.store.load()
        self.trading.listen(lambda unit: self.on_results(unit.results))
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.settings.host,
            self.settings.port,
            ssl=self.settings.ssl_context,
            backlog=1024,
        )
        self._ticker = asyncio.create_task(self._tick(), name="mtf-heartbeats")

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.session is not None:
                connection.session.close("server stopping")
            connection.flush()
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    def disconnect(self, client_ids: Sequence[int]) -> None:
        """Close the live sessions of these client ids (their credentials were revoked)."""
        for client_id in client_ids:
            connection = self.sessions.get(client_id)
            if connection is not None and connection.session is not None:
                connection.session.close("credentials revoked")
                connection.flush()

    # ------------------------------------------------------------------ connections

    def open_session(self, connection: _Connection, certified: int | None) -> GatewaySession:
        session = GatewaySession(
            self.store.keyring,
            self.grids,
            wall_ns=time.time_ns,
            monotonic=time.monotonic,
            limits=self.settings.limits,
            certificate_client_id=certified,
        )
        if len(self.connections) >= self.settings.connections_max:
            session.close("too many connections")
        self.connections.add(connection)
        return session

    def forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        session = connection.session
        if session is not None:
            session.close("connection lost")
            if self.sessions.get(session.client_id) is connection:
                del self.sessions[session.client_id]

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            for connection in list(self.connections):
                session = connection.session
                if session is None:
                    continue
                session.tick()
                if session.closed and session.close_reason == "peer silent":
                    logger.info("mtf peer silent, dropped", peer=connection.peer)
                connection.flush()

    # ------------------------------------------------------------------ member → actors

    def handle(self, connection: _Connection, session: GatewaySession) -> None:
        for event in session.events():
            if isinstance(event, OrderEntry):
                self._place(session, event)
            elif isinstance(event, CancelEntry | ReplaceEntry):
                self._change(session, event)
            elif isinstance(event, LoginRequest):
                task = asyncio.create_task(self._login(connection, session, event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _place(self, session: GatewaySession, entry: OrderEntry) -> None:
        member = session.member
        assert member is not None
        order_id = self.trading.new_order_id()
        live = LiveOrder(
            entry.client_order_id, entry.grid, entry.price, entry.quantity,
            entry.stop_price, entry.display_quantity, entry.condition,
        )  # fmt: skip
        member.live[entry.client_order_id] = (order_id, entry.grid.market.market_id)
        self.orders[order_id] = (member, live)
        terms = OrderTerms(
            order_id, member.wallet_id, entry.grid.market.symbol, entry.side, entry.kind,
            entry.price, entry.quantity, entry.stop_price, entry.display_quantity,
            entry.time_in_force, entry.post_only,
            external_id(member.client_id, entry.client_order_id),
        )  # fmt: skip
        try:
            self.trading.place_nowait(partial(self._placed, member, order_id, live), terms)
        except ServiceUnavailable:
            self._forget_order(order_id, release_id=True)
            session.reject(entry.grid.market.market_id, entry.client_order_id, Reject.THROTTLED)

    def _change(self, session: GatewaySession, entry: CancelEntry | ReplaceEntry) -> None:
        on_reply = partial(
            self._answered, session.client_id, entry.grid.market.market_id, entry.client_order_id
        )
        try:
            if isinstance(entry, CancelEntry):
                self.trading.cancel_nowait(on_reply, session.wallet_id, entry.order_id)
            else:
                self.trading.replace_nowait(
                    on_reply, session.wallet_id, entry.order_id, entry.price, entry.quantity
                )
        except ServiceUnavailable:
            session.reject(entry.grid.market.market_id, entry.client_order_id, Reject.THROTTLED)

    # ------------------------------------------------------------------ actors → member

    def _reject(self, client_id: int, market_id: int, client_order_id: int, reason: Reject) -> None:
        connection = self.sessions.get(client_id)
        if connection is not None and connection.session is not None:
            connection.session.reject(market_id, client_order_id, reason)
            connection.flush()

    def _placed(
        self, member: MemberOrders, order_id: int, live: LiveOrder, reply: Reply | None
    ) -> None:
        if isinstance(reply, OrderState):
            if reply.status != "rejected":
                return  # accepted: its events already went out
            reason, release = REFUSALS.get(reply.reason, Reject.NOT_ALLOWED), False
        elif isinstance(reply, DuplicateOrder):
            reason, release = Reject.DUPLICATE_ORDER, False
        elif isinstance(reply, Refused):  # before any book saw it: the id may be used again
            reason, release = REFUSALS.get(reply.code, Reject.NOT_ALLOWED), True
        else:
            return  # no answer in time
        self._forget_order(order_id, release_id=release)
        self._reject(member.client_id, live.grid.market.market_id, live.client_order_id, reason)

    def _answered(
        self, client_id: int, market_id: int, client_order_id: int, reply: Reply | None
    ) -> None:
        if isinstance(reply, Refused):
            self._reject(
                client_id, market_id, client_order_id, REFUSALS.get(reply.code, Reject.NOT_ALLOWED)
            )

    def _forget_order(self, order_id: int, *, release_id: bool) -> None:
        entry = self.orders.pop(order_id, None)
        if entry is None:
            return
        member, live = entry
        if member.live.get(live.client_order_id, (0, 0))[0] == order_id:
            del member.live[live.client_order_id]
        if release_id:
            member.used.discard(live.client_order_id)

    def on_results(self, batches: Sequence[BookResults]) -> None:
        """Committed book results → frames for the members whose orders they concern."""
        orders = self.orders
        if not orders:
            return
        sessions = self.sessions
        touched: set[_Connection] = set()

        def session_of(member: MemberOrders) -> GatewaySession | None:
            connection = sessions.get(member.client_id)
            if connection is None:
                return None
            touched.add(connection)
            return connection.session

        for batch in batches:
            # A rejected new order is answered from its reply (`_placed`), not from here.
            for _token, _command, events in batch.results:
                for event in events:
                    kind = type(event)
                    if kind is Trade:
                        assert isinstance(event, Trade)
                        for order_id, remaining in (
                            (event.maker_order_id, event.maker_remaining),
                            (event.taker_order_id, event.taker_remaining),
                        ):
                            entry = orders.get(order_id)
                            if entry is None:
                                continue
                            session = session_of(entry[0])
                            if session is not None:
                                session.executed(entry[1], event.price, event.quantity, remaining)
                            if remaining == 0:
                                self._forget_order(order_id, release_id=False)
                        continue
                    entry = orders.get(event.order_id)  # type: ignore[union-attr]
                    if entry is None:
                        continue
                    member, live = entry
                    if kind is OrderAccepted:
                        session = session_of(member)
                        if session is not None:
                            session.accepted(live)
                    elif kind is OrderCanceled:
                        assert isinstance(event, OrderCanceled)
                        session = session_of(member)
                        if session is not None:
                            session.canceled(live, event.quantity)
                        self._forget_order(event.order_id, release_id=False)
                    elif kind is OrderReplaced:
                        assert isinstance(event, OrderReplaced)
                        live.price, live.quantity = event.price, event.quantity
                        session = session_of(member)
                        if session is not None:
                            session.replaced(live, event.remaining)
        for connection in touched:
            connection.flush()

    # ------------------------------------------------------------------ login

    async def _login(
        self, connection: _Connection, session: GatewaySession, request: LoginRequest
    ) -> None:
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT_S):
                fresh = await self.store.claim_nonce(request.client_id, request.nonce)
                member = await self._member(request.client_id, request.wallet_id) if fresh else None
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            logger.opt(exception=error).error("mtf login could not complete")
            session.reject_login("login could not complete")
            connection.flush()
            return
        if member is None:
            session.reject_login("nonce already used")
        elif request.client_id not in self.store.keyring:
            session.reject_login("credentials revoked")
        elif not session.closed:
            previous = self.sessions.get(request.client_id)
            if previous is not None and previous is not connection and previous.session:
                previous.session.close("replaced by a newer login")
                previous.flush()
            self.sessions[request.client_id] = connection
            session.accept_login(member)
            logger.info("mtf login", client_id=request.client_id, peer=connection.peer)
        connection.flush()

    async def _member(self, client_id: int, wallet_id: str) -> MemberOrders:
        """The client's orders, loaded once per process from the committed orders."""
        member = self.members.get(client_id)
        if member is not None:
            return member
        task = self._member_loads.get(client_id)
        if task is None:
            task = asyncio.create_task(self._load_member(client_id, wallet_id))
            self._member_loads[client_id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._member_loads.pop(client_id, None)

    async def _load_member(self, client_id: int, wallet_id: str) -> MemberOrders:
        used, live = await self.store.member_orders(client_id, wallet_id, self._grids_by_symbol)
        member = MemberOrders(client_id, wallet_id, used)
        for client_order_id, (order_id, order) in live.items():
            member.live[client_order_id] = (order_id, order.grid.market.market_id)
            self.orders[order_id] = (member, order)
        self.members[client_id] = member
        return member
