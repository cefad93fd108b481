"""The price feed's protocol, sans I/O: client messages, channels, server messages, encodings.

Client messages arrive as JSON text or CBOR binary on any connection; server messages are
plain dicts, encoded once per encoding (`Encodings`) however many clients receive them.
Decimal strings for every price and quantity, integer milliseconds for `ts`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import cbor2
import msgspec
from websockets.frames import Frame, Opcode

from strongroom.actors.messages import OrderState, TradeRecord
from strongroom.config import Market, TradingConfig
from strongroom.errors import StrongroomError
from strongroom.http.market_data import BookDelta, Fill, MarketView, Ticker
from strongroom.http.representations import SIDE_NAMES, order_json, price_text, quantity_text

NS_PER_MS = 1_000_000
CHANNEL_NAME_MAX = 100
CHANNELS_PER_MESSAGE_MAX = 100
TOKEN_LENGTH_MAX = 4_096


class FeedError(StrongroomError):
    """A bad client message: answered with `{"type": "error", ...}`, the connection stays."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Encoding(enum.Enum):
    JSON = "json"
    CBOR = "cbor"


class ChannelKind(enum.Enum):
    PRICES = "prices"
    TICKER = "ticker"
    TRADES = "trades"
    BOOK = "book"
    ORDERS = "orders"  # private: a wallet's order updates and fills


@dataclass(frozen=True, slots=True)
class Channel:
    kind: ChannelKind
    subject: str = ""  # the market, or the wallet of a private channel

    @property
    def name(self) -> str:
        return self.kind.value if not self.subject else f"{self.kind.value}.{self.subject}"


# ------------------------------------------------------------------ client messages


class Subscribe(msgspec.Struct, tag_field="op", tag="subscribe", forbid_unknown_fields=True):
    channels: list[str]


class Unsubscribe(msgspec.Struct, tag_field="op", tag="unsubscribe", forbid_unknown_fields=True):
    channels: list[str]


class Ping(msgspec.Struct, tag_field="op", tag="ping", forbid_unknown_fields=True):
    pass


class Auth(msgspec.Struct, tag_field="op", tag="auth", forbid_unknown_fields=True):
    token: str


ClientMessage = Subscribe | Unsubscribe | Ping | Auth
OPS = ("subscribe", "unsubscribe", "ping", "auth")


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Text frames are JSON, binary frames CBOR; anything else is a FeedError."""
    try:
        if isinstance(data, str):
            raw: Any = msgspec.json.decode(data)
        else:
            raw = cbor2.loads(data)
    except (msgspec.DecodeError, cbor2.CBORDecodeError, RecursionError, ValueError) as error:
        kind = "JSON" if isinstance(data, str) else "CBOR"
        raise FeedError("bad_message", f"not valid {kind}: {error}") from None
    if not isinstance(raw, dict):
        raise FeedError("bad_message", "a message is an object with an op")
    op = raw.get("op")
    if op not in OPS:
        raise FeedError("unknown_op", f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    try:
        message: ClientMessage = msgspec.convert(raw, ClientMessage)
    except msgspec.ValidationError as error:
        raise FeedError("bad_message", str(error)) from None
    if isinstance(message, Subscribe | Unsubscribe):
        if not message.channels:
            raise FeedError("bad_message", "channels must not be empty")
        if len(message.channels) > CHANNELS_PER_MESSAGE_MAX:
            raise FeedError("bad_message", f"at most {CHANNELS_PER_MESSAGE_MAX} channels a message")
    if isinstance(message, Auth) and not 0 < len(message.token) <= TOKEN_LENGTH_MAX:
        raise FeedError("bad_message", "token must be a non-empty string")
    return message


def parse_channel(name: str, config: TradingConfig) -> Channel:
    if len(name) > CHANNEL_NAME_MAX:
        raise FeedError("unknown_channel", "channel name too long")
    if name == "prices":
        return Channel(ChannelKind.PRICES)
    kind_name, dot, subject = name.partition(".")
    try:
        kind = ChannelKind(kind_name)
    except ValueError:
        kind = None
    if kind is None or kind is ChannelKind.PRICES or not dot or not subject:
        raise FeedError(
            "unknown_channel",
            f"unknown channel {name!r}; expected prices, ticker.MARKET, trades.MARKET,"
            " book.MARKET or orders.WALLET_ID",
        )
    if kind is not ChannelKind.ORDERS and subject not in config.markets:
        raise FeedError("unknown_channel", f"unknown market {subject!r} in channel {name!r}")
    return Channel(kind, subject)


# ------------------------------------------------------------------ server messages


def ms(ns: int) -> int:
    return ns // NS_PER_MS


def _levels(market: Market, levels: Any) -> list[list[str]]:
    return [[price_text(market, price), quantity_text(market, lots)] for price, lots in levels]


def book_snapshot(market: Market, view: MarketView, now_ns: int) -> dict[str, Any]:
    bids, asks = view.depth()
    return {
        "type": "book",
        "market": market.symbol,
        "snapshot": True,
        "seq": view.sequence,
        "bids": _levels(market, bids),
        "asks": _levels(market, asks),
        "ts": ms(now_ns),
    }


def book_delta(market: Market, delta: BookDelta) -> dict[str, Any]:
    return {
        "type": "book",
        "market": market.symbol,
        "snapshot": False,
        "seq": delta.sequence,
        "bids": _levels(market, delta.bids),
        "asks": _levels(market, delta.asks),
        "ts": ms(delta.at_ns),
    }


def trade_message(market: Market, trade: TradeRecord) -> dict[str, Any]:
    return {
        "type": "trade",
        "market": market.symbol,
        "id": trade.trade_id,
        "price": price_text(market, trade.price),
        "quantity": quantity_text(market, trade.quantity),
        "taker_side": SIDE_NAMES[trade.taker_side],
        "ts": ms(trade.at_ns),
    }


def _price_or_none(market: Market, ticks: int | None) -> str | None:
    return None if not ticks else price_text(market, ticks)


def ticker_message(market: Market, ticker: Ticker, now_ns: int) -> dict[str, Any]:
    return {
        "type": "ticker",
        "market": market.symbol,
        "last": _price_or_none(market, ticker.last),
        "bid": _price_or_none(market, ticker.bid),
        "ask": _price_or_none(market, ticker.ask),
        "volume_24h": quantity_text(market, ticker.volume_24h),
        "ts": ms(now_ns),
    }


def prices_message(
    config: TradingConfig, last_prices: dict[str, int], now_ns: int
) -> dict[str, Any]:
    """The last trade price of every market (null before its first trade)."""
    return {
        "type": "prices",
        "ts": ms(now_ns),
        "prices": {
            symbol: _price_or_none(market, last_prices.get(symbol, 0))
            for symbol, market in config.markets.items()
        },
    }


def fill_message(market: Market, fill: Fill) -> dict[str, Any]:
    return {
        "type": "fill",
        "wallet_id": fill.wallet_id,
        "market": market.symbol,
        "order_id": fill.order_id,
        "trade_id": fill.trade_id,
        "side": SIDE_NAMES[fill.side],
        "price": price_text(market, fill.price),
        "quantity": quantity_text(market, fill.quantity),
        "liquidity": "maker" if fill.maker else "taker",
        "ts": ms(fill.at_ns),
    }


def order_message(state: OrderState, config: TradingConfig) -> dict[str, Any]:
    return {"type": "order", "order": order_json(state, config), "ts": ms(state.updated_ns)}


def subscribed(channels: list[str]) -> dict[str, Any]:
    return {"type": "subscribed", "channels": channels}


def unsubscribed(channels: list[str]) -> dict[str, Any]:
    return {"type": "unsubscribed", "channels": channels}


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


PONG: dict[str, Any] = {"type": "pong"}

_json = msgspec.json.Encoder()


class Encodings:
    """One message, encoded at most once per encoding, on first use; and as a whole
    websocket frame, which is the same bytes for every client without extensions (a
    server's frames are not masked)."""

    __slots__ = ("_cbor", "_frames", "_json", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._json: bytes | None = None
        self._cbor: bytes | None = None
        self._frames: dict[Encoding, bytes] = {}

    def frame(self, encoding: Encoding) -> bytes:
        frame = self._frames.get(encoding)
        if frame is None:
            opcode = Opcode.TEXT if encoding is Encoding.JSON else Opcode.BINARY
            frame = Frame(opcode, self.get(encoding)).serialize(mask=False)
            self._frames[encoding] = frame
        return frame

    def get(self, encoding: Encoding) -> bytes:
        if encoding is Encoding.JSON:
            if self._json is None:
                self._json = _json.encode(self.message)
            return self._json
        if self._cbor is None:
            self._cbor = cbor2.dumps(self.message)
        return self._cbor


def encode(message: dict[str, Any], encoding: Encoding) -> bytes:
    return Encodings(message).get(encoding)
