"""Small helpers for end-to-end tests over the real REST edge."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx


def new_wallet(client: httpx.Client, name: str = "wallet") -> str:
    response = client.post("/wallets/", json={"name": name})
    assert response.status_code == 201, response.text
    wallet_id: str = response.json()["wallet_id"]
    return wallet_id


def deposit(
    client: httpx.Client, wallet_id: str, currency: str, amount: str, tid: str | None = None
) -> dict[str, Any]:
    response = client.post(
        "/management/v2/deposits/new",
        json={
            "uid": wallet_id,
            "currency": currency,
            "amount": amount,
            "tid": tid or uuid.uuid4().hex,
            "state": "accepted",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def place(client: httpx.Client, wallet_id: str, **fields: Any) -> httpx.Response:
    body = {"wallet_id": wallet_id, "market": "BTC-USDT", "type": "limit", **fields}
    return client.post("/orders/", json=body)


def balances(client: httpx.Client, wallet_id: str) -> dict[str, dict[str, str]]:
    response = client.get(f"/wallets/{wallet_id}/")
    assert response.status_code == 200, response.text
    return {row["currency"]: row for row in response.json()["balances"]}


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "code"} <= set(body)
    if code is not None:
        assert body["code"] == code, body
    return body


def order(
    client: httpx.Client, wallet_id: str, market: str = "BTC-USDT", **fields: Any
) -> dict[str, Any]:
    """Place an order that must be accepted (201) and return its body."""
    body = {"wallet_id": wallet_id, "market": market, "type": "limit", **fields}
    response = client.post("/orders/", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def depth(client: httpx.Client, market: str, limit: int = 1000) -> dict[str, Any]:
    response = client.get(f"/markets/{market}/depth", params={"limit": limit})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def band(book: dict[str, Any], low: str, high: str) -> dict[str, list[list[str]]]:
    """The levels of a depth answer priced within [low, high]."""

    def within(level: list[str]) -> bool:
        return Decimal(low) <= Decimal(level[0]) <= Decimal(high)

    return {
        "bids": [level for level in book["bids"] if within(level)],
        "asks": [level for level in book["asks"] if within(level)],
    }


def assert_quiet(client: httpx.Client, market: str, low: str, high: str) -> None:
    """Nothing of other tests can trade with orders priced within [low, high]: the server
    is shared by the whole session, so each test trades in a price band of its own."""
    book = depth(client, market)
    assert not book["bids"] or Decimal(book["bids"][0][0]) < Decimal(low), f"stray bid: {book}"
    assert not book["asks"] or Decimal(book["asks"][0][0]) > Decimal(high), f"stray ask: {book}"


def assert_not_logged(log: str, *secrets: str) -> None:
    """None of `secrets` (passwords, OTPs, tokens, keys) is anywhere in the server's log."""
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        assert secret not in log, f"a secret reached the log: {secret[:4]}…"
