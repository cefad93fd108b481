"""The feed server in this process, on a real socket, without a database: what needs
no trading core (settings, negotiation) and what is easier to drive from inside."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import cbor2
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from strongroom.config import DEFAULT
from strongroom.http.auth import Principal
from strongroom.http.feed import FeedServer, FeedSettings
from strongroom.http.market_data import MarketData

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def no_token(token: str) -> Principal | None:
    return None


async def started(**settings: object) -> FeedServer:
    feed = FeedServer(
        DEFAULT,
        MarketData(DEFAULT),
        FeedSettings(port=0, **settings),  # type: ignore[arg-type]
        no_token,
        lambda principal, wallet_id: False,
    )
    await feed.start()
    return feed


@pytest_asyncio.fixture(loop_scope="function")
async def compressed() -> AsyncIterator[FeedServer]:
    feed = await started(compression=True)
    yield feed
    await feed.stop()


async def test_compression_is_negotiated_when_configured(compressed: FeedServer) -> None:
    async with connect(f"ws://127.0.0.1:{compressed.port}/") as connection:
        assert connection.response is not None
        assert connection.response.headers["Sec-WebSocket-Extensions"].startswith(
            "permessage-deflate"
        )
        await connection.send(json.dumps({"op": "subscribe", "channels": ["book.BTC-USDT"]}))
        assert json.loads(await connection.recv())["type"] == "subscribed"
        snapshot = json.loads(await connection.recv())
        assert snapshot["snapshot"] is True and snapshot["seq"] == 0


async def test_subprotocols_cbor_json_or_none() -> None:
    feed = await started()
    try:
        url = f"ws://127.0.0.1:{feed.port}/"
        for offered, chosen in ((["cbor"], "cbor"), (["json"], "json"), (None, None),
                                (["xml", "cbor"], "cbor"), (["xml"], None)):  # fmt: skip
            async with connect(url, subprotocols=offered) as connection:  # type: ignore[arg-type]
                assert connection.subprotocol == chosen
                ping = {"op": "ping"}
                await connection.send(cbor2.dumps(ping))  # either encoding is accepted
                answer = await connection.recv()
                if chosen == "cbor":
                    assert isinstance(answer, bytes) and cbor2.loads(answer) == {"type": "pong"}
                else:
                    assert isinstance(answer, str) and json.loads(answer) == {"type": "pong"}
        for _ in range(100):  # the server forgets a connection once its handler ends
            if feed.statistics()["connections"] == 0:
                break
            await asyncio.sleep(0.01)
        assert feed.statistics()["connections"] == 0
    finally:
        await feed.stop()


async def test_stop_closes_connections_as_going_away() -> None:
    feed = await started()
    connection = await connect(f"ws://127.0.0.1:{feed.port}/")
    await feed.stop()
    await connection.wait_closed()
    assert connection.close_code == 1001
