"""SPEC §2 and §5 market data: the market list, depth and trades (public, no token)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from tests.http.conftest import Fund
from tests.server import ServerProcess
from tests.support import assert_problem, assert_quiet, band, depth, order


@pytest.fixture
def public(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        yield client


# ---------------------------------------------------------------- markets


def test_markets_lists_the_built_in_markets(public: httpx.Client) -> None:
    response = public.get("/markets/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    markets = {market["id"]: market for market in response.json()}
    expected = {
        "BTC-USDT": (1, "BTC", "USDT", "0.01", "0.0001"),
        "ETH-USDT": (2, "ETH", "USDT", "0.01", "0.001"),
        "ETH-BTC": (3, "ETH", "BTC", "0.00001", "0.001"),
    }
    assert set(expected) <= set(markets)
    for symbol, (market_id, base, quote, tick, lot) in expected.items():
        market = markets[symbol]
        assert {
            key: market[key]
            for key in ("id", "market_id", "base", "quote", "tick_size", "lot_size")
        } == {
            "id": symbol,
            "market_id": market_id,
            "base": base,
            "quote": quote,
            "tick_size": tick,
            "lot_size": lot,
        }
        assert Decimal(market["maker_fee"]) == Decimal("0.001")
        assert Decimal(market["taker_fee"]) == Decimal("0.002")


# ---------------------------------------------------------------- depth


def test_depth_aggregates_levels_best_first(
    public: httpx.Client, admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(public, "ETH-USDT", "2600.00", "2700.00")
    first_seller = fund(ETH="1")
    second_seller = fund(ETH="1")
    buyer = fund(USDT="5000")
    order(admin, first_seller, "ETH-USDT", side="sell", price="2660.00", quantity="0.050")
    order(admin, first_seller, "ETH-USDT", side="sell", price="2650.00", quantity="0.100")
    order(admin, second_seller, "ETH-USDT", side="sell", price="2650.00", quantity="0.200")
    order(admin, buyer, "ETH-USDT", side="buy", price="2610.00", quantity="0.100")
    order(admin, buyer, "ETH-USDT", side="buy", price="2620.00", quantity="0.300")
    order(admin, buyer, "ETH-USDT", side="buy", price="2620.00", quantity="0.001")

    book = depth(public, "ETH-USDT")
    assert set(book) == {"market", "sequence", "bids", "asks"}
    assert book["market"] == "ETH-USDT"
    assert band(book, "2600.00", "2700.00") == {
        "bids": [["2620.00", "0.301"], ["2610.00", "0.100"]],
        "asks": [["2650.00", "0.300"], ["2660.00", "0.050"]],
    }
    # Whole book: bids strictly descending, asks strictly ascending, never crossed.
    bid_prices = [Decimal(price) for price, _ in book["bids"]]
    ask_prices = [Decimal(price) for price, _ in book["asks"]]
    assert bid_prices == sorted(set(bid_prices), reverse=True)
    assert ask_prices == sorted(set(ask_prices))
    assert not bid_prices or not ask_prices or bid_prices[0] < ask_prices[0]


def test_depth_sequence_rises_as_the_book_changes(
    public: httpx.Client, admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(public, "ETH-USDT", "2750.00", "2750.00")
    seller = fund(ETH="1")
    buyer = fund(USDT="1000")
    start = depth(public, "ETH-USDT")["sequence"]
    assert isinstance(start, int)
    assert depth(public, "ETH-USDT")["sequence"] == start  # reading changes nothing

    maker = order(admin, seller, "ETH-USDT", side="sell", price="2750.00", quantity="0.100")
    placed = depth(public, "ETH-USDT")["sequence"]
    assert placed > start
    order(admin, buyer, "ETH-USDT", side="buy", price="2750.00", quantity="0.040")
    traded = depth(public, "ETH-USDT")
    assert traded["sequence"] > placed
    assert band(traded, "2750.00", "2750.00")["asks"] == [["2750.00", "0.060"]]
    assert admin.delete(f"/orders/{maker['id']}/").status_code == 200
    canceled = depth(public, "ETH-USDT")
    assert canceled["sequence"] > traded["sequence"]
    assert band(canceled, "2750.00", "2750.00") == {"bids": [], "asks": []}


def test_depth_limit_is_respected(public: httpx.Client, admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(public, "ETH-BTC", "0.01000", "0.01003")
    seller = fund(ETH="1")
    buyer = fund(BTC="1")
    for price in ("0.01002", "0.01003"):
        order(admin, seller, "ETH-BTC", side="sell", price=price, quantity="0.010")
    for price in ("0.01000", "0.01001"):
        order(admin, buyer, "ETH-BTC", side="buy", price=price, quantity="0.010")

    full = depth(public, "ETH-BTC")
    assert len(full["bids"]) >= 2
    assert len(full["asks"]) >= 2
    for limit in (1, 2):
        limited = depth(public, "ETH-BTC", limit)
        assert limited["bids"] == full["bids"][:limit]
        assert limited["asks"] == full["asks"][:limit]
    default = public.get("/markets/ETH-BTC/depth").json()
    assert default["bids"] == full["bids"][:50]
    assert default["asks"] == full["asks"][:50]


@pytest.mark.parametrize("limit", ["0", "5000", "-1", "abc", "1.5", "99999999999999999999999"])
def test_depth_limit_is_validated(public: httpx.Client, limit: str) -> None:
    response = public.get("/markets/BTC-USDT/depth", params={"limit": limit})
    problem = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["limit"]


@pytest.mark.parametrize("path", ["/markets/NOPE-USDT/depth", "/markets/btc-usdt/depth"])
def test_depth_of_an_unknown_market_is_404(public: httpx.Client, path: str) -> None:
    assert_problem(public.get(path), 404, "not_found")


# ---------------------------------------------------------------- trades


def test_trades_newest_first(public: httpx.Client, admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(public, "ETH-USDT", "2800.00", "2800.01")
    seller = fund(ETH="1")
    buyer = fund(USDT="1000")
    order(admin, seller, "ETH-USDT", side="sell", price="2800.00", quantity="0.010")
    order(admin, buyer, "ETH-USDT", side="buy", price="2800.00", quantity="0.010")
    order(admin, buyer, "ETH-USDT", side="buy", price="2800.01", quantity="0.020")
    order(admin, seller, "ETH-USDT", side="sell", price="2800.00", quantity="0.020")

    response = public.get("/markets/ETH-USDT/trades", params={"limit": 2})
    assert response.status_code == 200, response.text
    newest, older = response.json()
    for trade in (newest, older):
        assert set(trade) == {"id", "price", "quantity", "funds", "taker_side", "created_at"}
        assert isinstance(trade["id"], int)
        datetime.fromisoformat(trade["created_at"].replace("Z", "+00:00"))
    assert newest["id"] > older["id"]
    assert {key: newest[key] for key in ("price", "quantity", "funds", "taker_side")} == {
        "price": "2800.01",
        "quantity": "0.020",
        "funds": "56.000200",
        "taker_side": "sell",
    }
    assert {key: older[key] for key in ("price", "quantity", "funds", "taker_side")} == {
        "price": "2800.00",
        "quantity": "0.010",
        "funds": "28.000000",
        "taker_side": "buy",
    }
    assert newest["created_at"] >= older["created_at"]
    everything = public.get("/markets/ETH-USDT/trades").json()
    assert everything[:2] == [newest, older]
    ids = [trade["id"] for trade in everything]
    assert ids == sorted(ids, reverse=True)
    assert len(public.get("/markets/ETH-USDT/trades", params={"limit": 1}).json()) == 1


@pytest.mark.parametrize("limit", ["0", "5000", "x"])
def test_trades_limit_is_validated(public: httpx.Client, limit: str) -> None:
    response = public.get("/markets/BTC-USDT/trades", params={"limit": limit})
    problem = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["limit"]


def test_trades_of_an_unknown_market_is_404(public: httpx.Client) -> None:
    assert_problem(public.get("/markets/DOGE-USDT/trades"), 404, "not_found")
