"""SPEC §5 management API v2 (seed 002): deposits and account balances, admin only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.support import assert_problem, balances, new_wallet, place

DEPOSIT_FIELDS = {
    "id",
    "tid",
    "uid",
    "currency",
    "type",
    "amount",
    "state",
    "created_at",
    "completed_at",
    "blockchain_txid",
    "blockchain_confirmations",
}


@pytest.fixture
def partner(server: ServerProcess) -> Iterator[httpx.Client]:
    """A token with every scope but admin."""
    with server.client(scope="read write") as client:
        yield client


def tid() -> str:
    return f"tid-{uuid.uuid4().hex}"


def new_deposit(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post("/management/v2/deposits/new", json=fields)


def account(client: httpx.Client, wallet_id: str, currency: str) -> dict[str, Any]:
    response = client.post(
        "/management/v2/accounts/balance", json={"uid": wallet_id, "currency": currency}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def holding(client: httpx.Client, wallet_id: str, currency: str) -> tuple[str, str, str]:
    """(amount, pending_amount, available_balance) of one currency on GET /wallets/{id}/."""
    row = balances(client, wallet_id)[currency]
    return row["amount"], row["pending_amount"], row["available_balance"]


def iso(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_accepted_deposit_credits_at_once(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "deposit")
    key = tid()
    response = new_deposit(
        admin, uid=wallet_id, currency="USDT", amount="7500", tid=key, state="accepted"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == DEPOSIT_FIELDS
    assert isinstance(body["id"], int)
    assert body["tid"] == key
    assert body["uid"] == wallet_id
    assert body["currency"] == "USDT"
    assert body["type"] == "coin"
    assert body["amount"] == "7500.000000"
    assert body["state"] == "accepted"
    assert iso(body["completed_at"]) >= iso(body["created_at"])
    assert body["blockchain_txid"] is None
    assert body["blockchain_confirmations"] is None

    assert holding(admin, wallet_id, "USDT") == ("7500.000000", "0.000000", "7500.000000")
    assert account(admin, wallet_id, "USDT") == {
        "uid": wallet_id,
        "currency": "USDT",
        "balance": "7500.000000",
        "locked": "0.000000",
    }


def test_fiat_deposit_has_two_places_and_type_fiat(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "fiat")
    response = new_deposit(admin, uid=wallet_id, currency="EUR", amount="10.5", state="accepted")
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "fiat"
    assert response.json()["amount"] == "10.50"
    assert response.json()["tid"]  # generated when not supplied
    assert account(admin, wallet_id, "EUR")["balance"] == "10.50"


def test_deposit_without_state_is_submitted_and_not_credited(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "submitted")
    response = new_deposit(admin, uid=wallet_id, currency="BTC", amount="1.5", tid=tid())
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "submitted"
    assert response.json()["amount"] == "1.50000000"
    assert response.json()["completed_at"] is None
    assert holding(admin, wallet_id, "BTC") == ("0.00000000", "0.00000000", "0.00000000")
    assert account(admin, wallet_id, "BTC")["balance"] == "0.00000000"


def test_same_tid_same_content_is_the_same_deposit_credited_once(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "idempotent")
    fields = {"uid": wallet_id, "currency": "ETH", "amount": "2.25", "tid": tid()}
    first = new_deposit(admin, **fields, state="accepted")
    second = new_deposit(admin, **fields, state="accepted")
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.json() == first.json()
    assert holding(admin, wallet_id, "ETH") == ("2.25000000", "0.00000000", "2.25000000")


def test_same_tid_with_other_content_is_409_and_not_credited(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "conflict")
    key = tid()
    first = new_deposit(
        admin, uid=wallet_id, currency="USDT", amount="100", tid=key, state="accepted"
    )
    assert first.status_code == 201, first.text
    for changes in ({"amount": "101"}, {"currency": "BTC", "amount": "1"}, {"state": None}):
        fields = {"uid": wallet_id, "currency": "USDT", "amount": "100", "tid": key}
        fields["state"] = "accepted"
        fields.update(changes)
        body = {name: value for name, value in fields.items() if value is not None}
        assert_problem(new_deposit(admin, **body), 409)
    other_wallet = new_wallet(admin, "other")
    assert_problem(
        new_deposit(
            admin, uid=other_wallet, currency="USDT", amount="100", tid=key, state="accepted"
        ),
        409,
    )
    assert holding(admin, wallet_id, "USDT") == ("100.000000", "0.000000", "100.000000")
    assert holding(admin, wallet_id, "BTC")[0] == "0.00000000"
    assert holding(admin, other_wallet, "USDT")[0] == "0.000000"


def test_idempotency_key_header_on_deposit(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "header-key")
    headers = {"Idempotency-Key": f"dep-{uuid.uuid4().hex}"}
    body = {"uid": wallet_id, "currency": "BTC", "amount": "1", "state": "accepted"}
    first = admin.post("/management/v2/deposits/new", json=body, headers=headers)
    second = admin.post("/management/v2/deposits/new", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert holding(admin, wallet_id, "BTC")[0] == "1.00000000"
    assert second.json()["id"] == first.json()["id"]


def test_deposits_get_by_tid(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "get")
    key = tid()
    created = new_deposit(
        admin, uid=wallet_id, currency="BTC", amount="0.12345678", tid=key, state="accepted"
    )
    assert created.status_code == 201, created.text
    response = admin.post("/management/v2/deposits/get", json={"tid": key})
    assert response.status_code == 201, response.text  # seed 002: POST answers 201
    assert response.json() == created.json()
    form = admin.post("/management/v2/deposits/get", data={"tid": key})
    assert form.status_code == 201, form.text
    assert form.json() == created.json()
    assert_problem(admin.post("/management/v2/deposits/get", json={"tid": tid()}), 404)


def test_accounts_balance_shows_locked_funds(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "locked")
    response = new_deposit(admin, uid=wallet_id, currency="USDT", amount="500", state="accepted")
    assert response.status_code == 201, response.text
    order = place(admin, wallet_id, side="buy", price="1.50", quantity="2.0000")
    assert order.status_code == 201, order.text
    try:
        assert account(admin, wallet_id, "USDT") == {
            "uid": wallet_id,
            "currency": "USDT",
            "balance": "497.000000",
            "locked": "3.000000",
        }
        form = admin.post(
            "/management/v2/accounts/balance", data={"uid": wallet_id, "currency": "USDT"}
        )
        assert form.status_code == 201, form.text
        assert form.json()["locked"] == "3.000000"
    finally:
        admin.delete(f"/orders/{order.json()['id']}/")
    assert account(admin, wallet_id, "USDT")["locked"] == "0.000000"
    assert account(admin, wallet_id, "USDT")["balance"] == "500.000000"


def test_accounts_balance_errors(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "balance-errors")
    balance = "/management/v2/accounts/balance"
    assert_problem(admin.post(balance, json={"uid": str(uuid.uuid4()), "currency": "BTC"}), 404)
    problem = assert_problem(admin.post(balance, json={"uid": wallet_id, "currency": "XYZ"}), 422)
    assert problem["errors"][0]["field"] == "currency"
    problem = assert_problem(admin.post(balance, json={"uid": wallet_id}), 422)
    assert problem["errors"] == [{"field": "currency", "message": problem["errors"][0]["message"]}]


def test_non_admin_token_is_forbidden(admin: httpx.Client, partner: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "forbidden")
    key = tid()
    response = partner.post(
        "/management/v2/deposits/new",
        json={"uid": wallet_id, "currency": "BTC", "amount": "1", "tid": key, "state": "accepted"},
    )
    assert_problem(response, 403, "insufficient_scope")
    assert_problem(
        partner.post("/management/v2/accounts/balance", json={"uid": wallet_id, "currency": "BTC"}),
        403,
        "insufficient_scope",
    )
    assert_problem(
        partner.post("/management/v2/deposits/get", json={"tid": key}), 403, "insufficient_scope"
    )
    assert holding(admin, wallet_id, "BTC")[0] == "0.00000000"
    # Nothing was recorded under that tid either.
    assert_problem(admin.post("/management/v2/deposits/get", json={"tid": key}), 404)


@pytest.mark.parametrize(
    ("currency", "amount", "field"),
    [
        ("BTC", "0.000000001", "amount"),
        ("USDT", "1.0000001", "amount"),
        ("USD", "1.001", "amount"),
        ("BTC", "0", "amount"),
        ("BTC", "0.00000000", "amount"),
        ("BTC", "-1", "amount"),
        ("USDT", "-0.000001", "amount"),
        ("BTC", "abc", "amount"),
        ("BTC", "", "amount"),
        ("XYZ", "1", "currency"),
        ("btc", "1", "currency"),
    ],
)
def test_invalid_deposit_is_422_and_not_credited(
    admin: httpx.Client, currency: str, amount: str, field: str
) -> None:
    wallet_id = new_wallet(admin, "invalid-deposit")
    before = balances(admin, wallet_id)
    key = tid()
    response = new_deposit(
        admin, uid=wallet_id, currency=currency, amount=amount, tid=key, state="accepted"
    )
    problem = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == [field]
    assert balances(admin, wallet_id) == before
    assert_problem(admin.post("/management/v2/deposits/get", json={"tid": key}), 404)


def test_unknown_uid_is_404(admin: httpx.Client) -> None:
    key = tid()
    response = new_deposit(
        admin, uid=str(uuid.uuid4()), currency="BTC", amount="1", tid=key, state="accepted"
    )
    assert_problem(response, 404, "not_found")
    assert_problem(admin.post("/management/v2/deposits/get", json={"tid": key}), 404)


def test_form_encoded_deposit_is_accepted(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "form")
    key = tid()
    response = admin.post(
        "/management/v2/deposits/new",
        data={
            "uid": wallet_id,
            "currency": "BTC",
            "amount": "0.5",
            "tid": key,
            "state": "accepted",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == "0.50000000"
    assert response.json()["tid"] == key
    assert response.json()["state"] == "accepted"
    assert holding(admin, wallet_id, "BTC") == ("0.50000000", "0.00000000", "0.50000000")
    # The same deposit again as JSON is the same deposit.
    again = new_deposit(
        admin, uid=wallet_id, currency="BTC", amount="0.50000000", tid=key, state="accepted"
    )
    assert again.status_code == 201, again.text
    assert again.json() == response.json()
    assert holding(admin, wallet_id, "BTC")[0] == "0.50000000"


def test_concurrent_repeats_of_one_tid_credit_once(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "race")
    body = {"uid": wallet_id, "currency": "BTC", "amount": "0.3", "tid": tid(), "state": "accepted"}

    def attempt(_: int) -> tuple[int, Any]:
        with httpx.Client(base_url=admin.base_url, headers=admin.headers, timeout=30.0) as client:
            response = client.post("/management/v2/deposits/new", json=body)
            return response.status_code, response.json().get("id")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert {status for status, _ in answers} == {201}, answers
    assert len({deposit_id for _, deposit_id in answers}) == 1, answers
    assert holding(admin, wallet_id, "BTC") == ("0.30000000", "0.00000000", "0.30000000")


def test_deposit_state_loads_a_submitted_deposit_once(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin)
    tid = uuid.uuid4().hex
    created = admin.post(
        "/management/v2/deposits/new",
        json={"uid": wallet_id, "currency": "ETH", "amount": "1.5", "tid": tid},
    )
    assert created.status_code == 201 and created.json()["state"] == "submitted"
    assert balances(admin, wallet_id)["ETH"]["available_balance"] == "0.00000000"
    for _ in range(2):  # a repeat of the same change answers the first result
        accepted = admin.put(
            "/management/v2/deposits/state", json={"tid": tid, "state": "accepted"}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["state"] == "accepted" and accepted.json()["completed_at"]
    assert balances(admin, wallet_id)["ETH"]["available_balance"] == "1.50000000"
    too_late = admin.put("/management/v2/deposits/state", json={"tid": tid, "state": "canceled"})
    assert_problem(too_late, 409, "invalid_transition")
    assert balances(admin, wallet_id)["ETH"]["available_balance"] == "1.50000000"


def test_deposit_state_cancel_credits_nothing(admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin)
    tid = uuid.uuid4().hex
    admin.post(
        "/management/v2/deposits/new",
        json={"uid": wallet_id, "currency": "BTC", "amount": "2", "tid": tid},
    ).raise_for_status()
    canceled = admin.put("/management/v2/deposits/state", json={"tid": tid, "state": "canceled"})
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
    accept = admin.put("/management/v2/deposits/state", json={"tid": tid, "state": "accepted"})
    assert_problem(accept, 409, "invalid_transition")
    assert balances(admin, wallet_id)["BTC"]["available_balance"] == "0.00000000"


def test_deposit_state_errors(admin: httpx.Client) -> None:
    unknown = admin.put("/management/v2/deposits/state", json={"tid": "nope", "state": "accepted"})
    assert_problem(unknown, 404, "not_found")
    bad = admin.put("/management/v2/deposits/state", json={"tid": "nope", "state": "succeed"})
    assert_problem(bad, 422, "validation_error")
