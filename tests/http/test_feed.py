"""The websocket price feed end to end: real websocket clients against a real `strongroom serve`.

Each test trades in a price band of its own (the server is shared by the session); book
replicas start from the snapshot, so orders of other tests resting elsewhere are fine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import cbor2
import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.server import ServerProcess
from tests.support import assert_quiet, deposit, new_wallet

pytestmark = pytest.mark.asyncio(loop_scope="function")

RECEIVE_TIMEOUT_S = 10.0


class Feed:
    """A feed client that keeps every message it got, and book replicas from them."""

    def __init__(self, connection: ClientConnection, binary: bool) -> None:
        self.connection = connection
        self.binary = binary
        self.messages: list[dict[str, Any]] = []
        self.books: dict[str, Book] = {}

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(cbor2.dumps(message) if self.binary else json.dumps(message))

    async def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        data = await asyncio.wait_for(self.connection.recv(), timeout_s)
        assert isinstance(data, bytes) == self.binary, "frame type must follow the subprotocol"
        message: dict[str, Any] = cbor2.loads(data) if self.binary else json.loads(data)
        self.messages.append(message)
        if message["type"] == "book":
            if message["snapshot"]:
                self.books[message["market"]] = Book(message)
            else:
                self.books[message["market"]].apply(message)
        return message

    async def until(self, predicate: Any, timeout_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            message = await self.receive(max(0.01, deadline - time.monotonic()))
            if predicate(message):
                return message

    async def subscribe(self, *channels: str) -> None:
        await self.send({"op": "subscribe", "channels": list(channels)})
        answer = await self.until(lambda m: m["type"] in ("subscribed", "error"))
        assert answer == {"type": "subscribed", "channels": list(channels)}, answer
        for channel in channels:
            if channel.startswith("book."):
                await self.until(
                    lambda m, c=channel: m["type"] == "book" and f"book.{m['market']}" == c
                )

    async def book_at(self, market: str, sequence: int) -> Book:
        """Read until the replica of `market` has reached `sequence`."""
        book = self.books[market]
        while book.sequence < sequence:
            await self.receive()
            book = self.books[market]
        assert book.sequence == sequence
        return book


class Book:
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.sequence: int = snapshot["seq"]
        self.bids: dict[str, str] = dict(snapshot["bids"])
        self.asks: dict[str, str] = dict(snapshot["asks"])
        self.gaps = 0

    def apply(self, delta: dict[str, Any]) -> None:
        if delta["seq"] != self.sequence + 1:
            self.gaps += 1
        self.sequence = delta["seq"]
        for levels, changes in ((self.bids, delta["bids"]), (self.asks, delta["asks"])):
            for price, quantity in changes:
                if Decimal(quantity) == 0:
                    levels.pop(price)  # a removal names a level that was there
                else:
                    levels[price] = quantity

    def depth(self) -> dict[str, list[list[str]]]:
        return {
            "bids": [[p, q] for p, q in sorted(self.bids.items(), key=lambda x: -Decimal(x[0]))],
            "asks": [[p, q] for p, q in sorted(self.asks.items(), key=lambda x: Decimal(x[0]))],
        }


async def open_feed(server: ServerProcess, binary: bool = False) -> Feed:
    connection = await connect(
        f"ws://127.0.0.1:{server.ws_port}/", subprotocols=["cbor"] if binary else None
    )
    return Feed(connection, binary)


@pytest_asyncio.fixture(loop_scope="function")
async def rest(admin: httpx.Client, server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=dict(admin.headers), timeout=30.0
    ) as client:
        yield client


async def rest_depth(rest: httpx.AsyncClient, market: str) -> dict[str, Any]:
    response = await rest.get(f"/markets/{market}/depth", params={"limit": 1000})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def limit(
    rest: httpx.AsyncClient, wallet_id: str, market: str, side: str, price: str, quantity: str
) -> dict[str, Any]:
    body = {"wallet_id": wallet_id, "market": market, "side": side, "type": "limit"}
    response = await rest.post("/orders/", json={**body, "price": price, "quantity": quantity})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def funded(admin: httpx.Client, **amounts: str) -> str:
    wallet_id = new_wallet(admin, "feed")
    for currency, amount in amounts.items():
        deposit(admin, wallet_id, currency, amount)
    return wallet_id


async def cancel_all(rest: httpx.AsyncClient, wallet_ids: list[str]) -> None:
    for wallet_id in wallet_ids:
        for status in ("open", "pending"):
            while True:  # a page at a time
                params = {"wallet_id": wallet_id, "status": status}
                listed = (await rest.get("/orders/", params=params)).json()
                if not listed:
                    break
                for listed_order in listed:
                    await rest.delete(f"/orders/{listed_order['id']}/")


async def test_snapshot_and_deltas_rebuild_the_rest_depth_and_every_trade_arrives_once_in_order(
    server: ServerProcess, admin: httpx.Client, rest: httpx.AsyncClient
) -> None:
    market = "ETH-USDT"
    assert_quiet(admin, market, "1900.00", "2100.00")
    wallets = [funded(admin, ETH="1000", USDT="10000000") for _ in range(3)]
    as_json, as_cbor = await open_feed(server), await open_feed(server, binary=True)
    try:
        for feed in (as_json, as_cbor):
            await feed.subscribe(f"book.{market}", f"trades.{market}")
        trades_before = (await rest.get(f"/markets/{market}/trades", params={"limit": 1})).json()
        last_trade_before = trades_before[0]["id"] if trades_before else 0
        generator = random.Random(20261201)
        placed: list[int] = []
        for _ in range(150):
            choice = generator.random()
            wallet_id = generator.choice(wallets)
            if choice < 0.15 and placed:
                await rest.delete(f"/orders/{placed.pop(generator.randrange(len(placed)))}/")
                continue
            side = generator.choice(("buy", "sell"))
            price = Decimal(2000) + Decimal(generator.randint(-40, 40)) / 2
            body: dict[str, Any] = {
                "wallet_id": wallet_id, "market": market, "side": side, "type": "limit",
                "price": f"{price:.2f}", "quantity": f"{generator.randint(2, 50) / 100:.3f}",
            }  # fmt: skip
            if choice > 0.9:
                body["display_quantity"] = "0.010"
            if 0.8 < choice <= 0.9:
                body["time_in_force"] = "IOC"
            response = await rest.post("/orders/", json=body)
            assert response.status_code == 201, response.text
            if response.json()["status"] == "open":
                placed.append(response.json()["id"])
        depth = await rest_depth(rest, market)
        for feed in (as_json, as_cbor):
            book = await feed.book_at(market, depth["sequence"])
            assert book.gaps == 0
            assert book.depth() == {"bids": depth["bids"], "asks": depth["asks"]}
        trades_after = (await rest.get(f"/markets/{market}/trades", params={"limit": 1000})).json()
        expected_ids = sorted(t["id"] for t in trades_after if t["id"] > last_trade_before)
        assert len(expected_ids) > 10, "the flow should have traded"
        rest_trades = {t["id"]: t for t in trades_after}
        for feed in (as_json, as_cbor):
            while True:  # trades of the last commit may still be on their way
                got = [m for m in feed.messages if m["type"] == "trade"]
                if got and got[-1]["id"] >= expected_ids[-1]:
                    break
                await feed.receive()
            assert [m["id"] for m in got] == expected_ids  # every trade once, in order
            for message in got:
                expected = rest_trades[message["id"]]
                assert message["market"] == market
                assert (message["price"], message["quantity"], message["taker_side"]) == (
                    expected["price"], expected["quantity"], expected["taker_side"],
                )  # fmt: skip
        # JSON and CBOR carry the same content, message for message (one of them may have
        # read a little further than the other).
        # A snapshot's ts is the moment each client subscribed, so it is not compared.
        common = min(len(as_json.messages), len(as_cbor.messages))
        assert common > 150

        def content(feed: Feed) -> list[dict[str, Any]]:
            return [
                {key: value for key, value in m.items() if not (m.get("snapshot") and key == "ts")}
                for m in feed.messages[:common]
            ]

        assert content(as_json) == content(as_cbor)
    finally:
        await as_json.connection.close()
        await as_cbor.connection.close()
        await cancel_all(rest, wallets)


async def test_bad_messages_get_errors_and_the_connection_stays_open(server: ServerProcess) -> None:
    for binary in (False, True):
        feed = await open_feed(server, binary)
        try:
            cases: list[tuple[Any, str]] = [
                ({"op": "dance"}, "unknown_op"),
                ({"channels": ["prices"]}, "unknown_op"),
                ({"op": "subscribe", "channels": ["weather.BTC-USDT"]}, "unknown_channel"),
                ({"op": "subscribe", "channels": ["book.DOGE-USDT"]}, "unknown_channel"),
                ({"op": "subscribe", "channels": ["book"]}, "unknown_channel"),
                ({"op": "subscribe", "channels": "prices"}, "bad_message"),
                ({"op": "subscribe", "channels": []}, "bad_message"),
                ({"op": "subscribe", "channels": ["prices"], "extra": 1}, "bad_message"),
                ({"op": "unsubscribe", "channels": ["nope"]}, "unknown_channel"),
                ({"op": "subscribe", "channels": ["orders.some-wallet"]}, "unauthorized"),
                ({"op": "auth", "token": "not-a-token"}, "unauthorized"),
                ({"op": "auth"}, "bad_message"),
                ([1, 2, 3], "bad_message"),
            ]
            for message, code in cases:
                await feed.send(message)
                answer = await feed.receive()
                assert answer["type"] == "error" and answer["code"] == code, (message, answer)
                assert answer["message"]
            # A half-valid subscribe joins nothing (all or nothing).
            await feed.send({"op": "subscribe", "channels": ["prices", "book.NOPE"]})
            assert (await feed.receive())["code"] == "unknown_channel"
            raw = b"\xff\xfe not cbor" if binary else "{not json"
            await feed.connection.send(raw)
            assert (await feed.receive())["code"] == "bad_message"
            # Still open and serving.
            await feed.send({"op": "ping"})
            assert await feed.receive() == {"type": "pong"}
            await feed.subscribe("prices")
            prices = await feed.until(lambda m: m["type"] == "prices")
            assert set(prices["prices"]) == {"BTC-USDT", "ETH-USDT", "ETH-BTC"}
            await feed.send({"op": "unsubscribe", "channels": ["prices", "ticker.BTC-USDT"]})
            answer = await feed.until(lambda m: m["type"] == "unsubscribed")
            assert answer["channels"] == ["prices"]
        finally:
            await feed.connection.close()


async def test_a_flood_of_messages_is_rate_limited_and_the_connection_stays_open(
    server: ServerProcess,
) -> None:
    feed = await open_feed(server)
    try:
        assert feed.connection.response is not None  # compression is off by default
        assert "Sec-WebSocket-Extensions" not in feed.connection.response.headers
        for _ in range(300):
            await feed.send({"op": "ping"})
        answers = [await feed.receive() for _ in range(300)]
        pongs = [answer for answer in answers if answer == {"type": "pong"}]
        limited = [answer for answer in answers if answer.get("code") == "rate_limited"]
        assert len(pongs) + len(limited) == 300
        assert 100 <= len(pongs) <= 150, len(pongs)  # the burst, and what the rate refilled
        await asyncio.sleep(0.2)
        await feed.send({"op": "ping"})
        assert await feed.receive() == {"type": "pong"}
    finally:
        await feed.connection.close()


async def test_an_oversize_message_closes_with_1009(server: ServerProcess) -> None:
    feed = await open_feed(server)
    await feed.connection.send(json.dumps({"op": "ping", "pad": "x" * 10_000}))
    with pytest.raises(ConnectionClosed):
        await feed.receive()
    assert feed.connection.close_code == 1009
    other = await open_feed(server)  # the server is unaffected
    await other.send({"op": "ping"})
    assert await other.receive() == {"type": "pong"}
    await other.connection.close()


async def test_ticker_is_conflated_and_prices_come_once_a_second(
    server: ServerProcess, admin: httpx.Client, rest: httpx.AsyncClient
) -> None:
    market = "BTC-USDT"
    assert_quiet(admin, market, "31000.00", "31100.00")
    buyer = funded(admin, USDT="10000000")
    seller = funded(admin, BTC="100")
    feed = await open_feed(server)
    try:
        await feed.subscribe(f"ticker.{market}", "prices")
        started = time.monotonic()
        for index in range(60):
            price = f"{31000 + index:.2f}"
            await limit(rest, seller, market, "sell", price, "0.0010")
            await limit(rest, buyer, market, "buy", price, "0.0010")
        last = await feed.until(
            lambda m: m["type"] == "ticker" and m["last"] == "31059.00", timeout_s=5
        )
        elapsed = time.monotonic() - started
        await asyncio.sleep(2.2)
        while True:
            try:
                await feed.receive(timeout_s=0.2)
            except TimeoutError:
                break
        elapsed_total = time.monotonic() - started
        tickers = [m for m in feed.messages if m["type"] == "ticker"][1:]  # after the first
        stamps = [m["ts"] for m in tickers]
        assert len(tickers) <= 10 * elapsed + 2, (len(tickers), elapsed)
        assert all(b - a >= 95 for a, b in itertools.pairwise(stamps)), stamps
        assert last["volume_24h"] and Decimal(last["volume_24h"]) >= Decimal("0.0600")
        prices = [m for m in feed.messages if m["type"] == "prices"]
        assert 2 <= len(prices) <= elapsed_total + 2
        gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(prices[1:])]
        assert all(900 <= gap <= 1500 for gap in gaps), gaps
        assert prices[-1]["prices"][market] == "31059.00"
    finally:
        await feed.connection.close()


async def test_private_orders_channel_needs_a_token_that_may_read_the_wallet(
    server: ServerProcess, admin: httpx.Client, rest: httpx.AsyncClient
) -> None:
    market = "BTC-USDT"
    assert_quiet(admin, market, "32000.00", "32100.00")
    maker = funded(admin, BTC="10")
    taker = funded(admin, USDT="1000000")
    with server.client(scope="read") as reader, server.client(scope="write") as writer:
        read_token = reader.headers["Authorization"].partition(" ")[2]
        write_token = writer.headers["Authorization"].partition(" ")[2]
    feed = await open_feed(server, binary=True)
    try:
        await feed.send({"op": "subscribe", "channels": [f"orders.{maker}"]})
        assert (await feed.receive())["code"] == "unauthorized"
        await feed.send({"op": "auth", "token": write_token})
        assert (await feed.receive())["type"] == "authenticated"
        await feed.send({"op": "subscribe", "channels": [f"orders.{maker}"]})
        assert (await feed.receive())["code"] == "forbidden"  # no read scope
        await feed.send({"op": "auth", "token": read_token})
        assert (await feed.receive())["type"] == "authenticated"
        await feed.send({"op": "subscribe", "channels": ["orders.no-such-wallet"]})
        assert (await feed.receive())["code"] == "forbidden"
        await feed.subscribe(f"orders.{maker}")
        resting = await limit(rest, maker, market, "sell", "32000.00", "0.5000")
        for quantity in ("0.1000", "0.2000"):
            filled = await limit(rest, taker, market, "buy", "32000.00", quantity)
            assert filled["status"] == "filled"
        await rest.delete(f"/orders/{resting['id']}/")
        await feed.until(lambda m: m["type"] == "order" and m["order"]["status"] == "canceled")
        events = [m for m in feed.messages if m["type"] in ("order", "fill")]
        summary = [
            (m["type"], m["order"]["status"], m["order"]["filled_quantity"])
            if m["type"] == "order"
            else (m["type"], m["liquidity"], m["quantity"])
            for m in events
        ]
        assert summary == [
            ("order", "open", "0.0000"),
            ("fill", "maker", "0.1000"),
            ("order", "open", "0.1000"),
            ("fill", "maker", "0.2000"),
            ("order", "open", "0.3000"),
            ("order", "canceled", "0.3000"),
        ]
        assert all(m["wallet_id"] == maker for m in events if m["type"] == "fill")
        assert all(m["order"]["wallet_id"] == maker for m in events if m["type"] == "order")
        assert all(m["order"]["id"] == resting["id"] for m in events if m["type"] == "order")
    finally:
        await feed.connection.close()


async def test_a_client_that_stops_reading_does_not_delay_another(
    server: ServerProcess, admin: httpx.Client, rest: httpx.AsyncClient
) -> None:
    """One client subscribes and never reads; another's lag stays that of an idle feed."""
    market = "ETH-BTC"
    assert_quiet(admin, market, "0.05000", "0.06000")
    wallet = funded(admin, ETH="10000", BTC="1000")
    stalled = await connect(f"ws://127.0.0.1:{server.ws_port}/", max_queue=1)
    reader = await open_feed(server)
    try:
        await stalled.send(
            json.dumps({"op": "subscribe", "channels": [f"book.{market}", f"trades.{market}"]})
        )
        await reader.subscribe(f"book.{market}")
        # The stalled client's socket stops being read: its data piles up on the server.
        assert stalled.transport is not None
        stalled.transport.pause_reading()

        async def lags(count: int) -> list[float]:
            measured = []
            for index in range(count):
                started = time.monotonic()
                await limit(rest, wallet, market, "buy", f"0.05{index % 900 + 100:03d}", "1.000")
                await reader.until(lambda m: m["type"] == "book" and not m["snapshot"])
                measured.append(time.monotonic() - started)
            return measured

        before = sorted(await lags(40))
        await asyncio.sleep(0.3)
        during = sorted(await lags(200))
        # The reader's round trip (REST order → its delta) is the same with a stalled peer.
        assert during[len(during) // 2] < before[len(before) // 2] * 3 + 0.05, (before, during)
        assert during[-1] < 2.0
        assert reader.books[market].gaps == 0
    finally:
        stalled.transport.abort()  # type: ignore[union-attr]
        await reader.connection.close()
        await cancel_all(rest, [wallet])
