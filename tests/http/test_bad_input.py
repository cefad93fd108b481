"""Bad input at the REST edge: every refusal is an RFC 9457 problem and changes nothing.

Each case sends one bad request for a fresh funded wallet, checks the problem document
(`application/problem+json` with type/title/status/detail/code, and `errors` naming the
field for validation failures), then checks that the wallet's balances, its orders and
the BTC-USDT book are exactly as before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.support import assert_problem, balances, deposit, new_wallet

WALLET = "<wallet>"
BASE_ORDER = {
    "wallet_id": WALLET,
    "market": "BTC-USDT",
    "side": "buy",
    "type": "limit",
    "price": "100.00",
    "quantity": "0.0100",
}
MISSING = object()


@dataclass(frozen=True)
class State:
    balances: dict[str, dict[str, str]]
    orders: list[dict[str, Any]]
    book: dict[str, Any]


@pytest.fixture
def wallet_id(admin: httpx.Client) -> str:
    wallet_id = new_wallet(admin, "bad-input")
    deposit(admin, wallet_id, "USDT", "1000")
    deposit(admin, wallet_id, "BTC", "1")
    return wallet_id


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        yield client


def state(client: httpx.Client, wallet_id: str) -> State:
    orders = client.get("/orders/", params={"wallet_id": wallet_id})
    assert orders.status_code == 200, orders.text
    book = client.get("/markets/BTC-USDT/depth", params={"limit": 1000})
    assert book.status_code == 200, book.text
    return State(balances(client, wallet_id), orders.json(), book.json())


def assert_unchanged(client: httpx.Client, wallet_id: str, before: State) -> None:
    after = state(client, wallet_id)
    assert after.balances == before.balances
    assert after.orders == before.orders == []
    assert after.book == before.book


def order_body(owner: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """BASE_ORDER for `owner` with `changes` (MISSING drops a field)."""
    body: dict[str, Any] = {**BASE_ORDER, **(changes or {})}
    return {
        name: (owner if value == WALLET else value)
        for name, value in body.items()
        if value is not MISSING
    }


def assert_validation(response: httpx.Response, field: str | None) -> dict[str, Any]:
    problem = assert_problem(response, 422, "validation_error")
    assert problem["type"].startswith("https://") or problem["type"] == "about:blank"
    assert problem["title"]
    assert problem["detail"]
    assert isinstance(problem["errors"], list)
    assert problem["errors"]
    for error in problem["errors"]:
        assert set(error) == {"field", "message"}
        assert error["message"]
    if field is not None:
        assert [error["field"] for error in problem["errors"]] == [field], problem
    return problem


# ---------------------------------------------------------------- POST /orders/: validation


ORDER_VALIDATION_CASES = [
    # wrong JSON types
    pytest.param({"price": 100.5}, "price", id="price-number"),
    pytest.param({"quantity": 1}, "quantity", id="quantity-integer"),
    pytest.param({"quantity": 0.01}, "quantity", id="quantity-float"),
    pytest.param({"post_only": "true"}, "post_only", id="post-only-string"),
    pytest.param({"post_only": 1}, "post_only", id="post-only-integer"),
    pytest.param({"wallet_id": 5}, "wallet_id", id="wallet-id-number"),
    pytest.param({"side": None}, "side", id="side-null"),
    pytest.param({"external_id": 7}, "external_id", id="external-id-number"),
    # decimal strings that are not decimals, or not on the grid
    pytest.param({"price": "100.001"}, "price", id="price-off-tick"),
    pytest.param({"price": "100.005"}, "price", id="price-half-tick"),
    pytest.param({"quantity": "0.00001"}, "quantity", id="quantity-off-lot"),
    pytest.param({"quantity": "0.01005"}, "quantity", id="quantity-too-many-decimals"),
    pytest.param({"price": "abc"}, "price", id="price-not-decimal"),
    pytest.param({"price": ""}, "price", id="price-empty"),
    pytest.param({"price": " 100.00"}, "price", id="price-whitespace"),
    pytest.param({"price": "NaN"}, "price", id="price-nan"),
    pytest.param({"price": "Infinity"}, "price", id="price-infinity"),
    pytest.param({"quantity": "0x10"}, "quantity", id="quantity-hex"),
    # zero and negative
    pytest.param({"quantity": "0"}, "quantity", id="quantity-zero"),
    pytest.param({"quantity": "0.0000"}, "quantity", id="quantity-zero-places"),
    pytest.param({"quantity": "-0.0100"}, "quantity", id="quantity-negative"),
    pytest.param({"price": "0"}, "price", id="price-zero"),
    pytest.param({"price": "-100.00"}, "price", id="price-negative"),
    # too large
    pytest.param({"quantity": "461168601842738790000"}, "quantity", id="quantity-beyond-bigint"),
    pytest.param(
        {"quantity": "1" + "0" * 30},
        "quantity",
        id="quantity-huge",
    ),
    pytest.param(
        {"price": "1e30"},
        "price",
        id="price-huge-exponent",
    ),
    # enumerations
    pytest.param({"market": "NOPE-USDT"}, "market", id="unknown-market"),
    pytest.param({"market": "btc-usdt"}, "market", id="market-lowercase"),
    pytest.param({"side": "long"}, "side", id="unknown-side"),
    pytest.param({"type": "trailing_stop"}, "type", id="unknown-type"),
    pytest.param({"time_in_force": "GTD"}, "time_in_force", id="unknown-time-in-force"),
    # missing or inconsistent fields
    pytest.param({"price": MISSING}, "price", id="limit-without-price"),
    pytest.param({"type": "market"}, "price", id="market-with-price"),
    pytest.param(
        {"type": "market", "price": MISSING, "time_in_force": "GTC"},
        "time_in_force",
        id="market-gtc",
    ),
    pytest.param({"stop_price": "90.00"}, "stop_price", id="limit-with-stop-price"),
    pytest.param({"type": "stop_limit"}, "stop_price", id="stop-without-stop-price"),
    pytest.param({"stop_price": "1.001", "type": "stop_limit"}, "stop_price", id="stop-off-tick"),
    pytest.param({"display_quantity": "0.0100"}, "display_quantity", id="display-not-below"),
    pytest.param({"display_quantity": "0.00001"}, "display_quantity", id="display-off-lot"),
    pytest.param(
        {"type": "market", "price": MISSING, "display_quantity": "0.0010"},
        "display_quantity",
        id="display-on-market",
    ),
    pytest.param({"post_only": True, "time_in_force": "IOC"}, "post_only", id="post-only-ioc"),
    pytest.param({"external_id": ""}, "external_id", id="external-id-empty"),
    pytest.param({"external_id": "x" * 65}, "external_id", id="external-id-too-long"),
    pytest.param({"wallet_id": "w" * 65}, "wallet_id", id="wallet-id-too-long"),
    # unknown or missing fields
    pytest.param({"foo": "bar"}, None, id="unknown-field"),
    pytest.param({"client_order_id": "x"}, None, id="unknown-field-2"),
    pytest.param({"side": MISSING}, None, id="missing-side"),
    pytest.param({"quantity": MISSING}, None, id="missing-quantity"),
    pytest.param({"market": MISSING}, None, id="missing-market"),
    pytest.param({"wallet_id": MISSING}, None, id="missing-wallet-id"),
    pytest.param({"type": MISSING}, None, id="missing-type"),
]


@pytest.mark.parametrize(("changes", "field"), ORDER_VALIDATION_CASES)
def test_invalid_order_is_422_and_changes_nothing(
    admin: httpx.Client, wallet_id: str, changes: dict[str, Any], field: str | None
) -> None:
    before = state(admin, wallet_id)
    response = admin.post("/orders/", json=order_body(wallet_id, changes))
    assert_validation(response, field)
    assert_unchanged(admin, wallet_id, before)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"foo": "bar"}, "foo", id="unknown-field"),
        pytest.param({"side": MISSING}, "side", id="missing-side"),
        pytest.param({"quantity": MISSING}, "quantity", id="missing-quantity"),
    ],
)
def test_validation_error_names_unknown_and_missing_fields(
    admin: httpx.Client, wallet_id: str, changes: dict[str, Any], field: str
) -> None:
    response = admin.post("/orders/", json=order_body(wallet_id, changes))
    assert_validation(response, field)


def test_unknown_wallet_is_404_and_changes_nothing(admin: httpx.Client, wallet_id: str) -> None:
    before = state(admin, wallet_id)
    for unknown in (str(uuid.uuid4()), "not-a-wallet"):
        response = admin.post("/orders/", json=order_body(wallet_id, {"wallet_id": unknown}))
        assert_problem(response, 404, "not_found")
    assert_unchanged(admin, wallet_id, before)


# ---------------------------------------------------------------- POST /orders/: raw bodies


RAW_CASES = [
    pytest.param(b'{"wallet_id": ', "application/json", 400, "malformed_json", id="truncated"),
    pytest.param(b"{'a': 1}", "application/json", 400, "malformed_json", id="single-quotes"),
    pytest.param(b"", "application/json", 400, "malformed_json", id="empty"),
    pytest.param(b"not json at all", "application/json", 400, "malformed_json", id="text"),
    pytest.param(b"[]", "application/json", 422, "validation_error", id="array"),
    pytest.param(b"null", "application/json", 422, "validation_error", id="null"),
    pytest.param(b'"order"', "application/json", 422, "validation_error", id="string"),
    pytest.param(
        b"wallet_id=x&market=BTC-USDT",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
        id="form-encoded",
    ),
    pytest.param(b"{}", "text/plain", 415, "unsupported_media_type", id="text-plain"),
    pytest.param(b"<order/>", "application/xml", 415, "unsupported_media_type", id="xml"),
    pytest.param(
        b'{"wallet_id": "\xff\xfe"}',
        "application/json",
        400,
        "malformed_json",
        id="invalid-utf8",
    ),
]


@pytest.mark.parametrize(("content", "content_type", "status", "code"), RAW_CASES)
def test_unreadable_order_body_changes_nothing(
    admin: httpx.Client,
    wallet_id: str,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    before = state(admin, wallet_id)
    response = admin.post("/orders/", content=content, headers={"Content-Type": content_type})
    assert_problem(response, status, code)
    assert_unchanged(admin, wallet_id, before)


def test_json_with_charset_is_accepted(admin: httpx.Client, wallet_id: str) -> None:
    body = order_body(wallet_id, {"price": "1.00", "quantity": "0.0001"})
    response = admin.post(
        "/orders/",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    assert admin.delete(f"/orders/{response.json()['id']}/").status_code == 200


def test_body_over_64_kib_is_413(admin: httpx.Client, wallet_id: str) -> None:
    before = state(admin, wallet_id)
    padded = order_body(wallet_id, {"external_id": "p" * 64})
    padded["padding"] = "x" * (64 * 1024)
    assert_problem(admin.post("/orders/", json=padded), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:
        yield b'{"wallet_id": "' + wallet_id.encode() + b'", "padding": "'
        for _ in range(70):
            yield b"y" * 1024
        yield b'"}'

    streamed = admin.post(
        "/orders/", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413, "body_too_large")
    assert_unchanged(admin, wallet_id, before)


def test_missing_or_invalid_token_is_401_and_changes_nothing(
    admin: httpx.Client, anonymous: httpx.Client, wallet_id: str
) -> None:
    before = state(admin, wallet_id)
    body = order_body(wallet_id)
    missing = anonymous.post("/orders/", json=body)
    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    invalid = anonymous.post("/orders/", json=body, headers={"Authorization": "Bearer nope"})
    assert_problem(invalid, 401, "invalid_token")
    assert invalid.headers["www-authenticate"].startswith("Bearer")
    assert_unchanged(admin, wallet_id, before)


def test_idempotency_key_header_too_long_is_422(admin: httpx.Client, wallet_id: str) -> None:
    before = state(admin, wallet_id)
    response = admin.post(
        "/orders/", json=order_body(wallet_id), headers={"Idempotency-Key": "k" * 65}
    )
    assert_validation(response, "Idempotency-Key")
    assert_unchanged(admin, wallet_id, before)


# ---------------------------------------------------------------- ids in paths and queries


@pytest.mark.parametrize(
    "order_id",
    [
        pytest.param("99999999999999999999", id="20-digits"),
        pytest.param("9223372036854775807", id="int64-max"),
        pytest.param(
            "9223372036854775808",
            id="int64-max-plus-one",
        ),
        pytest.param(
            "9999999999999999999",
            id="19-nines",
        ),
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("abc", id="letters"),
        pytest.param("1e3", id="exponent"),
    ],
)
def test_unknown_order_id_is_404(admin: httpx.Client, wallet_id: str, order_id: str) -> None:
    before = state(admin, wallet_id)
    assert_problem(admin.get(f"/orders/{order_id}/"), 404, "not_found")
    assert_problem(admin.delete(f"/orders/{order_id}/"), 404, "not_found")
    assert_unchanged(admin, wallet_id, before)


@pytest.mark.parametrize(
    "path",
    [
        f"/wallets/{uuid.uuid4()}/",
        "/wallets/" + "9" * 40 + "/",
        "/wallets/%00/",
        "/no-such-route",
        "/orders/1/extra",
    ],
)
def test_unknown_paths_are_404_problems(admin: httpx.Client, path: str) -> None:
    assert_problem(admin.get(path), 404, "not_found")


def test_method_not_allowed_is_a_problem(admin: httpx.Client) -> None:
    assert_problem(admin.put("/orders/", json={}), 405)
    assert_problem(admin.delete("/markets/"), 405)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        pytest.param({}, 422, "wallet_id", id="no-wallet-id"),
        pytest.param({"wallet_id": "nope"}, 404, None, id="unknown-wallet"),
        pytest.param({"wallet_id": WALLET, "status": "bogus"}, 422, "status", id="bad-status"),
        pytest.param({"wallet_id": WALLET, "limit": "0"}, 422, "limit", id="limit-zero"),
        pytest.param(
            {"wallet_id": WALLET, "limit": "99999999999999999999999"}, 422, "limit", id="limit-huge"
        ),
        pytest.param({"wallet_id": WALLET, "offset": "-1"}, 422, "offset", id="offset-negative"),
    ],
)
def test_bad_order_list_queries(
    admin: httpx.Client, wallet_id: str, params: dict[str, str], status: int, field: str | None
) -> None:
    query = {name: (wallet_id if value == WALLET else value) for name, value in params.items()}
    response = admin.get("/orders/", params=query)
    if status == 422:
        assert_validation(response, field)
    else:
        assert_problem(response, status, "not_found")


# ---------------------------------------------------------------- POST /wallets/


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "n" * 101}, "name", id="name-too-long"),
        pytest.param({"name": 5}, "name", id="name-number"),
        pytest.param({"name": "a", "external_id": ""}, "external_id", id="empty-external-id"),
        pytest.param({"name": "a", "external_id": "e" * 65}, "external_id", id="long-external-id"),
        pytest.param({}, None, id="missing-name"),
        pytest.param({"name": "a", "owner": "me"}, None, id="unknown-field"),
    ],
)
def test_invalid_wallet_is_422(admin: httpx.Client, body: dict[str, Any], field: str) -> None:
    assert_validation(admin.post("/wallets/", json=body), field)


def test_unreadable_wallet_bodies(admin: httpx.Client) -> None:
    malformed = admin.post("/wallets/", content=b"{", headers={"Content-Type": "application/json"})
    assert_problem(malformed, 400, "malformed_json")
    form = admin.post("/wallets/", data={"name": "form"})
    assert_problem(form, 415, "unsupported_media_type")
    huge = admin.post("/wallets/", json={"name": "x" * (70 * 1024)})
    assert_problem(huge, 413, "body_too_large")


# ---------------------------------------------------------------- deposits


def new_deposit(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post("/management/v2/deposits/new", json=fields)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"amount": "0.000000001"}, "amount", id="too-many-decimals"),
        pytest.param({"amount": "0"}, "amount", id="zero"),
        pytest.param({"amount": "-1"}, "amount", id="negative"),
        pytest.param({"amount": "NaN"}, "amount", id="nan"),
        pytest.param({"amount": "100000000000000"}, "amount", id="beyond-bigint"),
        pytest.param({"currency": "DOGE"}, "currency", id="unknown-currency"),
        pytest.param({"state": "rejected"}, "state", id="bad-state"),
        pytest.param({"tid": "t" * 65}, "tid", id="tid-too-long"),
        pytest.param({"fee": "1"}, "fee", id="unknown-field"),
        pytest.param({"amount": MISSING}, "amount", id="missing-amount"),
        pytest.param({"currency": MISSING}, "currency", id="missing-currency"),
        pytest.param({"uid": MISSING}, "uid", id="missing-uid"),
        pytest.param({"amount": 1}, None, id="amount-number"),
        pytest.param(
            {"amount": 1},
            "amount",
            id="amount-number-field",
        ),
        pytest.param(
            {"amount": "1e30"},
            "amount",
            id="amount-huge-exponent",
        ),
    ],
)
def test_invalid_deposit_changes_nothing(
    admin: httpx.Client, wallet_id: str, changes: dict[str, Any], field: str | None
) -> None:
    before = state(admin, wallet_id)
    key = f"bad-{uuid.uuid4().hex}"
    body: dict[str, Any] = {
        "uid": wallet_id,
        "currency": "BTC",
        "amount": "1",
        "tid": key,
        "state": "accepted",
        **changes,
    }
    body = {name: value for name, value in body.items() if value is not MISSING}
    assert_validation(new_deposit(admin, **body), field)
    assert_unchanged(admin, wallet_id, before)
    if "tid" not in changes:
        assert_problem(admin.post("/management/v2/deposits/get", json={"tid": key}), 404)


def test_deposit_for_unknown_uid_is_404(admin: httpx.Client) -> None:
    response = new_deposit(
        admin, uid=str(uuid.uuid4()), currency="BTC", amount="1", state="accepted"
    )
    assert_problem(response, 404, "not_found")


def test_unreadable_deposit_bodies_change_nothing(admin: httpx.Client, wallet_id: str) -> None:
    before = state(admin, wallet_id)
    malformed = admin.post(
        "/management/v2/deposits/new",
        content=b'{"uid": ',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "malformed_json")
    huge = admin.post(
        "/management/v2/deposits/new",
        data={"uid": wallet_id, "currency": "BTC", "amount": "1", "tid": "x" * (70 * 1024)},
    )
    assert_problem(huge, 413, "body_too_large")
    assert_unchanged(admin, wallet_id, before)


def test_deposit_with_wrong_content_type_is_415(admin: httpx.Client, wallet_id: str) -> None:
    response = admin.post(
        "/management/v2/deposits/new",
        content=b"<deposit/>",
        headers={"Content-Type": "application/xml"},
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_deeply_nested_json_is_400_not_a_crash(admin: httpx.Client, wallet_id: str) -> None:
    bomb = '{"uid": ' + "[" * 30_000 + "]" * 30_000 + "}"
    headers = {"content-type": "application/json"}
    for path in ("/management/v2/deposits/new", "/orders/", "/wallets/"):
        response = admin.post(path, content=bomb, headers=headers)
        assert response.status_code in (400, 422), (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert admin.get("/status/").json()["status"] == "ok"
