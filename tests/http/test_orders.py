"""SPEC §3 and §5 orders over real HTTP: matching, holds, fees, order types, idempotency.

The server is shared by the whole session, so every test trades in its own price band
(checked empty first) and cancels what it left resting when it ends.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx

from tests.http.conftest import Fund
from tests.support import (
    assert_problem,
    assert_quiet,
    balances,
    band,
    deposit,
    depth,
    order,
    place,
)


def fetch(client: httpx.Client, order_id: int) -> dict[str, Any]:
    response = client.get(f"/orders/{order_id}/")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def held(client: httpx.Client, wallet_id: str, currency: str) -> tuple[str, str]:
    """(available_balance, pending_amount); also checks amount = available + pending."""
    row = balances(client, wallet_id)[currency]
    places = len(row["amount"].partition(".")[2])
    total = Decimal(row["available_balance"]) + Decimal(row["pending_amount"])
    assert row["amount"] == f"{total:.{places}f}", row
    return row["available_balance"], row["pending_amount"]


def last_trade(client: httpx.Client, market: str) -> dict[str, Any] | None:
    trades = client.get(f"/markets/{market}/trades", params={"limit": 1}).json()
    return trades[0] if trades else None


ORDER_FIELDS = {
    "id",
    "wallet_id",
    "market",
    "side",
    "type",
    "price",
    "quantity",
    "filled_quantity",
    "remaining_quantity",
    "average_price",
    "status",
}


# ---------------------------------------------------------------- maker / taker settlement


def test_maker_sell_then_crossing_taker_buy_settles_exactly(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "43000.00", "43400.00")
    seller = fund(BTC="1")
    buyer = fund(USDT="10000")

    maker = order(admin, seller, side="sell", price="43210.57", quantity="0.1234")
    assert set(maker) >= ORDER_FIELDS
    assert isinstance(maker["id"], int)
    assert {key: maker[key] for key in ORDER_FIELDS - {"id"}} == {
        "wallet_id": seller,
        "market": "BTC-USDT",
        "side": "sell",
        "type": "limit",
        "price": "43210.57",
        "quantity": "0.1234",
        "filled_quantity": "0.0000",
        "remaining_quantity": "0.1234",
        "average_price": None,
        "status": "open",
    }
    assert maker["time_in_force"] == "GTC"
    assert maker["post_only"] is False
    # The sell holds its base at acceptance.
    assert held(admin, seller, "BTC") == ("0.87660000", "0.12340000")

    taker = order(admin, buyer, side="buy", price="43300.00", quantity="0.2000")
    assert taker["status"] == "open"
    assert taker["price"] == "43300.00"
    assert taker["filled_quantity"] == "0.1234"
    assert taker["remaining_quantity"] == "0.0766"
    assert taker["average_price"] is not None
    assert Decimal(taker["average_price"]) == Decimal("43210.57")
    assert taker["funds"] == "5332.184338"

    # Seller (maker, 0.10 %): 5332.184338 - floor(5.332184338) = 5326.852154 USDT.
    assert held(admin, seller, "BTC") == ("0.87660000", "0.00000000")
    assert held(admin, seller, "USDT") == ("5326.852154", "0.000000")
    # Buyer (taker, 0.20 %): 0.1234 - 0.0002468 BTC. Held: 8660 at 43300.00, 5332.184338
    # paid; still held = 0.0766 x 43300 (3316.78) + price improvement 0.1234 x 89.43
    # (11.035662) = 3327.815662.
    assert held(admin, buyer, "BTC") == ("0.12315320", "0.00000000")
    assert held(admin, buyer, "USDT") == ("1340.000000", "3327.815662")

    filled = fetch(admin, maker["id"])
    assert filled["status"] == "filled"
    assert filled["filled_quantity"] == "0.1234"
    assert filled["remaining_quantity"] == "0.0000"
    assert Decimal(filled["average_price"]) == Decimal("43210.57")

    trade = last_trade(admin, "BTC-USDT")
    assert trade is not None
    assert {key: trade[key] for key in ("price", "quantity", "funds", "taker_side")} == {
        "price": "43210.57",
        "quantity": "0.1234",
        "funds": "5332.184338",
        "taker_side": "buy",
    }
    assert band(depth(admin, "BTC-USDT"), "43000.00", "43400.00") == {
        "bids": [["43300.00", "0.0766"]],
        "asks": [],
    }

    # Cancel releases the whole rest of the hold, price improvement included.
    canceled = admin.delete(f"/orders/{taker['id']}/")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["filled_quantity"] == "0.1234"
    assert held(admin, buyer, "USDT") == ("4667.815662", "0.000000")
    assert band(depth(admin, "BTC-USDT"), "43000.00", "43400.00") == {"bids": [], "asks": []}


def test_price_improvement_hold_is_released_when_the_resting_rest_fills(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "43500.00", "43600.00")
    seller = fund(BTC="1")
    buyer = fund(USDT="10000")
    late_seller = fund(BTC="1")
    order(admin, seller, side="sell", price="43510.57", quantity="0.1234")
    taker = order(admin, buyer, side="buy", price="43600.00", quantity="0.2000")
    assert taker["funds"] == "5369.204338"
    # 8720 held; 5369.204338 paid; 0.0766 x 43600 + 0.1234 x 89.43 still held.
    assert held(admin, buyer, "USDT") == ("1280.000000", "3350.795662")

    # The resting rest fills as a maker at its own price; the improvement comes back.
    late = order(admin, late_seller, side="sell", price="43600.00", quantity="0.0766")
    assert late["status"] == "filled"
    assert late["funds"] == "3339.760000"
    assert held(admin, late_seller, "USDT") == ("3333.080480", "0.000000")  # taker: 0.20 %
    done = fetch(admin, taker["id"])
    assert done["status"] == "filled"
    assert done["funds"] == "8708.964338"
    assert Decimal(done["average_price"]) == Decimal("43544.82169")
    assert held(admin, buyer, "USDT") == ("1291.035662", "0.000000")
    # 0.1234 as taker (0.20 %) + 0.0766 as maker (0.10 %).
    assert held(admin, buyer, "BTC") == ("0.19967660", "0.00000000")


def test_partial_fills_of_a_maker_buy_by_taker_sells(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "42000.00", "42000.01")
    maker_wallet = fund(USDT="5000")
    first_seller = fund(BTC="0.05")
    second_seller = fund(BTC="0.07")

    maker = order(admin, maker_wallet, side="buy", price="42000.01", quantity="0.1000")
    assert held(admin, maker_wallet, "USDT") == ("799.999000", "4200.001000")

    # A sell limited lower trades at the resting buy's price.
    first = order(admin, first_seller, side="sell", price="42000.00", quantity="0.0300")
    assert first["status"] == "filled"
    assert first["filled_quantity"] == "0.0300"
    assert first["remaining_quantity"] == "0.0000"
    assert Decimal(first["average_price"]) == Decimal("42000.01")
    assert first["funds"] == "1260.000300"
    # Taker seller pays 0.20 % of 1260.000300 = 2.5200006, rounded down to 2.520000.
    assert held(admin, first_seller, "USDT") == ("1257.480300", "0.000000")
    assert held(admin, first_seller, "BTC") == ("0.02000000", "0.00000000")

    partly = fetch(admin, maker["id"])
    assert partly["status"] == "open"
    assert partly["filled_quantity"] == "0.0300"
    assert partly["remaining_quantity"] == "0.0700"
    assert held(admin, maker_wallet, "USDT") == ("799.999000", "2940.000700")
    assert held(admin, maker_wallet, "BTC") == ("0.02997000", "0.00000000")
    trade = last_trade(admin, "BTC-USDT")
    assert trade is not None
    assert trade["taker_side"] == "sell"
    assert trade["price"] == "42000.01"

    second = order(admin, second_seller, side="sell", price="42000.01", quantity="0.0700")
    assert second["status"] == "filled"
    assert second["funds"] == "2940.000700"
    # 0.20 % of 2940.000700 = 5.8800014 -> 5.880001.
    assert held(admin, second_seller, "USDT") == ("2934.120699", "0.000000")

    done = fetch(admin, maker["id"])
    assert done["status"] == "filled"
    assert done["filled_quantity"] == "0.1000"
    assert done["remaining_quantity"] == "0.0000"
    assert held(admin, maker_wallet, "USDT") == ("799.999000", "0.000000")
    assert held(admin, maker_wallet, "BTC") == ("0.09990000", "0.00000000")


def test_taker_sweeps_two_levels_and_unused_hold_is_released(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "44000.00", "44001.00")
    seller = fund(BTC="1")
    buyer = fund(USDT="9000")
    order(admin, seller, side="sell", price="44001.00", quantity="0.1000")
    order(admin, seller, side="sell", price="44000.00", quantity="0.1000")

    taker = order(admin, buyer, side="buy", price="44001.00", quantity="0.2000")
    assert taker["status"] == "filled"
    assert taker["filled_quantity"] == "0.2000"
    assert Decimal(taker["average_price"]) == Decimal("44000.50")
    assert taker["funds"] == "8800.100000"
    # Held 8800.200000 at 44001.00; 0.100000 of price improvement comes back at the end.
    assert held(admin, buyer, "USDT") == ("199.900000", "0.000000")
    assert held(admin, buyer, "BTC") == ("0.19960000", "0.00000000")
    # Maker: 4400 - 4.4 + 4400.1 - 4.4001 = 8791.2999.
    assert held(admin, seller, "USDT") == ("8791.299900", "0.000000")
    assert held(admin, seller, "BTC") == ("0.80000000", "0.00000000")
    trades = admin.get("/markets/BTC-USDT/trades", params={"limit": 2}).json()
    assert [(trade["price"], trade["quantity"]) for trade in trades] == [
        ("44001.00", "0.1000"),
        ("44000.00", "0.1000"),
    ]


# ---------------------------------------------------------------- get, cancel, list


def test_cancel_releases_the_hold_exactly_and_twice_is_409(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "45000.07", "45000.07")
    buyer = fund(USDT="1000")
    seller = fund(BTC="0.5")
    buy = order(admin, buyer, side="buy", price="45000.07", quantity="0.0123")
    assert held(admin, buyer, "USDT") == ("446.499139", "553.500861")
    assert fetch(admin, buy["id"]) == buy

    response = admin.delete(f"/orders/{buy['id']}/")
    assert response.status_code == 200, response.text
    canceled = response.json()
    assert canceled["id"] == buy["id"]
    assert canceled["status"] == "canceled"
    assert canceled["filled_quantity"] == "0.0000"
    assert held(admin, buyer, "USDT") == ("1000.000000", "0.000000")
    assert fetch(admin, buy["id"])["status"] == "canceled"
    assert_problem(admin.delete(f"/orders/{buy['id']}/"), 409, "order_not_open")
    assert held(admin, buyer, "USDT") == ("1000.000000", "0.000000")

    sell = order(admin, seller, side="sell", price="99999.99", quantity="0.1234")
    assert held(admin, seller, "BTC") == ("0.37660000", "0.12340000")
    assert admin.delete(f"/orders/{sell['id']}/").status_code == 200
    assert held(admin, seller, "BTC") == ("0.50000000", "0.00000000")


def test_cancel_of_a_filled_order_is_409(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "ETH-USDT", "3500.00", "3500.00")
    seller = fund(ETH="1")
    buyer = fund(USDT="1000")
    maker = order(admin, seller, "ETH-USDT", side="sell", price="3500.00", quantity="0.100")
    taker = order(admin, buyer, "ETH-USDT", side="buy", price="3500.00", quantity="0.100")
    assert taker["status"] == "filled"
    assert_problem(admin.delete(f"/orders/{maker['id']}/"), 409, "order_not_open")
    assert_problem(admin.delete(f"/orders/{taker['id']}/"), 409, "order_not_open")


def test_insufficient_funds_is_422_and_changes_nothing(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "10000.00", "10000.01")
    wallet_id = fund(USDT="100")
    book_before = depth(admin, "BTC-USDT")
    balances_before = balances(admin, wallet_id)

    # 0.0100 x 10000.01 = 100.0001 > 100.
    response = admin.post(
        "/orders/",
        json={
            "wallet_id": wallet_id,
            "market": "BTC-USDT",
            "type": "limit",
            "side": "buy",
            "price": "10000.01",
            "quantity": "0.0100",
        },
    )
    assert_problem(response, 422, "insufficient_funds")
    sell = admin.post(
        "/orders/",
        json={
            "wallet_id": wallet_id,
            "market": "BTC-USDT",
            "type": "limit",
            "side": "sell",
            "price": "10000.01",
            "quantity": "0.0001",
        },
    )
    assert_problem(sell, 422, "insufficient_funds")
    assert balances(admin, wallet_id) == balances_before
    assert depth(admin, "BTC-USDT") == book_before
    assert admin.get("/orders/", params={"wallet_id": wallet_id}).json() == []

    # Exactly enough is enough.
    exact = order(admin, wallet_id, side="buy", price="10000.00", quantity="0.0100")
    assert exact["status"] == "open"
    assert held(admin, wallet_id, "USDT") == ("0.000000", "100.000000")


def test_an_external_id_refused_for_funds_can_be_retried_after_a_deposit(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "10.00", "10.00")
    wallet_id = fund(USDT="0.5")
    terms = {"side": "buy", "price": "10.00", "quantity": "0.1000", "external_id": "retry-1"}
    assert_problem(place(admin, wallet_id, **terms), 422, "insufficient_funds")
    deposit(admin, wallet_id, "USDT", "0.5")
    placed = order(admin, wallet_id, **terms)
    assert placed["status"] == "open" and placed["external_id"] == "retry-1"
    assert order(admin, wallet_id, **terms) == placed  # from now on a repeat


def test_list_orders_of_a_wallet(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "5.00", "6.00")
    wallet_id = fund(USDT="100")
    first = order(admin, wallet_id, side="buy", price="5.00", quantity="0.0100")
    second = order(admin, wallet_id, side="buy", price="6.00", quantity="0.0200")
    assert admin.delete(f"/orders/{first['id']}/").status_code == 200

    response = admin.get("/orders/", params={"wallet_id": wallet_id})
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [item["id"] for item in listed] == [second["id"], first["id"]]
    assert listed[0] == fetch(admin, second["id"])
    assert [item["status"] for item in listed] == ["open", "canceled"]

    open_only = admin.get("/orders/", params={"wallet_id": wallet_id, "status": "open"})
    assert [item["id"] for item in open_only.json()] == [second["id"]]
    canceled = admin.get("/orders/", params={"wallet_id": wallet_id, "status": "canceled"})
    assert [item["id"] for item in canceled.json()] == [first["id"]]
    page = admin.get("/orders/", params={"wallet_id": wallet_id, "limit": 1, "offset": 1})
    assert [item["id"] for item in page.json()] == [first["id"]]
    other = fund()
    assert admin.get("/orders/", params={"wallet_id": other}).json() == []


# ---------------------------------------------------------------- time in force, post-only


def test_ioc_remainder_is_canceled(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "ETH-USDT", "3100.00", "3100.00")
    seller = fund(ETH="2")
    buyer = fund(USDT="5000")
    order(admin, seller, "ETH-USDT", side="sell", price="3100.00", quantity="1.000")

    ioc = order(
        admin, buyer, "ETH-USDT", side="buy", price="3100.00", quantity="1.500", time_in_force="IOC"
    )
    assert ioc["status"] == "canceled"
    assert ioc["time_in_force"] == "IOC"
    assert ioc["filled_quantity"] == "1.000"
    assert Decimal(ioc["average_price"]) == Decimal("3100.00")
    # Held 4650 at acceptance, 3100 spent, the rest released: nothing stays pending.
    assert held(admin, buyer, "USDT") == ("1900.000000", "0.000000")
    assert held(admin, buyer, "ETH") == ("0.99800000", "0.00000000")
    assert band(depth(admin, "ETH-USDT"), "3100.00", "3100.00") == {"bids": [], "asks": []}


def test_fok_not_fully_fillable_is_canceled_with_nothing_filled(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "ETH-USDT", "3200.00", "3200.00")
    seller = fund(ETH="2")
    buyer = fund(USDT="5000")
    maker = order(admin, seller, "ETH-USDT", side="sell", price="3200.00", quantity="1.000")

    fok = order(
        admin, buyer, "ETH-USDT", side="buy", price="3200.00", quantity="1.500", time_in_force="FOK"
    )
    assert fok["status"] == "canceled"
    assert fok["filled_quantity"] == "0.000"
    assert fok["average_price"] is None
    assert held(admin, buyer, "USDT") == ("5000.000000", "0.000000")
    assert held(admin, buyer, "ETH") == ("0.00000000", "0.00000000")
    assert fetch(admin, maker["id"])["remaining_quantity"] == "1.000"
    assert band(depth(admin, "ETH-USDT"), "3200.00", "3200.00")["asks"] == [["3200.00", "1.000"]]

    # Fully fillable: filled at once.
    whole = order(
        admin, buyer, "ETH-USDT", side="buy", price="3200.00", quantity="1.000", time_in_force="FOK"
    )
    assert whole["status"] == "filled"
    assert held(admin, buyer, "USDT") == ("1800.000000", "0.000000")


def test_post_only_that_would_trade_is_rejected(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "ETH-USDT", "3299.99", "3300.00")
    seller = fund(ETH="1")
    buyer = fund(USDT="5000")
    maker = order(admin, seller, "ETH-USDT", side="sell", price="3300.00", quantity="1.000")

    rejected = order(
        admin, buyer, "ETH-USDT", side="buy", price="3300.00", quantity="0.500", post_only=True
    )
    assert rejected["status"] == "rejected"
    assert rejected["post_only"] is True
    assert rejected["filled_quantity"] == "0.000"
    assert held(admin, buyer, "USDT") == ("5000.000000", "0.000000")
    assert fetch(admin, maker["id"])["remaining_quantity"] == "1.000"
    assert_problem(admin.delete(f"/orders/{rejected['id']}/"), 409, "order_not_open")

    resting = order(
        admin, buyer, "ETH-USDT", side="buy", price="3299.99", quantity="0.500", post_only=True
    )
    assert resting["status"] == "open"
    assert held(admin, buyer, "USDT") == ("3350.005000", "1649.995000")


# ---------------------------------------------------------------- market and stop orders


def test_market_buy_with_no_asks_is_canceled_and_holds_nothing(
    admin: httpx.Client, fund: Fund
) -> None:
    assert depth(admin, "ETH-BTC")["asks"] == [], "another test left asks in ETH-BTC"
    buyer = fund(BTC="1")
    market = order(admin, buyer, "ETH-BTC", type="market", side="buy", quantity="1.000")
    assert market["type"] == "market"
    assert market["price"] is None
    assert market["status"] == "canceled"
    assert market["filled_quantity"] == "0.000"
    assert market["average_price"] is None
    assert held(admin, buyer, "BTC") == ("1.00000000", "0.00000000")
    assert held(admin, buyer, "ETH") == ("0.00000000", "0.00000000")


def test_market_sell_with_no_bids_is_canceled(admin: httpx.Client, fund: Fund) -> None:
    assert depth(admin, "ETH-BTC")["bids"] == [], "another test left bids in ETH-BTC"
    seller = fund(ETH="1")
    market = order(admin, seller, "ETH-BTC", type="market", side="sell", quantity="0.500")
    assert market["status"] == "canceled"
    assert market["filled_quantity"] == "0.000"
    assert held(admin, seller, "ETH") == ("1.00000000", "0.00000000")


def test_market_buy_holds_at_the_collar_and_releases_the_rest(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "ETH-USDT", "2000.00", "2100.00")
    seller = fund(ETH="1")
    order(admin, seller, "ETH-USDT", side="sell", price="2000.00", quantity="1.000")
    # Held at best ask + 5 %: 2100.00 x 0.500 = 1050 USDT, one micro-USDT short fails.
    buyer = fund(USDT="1049.999999")
    body = {
        "wallet_id": buyer,
        "market": "ETH-USDT",
        "type": "market",
        "side": "buy",
        "quantity": "0.500",
    }
    assert_problem(admin.post("/orders/", json=body), 422, "insufficient_funds")
    assert held(admin, buyer, "USDT") == ("1049.999999", "0.000000")

    deposit(admin, buyer, "USDT", "0.000001")
    response = admin.post("/orders/", json=body)
    assert response.status_code == 201, response.text
    market = response.json()
    assert market["status"] == "filled"
    assert market["price"] is None
    assert market["time_in_force"] == "IOC"
    assert market["filled_quantity"] == "0.500"
    assert market["remaining_quantity"] == "0.000"
    assert Decimal(market["average_price"]) == Decimal("2000.00")
    assert market["funds"] == "1000.000000"
    assert held(admin, buyer, "USDT") == ("50.000000", "0.000000")
    assert held(admin, buyer, "ETH") == ("0.49900000", "0.00000000")
    assert held(admin, seller, "USDT") == ("999.000000", "0.000000")


def test_market_sell_stops_at_the_collar_and_cancels_the_rest(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "28000.00", "30000.00")
    buyer = fund(USDT="10000")
    seller = fund(BTC="1")
    order(admin, buyer, side="buy", price="30000.00", quantity="0.1000")
    far = order(admin, buyer, side="buy", price="28000.00", quantity="0.1000")
    # Best bid 30000.00 - 5 % = 28500.00: the bid at 28000.00 is out of reach.
    market = order(admin, seller, type="market", side="sell", quantity="0.2000")
    assert market["status"] == "canceled"
    assert market["filled_quantity"] == "0.1000"
    assert market["funds"] == "3000.000000"
    assert Decimal(market["average_price"]) == Decimal("30000.00")
    assert held(admin, seller, "BTC") == ("0.90000000", "0.00000000")
    assert held(admin, seller, "USDT") == ("2994.000000", "0.000000")
    assert fetch(admin, far["id"])["filled_quantity"] == "0.0000"
    assert band(depth(admin, "BTC-USDT"), "28000.00", "30000.00") == {
        "bids": [["28000.00", "0.1000"]],
        "asks": [],
    }


def test_stop_limit_is_pending_until_a_trade_reaches_its_stop(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "ETH-BTC", "0.85000", "0.90000")
    last = last_trade(admin, "ETH-BTC")
    assert last is None or Decimal(last["price"]) < Decimal("0.90000"), last
    stopper = fund(BTC="1")
    stop = order(
        admin,
        stopper,
        "ETH-BTC",
        type="stop_limit",
        side="buy",
        price="0.85000",
        stop_price="0.90000",
        quantity="0.100",
    )
    assert stop["status"] == "pending"
    assert stop["type"] == "stop_limit"
    assert stop["price"] == "0.85000"
    assert stop["stop_price"] == "0.90000"
    assert stop["filled_quantity"] == "0.000"
    # Held at acceptance: 0.85 x 0.1.
    assert held(admin, stopper, "BTC") == ("0.91500000", "0.08500000")
    assert band(depth(admin, "ETH-BTC"), "0.85000", "0.90000") == {"bids": [], "asks": []}

    seller = fund(ETH="1")
    buyer = fund(BTC="1")
    order(admin, seller, "ETH-BTC", side="sell", price="0.90000", quantity="0.010")
    trade = order(admin, buyer, "ETH-BTC", side="buy", price="0.90000", quantity="0.010")
    assert trade["status"] == "filled"

    triggered = fetch(admin, stop["id"])
    assert triggered["status"] == "open"
    assert triggered["remaining_quantity"] == "0.100"
    assert band(depth(admin, "ETH-BTC"), "0.85000", "0.90000") == {
        "bids": [["0.85000", "0.100"]],
        "asks": [],
    }
    assert held(admin, stopper, "BTC") == ("0.91500000", "0.08500000")


def test_stop_market_buy_holds_at_the_stop_collar(admin: httpx.Client, fund: Fund) -> None:
    last = last_trade(admin, "BTC-USDT")
    assert last is None or Decimal(last["price"]) < Decimal("95000.00"), last
    wallet_id = fund(USDT="1000")
    stop = order(
        admin, wallet_id, type="stop_market", side="buy", stop_price="95000.00", quantity="0.0100"
    )
    assert stop["status"] == "pending"
    assert stop["price"] is None
    # 95000.00 + 5 % = 99750.00; x 0.0100 = 997.50.
    assert held(admin, wallet_id, "USDT") == ("2.500000", "997.500000")
    assert admin.delete(f"/orders/{stop['id']}/").status_code == 200
    assert held(admin, wallet_id, "USDT") == ("1000.000000", "0.000000")


# ---------------------------------------------------------------- iceberg, self-trade


def test_iceberg_shows_only_its_tip_and_refills_behind_the_level(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "46000.00", "46000.00")
    iceberg_wallet = fund(BTC="1")
    plain_wallet = fund(BTC="1")
    iceberg = order(
        admin,
        iceberg_wallet,
        side="sell",
        price="46000.00",
        quantity="1.0000",
        display_quantity="0.2000",
    )
    assert iceberg["display_quantity"] == "0.2000"
    assert iceberg["status"] == "open"
    assert band(depth(admin, "BTC-USDT"), "46000.00", "46000.00")["asks"] == [
        ["46000.00", "0.2000"]
    ]
    assert held(admin, iceberg_wallet, "BTC") == ("0.00000000", "1.00000000")
    plain = order(admin, plain_wallet, side="sell", price="46000.00", quantity="0.0500")
    assert band(depth(admin, "BTC-USDT"), "46000.00", "46000.00")["asks"] == [
        ["46000.00", "0.2500"]
    ]

    buyer = fund(USDT="30000")
    first = order(admin, buyer, side="buy", price="46000.00", quantity="0.2000")
    assert first["status"] == "filled"
    # The tip is gone and refilled behind the plain order.
    assert fetch(admin, iceberg["id"])["filled_quantity"] == "0.2000"
    assert band(depth(admin, "BTC-USDT"), "46000.00", "46000.00")["asks"] == [
        ["46000.00", "0.2500"]
    ]
    second = order(admin, buyer, side="buy", price="46000.00", quantity="0.0500")
    assert second["status"] == "filled"
    assert fetch(admin, plain["id"])["status"] == "filled"
    assert fetch(admin, iceberg["id"])["remaining_quantity"] == "0.8000"
    assert band(depth(admin, "BTC-USDT"), "46000.00", "46000.00")["asks"] == [
        ["46000.00", "0.2000"]
    ]
    third = order(admin, buyer, side="buy", price="46000.00", quantity="0.3000")
    assert third["status"] == "filled"
    assert fetch(admin, iceberg["id"])["remaining_quantity"] == "0.5000"
    assert band(depth(admin, "BTC-USDT"), "46000.00", "46000.00")["asks"] == [
        ["46000.00", "0.1000"]
    ]
    assert held(admin, iceberg_wallet, "BTC") == ("0.00000000", "0.50000000")


def test_self_trade_cancels_the_resting_order(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "47000.00", "47000.00")
    wallet_id = fund(BTC="1", USDT="1000")
    sell = order(admin, wallet_id, side="sell", price="47000.00", quantity="0.0100")
    assert held(admin, wallet_id, "BTC") == ("0.99000000", "0.01000000")
    trades_before = admin.get("/markets/BTC-USDT/trades", params={"limit": 1}).json()

    buy = order(admin, wallet_id, side="buy", price="47000.00", quantity="0.0100")
    assert buy["status"] == "open"
    assert buy["filled_quantity"] == "0.0000"
    resting = fetch(admin, sell["id"])
    assert resting["status"] == "canceled"
    assert resting["filled_quantity"] == "0.0000"
    assert held(admin, wallet_id, "BTC") == ("1.00000000", "0.00000000")
    assert held(admin, wallet_id, "USDT") == ("530.000000", "470.000000")
    assert admin.get("/markets/BTC-USDT/trades", params={"limit": 1}).json() == trades_before
    assert band(depth(admin, "BTC-USDT"), "47000.00", "47000.00") == {
        "bids": [["47000.00", "0.0100"]],
        "asks": [],
    }
    assert admin.delete(f"/orders/{buy['id']}/").status_code == 200
    assert held(admin, wallet_id, "USDT") == ("1000.000000", "0.000000")


# ---------------------------------------------------------------- idempotency


def test_external_id_repeat_answers_the_first_order(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "11000.00", "11000.01")
    wallet_id = fund(USDT="1000")
    key = f"ext-{uuid.uuid4().hex}"
    first = order(
        admin, wallet_id, side="buy", price="11000.00", quantity="0.0100", external_id=key
    )
    assert first["external_id"] == key
    assert held(admin, wallet_id, "USDT") == ("890.000000", "110.000000")

    again = order(
        admin, wallet_id, side="buy", price="11000.00", quantity="0.0100", external_id=key
    )
    assert again == first
    assert held(admin, wallet_id, "USDT") == ("890.000000", "110.000000")

    conflict = admin.post(
        "/orders/",
        json={
            "wallet_id": wallet_id,
            "market": "BTC-USDT",
            "type": "limit",
            "side": "buy",
            "price": "11000.01",
            "quantity": "0.0100",
            "external_id": key,
        },
    )
    assert_problem(conflict, 409, "idempotency_conflict")
    assert held(admin, wallet_id, "USDT") == ("890.000000", "110.000000")
    assert [
        item["id"] for item in admin.get("/orders/", params={"wallet_id": wallet_id}).json()
    ] == [first["id"]]

    # After a cancel the same key still answers the (now canceled) first order.
    assert admin.delete(f"/orders/{first['id']}/").status_code == 200
    after = order(
        admin, wallet_id, side="buy", price="11000.00", quantity="0.0100", external_id=key
    )
    assert after["id"] == first["id"]
    assert after["status"] == "canceled"
    assert held(admin, wallet_id, "USDT") == ("1000.000000", "0.000000")


def test_idempotency_key_header(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "11000.00", "11000.02")
    wallet_id = fund(USDT="1000")
    headers = {"Idempotency-Key": f"hdr-{uuid.uuid4().hex}"}
    body = {
        "wallet_id": wallet_id,
        "market": "BTC-USDT",
        "type": "limit",
        "side": "buy",
        "price": "11000.01",
        "quantity": "0.0100",
    }
    first = admin.post("/orders/", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["external_id"] == headers["Idempotency-Key"]
    second = admin.post("/orders/", json=body, headers=headers)
    assert second.status_code == 201, second.text
    assert second.json() == first.json()
    assert held(admin, wallet_id, "USDT") == ("889.999900", "110.000100")

    changed = admin.post("/orders/", json={**body, "price": "11000.02"}, headers=headers)
    assert_problem(changed, 409, "idempotency_conflict")
    # The header and an external_id in the body must agree.
    mismatch = admin.post("/orders/", json={**body, "external_id": "other"}, headers=headers)
    assert_problem(mismatch, 422, "validation_error")
    # The body's external_id and the header name the same key.
    same = admin.post(
        "/orders/", json={**body, "external_id": headers["Idempotency-Key"]}, headers=headers
    )
    assert same.status_code == 201, same.text
    assert same.json()["id"] == first.json()["id"]
    assert held(admin, wallet_id, "USDT") == ("889.999900", "110.000100")
    assert len(admin.get("/orders/", params={"wallet_id": wallet_id}).json()) == 1


def test_external_id_is_per_wallet(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "7.00", "7.00")
    key = f"shared-{uuid.uuid4().hex}"
    first_wallet = fund(USDT="10")
    second_wallet = fund(USDT="10")
    first = order(admin, first_wallet, side="buy", price="7.00", quantity="0.0100", external_id=key)
    second = order(
        admin, second_wallet, side="buy", price="7.00", quantity="0.0100", external_id=key
    )
    assert first["id"] != second["id"]
    assert held(admin, second_wallet, "USDT") == ("9.930000", "0.070000")


def test_concurrent_repeats_of_one_external_id_make_one_order(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "BTC-USDT", "8.00", "8.00")
    wallet_id = fund(USDT="10")
    body = {
        "wallet_id": wallet_id,
        "market": "BTC-USDT",
        "type": "limit",
        "side": "buy",
        "price": "8.00",
        "quantity": "0.0100",
        "external_id": f"race-{uuid.uuid4().hex}",
    }

    def attempt(_: int) -> tuple[int, Any]:
        with httpx.Client(base_url=admin.base_url, headers=admin.headers, timeout=30.0) as client:
            response = client.post("/orders/", json=body)
            return response.status_code, response.json().get("id")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert {status for status, _ in answers} == {201}, answers
    assert len({order_id for _, order_id in answers}) == 1, answers
    assert held(admin, wallet_id, "USDT") == ("9.920000", "0.080000")
    assert len(admin.get("/orders/", params={"wallet_id": wallet_id}).json()) == 1


# ---------------------------------------------------------------- replace (PATCH)


def test_replace_to_a_smaller_quantity_keeps_priority(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "ETH-USDT", "1500.00", "1500.00")
    first, second, taker = fund(ETH="1"), fund(ETH="1"), fund(USDT="10000")
    early = order(admin, first, "ETH-USDT", side="sell", price="1500.00", quantity="0.500")
    order(admin, second, "ETH-USDT", side="sell", price="1500.00", quantity="0.500")
    smaller = admin.patch(f"/orders/{early['id']}/", json={"quantity": "0.300"})
    assert smaller.status_code == 200, smaller.text
    assert (smaller.json()["quantity"], smaller.json()["remaining_quantity"]) == ("0.300", "0.300")
    assert held(admin, first, "ETH") == ("0.70000000", "0.30000000")  # the rest released
    order(admin, taker, "ETH-USDT", side="buy", price="1500.00", quantity="0.300")
    assert fetch(admin, early["id"])["status"] == "filled"  # still first in the queue


def test_replace_to_a_new_price_loses_priority_and_moves_the_hold(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "ETH-USDT", "1400.00", "1450.00")
    first, second, taker = fund(USDT="2000"), fund(USDT="2000"), fund(ETH="1")
    early = order(admin, first, "ETH-USDT", side="buy", price="1400.00", quantity="1.000")
    late = order(admin, second, "ETH-USDT", side="buy", price="1450.00", quantity="0.100")
    moved = admin.patch(f"/orders/{early['id']}/", json={"price": "1450.00"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["price"] == "1450.00"
    assert held(admin, first, "USDT") == ("550.000000", "1450.000000")  # 1.000 × 1450.00
    order(admin, taker, "ETH-USDT", side="sell", price="1450.00", quantity="0.100")
    assert fetch(admin, late["id"])["status"] == "filled"  # it was there first at 1450
    assert fetch(admin, early["id"])["filled_quantity"] == "0.000"


def test_replace_beyond_the_funds_is_422_and_changes_nothing(
    admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(admin, "ETH-USDT", "1300.00", "1300.00")
    wallet = fund(USDT="1300")
    resting = order(admin, wallet, "ETH-USDT", side="buy", price="1300.00", quantity="0.500")
    before = (held(admin, wallet, "USDT"), depth(admin, "ETH-USDT"))
    refused = admin.patch(f"/orders/{resting['id']}/", json={"quantity": "2.000"})
    assert_problem(refused, 422, "insufficient_funds")
    assert (held(admin, wallet, "USDT"), depth(admin, "ETH-USDT")) == before
    assert fetch(admin, resting["id"])["quantity"] == "0.500"


def test_replace_errors(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "ETH-USDT", "1200.00", "1200.00")
    wallet = fund(USDT="2000")
    resting = order(admin, wallet, "ETH-USDT", side="buy", price="1200.00", quantity="0.500")
    path = f"/orders/{resting['id']}/"
    assert_problem(admin.patch(path, json={}), 422, "validation_error")
    assert_problem(admin.patch(path, json={"price": "1200.001"}), 422, "validation_error")
    assert_problem(admin.patch(path, json={"quantity": "0"}), 422, "validation_error")
    assert_problem(admin.patch(path, json={"price": 1200}), 422, "validation_error")
    assert_problem(admin.patch(path, json={"side": "sell"}), 422, "validation_error")
    admin.delete(path).raise_for_status()
    assert_problem(admin.patch(path, json={"price": "1100.00"}), 409, "order_not_open")
    assert_problem(admin.patch("/orders/999999999/", json={"price": "1.00"}), 404, "not_found")
