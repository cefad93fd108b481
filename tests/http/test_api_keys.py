"""API keys end to end: APIKEY alone, signed requests computed as a partner's client would
(SPEC §5: md5 of the body, HMAC-SHA512 over APIKEY + TIMESTAMP + CONTENT), replays, stale
timestamps, scopes, revocation."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.support import assert_not_logged, assert_problem


def create_key(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api-keys/", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def signed_headers(
    key: dict[str, Any], body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """What a partner's client sends, computed here independently of the server's code."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    content = hashlib.md5(body).hexdigest()
    message = (key["apikey"] + stamp + content).encode()
    signature = hmac.new(key["secret"].encode(), message, hashlib.sha512).hexdigest()
    return {"APIKEY": key["apikey"], "TIMESTAMP": stamp, "CONTENT": content,
            "SIGNATURE": signature}  # fmt: skip


@pytest.fixture
def anonymous(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30.0)


def test_a_key_without_signatures_authenticates_with_apikey_alone(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    key = create_key(admin, scopes="read", signature_required=False)
    assert set(key) == {"apikey", "secret", "scopes", "signature_required", "created"}
    assert key["scopes"] == "read" and key["signature_required"] is False
    response = anonymous.get("/wallets/", headers={"APIKEY": key["apikey"]})
    assert response.status_code == 200, response.text
    refused = anonymous.post("/wallets/", json={"name": "x"}, headers={"APIKEY": key["apikey"]})
    assert_problem(refused, 403, "insufficient_scope")
    listed = admin.get("/api-keys/").json()
    assert key["apikey"] in [k["apikey"] for k in listed]
    assert all("secret" not in k for k in listed)


def test_signed_requests_work_once_and_bad_ones_are_refused(
    server: ServerProcess, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    key = create_key(admin, scopes=["read", "write"], signature_required=True)
    assert_problem(anonymous.get("/wallets/", headers={"APIKEY": key["apikey"]}), 401,
                   "invalid_signature")  # fmt: skip
    get_headers = signed_headers(key, b"")
    assert anonymous.get("/wallets/", headers=get_headers).status_code == 200
    assert_problem(anonymous.get("/wallets/", headers=get_headers), 401, "invalid_signature")
    body = json.dumps({"name": "signed"}).encode()
    post_headers = {**signed_headers(key, body), "Content-Type": "application/json"}
    created = anonymous.post("/wallets/", content=body, headers=post_headers)
    assert created.status_code == 201, created.text
    wallet_id = created.json()["wallet_id"]
    assert admin.get(f"/wallets/{wallet_id}/").status_code == 200  # the same partner's wallet
    before = admin.get("/wallets/").json()["total"]
    stale = signed_headers(key, body, timestamp=int(time.time()) - 31)
    future = signed_headers(key, body, timestamp=int(time.time()) + 31)
    other_body = {**signed_headers(key, b'{"name": "other"}'), "Content-Type": "application/json"}
    wrong_secret = signed_headers({**key, "secret": "0" * 64}, body)
    for headers, content in (
        (stale, body),
        (future, body),
        (other_body, body),  # CONTENT and SIGNATURE of another body
        (wrong_secret, body),
        ({**signed_headers(key, body), "SIGNATURE": "zz"}, body),
        ({**signed_headers(key, body), "TIMESTAMP": "soon"}, body),
        (post_headers, body),  # a replay of the request that worked
    ):
        response = anonymous.post(
            "/wallets/", content=content, headers={**headers, "Content-Type": "application/json"}
        )
        assert_problem(response, 401, "invalid_signature")
    assert admin.get("/wallets/").json()["total"] == before
    assert_not_logged(server.log_path.read_text(errors="replace"), key["secret"])


def test_unknown_and_revoked_keys_are_refused_at_once(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    assert_problem(anonymous.get("/wallets/", headers={"APIKEY": "sk_nope"}), 401,
                   "invalid_api_key")  # fmt: skip
    key = create_key(admin, scopes="read", signature_required=False)
    assert anonymous.get("/wallets/", headers={"APIKEY": key["apikey"]}).status_code == 200
    assert admin.delete(f"/api-keys/{key['apikey']}/").status_code == 204
    assert_problem(anonymous.get("/wallets/", headers={"APIKEY": key["apikey"]}), 401,
                   "invalid_api_key")  # fmt: skip
    assert_problem(admin.delete(f"/api-keys/{key['apikey']}/"), 404, "not_found")
    assert key["apikey"] not in [k["apikey"] for k in admin.get("/api-keys/").json()]


def test_a_key_never_gets_more_than_its_creator_and_stays_in_its_partner(
    server: ServerProcess, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    application = admin.post(
        "/o/apps/", json={"name": "p", "scopes": "read write", "new_partner": True}
    ).json()
    token = httpx.post(
        f"{server.base_url}/o/token/",
        data={"grant_type": "client_credentials", "client_id": application["client_id"],
              "client_secret": application["client_secret"]},
    ).json()["access_token"]  # fmt: skip
    partner = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"})
    assert_problem(partner.post("/api-keys/", json={"scopes": "admin"}), 403, "insufficient_scope")
    key = create_key(partner, scopes="read", signature_required=False)
    operator_wallet = admin.post("/wallets/", json={"name": "operator's"}).json()["wallet_id"]
    response = anonymous.get(f"/wallets/{operator_wallet}/", headers={"APIKEY": key["apikey"]})
    assert_problem(response, 404, "not_found")
    assert_problem(admin.delete(f"/api-keys/{key['apikey']}/"), 404, "not_found")  # not its own
    for body in ({}, {"scopes": "fly"}, {"scopes": "read", "extra": True},
                 {"scopes": "read", "signature_required": "yes"}):  # fmt: skip
        assert_problem(partner.post("/api-keys/", json=body), 422, "validation_error")
