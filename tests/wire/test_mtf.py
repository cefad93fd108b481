"""The MTF binary protocol (SPEC §4) sans I/O: bytes in, events and bytes out.

Every test here is pure bytes and fake clocks: no sockets, no asyncio, no sleeping. The
frames the tests send are packed, and the frames they receive decoded, with `struct` and
the contract's format string directly, so the module's own codec is checked rather than
trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strongroom.actors.messages import OrderKind, Side, TimeInForce
from strongroom.config import DEFAULT
from strongroom.wire.mtf import (
    FRAME,
    FRAME_SIZE,
    UNITS_MAX,
    CancelEntry,
    Credential,
    Event,
    Frame,
    FrameBuffer,
    GatewaySession,
    Keyring,
    Limits,
    LiveOrder,
    LoginRequest,
    LogoutRequest,
    MarketGrid,
    MemberOrders,
    MemberSession,
    OrderEntry,
    Reject,
    ReplaceEntry,
    State,
    grids,
    login_signature,
)

# ------------------------------------------------------------------------ the contract

WIRE_FORMAT = ">HQIBdddQBddddQ"
WIRE_SIZE = 88
SECOND_NS = 1_000_000_000

BTC_USDT, ETH_USDT, ETH_BTC = 1, 2, 3
GRIDS = grids(DEFAULT.markets.values(), DEFAULT.currencies)
BTC, ETH, ETHBTC = GRIDS[BTC_USDT], GRIDS[ETH_USDT], GRIDS[ETH_BTC]

CLIENT_ID = 4_000_000_007
SECRET = "s3cret-clé-ключ"  # not ASCII: the key is the secret's UTF-8 bytes
WALLET_ID = "wallet-7"
OTHER_CLIENT_ID = 12
OTHER_SECRET = "another secret"

START_WALL_NS = 1_750_000_000_123_456_789
START_MONOTONIC = 5_000.0

GTC, IOC, FOK, POST_ONLY = 0, 1, 2, 0x10


class Wire(NamedTuple):
    """One frame decoded with the contract's format string, independent of `Frame`."""

    market_id: int
    order_id: int
    client_id: int
    code: int
    open_quantity: float
    price: float
    stop_price: float
    timestamp: int
    condition: int
    tip_quantity: float
    total_quantity: float
    notional: float
    matched_quantity: float
    message_id: int

    @property
    def letter(self) -> str:
        return chr(self.code)


def decode(data: bytes) -> list[Wire]:
    assert len(data) % WIRE_SIZE == 0, f"{len(data)} bytes is not a whole number of frames"
    return [Wire._make(fields) for fields in struct.iter_unpack(WIRE_FORMAT, data)]


def wire(code: str, **fields: Any) -> Wire:
    """The frame expected on the wire: zeros, but for the fields given."""
    [frame] = decode(raw(code, **fields))
    return frame


def letters(frames: list[Wire]) -> str:
    return "".join(frame.letter for frame in frames)


def raw(
    code: str | int,
    *,
    market_id: int = 0,
    order_id: int = 0,
    client_id: int = CLIENT_ID,
    open_quantity: float = 0.0,
    price: float = 0.0,
    stop_price: float = 0.0,
    timestamp: int = START_WALL_NS,
    condition: int = 0,
    tip_quantity: float = 0.0,
    total_quantity: float = 0.0,
    notional: float = 0.0,
    matched_quantity: float = 0.0,
    message_id: int = 0,
) -> bytes:
    """Any frame, packed with `struct` and the contract's format string."""
    return struct.pack(
        WIRE_FORMAT,
        market_id,
        order_id,
        client_id,
        ord(code) if isinstance(code, str) else code,
        open_quantity,
        price,
        stop_price,
        timestamp,
        condition,
        tip_quantity,
        total_quantity,
        notional,
        matched_quantity,
        message_id,
    )


def expected_signature(secret: str, client_id: int, timestamp: int, nonce: int) -> int:
    """SPEC §4, written out: the first 8 bytes, big-endian, of HMAC-SHA256."""
    payload = struct.pack(">IQQ", client_id, timestamp, nonce)
    digest = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def login_frame(
    nonce: int = 1,
    *,
    client_id: int = CLIENT_ID,
    secret: str = SECRET,
    timestamp: int = START_WALL_NS,
    signature: int | None = None,
) -> bytes:
    if signature is None:
        signature = expected_signature(secret, client_id, timestamp, nonce)
    return raw("L", order_id=signature, client_id=client_id, timestamp=timestamp, message_id=nonce)


# ------------------------------------------------------------------------ harness


class FakeClock:
    """Wall clock (ns) and monotonic clock (s) that move only when told to."""

    def __init__(self) -> None:
        self.wall = START_WALL_NS
        self.mono = START_MONOTONIC

    def wall_ns(self) -> int:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += round(seconds * SECOND_NS)


def new_keyring() -> Keyring:
    return Keyring(
        [
            Credential(CLIENT_ID, WALLET_ID, SECRET),
            Credential(OTHER_CLIENT_ID, "wallet-12", OTHER_SECRET),
        ]
    )


@dataclass
class Gateway:
    """A `GatewaySession` with a fake clock and the client's message numbering."""

    clock: FakeClock
    keyring: Keyring
    session: GatewaySession
    member: MemberOrders | None = None
    sequence: int = 0  # the client's last message_id
    sent: list[Wire] = field(default_factory=list)  # every frame the server sent

    def feed(self, *frames: bytes) -> None:
        self.session.receive_data(b"".join(frames))

    def out(self) -> list[Wire]:
        frames = decode(self.session.data_to_send())
        self.sent += frames
        return frames

    def events(self) -> list[Event]:
        return self.session.events()

    def exchange(self, *frames: bytes) -> tuple[list[Event], list[Wire]]:
        self.feed(*frames)
        return self.events(), self.out()

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def order_frame(
        self,
        client_order_id: int,
        *,
        code: str = "B",
        market_id: int = BTC_USDT,
        total_quantity: float = 0.5,
        price: float = 30_000.0,
        **fields: Any,
    ) -> bytes:
        return raw(
            code,
            market_id=market_id,
            order_id=client_order_id,
            total_quantity=total_quantity,
            price=price,
            message_id=self.next_sequence(),
            **fields,
        )

    def cancel_frame(self, client_order_id: int, *, market_id: int = BTC_USDT) -> bytes:
        return raw(
            "X", market_id=market_id, order_id=client_order_id, message_id=self.next_sequence()
        )

    def replace_frame(
        self,
        client_order_id: int,
        *,
        total_quantity: float = 0.25,
        price: float = 29_999.5,
        market_id: int = BTC_USDT,
    ) -> bytes:
        return raw(
            "U",
            market_id=market_id,
            order_id=client_order_id,
            total_quantity=total_quantity,
            price=price,
            message_id=self.next_sequence(),
        )

    def order(self, client_order_id: int, **fields: Any) -> tuple[list[Event], list[Wire]]:
        return self.exchange(self.order_frame(client_order_id, **fields))

    def assert_usable(self, client_order_id: int = 9_999) -> None:
        """A valid order still becomes an `OrderEntry`, with nothing sent back."""
        events, out = self.order(client_order_id)
        assert out == []
        assert [type(event) for event in events] == [OrderEntry]
        assert events[0].client_order_id == client_order_id  # type: ignore[union-attr]


def new_gateway(
    clock: FakeClock | None = None,
    *,
    keyring: Keyring | None = None,
    limits: Limits | None = None,
    certificate_client_id: int | None = None,
) -> Gateway:
    clock = clock or FakeClock()
    keyring = keyring if keyring is not None else new_keyring()
    session = GatewaySession(
        keyring,
        GRIDS,
        wall_ns=clock.wall_ns,
        monotonic=clock.monotonic,
        limits=limits or Limits(),
        certificate_client_id=certificate_client_id,
    )
    return Gateway(clock, keyring, session)


def logged_in(
    clock: FakeClock | None = None,
    *,
    keyring: Keyring | None = None,
    limits: Limits | None = None,
    member: MemberOrders | None = None,
    nonce: int = 1,
) -> Gateway:
    """A gateway session past `L` and `accept_login`, its `l` already read."""
    gateway = new_gateway(clock, keyring=keyring, limits=limits)
    events, out = gateway.exchange(login_frame(nonce, timestamp=gateway.clock.wall))
    assert events == [LoginRequest(CLIENT_ID, WALLET_ID, nonce)] and out == []
    gateway.member = member or MemberOrders(CLIENT_ID, WALLET_ID)
    gateway.session.accept_login(gateway.member)
    [accepted] = gateway.out()
    assert accepted.letter == "l"
    assert gateway.session.state is State.ACTIVE
    return gateway


def new_member(
    clock: FakeClock, *, client_id: int = CLIENT_ID, secret: str = SECRET
) -> MemberSession:
    return MemberSession(client_id, secret, wall_ns=clock.wall_ns, monotonic=clock.monotonic)


def live_order(
    client_order_id: int = 7,
    *,
    grid: MarketGrid = BTC,
    price: int = 3_000_000,  # 30000.00
    quantity: int = 5_000,  # 0.5
    stop_price: int = 0,
    display_quantity: int = 1_000,  # 0.1
    condition: int = IOC | POST_ONLY,
) -> LiveOrder:
    return LiveOrder(
        client_order_id, grid, price, quantity, stop_price, display_quantity, condition
    )


def assert_rejected(frame: Wire, reason: Reject, *, market_id: int, order_id: int) -> None:
    assert frame.letter == "J"
    assert frame.condition == reason
    assert (frame.market_id, frame.order_id, frame.client_id) == (market_id, order_id, CLIENT_ID)


def exact(value: Decimal | int) -> Fraction:
    return Fraction(value)


# ------------------------------------------------------------------------ frame layout


def test_frame_layout_is_the_contracts_88_byte_big_endian_struct() -> None:
    assert FRAME.format == WIRE_FORMAT
    assert FRAME_SIZE == FRAME.size == struct.calcsize(WIRE_FORMAT) == WIRE_SIZE


def test_frame_encode_packs_fields_in_wire_order() -> None:
    frame = Frame(
        3,
        2**64 - 1,
        2**32 - 1,
        ord("S"),
        1.5,
        2.25,
        3.125,
        2**63 + 5,
        0x12,
        0.5,
        4.0,
        9.0,
        1.25,
        77,
    )
    encoded = frame.encode()
    assert encoded == struct.pack(WIRE_FORMAT, *frame)
    assert len(encoded) == WIRE_SIZE
    assert encoded[:2] == b"\x00\x03"  # market_id, big-endian
    assert encoded[14:15] == b"S"  # the code is the ASCII letter, right after the ids
    assert decode(encoded) == [Wire(*frame)]
    assert frame.letter == "S" and Frame(code=0).letter == "\\x00"


def test_frame_buffer_returns_whole_frames_and_keeps_a_partial_one() -> None:
    frames = [raw("B", order_id=n, message_id=n) for n in (1, 2, 3)]
    stream = b"".join(frames)
    buffer = FrameBuffer()
    assert buffer.feed(b"") == [] and buffer.pending == 0
    assert buffer.feed(stream[:87]) == [] and buffer.pending == 87
    first = buffer.feed(stream[87:150])
    assert [Wire(*fields) for fields in first] == decode(frames[0])
    assert buffer.pending == 150 - 88
    rest = buffer.feed(stream[150:])
    assert [Wire(*fields) for fields in rest] == decode(frames[1] + frames[2])
    assert buffer.pending == 0


# ------------------------------------------------------------------------ login signature


@given(
    secret=st.text(max_size=40),
    client_id=st.integers(0, 2**32 - 1),
    timestamp=st.integers(0, 2**64 - 1),
    nonce=st.integers(0, 2**64 - 1),
)
def test_login_signature_is_truncated_hmac_sha256_of_the_packed_fields(
    secret: str, client_id: int, timestamp: int, nonce: int
) -> None:
    assert login_signature(secret, client_id, timestamp, nonce) == expected_signature(
        secret, client_id, timestamp, nonce
    )


def test_login_signature_known_answer() -> None:
    payload = bytes.fromhex("0000000c00000000000000020000000000000003")
    digest = hmac.new(b"key", payload, hashlib.sha256).digest()
    assert login_signature("key", 12, 2, 3) == struct.unpack(">Q", digest[:8])[0]


# ------------------------------------------------------------------------ login


def test_login_emits_login_request_and_waits_until_accepted() -> None:
    gateway = new_gateway()
    events, out = gateway.exchange(login_frame(nonce=42))
    assert events == [LoginRequest(CLIENT_ID, WALLET_ID, 42)]
    assert out == []
    assert gateway.session.state is State.AUTHENTICATING
    assert gateway.session.client_id == CLIENT_ID and gateway.session.wallet_id == WALLET_ID


def test_accept_login_sends_l_with_the_client_id_and_server_sequence_one() -> None:
    gateway = new_gateway()
    gateway.feed(login_frame())
    gateway.clock.advance(0.25)
    member = MemberOrders(CLIENT_ID, WALLET_ID)
    gateway.session.accept_login(member)
    [accepted] = gateway.out()
    assert accepted == wire("l", timestamp=gateway.clock.wall, message_id=1)
    assert gateway.session.state is State.ACTIVE
    assert gateway.session.member is member


def test_reject_login_sends_j_and_closes() -> None:
    gateway = new_gateway()
    gateway.feed(login_frame())
    assert gateway.events() == [LoginRequest(CLIENT_ID, WALLET_ID, 1)]
    gateway.session.reject_login("nonce already claimed")
    [rejected] = gateway.out()
    assert rejected.letter == "j"
    assert rejected.client_id == CLIENT_ID
    assert rejected.condition == Reject.NOT_ALLOWED
    assert rejected.message_id == 1
    assert gateway.session.closed
    assert "nonce already claimed" in gateway.session.close_reason
    gateway.feed(gateway.order_frame(1))
    assert gateway.events() == [] and gateway.out() == []


def test_accept_and_reject_login_are_ignored_outside_authentication() -> None:
    gateway = new_gateway()
    gateway.session.accept_login(MemberOrders(CLIENT_ID, WALLET_ID))
    gateway.session.reject_login("too early")
    assert gateway.out() == [] and gateway.session.state is State.AWAITING_LOGIN
    active = logged_in()
    active.session.reject_login("too late")
    active.session.accept_login(MemberOrders(CLIENT_ID, WALLET_ID))
    assert active.out() == [] and active.session.state is State.ACTIVE


def assert_login_refused(gateway: Gateway, frame: bytes, *, client_id: int = CLIENT_ID) -> None:
    events, out = gateway.exchange(frame)
    assert events == []
    assert letters(out) == "j"
    assert out[0].client_id == client_id
    assert out[0].condition == Reject.NOT_ALLOWED
    assert gateway.session.closed
    assert gateway.session.close_reason.startswith("login rejected")


@pytest.mark.parametrize("offset_s", [31, -31, 3_600, -3_600])
def test_login_with_a_stale_timestamp_gets_j(offset_s: int) -> None:
    gateway = new_gateway()
    assert_login_refused(gateway, login_frame(timestamp=START_WALL_NS + offset_s * SECOND_NS))
    assert "clock" in gateway.session.close_reason


@pytest.mark.parametrize("offset_s", [30, -30, 0])
def test_login_within_thirty_seconds_of_the_server_clock_is_accepted(offset_s: int) -> None:
    gateway = new_gateway()
    events, out = gateway.exchange(login_frame(timestamp=START_WALL_NS + offset_s * SECOND_NS))
    assert events == [LoginRequest(CLIENT_ID, WALLET_ID, 1)] and out == []


def test_login_clock_window_follows_the_server_clock_not_a_constant() -> None:
    clock = FakeClock()
    clock.wall += 10 * 3_600 * SECOND_NS
    gateway = new_gateway(clock)
    assert_login_refused(gateway, login_frame(timestamp=START_WALL_NS))


def test_login_with_a_bad_signature_gets_j() -> None:
    gateway = new_gateway()
    good = expected_signature(SECRET, CLIENT_ID, START_WALL_NS, 1)
    assert_login_refused(gateway, login_frame(signature=good ^ 1))
    assert "signature" in gateway.session.close_reason


def test_login_signed_with_another_secret_gets_j() -> None:
    assert_login_refused(new_gateway(), login_frame(secret=OTHER_SECRET))


def test_login_signature_covers_the_nonce() -> None:
    signature_for_nonce_1 = expected_signature(SECRET, CLIENT_ID, START_WALL_NS, 1)
    frame = login_frame(nonce=2, signature=signature_for_nonce_1)
    assert_login_refused(new_gateway(), frame)


def test_login_with_an_unknown_client_id_gets_j() -> None:
    gateway = new_gateway()
    assert_login_refused(gateway, login_frame(client_id=999), client_id=999)
    assert "unknown client" in gateway.session.close_reason


def test_login_for_a_revoked_credential_gets_j() -> None:
    keyring = new_keyring()
    keyring.revoke(CLIENT_ID)
    assert_login_refused(new_gateway(keyring=keyring), login_frame())


def test_login_must_match_the_client_certificate_when_there_is_one() -> None:
    refused = new_gateway(certificate_client_id=OTHER_CLIENT_ID)
    assert_login_refused(refused, login_frame())
    matching = new_gateway(certificate_client_id=CLIENT_ID)
    assert matching.exchange(login_frame())[0] == [LoginRequest(CLIENT_ID, WALLET_ID, 1)]


def test_replayed_nonce_on_a_new_session_sharing_the_keyring_gets_j() -> None:
    clock = FakeClock()
    keyring = new_keyring()
    first = logged_in(clock, keyring=keyring, nonce=77)
    first.feed(raw("O"))
    assert first.session.closed
    clock.advance(1.0)
    replay = new_gateway(clock, keyring=keyring)
    # the very same bytes as the first login, still inside the clock window
    assert_login_refused(replay, login_frame(nonce=77, timestamp=START_WALL_NS))
    assert "nonce" in replay.session.close_reason
    fresh = new_gateway(clock, keyring=keyring)
    assert fresh.exchange(login_frame(nonce=78, timestamp=clock.wall))[0] == [
        LoginRequest(CLIENT_ID, WALLET_ID, 78)
    ]


def test_nonces_are_per_client_id() -> None:
    keyring = new_keyring()
    assert new_gateway(keyring=keyring).exchange(login_frame(nonce=5))[0]
    other = new_gateway(keyring=keyring)
    events, out = other.exchange(
        login_frame(nonce=5, client_id=OTHER_CLIENT_ID, secret=OTHER_SECRET)
    )
    assert events == [LoginRequest(OTHER_CLIENT_ID, "wallet-12", 5)] and out == []


def test_a_refused_login_does_not_burn_the_nonce_when_the_signature_was_bad() -> None:
    keyring = new_keyring()
    forged = login_frame(nonce=9, signature=12345)
    assert_login_refused(new_gateway(keyring=keyring), forged)
    assert new_gateway(keyring=keyring).exchange(login_frame(nonce=9))[0] == [
        LoginRequest(CLIENT_ID, WALLET_ID, 9)
    ]


@pytest.mark.parametrize("code", ["B", "S", "X", "U", "H", "O", "Z", "A", 0, 255])
def test_any_frame_before_login_gets_j_9_and_login_still_works(code: str | int) -> None:
    gateway = new_gateway()
    events, out = gateway.exchange(raw(code, market_id=ETH_USDT, order_id=31, message_id=1))
    assert events == []
    assert len(out) == 1
    assert_rejected(out[0], Reject.NOT_LOGGED_IN, market_id=ETH_USDT, order_id=31)
    assert gateway.session.state is State.AWAITING_LOGIN
    assert gateway.exchange(login_frame())[0] == [LoginRequest(CLIENT_ID, WALLET_ID, 1)]


def test_frames_while_authenticating_get_j_9_then_work_after_accept() -> None:
    gateway = new_gateway()
    gateway.feed(login_frame())
    assert gateway.events() == [LoginRequest(CLIENT_ID, WALLET_ID, 1)]
    early = gateway.order_frame(5)
    events, out = gateway.exchange(early)
    assert events == []
    assert_rejected(out[0], Reject.NOT_LOGGED_IN, market_id=BTC_USDT, order_id=5)
    gateway.session.accept_login(MemberOrders(CLIENT_ID, WALLET_ID))
    assert letters(gateway.out()) == "l"
    gateway.sequence = 0  # the refused frame was never numbered
    gateway.assert_usable(5)


def test_login_again_while_logged_in_gets_j_12_and_keeps_the_sequence() -> None:
    gateway = logged_in()
    gateway.assert_usable(1)
    events, out = gateway.exchange(login_frame(nonce=1_000_000, timestamp=gateway.clock.wall))
    assert events == []
    assert letters(out) == "J"
    assert out[0].condition == Reject.NOT_ALLOWED
    assert out[0].client_id == CLIENT_ID
    assert gateway.session.state is State.ACTIVE
    # the L's message_id is its nonce, not a sequence number: numbering carries on at 2
    gateway.assert_usable(2)


def test_login_again_with_message_id_zero_gets_j_12() -> None:
    gateway = logged_in()
    events, out = gateway.exchange(login_frame(nonce=0, timestamp=gateway.clock.wall))
    assert events == [] and letters(out) == "J" and out[0].condition == Reject.NOT_ALLOWED
    gateway.assert_usable()


# ------------------------------------------------------------------------ client messages


def test_buy_limit_order_becomes_an_order_entry_in_ticks_and_lots() -> None:
    gateway = logged_in()
    events, out = gateway.order(11, total_quantity=0.5, price=30_000.0)
    assert out == []
    assert events == [
        OrderEntry(
            11, BTC, Side.BUY, OrderKind.LIMIT, 3_000_000, 5_000, 0, 0, TimeInForce.GTC, False, 0
        )
    ]
    assert gateway.member is not None and 11 in gateway.member.used


def test_sell_with_stop_tip_ioc_and_post_only() -> None:
    gateway = logged_in()
    events, out = gateway.order(
        12,
        code="S",
        market_id=ETH_BTC,
        total_quantity=1.5,
        price=0.05123,
        stop_price=0.05,
        tip_quantity=0.25,
        condition=IOC | POST_ONLY,
    )
    assert out == []
    assert events == [
        OrderEntry(
            12,
            ETHBTC,
            Side.SELL,
            OrderKind.STOP_LIMIT,
            5_123,
            1_500,
            5_000,
            250,
            TimeInForce.IOC,
            True,
            IOC | POST_ONLY,
        )
    ]


@pytest.mark.parametrize(
    ("price", "stop_price", "kind"),
    [
        (30_000.0, 0.0, OrderKind.LIMIT),
        (0.0, 0.0, OrderKind.MARKET),
        (-0.0, 0.0, OrderKind.MARKET),
        (30_000.0, 29_000.0, OrderKind.STOP_LIMIT),
        (0.0, 29_000.0, OrderKind.STOP_MARKET),
    ],
)
def test_order_kind_follows_price_and_stop_price(
    price: float, stop_price: float, kind: OrderKind
) -> None:
    [entry] = logged_in().order(1, price=price, stop_price=stop_price)[0]
    assert isinstance(entry, OrderEntry)
    assert entry.kind is kind
    assert entry.price == (0 if price == 0 else 3_000_000)
    assert entry.stop_price == (0 if stop_price == 0 else 2_900_000)


@pytest.mark.parametrize("condition", range(256))
def test_every_order_condition_byte(condition: int) -> None:
    """Low 4 bits TIF 0 GTC 1 IOC 2 FOK, 0x10 post-only; anything else is malformed."""
    gateway = logged_in()
    events, out = gateway.order(3, condition=condition)
    valid = condition & 0x0F <= 2 and condition & ~0x1F == 0
    if valid:
        assert out == []
        [entry] = events
        assert isinstance(entry, OrderEntry)
        assert entry.time_in_force == condition & 0x0F
        assert entry.post_only is bool(condition & POST_ONLY)
        assert entry.condition == condition
    else:
        assert events == []
        assert_rejected(out[0], Reject.MALFORMED, market_id=BTC_USDT, order_id=3)
        gateway.assert_usable()


def test_cancel_of_a_live_order_becomes_a_cancel_entry() -> None:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[21] = (900_021, ETH_USDT)
    events, out = gateway.exchange(gateway.cancel_frame(21, market_id=ETH_USDT))
    assert out == []
    assert events == [CancelEntry(21, 900_021, ETH)]


def test_replace_of_a_live_order_becomes_a_replace_entry() -> None:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[22] = (900_022, BTC_USDT)
    events, out = gateway.exchange(gateway.replace_frame(22, total_quantity=0.25, price=29_999.5))
    assert out == []
    assert events == [ReplaceEntry(22, 900_022, BTC, 2_999_950, 2_500)]


@pytest.mark.parametrize(
    ("total_quantity", "price", "reason"),
    [
        (0.30001, 30_000.0, Reject.INVALID_QUANTITY),
        (0.0, 30_000.0, Reject.INVALID_QUANTITY),
        (-0.5, 30_000.0, Reject.INVALID_QUANTITY),
        (math.nan, 30_000.0, Reject.INVALID_QUANTITY),
        (0.5, 30_000.001, Reject.INVALID_PRICE),
        (0.5, 0.0, Reject.INVALID_PRICE),  # a replace names a limit price
        (0.5, -1.0, Reject.INVALID_PRICE),
        (0.5, math.inf, Reject.INVALID_PRICE),
    ],
)
def test_replace_off_the_grid_is_rejected(
    total_quantity: float, price: float, reason: Reject
) -> None:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[22] = (900_022, BTC_USDT)
    frame = gateway.replace_frame(22, total_quantity=total_quantity, price=price)
    events, out = gateway.exchange(frame)
    assert events == []
    assert_rejected(out[0], reason, market_id=BTC_USDT, order_id=22)
    gateway.assert_usable()


def test_heartbeat_from_the_client_is_silent_and_keeps_the_session() -> None:
    gateway = logged_in()
    events, out = gateway.exchange(raw("H"))
    assert events == [] and out == []
    assert gateway.session.state is State.ACTIVE
    gateway.assert_usable()


def test_logout_closes_and_ignores_the_rest() -> None:
    gateway = logged_in()
    after = gateway.order_frame(2)
    events, out = gateway.exchange(raw("O"), after)
    assert events == [LogoutRequest()]
    assert out == []
    assert gateway.session.closed and gateway.session.close_reason == "logout"
    gateway.feed(gateway.order_frame(3))
    gateway.session.reject(BTC_USDT, 3, Reject.WOULD_TRADE)
    gateway.session.accepted(live_order())
    assert gateway.events() == [] and gateway.out() == []


@pytest.mark.parametrize("code", ["Z", "a", "l", "A", "E", "J", "j", "R", "C", 0, 0x7F, 0xFF])
def test_unknown_code_gets_j_10_and_the_session_survives(code: str | int) -> None:
    gateway = logged_in()
    events, out = gateway.exchange(raw(code, market_id=ETH_BTC, order_id=66))
    assert events == []
    assert_rejected(out[0], Reject.MALFORMED, market_id=ETH_BTC, order_id=66)
    assert gateway.session.state is State.ACTIVE
    gateway.assert_usable()


# ------------------------------------------------------------------------ order validation


@pytest.mark.parametrize("market_id", [0, 4, 99, 65_535])
@pytest.mark.parametrize("code", ["B", "S", "X", "U"])
def test_unknown_market_gets_j_1(market_id: int, code: str) -> None:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[8] = (800, BTC_USDT)
    frame = raw(
        code,
        market_id=market_id,
        order_id=8,
        total_quantity=0.5,
        price=30_000.0,
        message_id=gateway.next_sequence(),
    )
    events, out = gateway.exchange(frame)
    assert events == []
    assert_rejected(out[0], Reject.UNKNOWN_MARKET, market_id=market_id, order_id=8)
    gateway.assert_usable()


@pytest.mark.parametrize(
    ("market_id", "total_quantity"),
    [
        (BTC_USDT, 0.30001),
        (BTC_USDT, 0.00005),
        (BTC_USDT, 0.0),
        (BTC_USDT, -0.0),
        (BTC_USDT, -0.5),
        (BTC_USDT, math.nan),
        (BTC_USDT, math.inf),
        (BTC_USDT, -math.inf),
        (BTC_USDT, 5e-324),
        (BTC_USDT, 1e300),
        (ETH_USDT, 0.0015),
        (ETH_BTC, 1.0005),
    ],
)
def test_order_quantity_off_the_lot_grid_gets_j_2(market_id: int, total_quantity: float) -> None:
    gateway = logged_in()
    price = 0.05 if market_id == ETH_BTC else 3_000.0
    events, out = gateway.order(4, market_id=market_id, total_quantity=total_quantity, price=price)
    assert events == []
    assert_rejected(out[0], Reject.INVALID_QUANTITY, market_id=market_id, order_id=4)
    gateway.assert_usable(4)  # the refused order did not use up its client order id


@pytest.mark.parametrize(
    ("tip_quantity", "valid"),
    [
        (0.1, True),
        (0.4999, True),
        (0.5, False),  # tip == total
        (0.6, False),  # tip > total
        (0.00005, False),  # off the lot grid
        (-0.1, False),
        (math.nan, False),
        (math.inf, False),
    ],
)
def test_tip_quantity_must_be_on_the_grid_and_below_the_total(
    tip_quantity: float, valid: bool
) -> None:
    gateway = logged_in()
    events, out = gateway.order(5, total_quantity=0.5, tip_quantity=tip_quantity)
    if valid:
        assert out == []
        [entry] = events
        assert isinstance(entry, OrderEntry)
        assert entry.display_quantity == BTC.lots(tip_quantity)
    else:
        assert events == []
        assert_rejected(out[0], Reject.INVALID_QUANTITY, market_id=BTC_USDT, order_id=5)
        gateway.assert_usable()


@pytest.mark.parametrize(
    "fields",
    [
        {"price": 30_000.001},
        {"price": 30_000.005},
        {"price": -30_000.0},
        {"price": math.nan},
        {"price": math.inf},
        {"price": 1e300},
        {"price": 5e-324},
        {"stop_price": 29_000.001},
        {"stop_price": -1.0},
        {"stop_price": math.nan},
        {"market_id": ETH_BTC, "price": 0.050005},
    ],
)
def test_order_price_off_the_tick_grid_gets_j_3(fields: dict[str, Any]) -> None:
    gateway = logged_in()
    market_id = fields.get("market_id", BTC_USDT)
    events, out = gateway.order(6, total_quantity=1.0, **fields)
    assert events == []
    assert_rejected(out[0], Reject.INVALID_PRICE, market_id=market_id, order_id=6)
    gateway.assert_usable()


def test_order_with_client_order_id_zero_or_someone_elses_client_id_is_malformed() -> None:
    gateway = logged_in()
    events, out = gateway.order(0)
    assert events == []
    assert_rejected(out[0], Reject.MALFORMED, market_id=BTC_USDT, order_id=0)
    events, out = gateway.exchange(
        raw(
            "B",
            market_id=BTC_USDT,
            order_id=3,
            client_id=OTHER_CLIENT_ID,
            total_quantity=0.5,
            price=30_000.0,
            message_id=gateway.next_sequence(),
        )
    )
    assert events == []
    assert out[0].letter == "J" and out[0].condition == Reject.MALFORMED
    assert out[0].client_id == OTHER_CLIENT_ID  # echoed as received
    gateway.assert_usable(3)


def test_duplicate_client_order_id_gets_j_5() -> None:
    gateway = logged_in()
    gateway.assert_usable(50)
    events, out = gateway.order(50, code="S", market_id=ETH_USDT, total_quantity=1.0, price=2_000.0)
    assert events == []
    assert_rejected(out[0], Reject.DUPLICATE_ORDER, market_id=ETH_USDT, order_id=50)
    gateway.assert_usable(51)


def test_duplicate_client_order_id_across_sessions_sharing_member_orders() -> None:
    clock = FakeClock()
    keyring = new_keyring()
    member = MemberOrders(CLIENT_ID, WALLET_ID)
    first = logged_in(clock, keyring=keyring, member=member, nonce=1)
    first.assert_usable(70)
    first.feed(raw("O"))
    second = logged_in(clock, keyring=keyring, member=member, nonce=2)
    events, out = second.order(70)
    assert events == []
    assert_rejected(out[0], Reject.DUPLICATE_ORDER, market_id=BTC_USDT, order_id=70)
    second.assert_usable(71)
    assert member.used == {70, 71}


@pytest.mark.parametrize("code", ["X", "U"])
def test_cancel_or_replace_of_an_order_not_live_gets_j_6(code: str) -> None:
    gateway = logged_in()
    gateway.assert_usable(40)  # used, but the gateway never made it live
    assert gateway.member is not None
    gateway.member.live[41] = (941, BTC_USDT)
    for client_order_id in (40, 42):
        frame = raw(
            code,
            market_id=BTC_USDT,
            order_id=client_order_id,
            total_quantity=0.5,
            price=30_000.0,
            message_id=gateway.next_sequence(),
        )
        events, out = gateway.exchange(frame)
        assert events == []
        assert_rejected(out[0], Reject.UNKNOWN_ORDER, market_id=BTC_USDT, order_id=client_order_id)
    events, out = gateway.exchange(
        raw(
            code,
            market_id=BTC_USDT,
            order_id=41,
            total_quantity=0.5,
            price=30_000.0,
            message_id=gateway.next_sequence(),
        )
    )
    assert out == [] and len(events) == 1


def test_replace_naming_another_market_than_the_orders_is_refused() -> None:
    gateway = logged_in()
    gateway.assert_usable(1)  # a BTC-USDT order
    assert gateway.member is not None
    gateway.member.live[1] = (100, BTC_USDT)
    # 0.05 and 1.0 on the ETH-BTC grid are 5000 ticks and 1000 lots: on BTC-USDT's grid
    # that would replace the order at 50.00 USDT for 0.1 BTC
    frame = gateway.replace_frame(1, market_id=ETH_BTC, total_quantity=1.0, price=0.05)
    events, out = gateway.exchange(frame)
    assert events == []
    assert_rejected(out[0], Reject.UNKNOWN_ORDER, market_id=ETH_BTC, order_id=1)
    cancel = gateway.cancel_frame(1, market_id=ETH_USDT)  # nor can it be canceled there
    events, out = gateway.exchange(cancel)
    assert events == []
    assert_rejected(out[0], Reject.UNKNOWN_ORDER, market_id=ETH_USDT, order_id=1)


# ------------------------------------------------------------------------ every reason


def trigger_unknown_market(gateway: Gateway) -> tuple[int, int]:
    gateway.feed(gateway.order_frame(1, market_id=4))
    return 4, 1


def trigger_invalid_quantity(gateway: Gateway) -> tuple[int, int]:
    gateway.feed(gateway.order_frame(2, total_quantity=0.30001))
    return BTC_USDT, 2


def trigger_invalid_price(gateway: Gateway) -> tuple[int, int]:
    gateway.feed(gateway.order_frame(3, market_id=ETH_USDT, price=2_000.001))
    return ETH_USDT, 3


def trigger_insufficient_funds(gateway: Gateway) -> tuple[int, int]:
    gateway.session.reject(ETH_BTC, 4, Reject.INSUFFICIENT_FUNDS)
    return ETH_BTC, 4


def trigger_duplicate_order(gateway: Gateway) -> tuple[int, int]:
    gateway.order(5)
    gateway.feed(gateway.order_frame(5, code="S"))
    return BTC_USDT, 5


def trigger_unknown_order(gateway: Gateway) -> tuple[int, int]:
    gateway.feed(gateway.cancel_frame(6))
    return BTC_USDT, 6


def trigger_unknown_order_from_the_actors(gateway: Gateway) -> tuple[int, int]:
    gateway.session.reject(ETH_USDT, 606, Reject.UNKNOWN_ORDER)
    return ETH_USDT, 606


def trigger_would_trade(gateway: Gateway) -> tuple[int, int]:
    gateway.session.reject(BTC_USDT, 7, Reject.WOULD_TRADE)
    return BTC_USDT, 7


def trigger_malformed(gateway: Gateway) -> tuple[int, int]:
    gateway.feed(gateway.order_frame(10, condition=3))
    return BTC_USDT, 10


def trigger_sequence_gap(gateway: Gateway) -> tuple[int, int]:
    gateway.sequence += 1  # skip one
    gateway.feed(gateway.order_frame(11))
    return BTC_USDT, 11


def trigger_not_allowed(gateway: Gateway) -> tuple[int, int]:
    gateway.feed(login_frame(nonce=12, timestamp=gateway.clock.wall))
    return 0, expected_signature(SECRET, CLIENT_ID, gateway.clock.wall, 12)


REASON_TRIGGERS: list[tuple[Reject, Callable[[Gateway], tuple[int, int]]]] = [
    (Reject.UNKNOWN_MARKET, trigger_unknown_market),
    (Reject.INVALID_QUANTITY, trigger_invalid_quantity),
    (Reject.INVALID_PRICE, trigger_invalid_price),
    (Reject.INSUFFICIENT_FUNDS, trigger_insufficient_funds),
    (Reject.DUPLICATE_ORDER, trigger_duplicate_order),
    (Reject.UNKNOWN_ORDER, trigger_unknown_order),
    (Reject.UNKNOWN_ORDER, trigger_unknown_order_from_the_actors),
    (Reject.WOULD_TRADE, trigger_would_trade),
    (Reject.MALFORMED, trigger_malformed),
    (Reject.SEQUENCE_GAP, trigger_sequence_gap),
    (Reject.NOT_ALLOWED, trigger_not_allowed),
]


@pytest.mark.parametrize(
    ("reason", "trigger"), REASON_TRIGGERS, ids=[t.__name__ for _, t in REASON_TRIGGERS]
)
def test_each_reject_reason_is_sent_as_exact_bytes_and_the_session_goes_on(
    reason: Reject, trigger: Callable[[Gateway], tuple[int, int]]
) -> None:
    gateway = logged_in()
    gateway.clock.advance(0.125)
    market_id, order_id = trigger(gateway)
    assert gateway.events() == []
    data = gateway.session.data_to_send()
    assert len(data) == WIRE_SIZE
    assert struct.unpack(WIRE_FORMAT, data) == (
        market_id,
        order_id,
        CLIENT_ID,
        ord("J"),
        0.0,
        0.0,
        0.0,
        gateway.clock.wall,
        reason,
        0.0,
        0.0,
        0.0,
        0.0,
        2,  # `l` was the server's message 1
    )
    assert gateway.session.state is State.ACTIVE
    gateway.assert_usable()


def test_reject_reasons_are_numbered_as_in_the_spec() -> None:
    assert [(reason.name, reason.value) for reason in Reject] == [
        ("UNKNOWN_MARKET", 1),
        ("INVALID_QUANTITY", 2),
        ("INVALID_PRICE", 3),
        ("INSUFFICIENT_FUNDS", 4),
        ("DUPLICATE_ORDER", 5),
        ("UNKNOWN_ORDER", 6),
        ("WOULD_TRADE", 7),
        ("THROTTLED", 8),
        ("NOT_LOGGED_IN", 9),
        ("MALFORMED", 10),
        ("SEQUENCE_GAP", 11),
        ("NOT_ALLOWED", 12),
    ]


# ------------------------------------------------------------------------ server messages


def test_accepted_executed_canceled_replaced_carry_exact_fields() -> None:
    gateway = logged_in()
    session, clock = gateway.session, gateway.clock
    order = live_order(7)

    clock.advance(0.001)
    session.accepted(order)
    [accepted] = gateway.out()
    assert accepted == wire(
        "A",
        market_id=BTC_USDT,
        order_id=7,
        open_quantity=0.5,
        price=30_000.0,
        timestamp=clock.wall,
        condition=IOC | POST_ONLY,
        tip_quantity=0.1,
        total_quantity=0.5,
        message_id=2,
    )

    clock.advance(0.001)
    session.executed(order, price=2_999_999, quantity=3, remaining=4_997)
    [executed] = gateway.out()
    assert executed == wire(
        "E",
        market_id=BTC_USDT,
        order_id=7,
        open_quantity=0.4997,
        price=29_999.99,
        timestamp=clock.wall,
        condition=IOC | POST_ONLY,
        total_quantity=0.5,
        notional=8.999997,
        matched_quantity=0.0003,
        message_id=3,
    )
    assert executed.notional == float(Fraction("29999.99") * Fraction("0.0003"))

    clock.advance(0.001)
    session.canceled(order, 4_997)
    [canceled] = gateway.out()
    assert canceled == wire(
        "C",
        market_id=BTC_USDT,
        order_id=7,
        open_quantity=0.4997,
        price=30_000.0,
        timestamp=clock.wall,
        condition=IOC | POST_ONLY,
        total_quantity=0.5,
        message_id=4,
    )

    clock.advance(0.001)
    replaced = live_order(8, grid=ETHBTC, price=5_123, quantity=2_000, condition=GTC)
    session.replaced(replaced, 1_250)
    [frame] = gateway.out()
    assert frame == wire(
        "R",
        market_id=ETH_BTC,
        order_id=8,
        open_quantity=1.25,
        price=0.05123,
        timestamp=clock.wall,
        condition=GTC,
        total_quantity=2.0,
        message_id=5,
    )


def test_accepted_echoes_a_stop_price() -> None:
    gateway = logged_in()
    gateway.session.accepted(
        live_order(
            9,
            grid=ETH,
            price=0,
            quantity=1_000,
            stop_price=199_999,
            display_quantity=0,
            condition=FOK,
        )
    )
    [frame] = gateway.out()
    assert (frame.letter, frame.market_id, frame.price, frame.stop_price) == (
        "A",
        ETH_USDT,
        0.0,
        1_999.99,
    )
    assert (frame.open_quantity, frame.total_quantity, frame.tip_quantity) == (1.0, 1.0, 0.0)


def test_executed_notional_is_exact_price_times_quantity_on_every_market() -> None:
    gateway = logged_in()
    cases = [(BTC, 6_543_210, 12_345), (ETH, 123_457, 999), (ETHBTC, 5_123, 7_777)]
    for grid, ticks, lots in cases:
        order = live_order(1, grid=grid, price=ticks, quantity=lots + 1)
        gateway.session.executed(order, ticks, lots, 1)
        [frame] = gateway.out()
        market = grid.market
        exact_notional = (
            exact(ticks) * exact(market.tick_size) * exact(lots) * exact(market.lot_size)
        )
        assert frame.notional == float(exact_notional)
        assert frame.matched_quantity == float(exact(lots) * exact(market.lot_size))
        assert frame.price == float(exact(ticks) * exact(market.tick_size))


def test_outbound_messages_need_an_active_session() -> None:
    gateway = new_gateway()
    session = gateway.session
    session.accepted(live_order())
    session.executed(live_order(), 1, 1, 1)
    session.canceled(live_order(), 1)
    session.replaced(live_order(), 1)
    session.reject(BTC_USDT, 1, Reject.INSUFFICIENT_FUNDS)
    assert gateway.out() == []


def test_server_message_ids_count_1_2_3_across_every_kind_of_frame() -> None:
    clock = FakeClock()
    gateway = new_gateway(clock)
    gateway.feed(raw("B", order_id=1))  # J 9
    gateway.feed(login_frame(timestamp=clock.wall))
    gateway.session.accept_login(MemberOrders(CLIENT_ID, WALLET_ID))  # l
    gateway.out()
    gateway.session.accepted(live_order())  # A
    gateway.session.executed(live_order(), 3_000_000, 1, 4_999)  # E
    gateway.session.replaced(live_order(), 4_999)  # R
    gateway.session.canceled(live_order(), 4_999)  # C
    gateway.feed(raw("Q"))  # J 10
    gateway.session.reject(BTC_USDT, 7, Reject.WOULD_TRADE)  # J 7
    gateway.out()
    clock.advance(1.0)
    gateway.feed(raw("H"))
    gateway.session.tick()  # H
    gateway.out()
    assert letters(gateway.sent) == "JlAERCJJH"
    assert [frame.message_id for frame in gateway.sent] == list(range(1, 10))
    assert {frame.client_id for frame in gateway.sent[1:]} == {CLIENT_ID}


# ------------------------------------------------------------------------ sequence numbers


def test_client_sequence_must_start_at_one() -> None:
    gateway = logged_in()
    gateway.sequence = 1
    events, out = gateway.order(1)  # message_id 2
    assert events == []
    assert_rejected(out[0], Reject.SEQUENCE_GAP, market_id=BTC_USDT, order_id=1)
    gateway.assert_usable(1)  # 3: resynchronised; the gap-rejected frame did not use its id


def test_repeated_sequence_number_gets_j_11_and_is_not_processed() -> None:
    gateway = logged_in()
    gateway.assert_usable(1)
    gateway.sequence -= 1  # message_id 1 again
    events, out = gateway.order(2)
    assert events == []
    assert_rejected(out[0], Reject.SEQUENCE_GAP, market_id=BTC_USDT, order_id=2)
    gateway.assert_usable(2)  # message_id 2 is still the expected one


def test_gap_gets_j_11_then_resynchronises_forward_only() -> None:
    gateway = logged_in()
    gateway.assert_usable(1)  # 1
    skipped = gateway.order_frame(2)  # 2, held back
    late = gateway.order_frame(3)  # 3
    events, out = gateway.exchange(gateway.order_frame(4))  # 4: the gap
    assert events == [] and letters(out) == "J" and out[0].condition == Reject.SEQUENCE_GAP
    gateway.assert_usable(5)  # 5 follows the resynchronised 4
    for frame in (skipped, late):  # going back is never accepted
        events, out = gateway.exchange(frame)
        assert events == [] and out[0].condition == Reject.SEQUENCE_GAP
    gateway.assert_usable(6)


def test_cancel_and_replace_are_sequence_checked() -> None:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[1] = (100, BTC_USDT)
    gateway.sequence = 5
    for frame in (
        gateway.cancel_frame(1),
        raw("U", market_id=BTC_USDT, order_id=1, price=1.0, total_quantity=1.0, message_id=6),
    ):
        events, out = gateway.exchange(frame)
        assert events == [] and out[0].condition == Reject.SEQUENCE_GAP


def test_heartbeat_and_logout_are_sequence_checked_only_when_numbered() -> None:
    gateway = logged_in()
    assert gateway.exchange(raw("H", message_id=0)) == ([], [])
    assert gateway.exchange(raw("H", message_id=gateway.next_sequence())) == ([], [])  # 1
    events, out = gateway.exchange(raw("H", message_id=1))  # repeated
    assert events == [] and out[0].letter == "J" and out[0].condition == Reject.SEQUENCE_GAP
    events, out = gateway.exchange(raw("O", message_id=1))  # repeated: not processed
    assert events == [] and out[0].condition == Reject.SEQUENCE_GAP
    assert gateway.session.state is State.ACTIVE
    gateway.assert_usable()  # 2
    events, out = gateway.exchange(raw("O", message_id=gateway.next_sequence()))  # 3
    assert events == [LogoutRequest()] and out == [] and gateway.session.closed


def test_unnumbered_logout_closes() -> None:
    gateway = logged_in()
    gateway.assert_usable()
    assert gateway.exchange(raw("O")) == ([LogoutRequest()], [])
    assert gateway.session.closed


# ------------------------------------------------------------------------ rate limit


def test_rate_limit_throttles_with_j_8_and_recovers_as_time_passes() -> None:
    gateway = logged_in(limits=Limits(rate_per_s=2.0, burst=3))
    for client_order_id in (1, 2, 3):
        gateway.assert_usable(client_order_id)
    events, out = gateway.order(4)
    assert events == []
    assert_rejected(out[0], Reject.THROTTLED, market_id=BTC_USDT, order_id=4)
    # heartbeats are not order entry: never throttled
    assert gateway.exchange(raw("H")) == ([], [])
    gateway.clock.advance(0.5)  # one token back
    gateway.assert_usable(4)
    events, out = gateway.order(5)
    assert events == [] and out[0].condition == Reject.THROTTLED
    gateway.clock.advance(10.0)  # refills, but never beyond the burst
    for client_order_id in (5, 6, 7):
        gateway.assert_usable(client_order_id)
    assert gateway.order(8)[1][0].condition == Reject.THROTTLED


def test_cancel_and_replace_count_against_the_rate_limit() -> None:
    gateway = logged_in(limits=Limits(rate_per_s=1.0, burst=2))
    assert gateway.member is not None
    gateway.member.live[1] = (100, BTC_USDT)
    assert gateway.exchange(gateway.cancel_frame(1))[1] == []
    assert gateway.exchange(gateway.replace_frame(1))[1] == []
    events, out = gateway.exchange(gateway.cancel_frame(1))
    assert events == [] and out[0].condition == Reject.THROTTLED
    gateway.clock.advance(1.0)
    gateway.assert_usable()


# ------------------------------------------------------------------------ heartbeats, silence


def test_gateway_sends_a_heartbeat_after_one_quiet_second() -> None:
    gateway = logged_in()
    clock, session = gateway.clock, gateway.session
    clock.advance(0.875)
    session.tick()
    assert gateway.out() == []
    clock.advance(0.125)
    session.tick()
    session.tick()  # not twice while the first waits to be sent
    [heartbeat] = gateway.out()
    assert heartbeat == wire("H", timestamp=clock.wall, message_id=2)
    clock.advance(0.5)
    session.tick()
    assert gateway.out() == []
    clock.advance(0.5)
    session.tick()
    assert letters(gateway.out()) == "H"


def test_gateway_heartbeats_even_when_it_only_receives() -> None:
    gateway = logged_in()
    gateway.clock.advance(0.5)
    gateway.feed(raw("H"))
    gateway.clock.advance(0.5)
    gateway.session.tick()
    assert letters(gateway.out()) == "H"


def test_no_heartbeat_while_traffic_flows() -> None:
    gateway = logged_in()
    for step in range(1, 21):
        gateway.clock.advance(0.5)
        gateway.feed(raw("H"))
        gateway.session.accepted(live_order(step))
        assert letters(gateway.out()) == "A"
        gateway.clock.advance(0.25)
        gateway.session.tick()
        assert gateway.out() == []
    assert not gateway.session.closed


def test_gateway_drops_a_peer_silent_for_five_seconds() -> None:
    gateway = logged_in()
    clock, session = gateway.clock, gateway.session
    for _ in range(4):
        clock.advance(1.0)
        session.tick()
        assert letters(gateway.out()) == "H"  # our heartbeats do not count as hearing them
    clock.advance(0.875)
    session.tick()
    assert not session.closed
    clock.advance(0.125)
    session.tick()
    assert session.closed and session.close_reason == "peer silent"
    assert gateway.out() == []
    clock.advance(10.0)
    session.tick()
    gateway.feed(raw("H"))
    assert gateway.out() == [] and session.close_reason == "peer silent"


def test_any_whole_frame_counts_as_hearing_the_peer() -> None:
    gateway = logged_in()
    for _ in range(3):
        gateway.clock.advance(4.0)
        gateway.feed(raw("H"))
        gateway.session.tick()
        gateway.out()
        assert not gateway.session.closed
    gateway.clock.advance(5.0)
    gateway.session.tick()
    assert gateway.session.closed and gateway.session.close_reason == "peer silent"


def test_silence_before_login_also_closes() -> None:
    gateway = new_gateway()
    gateway.clock.advance(5.0)
    gateway.session.tick()
    assert gateway.session.closed and gateway.session.close_reason == "peer silent"
    assert gateway.out() == []


def test_a_connection_that_never_logs_in_is_closed_after_the_login_timeout() -> None:
    gateway = new_gateway(limits=Limits(login_timeout_s=10.0))
    for _ in range(2):
        gateway.clock.advance(4.5)
        gateway.feed(raw("H"))  # heard, but still not logged in: J 9
        gateway.session.tick()
        assert not gateway.session.closed
    gateway.clock.advance(1.0)
    gateway.session.tick()
    assert gateway.session.closed and gateway.session.close_reason == "no login in time"
    assert [frame.condition for frame in gateway.out()] == [Reject.NOT_LOGGED_IN] * 2


def test_the_login_timeout_does_not_apply_once_logged_in() -> None:
    gateway = logged_in(limits=Limits(login_timeout_s=2.0))
    for _ in range(4):
        gateway.clock.advance(1.0)
        gateway.feed(raw("H"))
        gateway.session.tick()
    assert gateway.session.state is State.ACTIVE


def test_silence_limits_are_configurable() -> None:
    limits = Limits(heartbeat_interval_s=0.25, silence_timeout_s=0.75)
    gateway = logged_in(limits=limits)
    gateway.clock.advance(0.25)
    gateway.session.tick()
    assert letters(gateway.out()) == "H"
    gateway.clock.advance(0.5)
    gateway.session.tick()
    assert gateway.session.closed


# ------------------------------------------------------------------------ streams


def active_stream(gateway: Gateway) -> bytes:
    """Valid frames for a logged-in session with order 500 live: events and rejects."""
    return b"".join(
        [
            gateway.order_frame(1, total_quantity=0.5, price=30_000.0),
            gateway.order_frame(
                2,
                code="S",
                market_id=ETH_BTC,
                total_quantity=2.0,
                price=0.05,
                tip_quantity=0.5,
                condition=FOK,
            ),
            raw("H"),
            gateway.cancel_frame(500),
            gateway.replace_frame(500, total_quantity=0.1, price=31_000.0),
            gateway.order_frame(1),  # duplicate: J 5
            gateway.order_frame(3, market_id=ETH_USDT, total_quantity=0.0011),  # J 2
            raw("Q"),  # J 10
            gateway.order_frame(4, code="S", market_id=ETH_USDT, total_quantity=3.0, price=0.0),
        ]
    )


def stream_gateway() -> tuple[Gateway, bytes]:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[500] = (5_000_500, BTC_USDT)
    stream = active_stream(gateway)
    return gateway, stream


def run_in_chunks(chunks: list[bytes]) -> tuple[list[Event], bytes]:
    gateway, _ = stream_gateway()
    for chunk in chunks:
        gateway.session.receive_data(chunk)
    return gateway.session.events(), gateway.session.data_to_send()


def whole_write() -> tuple[list[Event], bytes]:
    _, stream = stream_gateway()
    return run_in_chunks([stream])


def test_the_reference_stream_produces_what_it_should() -> None:
    events, data = whole_write()
    assert [type(event).__name__ for event in events] == [
        "OrderEntry",
        "OrderEntry",
        "CancelEntry",
        "ReplaceEntry",
        "OrderEntry",
    ]
    out = decode(data)
    assert [(frame.letter, frame.condition, frame.order_id) for frame in out] == [
        ("J", Reject.DUPLICATE_ORDER, 1),
        ("J", Reject.INVALID_QUANTITY, 3),
        ("J", Reject.MALFORMED, 0),
    ]
    assert [frame.message_id for frame in out] == [2, 3, 4]


def test_stream_split_at_every_byte_offset_gives_the_same_events_and_bytes() -> None:
    _, stream = stream_gateway()
    expected = whole_write()
    for offset in range(len(stream) + 1):
        assert run_in_chunks([stream[:offset], stream[offset:]]) == expected, offset


def test_stream_fed_one_byte_at_a_time_gives_the_same_events_and_bytes() -> None:
    _, stream = stream_gateway()
    assert run_in_chunks([stream[i : i + 1] for i in range(len(stream))]) == whole_write()


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, 9 * WIRE_SIZE), max_size=20))
def test_stream_in_random_chunks_gives_the_same_events_and_bytes(cuts: list[int]) -> None:
    _, stream = stream_gateway()
    bounds = [0, *sorted(cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert b"".join(chunks) == stream
    assert run_in_chunks(chunks) == whole_write()


def test_partial_frame_is_buffered_until_complete() -> None:
    gateway = logged_in()
    frame = gateway.order_frame(1)
    gateway.feed(frame[:87])
    assert gateway.events() == [] and gateway.out() == []
    gateway.feed(frame[87:] + frame[:0])
    [entry] = gateway.events()
    assert isinstance(entry, OrderEntry) and entry.client_order_id == 1


def test_login_split_across_writes() -> None:
    gateway = new_gateway()
    frame = login_frame()
    for i in range(len(frame)):
        gateway.feed(frame[i : i + 1])
        if i < len(frame) - 1:
            assert gateway.events() == []
    assert gateway.events() == [LoginRequest(CLIENT_ID, WALLET_ID, 1)]


# ------------------------------------------------------------------------ garbage

REJECT_CODES = {ord("J"), ord("j")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(max_size=400), max_size=8))
def test_garbage_before_login_never_raises_and_answers_every_frame(chunks: list[bytes]) -> None:
    gateway = new_gateway()
    for chunk in chunks:
        gateway.session.receive_data(chunk)
    data = gateway.session.data_to_send()
    out = decode(data)
    assert {frame.code for frame in out} <= REJECT_CODES
    frames_in = sum(len(chunk) for chunk in chunks) // WIRE_SIZE
    if not gateway.session.closed:
        assert len(out) == frames_in
        assert all(frame.condition == Reject.NOT_LOGGED_IN for frame in out)
    else:  # a garbage `L` fails its login: `j` is the last word
        assert out[-1].letter == "j"
    assert [frame.message_id for frame in out] == list(range(1, len(out) + 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(max_size=400), max_size=8))
def test_garbage_after_login_never_raises_and_output_is_whole_frames(
    chunks: list[bytes],
) -> None:
    gateway = logged_in()
    for chunk in chunks:
        gateway.session.receive_data(chunk)
        gateway.session.tick()
    out = decode(gateway.session.data_to_send())
    assert {frame.code for frame in out} <= {ord("J")}
    assert len(out) <= sum(len(chunk) for chunk in chunks) // WIRE_SIZE
    assert [frame.message_id for frame in out] == list(range(2, len(out) + 2))


NUMBERED = set("BSXUHO") | {ord(letter) for letter in "BSXUHO"}
HOSTILE_FLOATS = st.one_of(
    st.sampled_from(
        [
            0.0,
            -0.0,
            1.0,
            0.5,
            0.0001,
            0.30001,
            30_000.0,
            30_000.001,
            1e-9,
            5e-324,
            1e300,
            1.7e308,
            2.0**53,
            -1.0,
            math.nan,
            math.inf,
            -math.inf,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def hostile_frames(draw: st.DrawFn) -> tuple[str | int, dict[str, Any], bool]:
    code = draw(st.one_of(st.sampled_from(list("BSXUHL")), st.integers(0, 255)))
    fields = {
        "market_id": draw(st.sampled_from([0, 1, 2, 3, 4, 65_535])),
        "order_id": draw(st.sampled_from([0, 1, 2, 500, 2**64 - 1])),
        "client_id": draw(st.sampled_from([CLIENT_ID, CLIENT_ID, 0, 2**32 - 1])),
        "open_quantity": draw(HOSTILE_FLOATS),
        "price": draw(HOSTILE_FLOATS),
        "stop_price": draw(st.one_of(st.just(0.0), HOSTILE_FLOATS)),
        "timestamp": draw(st.integers(0, 2**64 - 1)),
        "condition": draw(st.one_of(st.sampled_from([0, 1, 2, 0x10, 0x12]), st.integers(0, 255))),
        "tip_quantity": draw(st.one_of(st.just(0.0), HOSTILE_FLOATS)),
        "total_quantity": draw(HOSTILE_FLOATS),
        "notional": draw(HOSTILE_FLOATS),
        "matched_quantity": draw(HOSTILE_FLOATS),
    }
    in_sequence = draw(st.booleans())
    return code, fields, in_sequence


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(hostile_frames(), min_size=1, max_size=12))
@example(
    frames=[
        ("B", {"market_id": 1, "order_id": 1, "total_quantity": 1e305, "price": 30_000.0}, True)
    ]
)
@example(
    frames=[("S", {"market_id": 3, "order_id": 1, "total_quantity": 1.0, "price": 1.7e308}, True)]
)
@example(
    frames=[
        ("U", {"market_id": 1, "order_id": 500, "total_quantity": 1.0, "price": math.inf}, True)
    ]
)
def test_hostile_frames_get_one_answer_each_and_never_raise(
    frames: list[tuple[str | int, dict[str, Any], bool]],
) -> None:
    gateway = logged_in()
    assert gateway.member is not None
    gateway.member.live[500] = (5_000_500, BTC_USDT)
    for code, fields, in_sequence in frames:
        message_id = gateway.sequence + 1 if in_sequence else 0
        gateway.feed(raw(code, message_id=message_id, **fields))
        if in_sequence and code in NUMBERED:
            gateway.sequence += 1
        events, out = gateway.events(), gateway.out()
        assert len(events) + len(out) <= 1
        assert all(frame.letter == "J" for frame in out)
        for event in events:
            check_event(event)
        if gateway.session.closed:
            break


def check_event(event: Event) -> None:
    """An event only ever carries sane integers on the market's grid."""
    if isinstance(event, OrderEntry):
        assert 1 <= event.quantity <= UNITS_MAX
        assert 0 <= event.display_quantity < event.quantity
        assert 0 <= event.price <= UNITS_MAX and 0 <= event.stop_price <= UNITS_MAX
        assert event.client_order_id > 0
    elif isinstance(event, ReplaceEntry):
        assert 1 <= event.quantity <= UNITS_MAX and 1 <= event.price <= UNITS_MAX
    else:
        assert isinstance(event, CancelEntry | LogoutRequest)


# ------------------------------------------------------------------------ market grid


GRID_LIST = list(GRIDS.values())


@settings(max_examples=500)
@given(grid=st.sampled_from(GRID_LIST), units=st.integers(1, UNITS_MAX))
@example(grid=BTC, units=UNITS_MAX)
@example(grid=ETHBTC, units=UNITS_MAX - 1)
@example(grid=BTC, units=1)
def test_grid_round_trips_every_whole_number_of_ticks_and_lots(
    grid: MarketGrid, units: int
) -> None:
    assert grid.ticks(grid.price(units)) == units
    assert grid.lots(grid.quantity(units)) == units


@given(grid=st.sampled_from(GRID_LIST), units=st.integers(1, UNITS_MAX))
def test_grid_doubles_are_the_nearest_double_to_the_exact_decimal(
    grid: MarketGrid, units: int
) -> None:
    market = grid.market
    assert grid.price(units) == float(Decimal(units) * market.tick_size)
    assert grid.quantity(units) == float(Decimal(units) * market.lot_size)
    # what a member typing the decimal would send is read back exactly
    assert grid.ticks(float(str(Decimal(units) * market.tick_size))) == units


@given(grid=st.sampled_from(GRID_LIST), units=st.integers(UNITS_MAX + 1, 2**80))
@example(grid=BTC, units=UNITS_MAX + 1)
@example(grid=ETHBTC, units=UNITS_MAX + 1)
def test_grid_refuses_more_units_than_it_can_hold_exactly(grid: MarketGrid, units: int) -> None:
    assert grid.ticks(float(units * grid.tick)) is None
    assert grid.lots(float(units * grid.lot)) is None


@given(
    grid=st.sampled_from(GRID_LIST),
    units=st.integers(1, 10**6),
    fraction=st.fractions(Fraction(1, 100), Fraction(99, 100)),
)
def test_grid_refuses_values_between_grid_points(
    grid: MarketGrid, units: int, fraction: Fraction
) -> None:
    price = float((units + fraction) * grid.tick)
    quantity = float((units + fraction) * grid.lot)
    assert grid.ticks(price) is None
    assert grid.lots(quantity) is None


@pytest.mark.parametrize(
    "value", [0.0, -0.0, -0.01, -1.0, math.nan, math.inf, -math.inf, 5e-324, 1e-300, 1e308]
)
@pytest.mark.parametrize("grid", GRID_LIST, ids=lambda grid: grid.market.symbol)
def test_grid_refuses_non_positive_and_non_finite_values(grid: MarketGrid, value: float) -> None:
    assert grid.ticks(value) is None
    assert grid.lots(value) is None


def test_grid_examples_from_the_spec() -> None:
    assert BTC.lots(0.30001) is None  # 0.30001 BTC is not whole lots of 0.0001
    assert BTC.lots(0.3) == 3_000
    assert BTC.ticks(30_000.001) is None
    assert BTC.ticks(30_000.01) == 3_000_001
    assert ETH.lots(0.1 + 0.2) == 300  # 0.30000000000000004: float noise is on the grid
    assert ETHBTC.ticks(0.05123) == 5_123
    assert ETHBTC.ticks(0.051235) is None
    assert ETH.lots(0.0015) is None


def test_grid_tolerance_is_one_part_in_a_billion() -> None:
    assert BTC.ticks(30_000.0 * (1 + 5e-10)) == 3_000_000
    assert BTC.ticks(30_000.0 * (1 - 5e-10)) == 3_000_000
    assert BTC.ticks(30_000.0 * (1 + 2e-9)) is None
    assert BTC.ticks(30_000.0 * (1 - 2e-9)) is None


def test_huge_values_between_grid_points_are_refused_not_rounded() -> None:
    # 1e-9 of 1e9 ticks is a whole tick: the tolerance stops at a tenth of one.
    assert BTC.ticks(10_000_000.01) == 1_000_000_001
    assert BTC.ticks(10_000_000.005) is None
    assert BTC.ticks(1e12 + 0.005) is None
    assert BTC.ticks(12_345_678_901.23) == 1_234_567_890_123


@given(
    grid=st.sampled_from(GRID_LIST),
    ticks=st.integers(1, 10**12),
    lots=st.integers(1, 10**12),
)
def test_grid_notional_is_exact_price_times_quantity_rounded_once(
    grid: MarketGrid, ticks: int, lots: int
) -> None:
    market = grid.market
    exact_price = Fraction(ticks) * Fraction(market.tick_size)
    exact_quantity = Fraction(lots) * Fraction(market.lot_size)
    assert grid.notional(ticks, lots) == float(exact_price * exact_quantity)


def test_grids_are_keyed_by_market_id() -> None:
    assert {market_id: grid.market.symbol for market_id, grid in GRIDS.items()} == {
        1: "BTC-USDT",
        2: "ETH-USDT",
        3: "ETH-BTC",
    }
    assert (BTC.tick, BTC.lot, BTC.quote_scale) == (Fraction(1, 100), Fraction(1, 10_000), 10**6)
    assert (ETHBTC.tick, ETHBTC.lot, ETHBTC.quote_scale) == (
        Fraction(1, 100_000),
        Fraction(1, 1_000),
        10**8,
    )


# ------------------------------------------------------------------------ keyring


def test_keyring_claims_each_nonce_once_per_client() -> None:
    keyring = new_keyring()
    assert keyring.claim(CLIENT_ID, 1) and not keyring.claim(CLIENT_ID, 1)
    assert keyring.claim(OTHER_CLIENT_ID, 1)
    assert CLIENT_ID in keyring and 999 not in keyring
    assert keyring.lookup(CLIENT_ID) == Credential(CLIENT_ID, WALLET_ID, SECRET)
    keyring.add(Credential(999, "w", "s"))
    assert keyring.lookup(999) == Credential(999, "w", "s")


# ------------------------------------------------------------------------ member session


def test_member_login_frame_is_signed_per_the_spec() -> None:
    clock = FakeClock()
    member = new_member(clock)
    member.login(nonce=2**64 - 1)
    [frame] = decode(member.data_to_send())
    assert frame == wire(
        "L",
        order_id=expected_signature(SECRET, CLIENT_ID, clock.wall, 2**64 - 1),
        timestamp=clock.wall,
        message_id=2**64 - 1,
    )
    assert member.state is State.AUTHENTICATING


def test_member_numbers_order_entry_from_one_and_not_heartbeats_or_logout() -> None:
    clock = FakeClock()
    member = new_member(clock)
    member.login(1)
    member.data_to_send()
    member.receive_data(raw("l", message_id=1))
    assert member.state is State.ACTIVE
    assert member.new_order(Side.BUY, BTC_USDT, 1, 0.5, 30_000.0) == 1
    assert (
        member.new_order(
            Side.SELL,
            ETH_BTC,
            2,
            1.5,
            0.05123,
            stop_price=0.05,
            tip_quantity=0.25,
            time_in_force=TimeInForce.FOK,
            post_only=True,
        )
        == 2
    )
    assert member.cancel(ETH_USDT, 1) == 3
    assert member.replace(BTC_USDT, 1, 0.25, 29_999.5) == 4
    clock.advance(1.0)
    member.tick()  # nothing: its queue still waits
    buy, sell, cancel, replace = decode(member.data_to_send())
    wall = clock.wall - SECOND_NS
    assert buy == wire(
        "B",
        market_id=BTC_USDT,
        order_id=1,
        price=30_000.0,
        timestamp=wall,
        condition=GTC,
        total_quantity=0.5,
        message_id=1,
    )
    assert sell == wire(
        "S",
        market_id=ETH_BTC,
        order_id=2,
        price=0.05123,
        stop_price=0.05,
        timestamp=wall,
        condition=FOK | POST_ONLY,
        tip_quantity=0.25,
        total_quantity=1.5,
        message_id=2,
    )
    assert cancel == wire("X", market_id=ETH_USDT, order_id=1, timestamp=wall, message_id=3)
    assert replace == wire(
        "U",
        market_id=BTC_USDT,
        order_id=1,
        price=29_999.5,
        timestamp=wall,
        total_quantity=0.25,
        message_id=4,
    )
    clock.advance(1.0)
    member.tick()
    [heartbeat] = decode(member.data_to_send())
    assert (heartbeat.letter, heartbeat.client_id, heartbeat.message_id) == ("H", CLIENT_ID, 0)
    member.logout()
    [logout] = decode(member.data_to_send())
    assert (logout.letter, logout.client_id, logout.message_id) == ("O", CLIENT_ID, 0)
    assert member.closed and member.close_reason == "logout"


def test_member_reads_frames_back_and_closes_on_j() -> None:
    member = new_member(FakeClock())
    member.login(1)
    reply = raw("j", client_id=CLIENT_ID, condition=Reject.NOT_ALLOWED, message_id=1)
    member.receive_data(reply[:50])
    assert member.frames() == []
    member.receive_data(reply[50:])
    [frame] = member.frames()
    assert isinstance(frame, Frame)
    assert (frame.letter, frame.order_condition) == ("j", Reject.NOT_ALLOWED)
    assert member.closed and member.close_reason == "login rejected"
    assert member.frames() == []


def test_member_heartbeats_only_once_logged_in_and_drops_a_silent_gateway() -> None:
    clock = FakeClock()
    member = new_member(clock)
    member.login(1)
    member.data_to_send()
    clock.advance(1.0)
    member.tick()
    assert member.data_to_send() == b""  # not logged in yet
    member.receive_data(raw("l", message_id=1))
    clock.advance(1.0)
    member.tick()
    assert letters(decode(member.data_to_send())) == "H"
    clock.advance(3.875)
    member.tick()
    member.data_to_send()
    assert not member.closed
    clock.advance(0.125)
    member.tick()
    assert member.closed and member.close_reason == "peer silent"


def test_member_and_gateway_round_trip() -> None:
    clock = FakeClock()
    gateway = new_gateway(clock)
    member = new_member(clock)

    def to_gateway() -> list[Event]:
        gateway.feed(member.data_to_send())
        return gateway.events()

    def to_member() -> list[Frame]:
        member.receive_data(gateway.session.data_to_send())
        return member.frames()

    member.login(nonce=123_456)
    assert to_gateway() == [LoginRequest(CLIENT_ID, WALLET_ID, 123_456)]
    orders = MemberOrders(CLIENT_ID, WALLET_ID)
    gateway.session.accept_login(orders)
    [accepted_login] = to_member()
    assert accepted_login.letter == "l" and member.state is State.ACTIVE

    clock.advance(0.01)
    member.new_order(
        Side.BUY,
        ETH_USDT,
        1,
        1.25,
        1_999.99,
        tip_quantity=0.25,
        time_in_force=TimeInForce.GTC,
        post_only=True,
    )
    member.new_order(Side.SELL, BTC_USDT, 2, 0.30001, 30_000.0)  # off the lot grid
    [entry] = to_gateway()
    assert entry == OrderEntry(
        1, ETH, Side.BUY, OrderKind.LIMIT, 199_999, 1_250, 0, 250, TimeInForce.GTC, True, POST_ONLY
    )
    live = LiveOrder(
        1, ETH, entry.price, entry.quantity, 0, entry.display_quantity, entry.condition
    )
    orders.live[1] = (10_001, ETH.market.market_id)
    gateway.session.accepted(live)
    gateway.session.executed(live, 199_999, 250, 1_000)
    rejected, accepted, executed = to_member()
    assert (rejected.letter, rejected.order_id, rejected.order_condition) == (
        "J",
        2,
        Reject.INVALID_QUANTITY,
    )
    assert (accepted.letter, accepted.market_id, accepted.order_id, accepted.client_id) == (
        "A",
        ETH_USDT,
        1,
        CLIENT_ID,
    )
    assert (accepted.price, accepted.total_quantity, accepted.tip_quantity) == (
        1_999.99,
        1.25,
        0.25,
    )
    assert (executed.letter, executed.matched_quantity, executed.open_quantity) == ("E", 0.25, 1.0)
    assert executed.notional == float(Fraction("1999.99") * Fraction("0.25"))

    member.replace(ETH_USDT, 1, 1.0, 2_000.0)
    member.cancel(ETH_USDT, 1)
    member.cancel(ETH_USDT, 99)
    assert to_gateway() == [
        ReplaceEntry(1, 10_001, ETH, 200_000, 1_000),
        CancelEntry(1, 10_001, ETH),
    ]
    live.price, live.quantity = 200_000, 1_000
    gateway.session.replaced(live, 750)
    gateway.session.canceled(live, 750)
    unknown, replaced, canceled = to_member()
    assert (unknown.letter, unknown.order_id, unknown.order_condition) == (
        "J",
        99,
        Reject.UNKNOWN_ORDER,
    )
    assert (replaced.letter, replaced.price, replaced.open_quantity) == ("R", 2_000.0, 0.75)
    assert (canceled.letter, canceled.open_quantity, canceled.total_quantity) == ("C", 0.75, 1.0)

    clock.advance(1.0)
    member.tick()
    gateway.session.tick()
    assert to_gateway() == []
    [heartbeat] = to_member()
    assert heartbeat.letter == "H"

    member.logout()
    assert to_gateway() == [LogoutRequest()]
    assert gateway.session.closed and member.closed
    sent = [accepted_login, rejected, accepted, executed, unknown, replaced, canceled, heartbeat]
    assert [frame.message_id for frame in sent] == list(range(1, 9))


@settings(max_examples=50, deadline=None)
@given(secret=st.text(min_size=1, max_size=30), nonce=st.integers(0, 2**64 - 1))
def test_member_login_is_accepted_by_the_gateway_for_any_secret(secret: str, nonce: int) -> None:
    clock = FakeClock()
    keyring = Keyring([Credential(CLIENT_ID, WALLET_ID, secret)])
    gateway = new_gateway(clock, keyring=keyring)
    member = new_member(clock, secret=secret)
    member.login(nonce)
    gateway.feed(member.data_to_send())
    assert gateway.events() == [LoginRequest(CLIENT_ID, WALLET_ID, nonce)]
    assert gateway.out() == []
