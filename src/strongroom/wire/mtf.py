"""The MTF binary protocol (SPEC §4), sans I/O: bytes in, events and bytes out.

Every message either way is one 88-byte big-endian frame (`FRAME`). Nothing here reads
a socket or a clock of its own: the gateway (`wire/gateway.py`), the member client
(`strongroom mtf`) and the tests feed bytes and clocks in, take events and bytes out,
in the manner of `websockets`' `Protocol` and h11.

- `FrameBuffer` cuts a byte stream into frames with one `struct.iter_unpack` over all
  the whole frames a read brought; a partial frame waits for the next read.
- `MarketGrid` converts the protocol's doubles to a market's ticks and lots exactly
  (off the grid by more than 1e-9 relative: refused, never rounded) and back.
- `GatewaySession` is the MTF's side of one connection: login (HMAC, clock window,
  nonce), sequence numbers, rate limit, heartbeats, and validation of every frame
  into `OrderEntry` / `CancelEntry` / `ReplaceEntry` events or an immediate `J`.
- `MemberSession` is a member's side: it signs the login, numbers its messages,
  heartbeats, and hands every frame it receives back as a `Frame`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Any, NamedTuple

from strongroom.actors.messages import OrderKind, Side, TimeInForce
from strongroom.config import Currency, Market
from strongroom.limits import TokenBucket

FRAME = struct.Struct(">HQIBdddQBddddQ")
FRAME_SIZE = FRAME.size  # 88
LOGIN_PAYLOAD = struct.Struct(">IQQ")
SIGNATURE = struct.Struct(">Q")

CLOCK_WINDOW_NS = 30 * 1_000_000_000
HEARTBEAT_INTERVAL_S = 1.0
SILENCE_TIMEOUT_S = 5.0
LOGIN_TIMEOUT_S = 10.0
GRID_TOLERANCE = 1e-9
# Up to it a whole number of ticks or lots survives double → units → double exactly: the
# three roundings (n × step, 1 / step, value × per unit) stay well under the tolerance
# below. At 2**53 they do not (e.g. ETH-BTC 9007199254740991 lots came back as ...990).
UNITS_MAX = 2**48
# SPEC §4's 1e-9 relative, but never so wide that a value between two grid points passes
# (beyond 1e8 units, 1e-9 relative is a tenth of a unit and more).
GRID_TOLERANCE_UNITS_MAX = 0.1

POST_ONLY = 0x10
TIME_IN_FORCE_MASK = 0x0F


class Code(IntEnum):
    """Message codes: the ASCII letter's byte value."""

    LOGIN = ord("L")
    BUY = ord("B")
    SELL = ord("S")
    CANCEL = ord("X")
    REPLACE = ord("U")
    HEARTBEAT = ord("H")
    LOGOUT = ord("O")
    LOGIN_ACCEPTED = ord("l")
    LOGIN_REJECTED = ord("j")
    ACCEPTED = ord("A")
    REJECTED = ord("J")
    EXECUTED = ord("E")
    CANCELED = ord("C")
    REPLACED = ord("R")


class Reject(IntEnum):
    """Reject reasons, carried in `order_condition` of `J` (and of `j`)."""

    UNKNOWN_MARKET = 1
    INVALID_QUANTITY = 2
    INVALID_PRICE = 3
    INSUFFICIENT_FUNDS = 4
    DUPLICATE_ORDER = 5
    UNKNOWN_ORDER = 6
    WOULD_TRADE = 7
    THROTTLED = 8
    NOT_LOGGED_IN = 9
    MALFORMED = 10
    SEQUENCE_GAP = 11
    NOT_ALLOWED = 12


class Frame(NamedTuple):
    """One message, field by field in wire order."""

    market_id: int = 0
    order_id: int = 0
    client_id: int = 0
    code: int = 0
    open_quantity: float = 0.0
    price: float = 0.0
    stop_price: float = 0.0
    timestamp: int = 0
    order_condition: int = 0
    tip_quantity: float = 0.0
    total_quantity: float = 0.0
    notional: float = 0.0
    matched_quantity: float = 0.0
    message_id: int = 0

    def encode(self) -> bytes:
        return FRAME.pack(*self)

    @property
    def letter(self) -> str:
        return chr(self.code) if 32 <= self.code < 127 else f"\\x{self.code:02x}"


# ------------------------------------------------------------------------ codec


class FrameBuffer:
    """Whole frames out of a byte stream, as raw tuples in `Frame` field order."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        if self._pending:
            data = self._pending + data
        size = len(data)
        whole = size - size % FRAME_SIZE
        if whole == size:
            self._pending = b""
            return list(FRAME.iter_unpack(data)) if size else []
        with memoryview(data) as view:
            frames = list(FRAME.iter_unpack(view[:whole])) if whole else []
            self._pending = bytes(view[whole:])
        return frames

    @property
    def pending(self) -> int:
        """Bytes of a partial frame waiting for the rest."""
        return len(self._pending)


def login_signature(secret: str, client_id: int, timestamp_ns: int, nonce: int) -> int:
    """SPEC §4: the first 8 bytes, big-endian, of HMAC-SHA256(secret, >IQQ fields)."""
    digest = hmac.new(
        secret.encode(), LOGIN_PAYLOAD.pack(client_id, timestamp_ns, nonce), hashlib.sha256
    ).digest()
    value: int = SIGNATURE.unpack_from(digest)[0]
    return value


# ------------------------------------------------------------------------ numbers


@dataclass(frozen=True, slots=True)
class MarketGrid:
    """A market's tick and lot grid for doubles: exact in both directions."""

    market: Market
    ticks_per_unit: float  # 1 / tick
    lots_per_unit: float  # 1 / lot
    tick: Fraction
    lot: Fraction
    quote_scale: int  # 10 ** quote decimals

    @classmethod
    def of(cls, market: Market, currencies: dict[str, Currency]) -> MarketGrid:
        tick, lot = Fraction(market.tick_size), Fraction(market.lot_size)
        return cls(
            market,
            float(1 / tick),
            float(1 / lot),
            tick,
            lot,
            10 ** currencies[market.quote].decimals,
        )

    @staticmethod
    def _units(value: float, per_unit: float) -> int | None:
        """Whole grid steps in `value`, or None if it is not on the grid (never rounded)."""
        if not math.isfinite(value) or value <= 0:
            return None
        scaled = value * per_unit
        if not math.isfinite(scaled):  # a huge value overflowed: round() would raise
            return None
        units = round(scaled)
        tolerance = min(GRID_TOLERANCE * scaled, GRID_TOLERANCE_UNITS_MAX)
        if units <= 0 or units > UNITS_MAX or abs(scaled - units) > tolerance:
            return None
        return units

    def ticks(self, price: float) -> int | None:
        return self._units(price, self.ticks_per_unit)

    def lots(self, quantity: float) -> int | None:
        return self._units(quantity, self.lots_per_unit)

    def price(self, ticks: int) -> float:
        return ticks * self.tick.numerator / self.tick.denominator

    def quantity(self, lots: int) -> float:
        return lots * self.lot.numerator / self.lot.denominator

    def notional(self, ticks: int, lots: int) -> float:
        """Price × quantity from the exact integers: quote minor units, then one division."""
        return self.market.quote_minor(ticks, lots) / self.quote_scale


def grids(markets: Iterable[Market], currencies: dict[str, Currency]) -> dict[int, MarketGrid]:
    return {market.market_id: MarketGrid.of(market, currencies) for market in markets}


# ------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """A login whose signature, clock and nonce passed; the gateway claims the nonce
    durably, then calls `accept_login` or `reject_login`."""

    client_id: int
    wallet_id: str
    nonce: int


@dataclass(frozen=True, slots=True)
class OrderEntry:
    """A valid new order, in ticks and lots; `frame` is kept for echoing."""

    client_order_id: int
    grid: MarketGrid
    side: Side
    kind: OrderKind
    price: int
    quantity: int
    stop_price: int
    display_quantity: int
    time_in_force: TimeInForce
    post_only: bool
    condition: int


@dataclass(frozen=True, slots=True)
class CancelEntry:
    client_order_id: int
    order_id: int  # the system's id of the member's order
    grid: MarketGrid


@dataclass(frozen=True, slots=True)
class ReplaceEntry:
    client_order_id: int
    order_id: int
    grid: MarketGrid
    price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    pass


Event = LoginRequest | OrderEntry | CancelEntry | ReplaceEntry | LogoutRequest


# ------------------------------------------------------------------------ member state


@dataclass(slots=True)
class LiveOrder:
    """What a session needs to echo for one of its member's live orders."""

    client_order_id: int
    grid: MarketGrid
    price: int
    quantity: int  # total lots
    stop_price: int
    display_quantity: int
    condition: int


@dataclass(slots=True)
class MemberOrders:
    """One client id's orders, shared by its successive sessions.

    `used`: every client order id this client has used (they are unique per client id);
    `live`: client order id → (system order id, market id) of the orders still open.
    """

    client_id: int
    wallet_id: str
    used: set[int] = field(default_factory=set)
    live: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Credential:
    client_id: int
    wallet_id: str
    secret: str


class Keyring:
    """MTF credentials by client id, and the login nonces seen lately (in memory).

    The nonces here only answer replays quickly; the gateway's durable claim of each
    nonce is what makes "never accepted twice" hold across restarts.
    """

    NONCES_PER_CLIENT_MAX = 10_000

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._credentials = {credential.client_id: credential for credential in credentials}
        self._nonces: dict[int, dict[int, None]] = {}

    def add(self, credential: Credential) -> None:
        self._credentials[credential.client_id] = credential

    def revoke(self, client_id: int) -> None:
        self._credentials.pop(client_id, None)

    def lookup(self, client_id: int) -> Credential | None:
        return self._credentials.get(client_id)

    def __contains__(self, client_id: int) -> bool:
        return client_id in self._credentials

    def claim(self, client_id: int, nonce: int) -> bool:
        """True the first time `nonce` is seen for `client_id` (as far as memory goes)."""
        seen = self._nonces.setdefault(client_id, {})
        if nonce in seen:
            return False
        if len(seen) >= self.NONCES_PER_CLIENT_MAX:
            del seen[next(iter(seen))]
        seen[nonce] = None
        return True


# ------------------------------------------------------------------------ sessions


class State(IntEnum):
    AWAITING_LOGIN = 0
    AUTHENTICATING = 1
    ACTIVE = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_s: float = 50_000.0  # order-entry frames (B, S, X, U) per second
    burst: int = 100_000
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    silence_timeout_s: float = SILENCE_TIMEOUT_S
    login_timeout_s: float = LOGIN_TIMEOUT_S
    clock_window_ns: int = CLOCK_WINDOW_NS


class _Peer:
    """What both ends share: framing, outgoing sequence numbers, heartbeats, silence."""

    def __init__(
        self, wall_ns: Callable[[], int], monotonic: Callable[[], float], limits: Limits
    ) -> None:
        self._wall_ns = wall_ns
        self._monotonic = monotonic
        self.limits = limits
        self._buffer = FrameBuffer()
        self._out: list[bytes] = []
        self._sequence = 0
        now = monotonic()
        self._last_received = now
        self._last_sent = now
        self.state = State.AWAITING_LOGIN
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self._last_sent = self._monotonic()
        return data

    def close(self, reason: str) -> None:
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.close_reason = reason

    def tick(self) -> None:
        """Call about every 100-250 ms: heartbeat after a quiet second, drop a silent peer."""
        if self.state is State.CLOSED:
            return
        now = self._monotonic()
        if now - self._last_received >= self.limits.silence_timeout_s:
            self.close("peer silent")
            return
        if (
            self.state is State.ACTIVE
            and not self._out
            and now - self._last_sent >= self.limits.heartbeat_interval_s
        ):
            self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        self._send(Code.HEARTBEAT, 0, 0, 0)

    def _send(
        self,
        code: int,
        market_id: int,
        order_id: int,
        client_id: int,
        open_quantity: float = 0.0,
        price: float = 0.0,
        stop_price: float = 0.0,
        condition: int = 0,
        tip_quantity: float = 0.0,
        total_quantity: float = 0.0,
        notional: float = 0.0,
        matched_quantity: float = 0.0,
    ) -> None:
        self._sequence += 1
        self._out.append(
            FRAME.pack(
                market_id, order_id, client_id, code, open_quantity, price, stop_price,
                self._wall_ns(), condition, tip_quantity, total_quantity, notional,
                matched_quantity, self._sequence,
            )
        )  # fmt: skip


class GatewaySession(_Peer):
    """The MTF's side of one member connection."""

    def __init__(
        self,
        keyring: Keyring,
        grids: dict[int, MarketGrid],
        *,
        wall_ns: Callable[[], int],
        monotonic: Callable[[], float],
        limits: Limits = Limits(),
        certificate_client_id: int | None = None,
    ) -> None:
        super().__init__(wall_ns, monotonic, limits)
        self._keyring = keyring
        self._grids = grids
        self._certificate_client_id = certificate_client_id
        self._events: list[Event] = []
        self.client_id = 0
        self.wallet_id = ""
        self.member: MemberOrders | None = None
        self._last_client_sequence = 0
        self._opened = monotonic()
        self._bucket = TokenBucket(limits.rate_per_s, limits.burst, self._opened)

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        frames = self._buffer.feed(data)
        if not frames:
            return
        self._last_received = self._monotonic()
        for frame in frames:
            state = self.state
            if state is State.ACTIVE:
                self._active(frame)
            elif state is State.AWAITING_LOGIN:
                self._awaiting_login(frame)
            elif state is State.AUTHENTICATING:
                self._reject(frame, Reject.NOT_LOGGED_IN)
            else:
                return

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _awaiting_login(self, frame: tuple[Any, ...]) -> None:
        if frame[3] != Code.LOGIN:
            self._reject(frame, Reject.NOT_LOGGED_IN)
            return
        client_id, signature, timestamp, nonce = frame[2], frame[1], frame[7], frame[13]
        credential = self._keyring.lookup(client_id)
        reason = ""
        if credential is None:
            reason = "unknown client id"
        elif self._certificate_client_id is not None and self._certificate_client_id != client_id:
            reason = "the client certificate names another client id"
        elif abs(timestamp - self._wall_ns()) > self.limits.clock_window_ns:
            reason = "timestamp outside the clock window"
        elif not hmac.compare_digest(
            SIGNATURE.pack(signature),
            SIGNATURE.pack(login_signature(credential.secret, client_id, timestamp, nonce)),
        ):
            reason = "bad signature"
        elif not self._keyring.claim(client_id, nonce):
            reason = "nonce already used"
        if reason or credential is None:
            self._send(Code.LOGIN_REJECTED, 0, 0, client_id, condition=Reject.NOT_ALLOWED)
            self.close(f"login rejected: {reason}")
            return
        self.state = State.AUTHENTICATING
        self.client_id = client_id
        self.wallet_id = credential.wallet_id
        self._events.append(LoginRequest(client_id, credential.wallet_id, nonce))

    def accept_login(self, member: MemberOrders) -> None:
        if self.state is not State.AUTHENTICATING:
            return
        self.member = member
        self.state = State.ACTIVE
        self._send(Code.LOGIN_ACCEPTED, 0, 0, self.client_id)

    def reject_login(self, reason: str) -> None:
        if self.state is not State.AUTHENTICATING:
            return
        self._send(Code.LOGIN_REJECTED, 0, 0, self.client_id, condition=Reject.NOT_ALLOWED)
        self.close(f"login rejected: {reason}")

    def _active(self, frame: tuple[Any, ...]) -> None:
        code = frame[3]
        handler = _ACTIVE_HANDLERS.get(code)
        if handler is None:
            self._reject(frame, Reject.MALFORMED)
            return
        sequence = frame[13]
        if code in _SEQUENCED or (sequence and code != Code.LOGIN):  # L's message_id: a nonce
            expected = self._last_client_sequence + 1
            if sequence != expected:
                if sequence > expected:
                    self._last_client_sequence = sequence  # resynchronise after a gap
                self._reject(frame, Reject.SEQUENCE_GAP)
                return
            self._last_client_sequence = sequence
        if code in _SEQUENCED and not self._bucket.take(self._monotonic()):
            self._reject(frame, Reject.THROTTLED)
            return
        handler(self, frame)

    def _new_order(self, frame: tuple[Any, ...]) -> None:
        (market_id, client_order_id, client_id, code, _, price, stop_price, _,
         condition, tip, total, _, _, _) = frame  # fmt: skip
        grid = self._grids.get(market_id)
        if grid is None:
            self._reject(frame, Reject.UNKNOWN_MARKET)
            return
        if client_id != self.client_id or client_order_id == 0:
            self._reject(frame, Reject.MALFORMED)
            return
        time_in_force = condition & TIME_IN_FORCE_MASK
        if time_in_force > TimeInForce.FOK or condition & ~(TIME_IN_FORCE_MASK | POST_ONLY):
            self._reject(frame, Reject.MALFORMED)
            return
        quantity = grid.lots(total)
        if quantity is None:
            self._reject(frame, Reject.INVALID_QUANTITY)
            return
        display = 0 if tip == 0.0 else grid.lots(tip)  # 0: fully displayed
        if display is None or display >= quantity:
            self._reject(frame, Reject.INVALID_QUANTITY)
            return
        ticks = 0 if price == 0.0 else grid.ticks(price)  # 0: a market order
        stop = 0 if stop_price == 0.0 else grid.ticks(stop_price)  # 0: no stop
        if ticks is None or stop is None:
            self._reject(frame, Reject.INVALID_PRICE)
            return
        member = self.member
        assert member is not None
        if client_order_id in member.used:
            self._reject(frame, Reject.DUPLICATE_ORDER)
            return
        member.used.add(client_order_id)
        if stop:
            kind = OrderKind.STOP_LIMIT if ticks else OrderKind.STOP_MARKET
        else:
            kind = OrderKind.LIMIT if ticks else OrderKind.MARKET
        self._events.append(
            OrderEntry(
                client_order_id, grid, Side.BUY if code == Code.BUY else Side.SELL, kind,
                ticks, quantity, stop, display, TimeInForce(time_in_force),
                bool(condition & POST_ONLY), condition,
            )
        )  # fmt: skip

    def _live(self, frame: tuple[Any, ...]) -> tuple[MarketGrid, int] | None:
        """The grid and system order id a cancel or replace names, or None (rejected)."""
        grid = self._grids.get(frame[0])
        if grid is None:
            self._reject(frame, Reject.UNKNOWN_MARKET)
            return None
        member = self.member
        assert member is not None
        live = member.live.get(frame[1])
        if live is None or live[1] != frame[0]:  # no such open order on that market
            self._reject(frame, Reject.UNKNOWN_ORDER)
            return None
        order_id = live[0]
        return grid, order_id

    def _cancel(self, frame: tuple[Any, ...]) -> None:
        found = self._live(frame)
        if found is not None:
            self._events.append(CancelEntry(frame[1], found[1], found[0]))

    def _replace(self, frame: tuple[Any, ...]) -> None:
        found = self._live(frame)
        if found is None:
            return
        grid, order_id = found
        quantity = grid.lots(frame[10])
        if quantity is None:
            self._reject(frame, Reject.INVALID_QUANTITY)
            return
        ticks = grid.ticks(frame[5])
        if ticks is None:
            self._reject(frame, Reject.INVALID_PRICE)
            return
        self._events.append(ReplaceEntry(frame[1], order_id, grid, ticks, quantity))

    def _send_heartbeat(self) -> None:
        self._send(Code.HEARTBEAT, 0, 0, self.client_id)

    def tick(self) -> None:
        if (
            self.state is State.AWAITING_LOGIN
            and self._monotonic() - self._opened >= self.limits.login_timeout_s
        ):
            self.close("no login in time")
            return
        super().tick()

    def _heartbeat(self, frame: tuple[Any, ...]) -> None:
        pass  # receiving it already counted as traffic

    def _logout(self, frame: tuple[Any, ...]) -> None:
        self._events.append(LogoutRequest())
        self.close("logout")

    def _login_again(self, frame: tuple[Any, ...]) -> None:
        self._reject(frame, Reject.NOT_ALLOWED)

    # ------------------------------------------------------------------ output

    def _reject(self, frame: tuple[Any, ...], reason: Reject) -> None:
        self._send(Code.REJECTED, frame[0], frame[1], frame[2], condition=reason)

    def reject(self, market_id: int, client_order_id: int, reason: Reject) -> None:
        if self.state is State.ACTIVE:
            self._send(Code.REJECTED, market_id, client_order_id, self.client_id, condition=reason)

    def accepted(self, order: LiveOrder) -> None:
        if self.state is not State.ACTIVE:
            return
        grid = order.grid
        total = grid.quantity(order.quantity)
        self._send(
            Code.ACCEPTED, grid.market.market_id, order.client_order_id, self.client_id,
            open_quantity=total, price=grid.price(order.price),
            stop_price=grid.price(order.stop_price), condition=order.condition,
            tip_quantity=grid.quantity(order.display_quantity), total_quantity=total,
        )  # fmt: skip

    def executed(self, order: LiveOrder, price: int, quantity: int, remaining: int) -> None:
        if self.state is not State.ACTIVE:
            return
        grid = order.grid
        self._send(
            Code.EXECUTED, grid.market.market_id, order.client_order_id, self.client_id,
            open_quantity=grid.quantity(remaining), price=grid.price(price),
            condition=order.condition, total_quantity=grid.quantity(order.quantity),
            notional=grid.notional(price, quantity), matched_quantity=grid.quantity(quantity),
        )  # fmt: skip

    def canceled(self, order: LiveOrder, quantity: int) -> None:
        """`C`: `quantity` lots were still open and are canceled."""
        self._order_state(Code.CANCELED, order, quantity)

    def replaced(self, order: LiveOrder, remaining: int) -> None:
        """`R`: the order now has `order`'s price and total, `remaining` lots open."""
        self._order_state(Code.REPLACED, order, remaining)

    def _order_state(self, code: Code, order: LiveOrder, open_lots: int) -> None:
        if self.state is not State.ACTIVE:
            return
        grid = order.grid
        self._send(
            code, grid.market.market_id, order.client_order_id, self.client_id,
            open_quantity=grid.quantity(open_lots), price=grid.price(order.price),
            condition=order.condition, total_quantity=grid.quantity(order.quantity),
        )  # fmt: skip


_Handler = Callable[[GatewaySession, tuple[Any, ...]], None]
# The active state's table: message code → handler; a code not in it is malformed.
_ACTIVE_HANDLERS: dict[int, _Handler] = {
    Code.BUY: GatewaySession._new_order,
    Code.SELL: GatewaySession._new_order,
    Code.CANCEL: GatewaySession._cancel,
    Code.REPLACE: GatewaySession._replace,
    Code.HEARTBEAT: GatewaySession._heartbeat,
    Code.LOGOUT: GatewaySession._logout,
    Code.LOGIN: GatewaySession._login_again,
}
# Order entry: always numbered and rate limited (H and O are numbered only if non-zero).
_SEQUENCED = frozenset({Code.BUY, Code.SELL, Code.CANCEL, Code.REPLACE})


class MemberSession(_Peer):
    """A member's side of the connection: sign, number, heartbeat, read frames back."""

    def __init__(
        self,
        client_id: int,
        secret: str,
        *,
        wall_ns: Callable[[], int],
        monotonic: Callable[[], float],
        limits: Limits = Limits(),
    ) -> None:
        super().__init__(wall_ns, monotonic, limits)
        self.client_id = client_id
        self._secret = secret
        self._received: list[Frame] = []

    def login(self, nonce: int) -> None:
        timestamp = self._wall_ns()
        signature = login_signature(self._secret, self.client_id, timestamp, nonce)
        login = Frame(0, signature, self.client_id, Code.LOGIN, timestamp=timestamp,
                      message_id=nonce)  # fmt: skip
        self._out.append(login.encode())
        self.state = State.AUTHENTICATING

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def new_order(
        self,
        side: Side,
        market_id: int,
        client_order_id: int,
        quantity: float,
        price: float = 0.0,
        *,
        stop_price: float = 0.0,
        tip_quantity: float = 0.0,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
    ) -> int:
        """Queue `B`/`S`; returns its sequence number."""
        sequence = self._next()
        code = Code.BUY if side is Side.BUY else Code.SELL
        condition = int(time_in_force) | (POST_ONLY if post_only else 0)
        self._out.append(FRAME.pack(
            market_id, client_order_id, self.client_id, code, 0.0, price, stop_price,
            self._wall_ns(), condition, tip_quantity, quantity, 0.0, 0.0, sequence,
        ))  # fmt: skip
        return sequence

    def cancel(self, market_id: int, client_order_id: int) -> int:
        sequence = self._next()
        frame = Frame(market_id, client_order_id, self.client_id, Code.CANCEL,
                      timestamp=self._wall_ns(), message_id=sequence)  # fmt: skip
        self._out.append(frame.encode())
        return sequence

    def replace(self, market_id: int, client_order_id: int, quantity: float, price: float) -> int:
        sequence = self._next()
        frame = Frame(market_id, client_order_id, self.client_id, Code.REPLACE, price=price,
                      timestamp=self._wall_ns(), total_quantity=quantity,
                      message_id=sequence)  # fmt: skip
        self._out.append(frame.encode())
        return sequence

    def send_raw(self, frame: Frame | bytes) -> None:
        """Queue any frame or bytes as they are (tests, fuzzing, operators' experiments)."""
        self._out.append(frame if isinstance(frame, bytes) else frame.encode())

    def logout(self) -> None:
        frame = Frame(0, 0, self.client_id, Code.LOGOUT, timestamp=self._wall_ns())
        self._out.append(frame.encode())
        self.close("logout")

    def receive_data(self, data: bytes) -> None:
        frames = self._buffer.feed(data)
        if not frames:
            return
        self._last_received = self._monotonic()
        for raw in frames:
            frame = Frame._make(raw)
            if frame.code == Code.LOGIN_ACCEPTED:
                self.state = State.ACTIVE
            elif frame.code == Code.LOGIN_REJECTED:
                self.close("login rejected")
            self._received.append(frame)

    def frames(self) -> list[Frame]:
        received, self._received = self._received, []
        return received

    def _send_heartbeat(self) -> None:
        # Heartbeats are not numbered: the sequence counts order entry only.
        self._out.append(
            Frame(0, 0, self.client_id, Code.HEARTBEAT, timestamp=self._wall_ns()).encode()
        )
