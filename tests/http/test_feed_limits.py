"""Feed limits on a server of their own (small limits): connections, subscriptions, slow
clients conflated then closed, and the book sequence across a kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.http.test_feed import Feed, funded, limit, open_feed
from tests.server import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="function")

MAX_CONNECTIONS = 6
MAX_SUBSCRIPTIONS = 3
BACKLOG_BYTES = 32 * 1024  # closed past 16 times that
MARKET = "ETH-BTC"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        Path(tmp_path_factory.mktemp("feed-limits")),
        (
            "--ws-max-connections", str(MAX_CONNECTIONS),
            "--ws-max-subscriptions", str(MAX_SUBSCRIPTIONS),
            "--ws-backlog-bytes", str(BACKLOG_BYTES),
            "--ws-max-message-rate", "100000",  # the slow-client test asks for many snapshots
        ),
    )  # fmt: skip
    process.start()
    yield process
    process.close()


@pytest_asyncio.fixture(loop_scope="function")
async def rest(limited: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    with limited.client() as admin:
        headers = dict(admin.headers)
    async with httpx.AsyncClient(base_url=limited.base_url, headers=headers, timeout=30) as client:
        yield client


async def feed_status(rest: httpx.AsyncClient) -> dict[str, int]:
    status: dict[str, int] = (await rest.get("/status/")).json()["feed"]
    return status


async def wait_for(rest: httpx.AsyncClient, field: str, value: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while (await feed_status(rest))[field] != value:
        assert time.monotonic() < deadline, f"feed {field} never became {value}"
        await asyncio.sleep(0.05)


async def test_connections_beyond_the_limit_are_closed_with_1013(
    limited: ServerProcess, rest: httpx.AsyncClient
) -> None:
    feeds = [await open_feed(limited) for _ in range(MAX_CONNECTIONS)]
    try:
        for feed in feeds:  # each is really served
            await feed.send({"op": "ping"})
            assert await feed.receive() == {"type": "pong"}
        extra = await open_feed(limited)
        with pytest.raises(ConnectionClosed):
            await extra.receive()
        assert extra.connection.close_code == 1013
        await feeds.pop().connection.close()
        await wait_for(rest, "connections", MAX_CONNECTIONS - 1)
        again = await open_feed(limited)  # a freed place can be taken
        await again.send({"op": "ping"})
        assert await again.receive() == {"type": "pong"}
        feeds.append(again)
    finally:
        for feed in feeds:
            await feed.connection.close()
    await wait_for(rest, "connections", 0)


async def test_subscriptions_beyond_the_limit_are_refused(limited: ServerProcess) -> None:
    feed = await open_feed(limited)
    try:
        four = ["prices", "book.BTC-USDT", "ticker.BTC-USDT", "trades.ETH-BTC"]
        await feed.send({"op": "subscribe", "channels": four})
        answer = await feed.until(lambda m: m["type"] in ("error", "subscribed"))
        assert answer["code"] == "too_many_subscriptions"
        await feed.subscribe("prices", "book.BTC-USDT")
        await feed.subscribe("prices")  # already there: no new place taken
        await feed.subscribe("ticker.BTC-USDT")
        await feed.send({"op": "subscribe", "channels": ["trades.ETH-BTC"]})
        answer = await feed.until(lambda m: m["type"] in ("error", "subscribed"))
        assert answer["code"] == "too_many_subscriptions"
        await feed.send({"op": "unsubscribe", "channels": ["prices"]})
        await feed.until(lambda m: m["type"] == "unsubscribed")
        await feed.subscribe("trades.ETH-BTC")
    finally:
        await feed.connection.close()


async def slow_connection(server: ServerProcess) -> ClientConnection:
    """A client with a tiny receive buffer that will stop reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.ws_port))
    sock.setblocking(False)
    return await connect(f"ws://127.0.0.1:{server.ws_port}/", sock=sock, max_queue=1)


async def churn(connection: ClientConnection, times: int) -> None:
    """Ask for the book again and again: a snapshot each time, piling up unread."""
    for _ in range(times):
        await connection.send(json.dumps({"op": "unsubscribe", "channels": [f"book.{MARKET}"]}))
        await connection.send(json.dumps({"op": "subscribe", "channels": [f"book.{MARKET}"]}))


async def read_all(connection: ClientConnection, feed: Feed, timeout_s: float = 20) -> None:
    """Read (into `feed`) until the connection is closed."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout_s):
            while True:
                await feed.receive(timeout_s)


async def test_a_slow_client_gets_a_fresh_snapshot_and_one_that_stays_slow_is_closed(
    limited: ServerProcess, rest: httpx.AsyncClient
) -> None:
    with limited.client() as admin:
        wallet = funded(admin, ETH="100000", BTC="10000")
    for index in range(300):  # a deep book: every snapshot is large
        await limit(rest, wallet, MARKET, "buy", f"0.0{1000 + index * 7}", "1.000")

    # A falls behind (the server's backlog passes the limit), then reads again.
    slow = await slow_connection(limited)
    a = Feed(slow, binary=False)
    await a.subscribe(f"book.{MARKET}")
    assert slow.transport is not None
    slow.transport.pause_reading()
    for _ in range(2_000):
        await churn(slow, 1)
        await asyncio.sleep(0.02)
        if (await feed_status(rest))["congested"]:
            break
    assert (await feed_status(rest))["congested"] == 1, "the client never fell behind"
    changed = [await limit(rest, wallet, MARKET, "buy", f"0.0{1001 + i * 7}", "1.000")
               for i in range(5)]  # fmt: skip
    assert len(changed) == 5
    depth = (await rest.get(f"/markets/{MARKET}/depth", params={"limit": 1000})).json()
    slow.transport.resume_reading()
    book = await a.book_at(MARKET, depth["sequence"])  # reads the backlog, then a snapshot
    await wait_for(rest, "congested", 0)
    assert book.depth() == {"bids": depth["bids"], "asks": depth["asks"]}
    snapshots = [m for m in a.messages if m["type"] == "book" and m["snapshot"]]
    deltas = [m for m in a.messages if m["type"] == "book" and not m["snapshot"]]
    assert not deltas, "the deltas it missed are replaced by a snapshot"
    assert snapshots[-1]["seq"] == depth["sequence"]
    assert len(snapshots[-1]["bids"]) >= 305
    await slow.close()

    # B never reads again: past 16 times the backlog limit it is closed with 1008.
    stuck = await slow_connection(limited)
    b = Feed(stuck, binary=False)
    await b.subscribe(f"book.{MARKET}")
    assert stuck.transport is not None
    stuck.transport.pause_reading()
    before = await feed_status(rest)
    with contextlib.suppress(ConnectionClosed):
        for _ in range(200):
            await churn(stuck, 5)
            if (await feed_status(rest))["connections"] < before["connections"]:
                break
    await wait_for(rest, "connections", before["connections"] - 1)
    stuck.transport.resume_reading()
    await read_all(stuck, b)
    assert stuck.close_code == 1008, (stuck.close_code, stuck.close_reason)
    # Meanwhile the feed served others as usual.
    other = await open_feed(limited)
    await other.subscribe(f"book.{MARKET}")
    assert other.books[MARKET].sequence == depth["sequence"]
    await other.connection.close()


async def test_the_book_sequence_never_goes_back_across_a_kill(
    limited: ServerProcess, rest: httpx.AsyncClient
) -> None:
    with limited.client() as admin:
        wallet = funded(admin, ETH="1000")
    await limit(rest, wallet, MARKET, "sell", "0.09000", "2.000")
    feed = await open_feed(limited)
    await feed.subscribe(f"book.{MARKET}")
    before = feed.books[MARKET]
    await feed.connection.close()
    limited.kill()
    limited.start()
    feed = await open_feed(limited)
    await feed.subscribe(f"book.{MARKET}")
    after = feed.books[MARKET]
    assert after.sequence >= before.sequence
    assert after.depth() == before.depth()  # the committed book, rebuilt
    start = after.sequence
    await limit(rest, wallet, MARKET, "sell", "0.09100", "1.000")
    delta = await feed.until(lambda m: m["type"] == "book" and not m["snapshot"])
    assert delta["seq"] == start + 1
    assert delta["asks"] == [["0.09100", "1.000"]]
    await feed.connection.close()
