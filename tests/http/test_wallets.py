"""SPEC §5 wallets: create, duplicate external_id, details with balances, list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from tests.support import assert_problem, deposit, new_wallet

WALLET_FIELDS = {"wallet_id", "name", "external_id", "created", "updated", "balances"}
ZERO_BALANCES = [
    {"currency": "USD", "amount": "0.00", "pending_amount": "0.00", "available_balance": "0.00"},
    {"currency": "EUR", "amount": "0.00", "pending_amount": "0.00", "available_balance": "0.00"},
    {
        "currency": "USDT",
        "amount": "0.000000",
        "pending_amount": "0.000000",
        "available_balance": "0.000000",
    },
    {
        "currency": "BTC",
        "amount": "0.00000000",
        "pending_amount": "0.00000000",
        "available_balance": "0.00000000",
    },
    {
        "currency": "ETH",
        "amount": "0.00000000",
        "pending_amount": "0.00000000",
        "available_balance": "0.00000000",
    },
]


def parse_time(text: str) -> datetime:
    assert text.endswith(("Z", "+00:00")), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() is not None
    return moment


def find_in_list(client: httpx.Client, wallet_id: str) -> dict[str, Any] | None:
    offset = 0
    while True:
        response = client.get("/wallets/", params={"limit": 1000, "offset": offset})
        assert response.status_code == 200, response.text
        page = response.json()["accounts"]
        for wallet in page:
            if wallet["wallet_id"] == wallet_id:
                found: dict[str, Any] = wallet
                return found
        if len(page) < 1000:
            return None
        offset += len(page)


def test_create_wallet_answers_201_with_zero_balances(admin: httpx.Client) -> None:
    external_id = f"partner-{uuid.uuid4().hex}"
    response = admin.post("/wallets/", json={"name": "Alice", "external_id": external_id})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    wallet = response.json()
    assert set(wallet) == WALLET_FIELDS
    assert str(uuid.UUID(wallet["wallet_id"])) == wallet["wallet_id"]
    assert wallet["name"] == "Alice"
    assert wallet["external_id"] == external_id
    assert parse_time(wallet["created"]) == parse_time(wallet["updated"])
    assert wallet["balances"] == ZERO_BALANCES


def test_create_wallet_without_external_id(admin: httpx.Client) -> None:
    first = admin.post("/wallets/", json={"name": "no-external-id"})
    second = admin.post("/wallets/", json={"name": "no-external-id"})
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["external_id"] is None
    assert first.json()["wallet_id"] != second.json()["wallet_id"]
    assert first.json()["balances"] == ZERO_BALANCES


def test_same_external_id_again_is_409(admin: httpx.Client) -> None:
    external_id = f"dup-{uuid.uuid4().hex}"
    first = admin.post("/wallets/", json={"name": "first", "external_id": external_id})
    assert first.status_code == 201, first.text
    again = admin.post("/wallets/", json={"name": "first", "external_id": external_id})
    assert_problem(again, 409)
    other_name = admin.post("/wallets/", json={"name": "second", "external_id": external_id})
    assert_problem(other_name, 409)
    # The first wallet is untouched.
    fetched = admin.get(f"/wallets/{first.json()['wallet_id']}/")
    assert fetched.json() == first.json()


def test_get_wallet_by_id(admin: httpx.Client) -> None:
    created = admin.post("/wallets/", json={"name": "Bob", "external_id": f"b-{uuid.uuid4()}"})
    assert created.status_code == 201, created.text
    wallet_id = created.json()["wallet_id"]
    response = admin.get(f"/wallets/{wallet_id}/")
    assert response.status_code == 200, response.text
    assert response.json() == created.json()


def test_get_wallet_shows_deposited_balance(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "funded")
    deposit(admin, wallet_id, "USDT", "7500")
    deposit(admin, wallet_id, "EUR", "12.3")
    deposit(admin, wallet_id, "BTC", "0.00000001")
    balances = {
        row["currency"]: row for row in admin.get(f"/wallets/{wallet_id}/").json()["balances"]
    }
    assert balances["USDT"] == {
        "currency": "USDT",
        "amount": "7500.000000",
        "pending_amount": "0.000000",
        "available_balance": "7500.000000",
    }
    assert balances["EUR"] == {
        "currency": "EUR",
        "amount": "12.30",
        "pending_amount": "0.00",
        "available_balance": "12.30",
    }
    assert balances["BTC"] == {
        "currency": "BTC",
        "amount": "0.00000001",
        "pending_amount": "0.00000000",
        "available_balance": "0.00000001",
    }
    assert balances["USD"]["amount"] == "0.00"
    assert balances["ETH"]["amount"] == "0.00000000"


def test_unknown_wallet_is_404(admin: httpx.Client) -> None:
    assert_problem(admin.get(f"/wallets/{uuid.uuid4()}/"), 404, "not_found")
    assert_problem(admin.get("/wallets/not-a-wallet/"), 404, "not_found")


def test_list_wallets_contains_the_new_one(admin: httpx.Client) -> None:
    created = admin.post("/wallets/", json={"name": "listed", "external_id": f"l-{uuid.uuid4()}"})
    assert created.status_code == 201, created.text
    listed = find_in_list(admin, created.json()["wallet_id"])
    assert listed == created.json()


def test_list_wallets_pages(admin: httpx.Client) -> None:
    new_wallet(admin, "page-a")
    new_wallet(admin, "page-b")
    one = admin.get("/wallets/", params={"limit": 1})
    assert one.status_code == 200, one.text
    assert set(one.json()) == {"accounts", "total", "limit", "offset"}
    assert len(one.json()["accounts"]) == 1
    assert one.json()["total"] >= 2
    two = admin.get("/wallets/", params={"limit": 2}).json()
    assert len(two["accounts"]) == 2
    assert (two["limit"], two["offset"]) == (2, 0)
    second = admin.get("/wallets/", params={"limit": 1, "offset": 1}).json()
    assert second["accounts"] == two["accounts"][1:]
    assert second["total"] == two["total"]
    for wallet in two["accounts"]:
        assert set(wallet) == WALLET_FIELDS
    assert_problem(admin.get("/wallets/", params={"limit": 0}), 422, "validation_error")
    assert_problem(admin.get("/wallets/", params={"limit": "x"}), 422, "validation_error")
    assert_problem(admin.get("/wallets/", params={"offset": -1}), 422, "validation_error")
