"""OAuth applications end to end: partners, their applications, shared wallets, revocation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.support import assert_not_logged, assert_problem, new_wallet


def token_client(
    server: ServerProcess, application: dict[str, Any], scope: str = ""
) -> httpx.Client:
    response = httpx.post(
        f"{server.base_url}/o/token/",
        data={
            "grant_type": "client_credentials",
            "client_id": application["client_id"],
            "client_secret": application["client_secret"],
            **({"scope": scope} if scope else {}),
        },
    )
    assert response.status_code == 200, response.text
    client = httpx.Client(base_url=server.base_url, timeout=30.0)
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/o/apps/", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def partner(
    server: ServerProcess, admin: httpx.Client
) -> Iterator[tuple[dict[str, Any], httpx.Client]]:
    """A new partner (made by the operator) with a read-write application."""
    application = create(admin, name="partner", scopes="read write", new_partner=True)
    with token_client(server, application) as client:
        yield application, client


def test_an_application_is_shown_its_secret_once_and_shares_its_partners_wallets(
    server: ServerProcess, partner: tuple[dict[str, Any], httpx.Client]
) -> None:
    first, first_client = partner
    record = first_client.get("/user/me/").json()
    assert record["name"] == "partner" and record["partner_id"] == first["partner_id"]
    assert set(first) == {"id", "name", "client_id", "client_secret", "scopes", "partner_id",
                          "created"}  # fmt: skip
    assert first["scopes"] == "read write" and first["partner_id"] == first["client_id"]
    second = create(first_client, name="second", scopes=["read"])
    assert second["partner_id"] == first["partner_id"] and second["scopes"] == "read"
    listed = first_client.get("/o/apps/").json()
    assert [a["client_id"] for a in listed] == [first["client_id"], second["client_id"]]
    assert all("client_secret" not in a for a in listed)
    wallet_id = new_wallet(first_client, "shared")
    with token_client(server, second) as reader:
        assert reader.get(f"/wallets/{wallet_id}/").status_code == 200
        assert_problem(reader.post("/wallets/", json={"name": "x"}), 403, "insufficient_scope")
        listed_wallets = {w["wallet_id"] for w in reader.get("/wallets/").json()["accounts"]}
        assert listed_wallets == {wallet_id, record["master_wallet_id"]}


def test_partners_do_not_see_each_others_wallets_or_applications(
    server: ServerProcess, admin: httpx.Client, partner: tuple[dict[str, Any], httpx.Client]
) -> None:
    mine, my_client = partner
    theirs = create(admin, name="other", scopes="read write", new_partner=True)
    with token_client(server, theirs) as their_client:
        their_wallet = new_wallet(their_client, "theirs")
        assert_problem(my_client.get(f"/wallets/{their_wallet}/"), 404, "not_found")
        my_wallets = my_client.get("/wallets/").json()["accounts"]
        assert their_wallet not in [wallet["wallet_id"] for wallet in my_wallets]
        assert_problem(my_client.delete(f"/o/apps/{theirs['id']}/"), 404, "not_found")
        assert their_client.get(f"/wallets/{their_wallet}/").status_code == 200
        assert mine["client_id"] not in [
            a["client_id"] for a in their_client.get("/o/apps/").json()
        ]
    assert admin.get(f"/wallets/{their_wallet}/").status_code == 200  # the operator sees all


def test_no_application_gets_more_than_its_creator_holds(
    partner: tuple[dict[str, Any], httpx.Client],
) -> None:
    _, client = partner
    assert_problem(client.post("/o/apps/", json={"name": "x", "scopes": "read admin"}), 403,
                   "insufficient_scope")  # fmt: skip
    assert_problem(
        client.post("/o/apps/", json={"name": "x", "scopes": "read", "new_partner": True}),
        403,
        "insufficient_scope",
    )


def test_deleting_an_application_revokes_its_tokens_at_once(
    server: ServerProcess, partner: tuple[dict[str, Any], httpx.Client]
) -> None:
    _, client = partner
    doomed = create(client, name="doomed", scopes="read")
    with token_client(server, doomed) as doomed_client:
        assert doomed_client.get("/wallets/").status_code == 200  # the token is cached now
        response = client.delete(f"/o/apps/{doomed['id']}/")
        assert response.status_code == 204, response.text
        assert_problem(doomed_client.get("/wallets/"), 401, "invalid_token")
    refused = httpx.post(
        f"{server.base_url}/o/token/",
        data={"grant_type": "client_credentials", "client_id": doomed["client_id"],
              "client_secret": doomed["client_secret"]},
    )  # fmt: skip
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert_problem(client.delete(f"/o/apps/{doomed['id']}/"), 404, "not_found")
    assert_not_logged(server.log_path.read_text(errors="replace"), doomed["client_secret"])


def test_a_client_revokes_its_token_at_once(server: ServerProcess, admin: httpx.Client) -> None:
    application = create(admin, name="revoking", scopes="read")
    revoke = f"{server.base_url}/o/revoke_token/"
    credentials = {"client_id": application["client_id"],
                   "client_secret": application["client_secret"]}  # fmt: skip
    with token_client(server, application) as client:
        token = client.headers["Authorization"].partition(" ")[2]
        assert client.get("/wallets/").status_code == 200
        wrong = httpx.post(revoke, data={**credentials, "client_secret": "x", "token": token})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        assert client.get("/wallets/").status_code == 200
        assert httpx.post(revoke, data={**credentials, "token": token}).status_code == 200
        assert_problem(client.get("/wallets/"), 401, "invalid_token")
    assert httpx.post(revoke, data={**credentials, "token": "unknown"}).status_code == 200
    missing = httpx.post(revoke, data=credentials)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x"}, 422, "validation_error"),
        ({"scopes": "read"}, 422, "validation_error"),
        ({"name": "", "scopes": "read"}, 422, "validation_error"),
        ({"name": "x", "scopes": ""}, 422, "validation_error"),
        ({"name": "x", "scopes": "read fly"}, 422, "validation_error"),
        ({"name": "x", "scopes": [1]}, 422, "validation_error"),
        ({"name": "x", "scopes": "read", "extra": 1}, 422, "validation_error"),
        ({"name": "x" * 101, "scopes": "read"}, 422, "validation_error"),
    ],
)
def test_bad_application_bodies_are_refused_and_create_nothing(
    partner: tuple[dict[str, Any], httpx.Client], body: dict[str, Any], status: int, code: str
) -> None:
    _, client = partner
    before = client.get("/o/apps/").json()
    assert_problem(client.post("/o/apps/", json=body), status, code)
    garbled = client.post(
        "/o/apps/", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(garbled, 400, "malformed_json")
    assert client.get("/o/apps/").json() == before
    for bad_id in ("abc", "-1", "0", "9" * 30):
        assert_problem(client.delete(f"/o/apps/{bad_id}/"), 404, "not_found")
