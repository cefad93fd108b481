"""Partner webhooks end to end: a real server POSTs to a real receiver in the test, which
checks every signature as a partner would (HMAC-SHA256 recomputed with hmac/hashlib).

The retry cases run on a server of their own with a fast schedule (0.2 s doubling up to
1 s), which the last test kills with SIGKILL and starts again."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.partners import (
    Receiver,
    configure,
    deliveries,
    eventually,
    hooked_partner,
    new_partner,
    partner_accepts,
)
from tests.server import ServerProcess, free_port
from tests.support import assert_not_logged, assert_problem, deposit, new_wallet

RETRY_BASE_S = 0.2
RETRY_CAP_S = 1.0
ATTEMPTS_MAX = 8


# --------------------------------------------------------------------------- settings


def test_the_secret_is_shown_once_and_the_record_shows_it_masked(
    server: ServerProcess, admin: httpx.Client
) -> None:
    partner = new_partner(server, admin)
    record = partner.client.get("/user/me/").json()
    assert record["webhook_callback_url"] is None and record["webhook_secret_masked"] is None
    assert deliveries(partner) == []
    first = configure(partner, "https://partner.example.com/webhook")
    secret = first["secret"]
    assert secret.startswith("sec_") and len(secret) >= 36
    assert first["callback_url"] == "https://partner.example.com/webhook"
    assert first["secret_masked"] == secret[:8] + "…" and "save your secret" in first["message"]
    record = partner.client.get("/user/me/").json()
    assert record["webhook_callback_url"] == "https://partner.example.com/webhook"
    assert record["webhook_secret_masked"] == secret[:8] + "…"
    assert secret not in json.dumps(record)
    second = configure(partner, "https://partner.example.com/v2/webhook")
    assert "secret" not in second and second["secret_masked"] == first["secret_masked"]
    assert secret not in json.dumps(second)
    record = partner.client.get("/user/me/").json()
    assert record["webhook_callback_url"] == "https://partner.example.com/v2/webhook"
    other = new_partner(server, admin)  # settings are each partner's own
    assert other.client.get("/user/me/").json()["webhook_callback_url"] is None
    assert_not_logged(server.log_path.read_text(errors="replace"), secret)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://partner.example.com/",
        "javascript:alert(1)",
        "http://",
        "http:///webhook",
        "https://user:password@partner.example.com/",
        "https://partner.example.com/#fragment",
        "https://partner example.com/",
        "http://partner.example.com:99999/",
        "http://999.1.1.1/",
        "not a url",
        "",
        "https://partner.example.com/" + "a" * 2048,
    ],
)
def test_bad_callback_urls_are_422(server: ServerProcess, admin: httpx.Client, url: str) -> None:
    response = admin.post("/user/webhooks/", json={"callback_url": url})
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "callback_url", body


def test_bad_bodies_are_422(admin: httpx.Client) -> None:
    for body in ({}, {"callback_url": 5}, {"callback_url": "https://a.example/", "x": 1}):
        assert_problem(admin.post("/user/webhooks/", json=body), 422, "validation_error")
    for params in ({"limit": 101}, {"limit": 0}, {"offset": -1}, {"event_id": "e" * 65}):
        assert_problem(admin.get("/user/webhooks/deliveries/", params=params), 422)


# --------------------------------------------------------------------------- delivery


def test_a_deposit_is_delivered_once_signed_with_a_stable_id(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = hooked_partner(server, admin, receiver.url)
    wallet_id = new_wallet(partner.client, "hooked")
    tid = f"hook-{uuid.uuid4().hex[:12]}"
    credited = deposit(admin, wallet_id, "USDT", "12.5", tid)
    eventually(lambda: len(receiver.snapshot()) == 1, "the deposit's webhook")
    [received] = receiver.snapshot()
    assert partner_accepts(partner.secret, received)
    assert not partner_accepts(partner.secret + "x", received)
    assert received.headers["content-type"] == "application/json"
    event = received.event
    assert event["type"] == "deposit.completed"
    assert event["id"] == received.headers["x-webhook-id"]
    assert event["data"] == credited and event["data"]["tid"] == tid
    assert event["data"]["uid"] == wallet_id and event["data"]["state"] == "accepted"
    eventually(lambda: bool(deliveries(partner)), "the delivery is recorded")
    [attempt] = deliveries(partner)
    assert attempt == {
        "event_id": event["id"],
        "event_type": "deposit.completed",
        "url": receiver.url,
        "attempt": 1,
        "attempted_at": attempt["attempted_at"],
        "status_code": 204,
        "error": None,
        "next_attempt_at": None,
        "done": True,
    }
    assert deliveries(partner, event_id=event["id"]) == [attempt]
    assert deliveries(partner, event_id="evt_unknown") == []
    deposit(admin, wallet_id, "USDT", "12.5", tid)  # a retry of the same deposit: no new event
    time.sleep(1.0)
    assert len(receiver.snapshot()) == 1 and len(deliveries(partner)) == 1
    other = new_partner(server, admin)  # a partner sees its own deliveries only
    assert deliveries(other) == [] and deliveries(other, event_id=event["id"]) == []


def test_a_submitted_deposit_calls_back_once_it_is_accepted(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = hooked_partner(server, admin, receiver.url)
    wallet_id = new_wallet(partner.client, "hooked later")
    tid = f"hook-{uuid.uuid4().hex[:12]}"
    submitted = admin.post(
        "/management/v2/deposits/new",
        json={"uid": wallet_id, "currency": "BTC", "amount": "0.5", "tid": tid,
              "state": "submitted"},
    )  # fmt: skip
    assert submitted.status_code == 201, submitted.text
    time.sleep(1.0)
    assert receiver.snapshot() == []  # nothing is credited yet
    accepted = admin.put("/management/v2/deposits/state", json={"tid": tid, "state": "accepted"})
    assert accepted.status_code == 200, accepted.text
    eventually(lambda: len(receiver.snapshot()) == 1, "the accepted deposit's webhook")
    [received] = receiver.snapshot()
    assert partner_accepts(partner.secret, received)
    assert received.event["data"] == accepted.json()
    assert received.event["data"]["currency"] == "BTC"


def test_a_changed_url_takes_effect_on_the_next_event(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = hooked_partner(server, admin, "https://old.invalid/webhook")
    configure(partner, receiver.url)
    wallet_id = new_wallet(partner.client, "moved")
    deposit(admin, wallet_id, "EUR", "3")
    eventually(lambda: len(receiver.snapshot()) == 1, "delivery to the new URL")
    assert partner_accepts(partner.secret, receiver.snapshot()[0])


# --------------------------------------------------------------------------- retries


@pytest.fixture(scope="module")
def retrying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own with a fast retry schedule (and one that may be killed)."""
    process = ServerProcess(
        Path(tmp_path_factory.mktemp("webhooks")),
        (
            "--webhook-retry-base-s", str(RETRY_BASE_S),
            "--webhook-retry-cap-s", str(RETRY_CAP_S),
            "--webhook-attempts-max", str(ATTEMPTS_MAX),
            "--webhook-timeout-s", "2",
        ),
    )  # fmt: skip
    process.start()
    yield process
    process.close()


@pytest.fixture
def operator(retrying: ServerProcess) -> Iterator[httpx.Client]:
    with retrying.client() as client:
        yield client


def test_a_failing_receiver_is_retried_with_backoff_until_delivered(
    retrying: ServerProcess, operator: httpx.Client
) -> None:
    receiver = Receiver(failures=2).start()
    try:
        partner = hooked_partner(retrying, operator, receiver.url)
        deposit(operator, new_wallet(partner.client, "retried"), "USDT", "7")
        eventually(lambda: len(receiver.snapshot()) == 3, "three attempts")
        first, second, third = receiver.snapshot()
        assert all(partner_accepts(partner.secret, attempt) for attempt in (first, second, third))
        assert first.body == second.body == third.body
        ids = {attempt.headers["x-webhook-id"] for attempt in (first, second, third)}
        assert len(ids) == 1
        assert second.at_s - first.at_s >= RETRY_BASE_S * 0.9
        assert third.at_s - second.at_s >= 2 * RETRY_BASE_S * 0.9
        eventually(lambda: len(deliveries(partner)) == 3, "three attempts recorded")
        newest, middle, oldest = deliveries(partner)
        assert [d["attempt"] for d in (oldest, middle, newest)] == [1, 2, 3]
        assert [d["status_code"] for d in (oldest, middle, newest)] == [500, 500, 204]
        assert [d["done"] for d in (oldest, middle, newest)] == [False, False, True]
        assert oldest["next_attempt_at"] is not None and newest["next_attempt_at"] is None
        assert {d["event_id"] for d in (oldest, middle, newest)} == ids
        time.sleep(3 * RETRY_BASE_S)
        assert len(receiver.snapshot()) == 3  # delivered: no more attempts
    finally:
        receiver.stop()


def test_an_unreachable_url_is_retried_and_given_up_while_others_are_delivered(
    retrying: ServerProcess, operator: httpx.Client, receiver: Receiver
) -> None:
    closed_port = free_port()
    stranded = hooked_partner(retrying, operator, f"http://127.0.0.1:{closed_port}/hook")
    reachable = hooked_partner(retrying, operator, receiver.url)
    deposit(operator, new_wallet(stranded.client, "stranded"), "USDT", "1")
    eventually(lambda: len(deliveries(stranded)) >= 2, "retries to a closed port")
    deposit(operator, new_wallet(reachable.client, "reachable"), "USDT", "2")
    eventually(lambda: len(receiver.snapshot()) == 1, "the other partner's delivery", 10)
    assert partner_accepts(reachable.secret, receiver.snapshot()[0])
    eventually(lambda: deliveries(stranded)[0]["done"], "the attempts run out")
    attempts = deliveries(stranded)
    assert [d["attempt"] for d in attempts] == list(range(ATTEMPTS_MAX, 0, -1))
    assert all(d["status_code"] is None and d["error"] for d in attempts)
    assert [d["done"] for d in attempts] == [True] + [False] * (ATTEMPTS_MAX - 1)
    assert attempts[0]["next_attempt_at"] is None
    assert len(receiver.snapshot()) == 1
    status = httpx.get(f"{retrying.base_url}/status/")
    assert status.status_code == 200 and status.json()["status"] == "ok"
    log = retrying.log_path.read_text(errors="replace")
    assert "webhook attempt failed, will retry" in log and "webhook given up" in log
    assert "partner=test" not in log  # the query of a URL is not logged


def test_a_pending_event_survives_kill_9(retrying: ServerProcess, operator: httpx.Client) -> None:
    port = free_port()
    receiver = Receiver(port=port)  # down for now
    partner = hooked_partner(retrying, operator, receiver.url)
    deposit(operator, new_wallet(partner.client, "survivor"), "USDT", "5")
    eventually(lambda: bool(deliveries(partner)), "a first failed attempt")
    before = deliveries(partner)
    retrying.kill()
    assert all(d["status_code"] is None and not d["done"] for d in before), before
    event_id = before[0]["event_id"]
    receiver.start()
    try:
        retrying.start()
        eventually(lambda: bool(receiver.snapshot()), "the event after the restart")
        time.sleep(3 * RETRY_BASE_S)
        [received] = receiver.snapshot()
        assert received.headers["x-webhook-id"] == event_id
        assert received.event["id"] == event_id
        assert partner_accepts(partner.secret, received)
        eventually(lambda: deliveries(partner)[0]["done"], "the delivery is recorded")
        assert deliveries(partner)[0]["status_code"] == 204
    finally:
        receiver.stop()
