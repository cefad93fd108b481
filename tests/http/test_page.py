"""The market page at `/`: served with the feed's port, and driven in headless Chromium.

Chromium is driven over the Chrome DevTools Protocol (a websocket of JSON commands). The
server is shared by the session, so each test trades in a price band of its own and the
`fund` fixture cancels what is left at teardown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from strongroom.http.resources.page import PLACEHOLDER, template
from tests.http.conftest import Fund
from tests.server import ServerProcess, free_port
from tests.support import assert_quiet, order

DEADLINE_S = 20.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What the page shows, read from the DOM the way a person would read it.
READ_PAGE = """(() => {
  if (!document.getElementById("status")) return null; // not (yet) the page
  const text = (id) => document.getElementById(id).textContent;
  const levels = (table) => [...document.querySelectorAll(`#${table} tbody tr`)].map(
    (tr) => [tr.dataset.price, tr.querySelector(".price").textContent,
             tr.querySelector(".quantity").textContent]);
  return {
    status: document.getElementById("status").dataset.state,
    status_text: text("status"),
    seq: text("seq"),
    market: document.getElementById("market").value,
    markets: [...document.querySelectorAll("#market option")].map((o) => o.value),
    bids: levels("bids"),
    asks: levels("asks"),
    trades: [...document.querySelectorAll("#trades tr")].map((tr) => ({
      id: tr.dataset.tradeId,
      price: tr.querySelector(".price").textContent,
      quantity: tr.querySelector(".quantity").textContent,
      side: tr.querySelector(".side").textContent,
    })),
    ticker: {
      last: text("ticker-last"), bid: text("ticker-bid"),
      ask: text("ticker-ask"), volume: text("ticker-volume"),
    },
    feed: window.strongroomFeed ? window.strongroomFeed.state() : null,
  };
})()"""

Page = dict[str, Any]


# ---- Chromium ----


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


@dataclass
class Browser:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def wait_for_devtools(process: subprocess.Popen[bytes], profile: Path, log_path: Path) -> int:
    """The port Chromium chose (`--remote-debugging-port=0`), from its DevToolsActivePort."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited ({process.returncode}):\n{log_path.read_text()}")
        with contextlib.suppress(OSError, ValueError, IndexError, httpx.HTTPError):
            port = int(active.read_text().splitlines()[0])
            httpx.get(f"http://127.0.0.1:{port}/json/version", timeout=2.0, trust_env=False)
            return port
        time.sleep(0.1)
    raise RuntimeError(f"chromium's DevTools not up in 30 s:\n{log_path.read_text()}")


def stop_chromium(process: subprocess.Popen[bytes]) -> None:
    """Chromium and the helpers it started (its own process group, made for it here)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set and no chromium (or chromium-browser) is on PATH")
        pytest.skip("no chromium (or chromium-browser) on PATH")
    base = tmp_path_factory.mktemp("chromium")
    profile = base / "profile"
    log_path = base / "chromium.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu",
                f"--user-data-dir={profile}", "--remote-debugging-port=0",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        port = wait_for_devtools(process, profile, log_path)
        yield Browser(process, port, log_path)
    finally:
        stop_chromium(process)


# ---- the DevTools protocol ----


class CdpError(Exception):
    pass


@dataclass
class Cdp:
    """One page target: commands by id, events kept for diagnostics."""

    socket: ClientConnection
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                if "id" in message:
                    future = self.pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    self._event(message.get("method", ""), message.get("params", {}))
        except ConnectionClosed:
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(CdpError("DevTools connection closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            words = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.console.append(f"console.{params['type']}: {' '.join(words)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            description = details.get("exception", {}).get("description", details.get("text"))
            self.console.append(f"exception: {description}")
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(f"log.{entry['level']}: {entry['text']} {entry.get('url', '')}")

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[command_id] = future
        await self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        message = await asyncio.wait_for(future, 30.0)
        if "error" in message:
            raise CdpError(f"{method}: {message['error']}")
        result: dict[str, Any] = message.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_tail(self) -> str:
        return "\n".join(self.console[-30:])


@contextlib.asynccontextmanager
async def open_page(browser: Browser) -> AsyncIterator[Cdp]:
    """A fresh tab, closed afterwards."""
    async with httpx.AsyncClient(base_url=browser.http, timeout=10.0, trust_env=False) as client:
        response = await client.put("/json/new?about:blank")
        response.raise_for_status()
        target = response.json()
        try:
            async with connect(
                target["webSocketDebuggerUrl"], proxy=None, max_size=64 * 2**20
            ) as socket:
                cdp = Cdp(socket)
                cdp.start()
                for domain in ("Page", "Runtime", "Log"):
                    await cdp.call(f"{domain}.enable")
                yield cdp
        finally:
            with contextlib.suppress(httpx.HTTPError):
                await client.get(f"/json/close/{target['id']}")


async def until(
    cdp: Cdp, what: str, predicate: Callable[[Page], bool], timeout_s: float = DEADLINE_S
) -> Page:
    """Poll the page until `predicate` holds of what it shows."""
    deadline = time.monotonic() + timeout_s
    while True:
        page: Page | None = await cdp.evaluate(READ_PAGE)
        if page is not None and predicate(page):
            return page
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not shown within {timeout_s} s\npage: {json.dumps(page, indent=1)}\n"
                f"console:\n{cdp.console_tail()}"
            )
        await asyncio.sleep(0.1)


async def load(cdp: Cdp, server: ServerProcess, market: str = "BTC-USDT") -> Page:
    """Open the page, wait for the feed's first snapshot of `market`."""
    await cdp.call("Page.navigate", url=f"{server.base_url}/")
    page = await until(cdp, "the market list", lambda p: market in p["markets"])
    if page["market"] != market:
        await select(cdp, market)
    return await until(
        cdp,
        f"a live {market} book",
        lambda p: (
            p["status"] == "connected"
            and p["market"] == market
            and p["feed"]["market"] == market
            and not p["feed"]["awaitingSnapshot"]
        ),
    )


async def select(cdp: Cdp, market: str) -> None:
    await cdp.evaluate(
        f"""(() => {{ const s = document.getElementById("market"); s.value = {json.dumps(market)};
        s.dispatchEvent(new Event("change")); }})()"""
    )


def level(price: str, quantity: str) -> list[str]:
    return [price, price, quantity]  # data-price, the price cell, the quantity cell


def shows(side: str, price: str, quantity: str) -> Callable[[Page], bool]:
    return lambda page: level(price, quantity) in page[side]


def priced(page: Page, side: str, price: str) -> bool:
    return any(row[0] == price for row in page[side])


def assert_sorted(page: Page) -> None:
    bids = [Decimal(row[0]) for row in page["bids"]]
    asks = [Decimal(row[0]) for row in page["asks"]]
    assert bids == sorted(bids, reverse=True), page["bids"]
    assert asks == sorted(asks), page["asks"]
    assert all(row[0] == row[1] for row in page["bids"] + page["asks"])


async def screenshot(cdp: Cdp, path: Path) -> bytes:
    result = await cdp.call("Page.captureScreenshot", format="png")
    image = base64.b64decode(result["data"])
    path.write_bytes(image)
    return image


# ---- tests ----


def test_the_page_is_served_with_the_feed_port_and_nothing_from_elsewhere(
    server: ServerProcess,
) -> None:
    response = httpx.get(f"{server.base_url}/", timeout=30.0, trust_env=False)  # no token
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self' ws: wss:" in policy
    html = response.text
    assert "__FEED_PORT__" not in html
    assert f'const FEED_PORT = "{server.ws_port}";' in html
    assert '<meta charset="utf-8">' in html
    assert "<title>strongroom — markets</title>" in html
    for marker in ('id="bids"', 'id="asks"', 'id="trades"', 'id="market"', 'id="status"'):
        assert marker in html
    assert not re.findall(r"https?://", html), "no absolute URLs: nothing from other hosts"
    assert not re.findall(r"""(?:src|href|action)\s*=\s*["']?//|url\(\s*["']?//""", html)
    assert not re.findall(r"<script[^>]*\bsrc\s*=", html), "all script is inline"


@pytest.mark.asyncio(loop_scope="function")
async def test_the_page_shows_the_book_trades_and_ticker_live_from_the_feed(
    server: ServerProcess, admin: httpx.Client, fund: Fund, browser: Browser, tmp_path: Path
) -> None:
    assert_quiet(admin, "BTC-USDT", "12345.00", "12400.00")
    buyer = fund(USDT="100000")
    seller = fund(BTC="5")
    resting_bid = order(admin, buyer, side="buy", price="12345.67", quantity="0.0123")
    resting_ask = order(admin, seller, side="sell", price="12398.76", quantity="0.0321")
    assert resting_bid["status"] == resting_ask["status"] == "open"

    async with open_page(browser) as cdp:
        page = await load(cdp, server)
        page = await until(
            cdp,
            "the resting orders from the snapshot",
            lambda p: (
                shows("bids", "12345.67", "0.0123")(p) and shows("asks", "12398.76", "0.0321")(p)
            ),
        )
        assert_sorted(page)
        first_seq = int(page["seq"])

        # A new level, after the page loaded: it can only have come over the feed.
        top = order(admin, buyer, side="buy", price="12346.78", quantity="0.0456")
        page = await until(cdp, "a new bid level", shows("bids", "12346.78", "0.0456"))
        prices = [row[0] for row in page["bids"]]
        assert prices.index("12346.78") < prices.index("12345.67")
        assert_sorted(page)

        # A level that grows, then one that goes away (quantity "0" in a delta).
        order(admin, buyer, side="buy", price="12345.67", quantity="0.0100")
        await until(cdp, "a level grown", shows("bids", "12345.67", "0.0223"))
        assert admin.delete(f"/orders/{top['id']}/").status_code == 200
        await until(cdp, "a canceled level gone", lambda p: not priced(p, "bids", "12346.78"))

        # A trade: the seller takes part of the best bid.
        taker = order(
            admin, seller, side="sell", price="12345.67", quantity="0.0050", time_in_force="IOC"
        )
        assert taker["status"] == "filled", taker
        trade = admin.get("/markets/BTC-USDT/trades", params={"limit": 1}).json()[0]
        assert (trade["price"], trade["quantity"]) == ("12345.67", "0.0050")
        page = await until(
            cdp,
            "the trade, the smaller bid and the ticker",
            lambda p: (
                bool(p["trades"])
                and p["trades"][0]["id"] == str(trade["id"])
                and shows("bids", "12345.67", "0.0173")(p)
                and p["ticker"]["last"] == "12345.67"
            ),
        )
        assert page["trades"][0] == {
            "id": str(trade["id"]),
            "price": "12345.67",
            "quantity": "0.0050",
            "side": "sell",
        }
        assert shows("asks", "12398.76", "0.0321")(page)
        assert_sorted(page)
        feed = page["feed"]
        assert int(page["seq"]) >= first_seq + 4, page["seq"]  # new level, grow, remove, fill
        assert (feed["snapshots"], feed["gaps"], feed["errors"]) == (1, 0, []), feed

        image = await screenshot(cdp, tmp_path / "page.png")
        assert image.startswith(PNG_SIGNATURE) and len(image) > 1000


@pytest.mark.asyncio(loop_scope="function")
async def test_the_page_follows_a_change_of_market(
    server: ServerProcess, admin: httpx.Client, fund: Fund, browser: Browser, tmp_path: Path
) -> None:
    assert_quiet(admin, "ETH-USDT", "1234.00", "1240.00")
    assert_quiet(admin, "BTC-USDT", "12345.00", "12400.00")
    wallet = fund(USDT="100000")
    order(admin, wallet, "BTC-USDT", side="buy", price="12350.01", quantity="0.0100")
    order(admin, wallet, "ETH-USDT", side="buy", price="1234.56", quantity="0.123")

    async with open_page(browser) as cdp:
        await load(cdp, server, "BTC-USDT")
        await until(cdp, "the BTC-USDT bid", shows("bids", "12350.01", "0.0100"))

        await select(cdp, "ETH-USDT")
        page = await until(
            cdp,
            "the ETH-USDT book instead",
            lambda p: (
                p["feed"]["market"] == "ETH-USDT"
                and shows("bids", "1234.56", "0.123")(p)
                and not priced(p, "bids", "12350.01")
            ),
        )
        assert await cdp.evaluate("location.hash") == "#ETH-USDT"

        # Live on the new market; and nothing of the old one arrives any more.
        order(admin, wallet, "ETH-USDT", side="buy", price="1235.67", quantity="0.456")
        order(admin, wallet, "BTC-USDT", side="buy", price="12350.02", quantity="0.0100")
        page = await until(cdp, "a live ETH-USDT bid", shows("bids", "1235.67", "0.456"))
        await asyncio.sleep(0.5)
        page = await cdp.evaluate(READ_PAGE)
        assert not priced(page, "bids", "12350.02") and not priced(page, "bids", "12350.01")
        assert page["feed"]["gaps"] == 0 and page["feed"]["errors"] == [], page["feed"]
        await screenshot(cdp, tmp_path / "eth.png")


@pytest.mark.asyncio(loop_scope="function")
async def test_a_gap_in_seq_brings_a_fresh_snapshot(
    server: ServerProcess, admin: httpx.Client, fund: Fund, browser: Browser
) -> None:
    assert_quiet(admin, "BTC-USDT", "12345.00", "12400.00")
    wallet = fund(USDT="100000")
    order(admin, wallet, side="buy", price="12360.01", quantity="0.0100")

    async with open_page(browser) as cdp:
        await load(cdp, server)
        page = await until(cdp, "the resting bid", shows("bids", "12360.01", "0.0100"))
        seq = page["feed"]["seq"]
        # A delta the server never sent takes the page's seq one ahead of the feed's, so the
        # feed's next real delta looks like a gap: the page must resubscribe and start over.
        await cdp.evaluate(
            "window.strongroomFeed.inject("
            + json.dumps(
                {
                    "type": "book",
                    "market": "BTC-USDT",
                    "snapshot": False,
                    "seq": seq + 1,
                    "bids": [["1.00", "9.9999"]],
                    "asks": [],
                }
            )
            + ")"
        )
        await until(cdp, "the injected level", shows("bids", "1.00", "9.9999"))
        order(admin, wallet, side="buy", price="12360.02", quantity="0.0200")
        page = await until(
            cdp,
            "a fresh snapshot without the injected level",
            lambda p: (
                p["feed"]["gaps"] == 1
                and p["feed"]["snapshots"] == 2
                and not p["feed"]["awaitingSnapshot"]
                and shows("bids", "12360.02", "0.0200")(p)
                and not priced(p, "bids", "1.00")
            ),
        )
        assert shows("bids", "12360.01", "0.0100")(page)
        assert_sorted(page)


# ---- the page against a scripted feed: what the real one rarely does on demand ----

FAKE_MARKETS = [
    {"id": "BTC-USDT", "base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.0001"},
    {"id": "ETH-USDT", "base": "ETH", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.001"},
]
BTC_CHANNELS = ["book.BTC-USDT", "trades.BTC-USDT", "ticker.BTC-USDT"]
ETH_CHANNELS = ["book.ETH-USDT", "trades.ETH-USDT", "ticker.ETH-USDT"]


@contextlib.contextmanager
def page_server(feed_port: int) -> Iterator[str]:
    """The shipped page (pointing at `feed_port`) and a fixed `/markets/`, over plain HTTP."""
    html = template().replace(PLACEHOLDER, str(feed_port)).encode()
    markets = json.dumps(FAKE_MARKETS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/":
                body, kind = html, "text/html; charset=utf-8"
            elif self.path == "/markets/":
                body, kind = markets, "application/json"
            elif self.path.startswith("/markets/"):
                body, kind = b"[]", "application/json"  # no trade history
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def next_op(connection: ServerConnection) -> dict[str, Any]:
    """The page's next request, pings aside."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(connection.recv(), 10.0))
        if message.get("op") != "ping":
            return message


async def send(connection: ServerConnection, **message: Any) -> None:
    await connection.send(json.dumps(message))


def book(seq: int, bids: list[list[str]], asks: list[list[str]], snapshot: bool) -> dict[str, Any]:
    return {
        "type": "book",
        "market": "BTC-USDT",
        "snapshot": snapshot,
        "seq": seq,
        "bids": bids,
        "asks": asks,
    }


def prices(page: Page, side: str) -> list[str]:
    return [row[0] for row in page[side]]


@pytest.mark.asyncio(loop_scope="function")
async def test_the_page_against_a_scripted_feed(browser: Browser, tmp_path: Path) -> None:
    feed_port = free_port()
    connections: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(connection: ServerConnection) -> None:
        await connections.put(connection)
        await connection.wait_closed()

    with page_server(feed_port) as base_url:
        async with open_page(browser) as cdp:
            # No feed yet: the page says so, and keeps trying.
            await cdp.call("Page.navigate", url=f"{base_url}/")
            page = await until(cdp, "disconnected", lambda p: p["status"] == "disconnected")
            assert "retrying" in page["status_text"]
            assert page["market"] == "BTC-USDT" and page["bids"] == page["asks"] == []

            async with serve(handler, "127.0.0.1", feed_port):
                first = await asyncio.wait_for(connections.get(), DEADLINE_S)
                assert await next_op(first) == {"op": "subscribe", "channels": BTC_CHANNELS}
                await send(first, type="subscribed", channels=BTC_CHANNELS)
                # Sorted by value, not by text ("9.50" < "10.00" < "100.00").
                bids = [["9.50", "1.0000"], ["100.00", "0.5000"], ["10.00", "2.0000"]]
                asks = [["1000.00", "3.0000"], ["101.50", "1.0000"], ["200.00", "1.0000"]]
                await send(first, **book(10, bids, asks, snapshot=True))
                page = await until(cdp, "the snapshot", lambda p: p["seq"] == "10")
                assert page["status"] == "connected"
                assert prices(page, "bids") == ["100.00", "10.00", "9.50"]
                assert prices(page, "asks") == ["101.50", "200.00", "1000.00"]

                # A delta: "0" removes (even written "10.0"), others add or change.
                delta = [["10.0", "0"], ["99.99", "0.2500"], ["100.00", "0.7500"]]
                await send(first, **book(11, delta, [["101.50", "0"]], snapshot=False))
                page = await until(cdp, "the delta", lambda p: p["seq"] == "11")
                assert page["bids"] == [
                    level("100.00", "0.7500"),
                    level("99.99", "0.2500"),
                    level("9.50", "1.0000"),
                ]
                assert prices(page, "asks") == ["200.00", "1000.00"]

                # Ticker fields may be null; trades newest first, at most 50, this market's.
                ticker = {"last": None, "bid": "100.00", "ask": "200.00", "volume_24h": "0"}
                await send(first, type="ticker", market="BTC-USDT", ts=1, **ticker)
                for n in range(1, 61):
                    side = "buy" if n % 2 else "sell"
                    trade = {"price": "100.00", "quantity": f"0.{n:04d}", "taker_side": side}
                    await send(first, type="trade", market="BTC-USDT", id=n, ts=n, **trade)
                await send(first, type="trade", market="ETH-USDT", id=99, ts=99, **trade)
                page = await until(
                    cdp,
                    "60 trades",
                    lambda p: [t["id"] for t in p["trades"][:1]] == ["60"],
                )
                assert [t["id"] for t in page["trades"]] == [str(n) for n in range(60, 10, -1)]
                assert page["trades"][0] == {
                    "id": "60",
                    "price": "100.00",
                    "quantity": "0.0060",
                    "side": "sell",
                }
                assert page["ticker"] == {
                    "last": "—",
                    "bid": "100.00",
                    "ask": "200.00",
                    "volume": "0",
                }

                # A gap: the page asks for the book again, and takes the new snapshot whole.
                await send(first, **book(13, [["1.00", "1.0000"]], [], snapshot=False))
                assert await next_op(first) == {"op": "unsubscribe", "channels": ["book.BTC-USDT"]}
                assert await next_op(first) == {"op": "subscribe", "channels": ["book.BTC-USDT"]}
                await send(first, **book(12, [["1.00", "1.0000"]], [], snapshot=False))  # stale
                await send(first, **book(20, [["50.00", "1.0000"]], [], snapshot=True))
                page = await until(cdp, "the new snapshot", lambda p: p["seq"] == "20")
                assert page["bids"] == [level("50.00", "1.0000")] and page["asks"] == []
                assert page["feed"]["gaps"] == 1 and page["feed"]["snapshots"] == 2

                # An error from the feed is shown; the connection stays.
                await send(first, type="error", code="bad_request", message="nope")
                await until(
                    cdp,
                    "the error",
                    lambda p: (
                        p["feed"]["errors"]
                        == [{"type": "error", "code": "bad_request", "message": "nope"}]
                    ),
                )
                notice = await cdp.evaluate('document.getElementById("notice").textContent')
                assert notice == "feed error: bad_request: nope"

                # The feed goes away: the page reconnects and subscribes again.
                await first.close()
                second = await asyncio.wait_for(connections.get(), DEADLINE_S)
                assert await next_op(second) == {"op": "subscribe", "channels": BTC_CHANNELS}
                await send(second, **book(30, [["51.00", "1.0000"]], [], snapshot=True))
                page = await until(cdp, "the book after reconnecting", lambda p: p["seq"] == "30")
                assert page["status"] == "connected"
                assert page["bids"] == [level("51.00", "1.0000")]

                # Another market: unsubscribe the old channels, subscribe the new.
                await select(cdp, "ETH-USDT")
                assert await next_op(second) == {"op": "unsubscribe", "channels": BTC_CHANNELS}
                assert await next_op(second) == {"op": "subscribe", "channels": ETH_CHANNELS}
                page = await until(
                    cdp,
                    "an empty ETH-USDT",
                    lambda p: p["market"] == "ETH-USDT" and p["seq"] == "—" and not p["bids"],
                )
                assert page["asks"] == [] and page["trades"] == []
                await send(second, **book(31, [["52.00", "1.0000"]], [], snapshot=True))  # BTC
                await asyncio.sleep(0.3)
                assert (await cdp.evaluate(READ_PAGE))["bids"] == []
                await screenshot(cdp, tmp_path / "scripted.png")
