"""The feed protocol without I/O: client messages in either encoding, channels, encodings."""

from __future__ import annotations

import json
from typing import Any

import cbor2
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.actors.messages import Side, TradeRecord
from strongroom.config import DEFAULT
from strongroom.http import feed_protocol as protocol
from strongroom.http.feed_protocol import Channel, ChannelKind, Encoding, Encodings, FeedError
from strongroom.http.market_data import BookDelta

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.text() | st.binary())
def test_any_frame_is_a_message_or_a_feed_error(data: str | bytes) -> None:
    try:
        protocol.parse_client_message(data)
    except FeedError as error:
        assert error.code in ("bad_message", "unknown_op")


@given(json_values, st.booleans())
def test_any_value_is_a_message_or_a_feed_error(value: Any, binary: bool) -> None:
    data = cbor2.dumps(value) if binary else json.dumps(value)
    try:
        protocol.parse_client_message(data)
    except FeedError as error:
        assert error.code in ("bad_message", "unknown_op")
    else:
        assert isinstance(value, dict) and value.get("op") in protocol.OPS


@pytest.mark.parametrize("binary", [False, True])
def test_valid_messages_in_either_encoding(binary: bool) -> None:
    def parse(value: dict[str, Any]) -> protocol.ClientMessage:
        return protocol.parse_client_message(cbor2.dumps(value) if binary else json.dumps(value))

    assert parse({"op": "subscribe", "channels": ["prices"]}) == protocol.Subscribe(["prices"])
    assert parse({"op": "unsubscribe", "channels": ["a"]}) == protocol.Unsubscribe(["a"])
    assert parse({"op": "ping"}) == protocol.Ping()
    assert parse({"op": "auth", "token": "t"}) == protocol.Auth("t")
    for bad, code in (
        ({"op": "subscribe"}, "bad_message"),
        ({"op": "subscribe", "channels": []}, "bad_message"),
        ({"op": "subscribe", "channels": ["x"] * 101}, "bad_message"),
        ({"op": "subscribe", "channels": [1]}, "bad_message"),
        ({"op": "ping", "extra": True}, "bad_message"),
        ({"op": "auth", "token": ""}, "bad_message"),
        ({"op": "auth", "token": "t" * 5000}, "bad_message"),
        ({"op": "PING"}, "unknown_op"),
        ({}, "unknown_op"),
    ):
        with pytest.raises(FeedError) as raised:
            parse(bad)
        assert raised.value.code == code, bad


def test_deeply_nested_input_is_a_bad_message() -> None:
    with pytest.raises(FeedError):
        protocol.parse_client_message("[" * 100_000)


def test_channels() -> None:
    parse = protocol.parse_channel
    assert parse("prices", DEFAULT) == Channel(ChannelKind.PRICES)
    for kind in ("ticker", "trades", "book"):
        for market in DEFAULT.markets:
            channel = parse(f"{kind}.{market}", DEFAULT)
            assert channel == Channel(ChannelKind(kind), market)
            assert channel.name == f"{kind}.{market}"
    assert parse("orders.any-wallet", DEFAULT) == Channel(ChannelKind.ORDERS, "any-wallet")
    for bad in ("", "book", "book.", "book.btc-usdt", "prices.BTC-USDT", "orders.", "x" * 101,
                "ticker.DOGE-USDT", "depth.BTC-USDT", "orders"):  # fmt: skip
        with pytest.raises(FeedError) as raised:
            parse(bad, DEFAULT)
        assert raised.value.code == "unknown_channel"


@given(
    st.integers(1, 2**40), st.integers(1, 2**40), st.integers(1, 2**40), st.booleans(),
    st.integers(0, 2**62),
)  # fmt: skip
def test_json_and_cbor_carry_the_same_content(
    trade_id: int, price: int, quantity: int, buy: bool, at_ns: int
) -> None:
    market = DEFAULT.markets["BTC-USDT"]
    side = Side.BUY if buy else Side.SELL
    trade = TradeRecord("BTC-USDT", trade_id, price, quantity, side, 1, 2, at_ns)
    delta = BookDelta("BTC-USDT", trade_id, ((price, quantity),), ((price + 1, 0),), at_ns)
    for message in (protocol.trade_message(market, trade), protocol.book_delta(market, delta)):
        encoded = Encodings(message)
        as_json = msgspec.json.decode(encoded.get(Encoding.JSON))
        as_cbor = cbor2.loads(encoded.get(Encoding.CBOR))
        assert as_json == as_cbor == message
        assert encoded.get(Encoding.JSON) is encoded.get(Encoding.JSON)  # encoded once
    assert protocol.book_delta(market, delta)["asks"] == [
        [protocol.price_text(market, price + 1), "0.0000"]
    ]


def test_message_shapes_are_exact_decimal_strings() -> None:
    market = DEFAULT.markets["BTC-USDT"]
    trade = TradeRecord("BTC-USDT", 7, 2_000_001, 123, Side.SELL, 1, 2, 1_700_000_000_123_456_789)
    assert protocol.trade_message(market, trade) == {
        "type": "trade", "market": "BTC-USDT", "id": 7, "price": "20000.01",
        "quantity": "0.0123", "taker_side": "sell", "ts": 1_700_000_000_123,
    }  # fmt: skip
    delta = BookDelta("BTC-USDT", 9, ((2_000_000, 5),), ((2_000_100, 0),), 5_000_000)
    assert protocol.book_delta(market, delta) == {
        "type": "book", "market": "BTC-USDT", "snapshot": False, "seq": 9,
        "bids": [["20000.00", "0.0005"]], "asks": [["20001.00", "0.0000"]], "ts": 5,
    }  # fmt: skip
