"""Seed 001 "Balances" end to end: GET /user/balances/, GET /user/balances/history/ and
POST /wallets/balances/; for every wallet, its balance is the sum of its history."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.http.conftest import Fund
from tests.http.test_applications import create, token_client
from tests.server import ServerProcess
from tests.support import assert_problem, assert_quiet, balances, deposit, new_wallet, order

HISTORY = "/user/balances/history/"


@pytest.fixture
def public(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def partner(server: ServerProcess, admin: httpx.Client) -> Iterator[httpx.Client]:
    """A new partner (made by the operator) with a read-write token."""
    application = create(admin, name="balances", scopes="read write", new_partner=True)
    with token_client(server, application) as client:
        yield client


def history(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get(HISTORY, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def whole_history(client: httpx.Client, page_size: int = 100, **params: Any) -> list[Any]:
    """Every movement, page by page; the pages neither overlap nor leave gaps."""
    movements: list[Any] = []
    while True:
        page = history(client, limit=page_size, offset=len(movements), **params)
        assert page["limit"] == page_size and page["offset"] == len(movements)
        movements += page["results"]
        if len(page["results"]) < page_size:
            assert len(movements) == page["total"]
            return movements


def key(movement: dict[str, Any]) -> tuple[int, str, str, str]:
    return (movement["transfer_id"], movement["wallet_id"], movement["currency"],
            movement["account"])  # fmt: skip


def sums(movements: list[dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
    """(currency, account) -> the sum of the movements."""
    result: dict[tuple[str, str], Decimal] = {}
    for movement in movements:
        where = (movement["currency"], movement["account"])
        result[where] = result.get(where, Decimal(0)) + Decimal(movement["amount"])
    return result


def assert_balance_is_the_sum_of_history(client: httpx.Client, wallet_id: str) -> None:
    movements = whole_history(client, wallet_id=wallet_id)
    assert {movement["wallet_id"] for movement in movements} <= {wallet_id}
    totals = sums(movements)
    for currency, row in balances(client, wallet_id).items():
        assert Decimal(row["available_balance"]) == totals.get((currency, "main"), 0), (
            wallet_id, currency, row, totals,
        )  # fmt: skip
        assert Decimal(row["pending_amount"]) == totals.get((currency, "locked"), 0), (
            wallet_id, currency, row, totals,
        )  # fmt: skip


def test_the_history_of_deposits_and_a_trade(
    public: httpx.Client, admin: httpx.Client, fund: Fund
) -> None:
    assert_quiet(public, "BTC-USDT", "38500.00", "38600.00")
    seller = fund(BTC="0.5")
    buyer = fund(USDT="1000", BTC="0.001")
    order(admin, seller, "BTC-USDT", side="sell", price="38500.00", quantity="0.0200")
    order(admin, buyer, "BTC-USDT", side="buy", price="38550.00", quantity="0.0100")

    for wallet_id in (seller, buyer):
        movements = whole_history(admin, wallet_id=wallet_id)
        assert movements, wallet_id
        for movement in movements:
            assert set(movement) == {"transfer_id", "wallet_id", "currency", "amount",
                                     "account", "type", "created_at"}  # fmt: skip
            assert movement["wallet_id"] == wallet_id
            assert movement["account"] in ("main", "locked")
            assert Decimal(movement["amount"]) != 0
        # newest first, each movement once
        assert len({key(m) for m in movements}) == len(movements)
        transfer_ids = [m["transfer_id"] for m in movements]
        assert transfer_ids == sorted(transfer_ids, reverse=True)
        assert [m["created_at"] for m in movements] == sorted(
            (m["created_at"] for m in movements), reverse=True
        )
        assert {"deposit", "hold", "trade"} <= {m["type"] for m in movements}
        # small pages give the same movements, without overlap or gaps
        assert whole_history(admin, page_size=1, wallet_id=wallet_id) == movements
        assert whole_history(admin, page_size=3, wallet_id=wallet_id) == movements
        # filters
        for kind in ("deposit", "hold", "trade", "release"):
            filtered = whole_history(admin, wallet_id=wallet_id, type=kind)
            assert filtered == [m for m in movements if m["type"] == kind]
        for currency in ("BTC", "USDT", "ETH"):
            filtered = whole_history(admin, wallet_id=wallet_id, currency=currency)
            assert filtered == [m for m in movements if m["currency"] == currency]
        both = whole_history(admin, wallet_id=wallet_id, currency="BTC", type="deposit")
        assert both == [m for m in movements if m["currency"] == "BTC" and m["type"] == "deposit"]
        assert_balance_is_the_sum_of_history(admin, wallet_id)

    deposits = whole_history(admin, wallet_id=buyer, type="deposit")
    assert sorted((m["currency"], m["account"], m["amount"]) for m in deposits) == [
        ("BTC", "main", "0.00100000"),
        ("USDT", "main", "1000.000000"),
    ]
    # the seller's resting 0.0100 BTC is locked by the hold, and the history says so
    seller_sums = sums(whole_history(admin, wallet_id=seller))
    assert seller_sums[("BTC", "locked")] == Decimal("0.0100")
    assert seller_sums[("BTC", "main")] == Decimal("0.48")
    # the buyer held at 38550.00 and traded at 38500.00: the excess was released
    assert "release" in {m["type"] for m in whole_history(admin, wallet_id=buyer)}


def test_every_listed_wallet_balance_is_the_sum_of_its_history(admin: httpx.Client) -> None:
    listed = admin.get("/wallets/", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    wallets = listed.json()["accounts"]
    assert wallets
    for wallet in wallets:
        assert_balance_is_the_sum_of_history(admin, wallet["wallet_id"])


def test_the_aggregate_against_the_wallets(admin: httpx.Client, partner: httpx.Client) -> None:
    master = partner.get("/user/me/").json()["master_wallet_id"]
    first = new_wallet(partner, "first")
    second = new_wallet(partner, "second")
    empty = new_wallet(partner, "empty")
    deposit(admin, master, "USDT", "1000.5")
    deposit(admin, first, "USDT", "300")
    deposit(admin, first, "BTC", "0.12345678")
    deposit(admin, second, "USDT", "200.000001")

    response = partner.get("/user/balances/")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"account", "sub_accounts", "statistics"}
    assert body["master_wallet_id"] == master
    assert body["account"]["USDT"] == {
        "amount": "1000.500000",
        "pending_amount": "0.000000",
        "available_balance": "1000.500000",
    }
    assert body["account"]["BTC"]["amount"] == "0.00000000"

    wallets = partner.get("/wallets/").json()["accounts"]
    assert {wallet["wallet_id"] for wallet in wallets} == {master, first, second, empty}
    expected: dict[str, dict[str, Decimal]] = {}
    for wallet in wallets:
        if wallet["wallet_id"] == master:
            continue
        for row in wallet["balances"]:
            totals = expected.setdefault(row["currency"], {"amount": Decimal(0),
                                                           "pending": Decimal(0)})  # fmt: skip
            totals["amount"] += Decimal(row["amount"])
            totals["pending"] += Decimal(row["pending_amount"])
    for currency, totals in expected.items():
        aggregate = body["sub_accounts"][currency]
        assert Decimal(aggregate["total_amount"]) == totals["amount"], currency
        assert Decimal(aggregate["total_pending"]) == totals["pending"], currency
        assert Decimal(aggregate["total_available"]) == totals["amount"] - totals["pending"]
        assert aggregate["accounts_count"] == len(aggregate["accounts"])
    usdt = body["sub_accounts"]["USDT"]
    assert usdt["total_amount"] == "500.000001"
    assert {account["account_id"]: account["amount"] for account in usdt["accounts"]} == {
        first: "300.000000",
        second: "200.000001",
    }
    assert {account["account_name"] for account in usdt["accounts"]} == {"first", "second"}
    assert [account["account_id"] for account in body["sub_accounts"]["BTC"]["accounts"]] == [first]
    statistics = body["statistics"]
    assert statistics["subaccounts_count"] == 3
    assert statistics["wallets_count"] == 4
    assert statistics["funded_wallets_count"] == 3
    assert statistics["currencies_count"] == 2
    assert statistics["totals"]["USDT"]["amount"] == "1500.500001"
    assert statistics["totals"]["BTC"]["available_balance"] == "0.12345678"

    # the partner's own history: only its wallets, and each balance is its sum
    movements = whole_history(partner)
    assert {m["wallet_id"] for m in movements} == {master, first, second}
    assert len(movements) == 4 and {m["type"] for m in movements} == {"deposit"}
    for wallet_id in (master, first, second, empty):
        assert_balance_is_the_sum_of_history(partner, wallet_id)


def test_wallet_balances_by_wallet_id_or_external_id(
    admin: httpx.Client, partner: httpx.Client
) -> None:
    created = partner.post("/wallets/", json={"name": "named", "external_id": "ext-balances-1"})
    assert created.status_code == 201, created.text
    wallet_id = created.json()["wallet_id"]
    deposit(admin, wallet_id, "ETH", "1.5")
    expected = partner.get(f"/wallets/{wallet_id}/").json()["balances"]
    for body in ({"wallet_id": wallet_id}, {"external_id": "ext-balances-1"}):
        response = partner.post("/wallets/balances/", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "wallet_id": wallet_id,
            "name": "named",
            "external_id": "ext-balances-1",
            "balances": expected,
        }
    eth = {row["currency"]: row for row in expected}["ETH"]
    assert eth["amount"] == eth["available_balance"]
    assert Decimal(eth["amount"]) == Decimal("1.5")

    # another partner's wallet (by either name) and unknown wallets are not found
    theirs = admin.post("/wallets/", json={"name": "theirs", "external_id": "ext-balances-2"})
    assert theirs.status_code == 201, theirs.text
    for body in (
        {"wallet_id": theirs.json()["wallet_id"]},
        {"external_id": "ext-balances-2"},
        {"wallet_id": "no-such-wallet"},
        {"external_id": "no-such-external-id"},
    ):
        assert_problem(partner.post("/wallets/balances/", json=body), 404, "not_found")
    assert_problem(
        partner.get(HISTORY, params={"wallet_id": theirs.json()["wallet_id"]}), 404, "not_found"
    )
    assert theirs.json()["wallet_id"] not in {m["wallet_id"] for m in whole_history(partner)}
    # the operator sees every wallet
    response = admin.post("/wallets/balances/", json={"external_id": "ext-balances-1"})
    assert response.status_code == 200 and response.json()["wallet_id"] == wallet_id


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"wallet_id": "a", "external_id": "b"},
        {"wallet_id": None, "external_id": None},
        {"wallet_id": 5},
        {"external_id": ""},
        {"wallet_id": "a", "currency": "BTC"},
        {"wallet_id": "x" * 65},
        [],
    ],
)
def test_bad_wallet_balances_bodies_are_422(admin: httpx.Client, body: Any) -> None:
    problem = assert_problem(admin.post("/wallets/balances/", json=body), 422, "validation_error")
    assert problem["errors"]


def test_a_wallet_balances_body_that_is_not_json_is_400(admin: httpx.Client) -> None:
    response = admin.post(
        "/wallets/balances/", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("currency", "NOPE"),
        ("currency", "btc"),
        ("type", "withdraw"),
        ("type", ""),
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "x"),
        ("offset", "-1"),
        ("offset", "1.5"),
    ],
)
def test_bad_history_filters_are_422(admin: httpx.Client, name: str, value: str) -> None:
    problem = assert_problem(admin.get(HISTORY, params={name: value}), 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == [name]


def test_history_defaults_and_limits(admin: httpx.Client) -> None:
    page = history(admin)
    assert page["limit"] == 20 and page["offset"] == 0
    assert len(page["results"]) == min(20, page["total"])
    assert len(history(admin, limit=100)["results"]) == min(100, page["total"])
    past = history(admin, offset=10**6)
    assert past["results"] == [] and past["total"] == page["total"]


def test_balances_need_a_partner_with_read(server: ServerProcess, admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "scoped")
    calls = (
        ("GET", "/user/balances/", None),
        ("GET", HISTORY, None),
        ("POST", "/wallets/balances/", {"wallet_id": wallet_id}),
    )
    with server.client(scope="write") as writer, server.client(scope="read") as reader:
        for method, path, body in calls:
            short = writer.request(method, path, json=body)
            assert_problem(short, 403, "insufficient_scope")
            assert reader.request(method, path, json=body).status_code == 200, path
    anonymous = httpx.Client(base_url=server.base_url, timeout=30.0)
    with anonymous:
        for method, path, body in calls:
            assert anonymous.request(method, path, json=body).status_code == 401, path
