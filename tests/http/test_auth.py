"""SPEC §5 authentication: the OAuth token endpoint, bearer tokens, scopes, public routes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.server import ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, ServerProcess
from tests.support import assert_problem, new_wallet

GRANT = {
    "grant_type": "client_credentials",
    "client_id": ADMIN_CLIENT_ID,
    "client_secret": ADMIN_CLIENT_SECRET,
}


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def reader(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(scope="read") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_token(response: httpx.Response, scope: str) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert sorted(body["scope"].split()) == sorted(scope.split())
    token: str = body["access_token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    return token


def assert_token_error(response: httpx.Response, status: int, error: str) -> None:
    """RFC 6749 §5.2: a plain JSON object with `error`, not a problem document."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert isinstance(body.get("error_description"), str)
    assert "type" not in body


def test_token_from_form_body_grants_all_scopes_by_default(anonymous: httpx.Client) -> None:
    token = assert_token(anonymous.post("/o/token/", data=GRANT), "admin read write")
    response = anonymous.get("/wallets/", params={"limit": 1}, headers=bearer(token))
    assert response.status_code == 200, response.text


def test_token_from_json_body_with_scope(anonymous: httpx.Client) -> None:
    response = anonymous.post("/o/token/", json={**GRANT, "scope": "read write"})
    token = assert_token(response, "read write")
    created = anonymous.post("/wallets/", json={"name": "json-token"}, headers=bearer(token))
    assert created.status_code == 201, created.text


def test_two_tokens_are_different(anonymous: httpx.Client) -> None:
    first = assert_token(anonymous.post("/o/token/", data=GRANT), "admin read write")
    second = assert_token(anonymous.post("/o/token/", data=GRANT), "admin read write")
    assert first != second


@pytest.mark.parametrize(
    "fields",
    [
        {"client_secret": "wrong-secret"},
        {"client_id": "no-such-client"},
        {"client_secret": ""},
    ],
    ids=["wrong-secret", "unknown-client", "empty-secret"],
)
def test_bad_client_credentials_are_invalid_client(
    anonymous: httpx.Client, fields: dict[str, str]
) -> None:
    response = anonymous.post("/o/token/", data={**GRANT, **fields})
    assert_token_error(response, 401, "invalid_client")


def test_wrong_secret_in_json_body_is_invalid_client(anonymous: httpx.Client) -> None:
    response = anonymous.post("/o/token/", json={**GRANT, "client_secret": "nope"})
    assert_token_error(response, 401, "invalid_client")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "implicit"])
def test_unsupported_grant_type(anonymous: httpx.Client, grant_type: str) -> None:
    response = anonymous.post("/o/token/", data={**GRANT, "grant_type": grant_type})
    assert_token_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("scope", ["read superuser", "root", "read write admin owner"])
def test_scope_not_a_subset_is_invalid_scope(anonymous: httpx.Client, scope: str) -> None:
    response = anonymous.post("/o/token/", data={**GRANT, "scope": scope})
    assert_token_error(response, 400, "invalid_scope")


def test_malformed_token_request_is_invalid_request(anonymous: httpx.Client) -> None:
    response = anonymous.post(
        "/o/token/", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_token_error(response, 400, "invalid_request")
    response = anonymous.post("/o/token/", data={**GRANT, "username": "x"})
    assert_token_error(response, 400, "invalid_request")


def test_read_scope_cannot_write_but_can_read(admin: httpx.Client, reader: httpx.Client) -> None:
    external_id = f"read-only-{uuid.uuid4().hex}"
    response = reader.post("/wallets/", json={"name": "read-only", "external_id": external_id})
    assert_problem(response, 403, "insufficient_scope")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="write"' in challenge

    wallet_id = new_wallet(admin, "readable")
    listed = reader.get("/wallets/", params={"limit": 1})
    assert listed.status_code == 200, listed.text
    one = reader.get(f"/wallets/{wallet_id}/")
    assert one.status_code == 200, one.text
    assert one.json()["wallet_id"] == wallet_id
    orders = reader.get("/orders/", params={"wallet_id": wallet_id})
    assert orders.status_code == 200, orders.text
    assert orders.json() == []

    # The refused POST created nothing: its external_id is still free.
    created = admin.post("/wallets/", json={"name": "after", "external_id": external_id})
    assert created.status_code == 201, created.text


def test_read_scope_cannot_place_or_cancel_orders(
    admin: httpx.Client, reader: httpx.Client
) -> None:
    wallet_id = new_wallet(admin, "read-orders")
    response = reader.post(
        "/orders/",
        json={
            "wallet_id": wallet_id,
            "market": "BTC-USDT",
            "side": "buy",
            "type": "limit",
            "price": "1.00",
            "quantity": "0.0001",
        },
    )
    assert_problem(response, 403, "insufficient_scope")
    assert_problem(reader.delete("/orders/1/"), 403, "insufficient_scope")
    assert admin.get("/orders/", params={"wallet_id": wallet_id}).json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/wallets/"), ("POST", "/wallets/"), ("GET", "/orders/?wallet_id=x")],
)
def test_missing_bearer_is_401_problem_with_challenge(
    anonymous: httpx.Client, method: str, path: str
) -> None:
    response = anonymous.request(method, path, json={"name": "x"} if method == "POST" else None)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-real-token", "Bearer " + "A" * 43, "bearer garbage"],
)
def test_garbage_bearer_is_401_invalid_token(anonymous: httpx.Client, authorization: str) -> None:
    response = anonymous.get("/wallets/", headers={"Authorization": authorization})
    assert_problem(response, 401, "invalid_token")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge


@pytest.mark.parametrize("authorization", ["Basic dGVzdDp0ZXN0", "Bearer", "Token x"])
def test_other_authorization_schemes_are_401(anonymous: httpx.Client, authorization: str) -> None:
    response = anonymous.get("/wallets/", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_wallet_creation_without_token_creates_nothing(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    external_id = f"anon-{uuid.uuid4().hex}"
    response = anonymous.post("/wallets/", json={"name": "anon", "external_id": external_id})
    assert_problem(response, 401, "unauthorized")
    created = admin.post("/wallets/", json={"name": "anon", "external_id": external_id})
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    "path",
    [
        "/status/",
        "/markets/",
        "/markets/BTC-USDT/depth",
        "/markets/BTC-USDT/trades",
        "/openapi.json",
        "/docs",
        "/",
    ],
)
def test_public_routes_need_no_token(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 200, response.text


def test_public_routes_ignore_a_garbage_token(anonymous: httpx.Client) -> None:
    response = anonymous.get("/markets/", headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 200, response.text


def test_status_answers_ok(anonymous: httpx.Client) -> None:
    response = anonymous.get("/status/")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "ok"
    assert response.json()["listeners"] == {"http": True, "mtf": True, "feed": True}


def test_openapi_document_describes_the_contract(anonymous: httpx.Client) -> None:
    response = anonymous.get("/openapi.json")
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/o/token/",
        "/wallets/",
        "/wallets/{wallet_id}/",
        "/wallets/{wallet_id}/mtf-credentials/",
        "/wallets/{wallet_id}/mtf-credentials/{client_id}/",
        "/management/v2/deposits/new",
        "/management/v2/accounts/balance",
        "/orders/",
        "/orders/{order_id}/",
        "/markets/",
        "/markets/{market}/depth",
        "/markets/{market}/trades",
        "/",
    ):
        assert path in document["paths"], path


def test_docs_page_is_html(anonymous: httpx.Client) -> None:
    response = anonymous.get("/docs")
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "http://" not in response.text and "https://" not in response.text  # no CDN
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        assert asset in response.text
        served = anonymous.get(asset)
        assert served.status_code == 200 and len(served.content) > 10_000, asset
