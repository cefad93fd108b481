"""Wallet transfers (seed 001) and Secure Send (seed 000) end to end, through the session's
server: 202 then completion (or failure) visible in the history, the balances and one
signed webhook checked as a partner would; idempotent retries; bad input that moves
nothing; Secure Send by a user with 2FA (pyotp as the authenticator)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
import pytest

from tests.http.partners import (
    Partner,
    Receiver,
    deliveries,
    eventually,
    hooked_partner,
    new_partner,
    partner_accepts,
)
from tests.server import ServerProcess
from tests.support import assert_problem, balances, deposit, new_wallet

TO_SUB = "/wallets/transfer-to-user/"
TO_MASTER = "/wallets/withdraw-to-master/"
HISTORY = "/wallets/transfer-history/"
SECURE_SEND = "/secure-send/"
PASSWORD = "Correct-Horse-Battery-9"
QUIET_S = 0.5  # how long a second delivery of one event is waited for


@dataclass
class Setup:
    partner: Partner
    master: str
    sub: str


def master_of(partner: Partner) -> str:
    record = partner.client.get("/user/me/")
    assert record.status_code == 200, record.text
    master: str = record.json()["master_wallet_id"]
    return master


def set_up(partner: Partner, admin: httpx.Client, master_usdt: str | None = "100") -> Setup:
    master = master_of(partner)
    if master_usdt is not None:
        deposit(admin, master, "USDT", master_usdt)
    return Setup(partner, master, new_wallet(partner.client, "sub"))


def usdt(client: httpx.Client, wallet_id: str) -> str:
    return balances(client, wallet_id)["USDT"]["available_balance"]


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "accepted"
    assert body["message"] == "Transfer request accepted and is being processed"
    assert body["transfer_id"] == body["transfer"]["transfer_id"]
    assert body["transfer_id"].startswith("t_")
    assert response.headers["location"] == f"/wallets/transfers/{body['transfer_id']}/"
    return body


def transfer(client: httpx.Client, transfer_id: str) -> dict[str, Any]:
    response = client.get(f"/wallets/transfers/{transfer_id}/")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def final(client: httpx.Client, transfer_id: str) -> dict[str, Any]:
    """The transfer once it completed or failed."""
    eventually(lambda: transfer(client, transfer_id)["status"] != "pending", f"{transfer_id} ends")
    return transfer(client, transfer_id)


def history(client: httpx.Client, wallet_id: str, **filters: Any) -> dict[str, Any]:
    response = client.post(HISTORY, json={"wallet_id": wallet_id, **filters})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def events_of(receiver: Receiver, transfer_id: str) -> list[Any]:
    return [
        received
        for received in receiver.snapshot()
        if received.event["data"].get("transfer_id") == transfer_id
    ]


def one_signed_event(receiver: Receiver, partner: Partner, transfer_id: str) -> dict[str, Any]:
    """The one webhook about the transfer, its signature checked; never a second one."""
    eventually(lambda: bool(events_of(receiver, transfer_id)), f"the webhook of {transfer_id}")
    time.sleep(QUIET_S)
    [received] = events_of(receiver, transfer_id)
    assert partner_accepts(partner.secret, received)
    event: dict[str, Any] = received.event
    assert event["id"] == received.headers["x-webhook-id"]
    eventually(
        lambda: any(d["event_id"] == event["id"] and d["done"] for d in deliveries(partner)),
        "the delivery is recorded",
    )
    return event


# --------------------------------------------------------------------------- partners


def test_transfer_to_user_is_accepted_then_completed_with_one_signed_webhook(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    setup = set_up(hooked_partner(server, admin, receiver.url), admin)
    client = setup.partner.client
    body = accepted(
        client.post(TO_SUB, json={"wallet_id": setup.sub, "currency": "USDTTRC20",
                                  "amount": "40.5"})
    )  # fmt: skip
    receipt = body["transfer"]
    assert receipt["status"] == "pending" and receipt["processing_status"] == "RECEIVED"
    assert receipt["completed_at"] is None and receipt["reason"] is None
    assert (receipt["from_wallet_id"], receipt["to_wallet_id"]) == (setup.master, setup.sub)
    assert (receipt["currency"], receipt["amount"]) == ("USDT", "40.500000")
    assert receipt["transfer_type"] == "to_sub" and receipt["external_id"] is None
    done = final(client, body["transfer_id"])
    assert done["status"] == "completed" and done["processing_status"] == "CREATED"
    assert done["completed_at"] is not None and done["created_at"] == receipt["created_at"]
    assert usdt(client, setup.sub) == "40.500000"
    assert usdt(client, setup.master) == "59.500000"
    for wallet_id in (setup.sub, setup.master):
        listed = history(client, wallet_id)
        assert listed["transfers"] == [done] and listed["total"] == 1
        assert (listed["wallet_id"], listed["limit"], listed["offset"]) == (wallet_id, 20, 0)
    event = one_signed_event(receiver, setup.partner, body["transfer_id"])
    assert event["type"] == "transfer.completed" and event["data"] == done


def test_withdraw_to_master_goes_to_the_requests_callback_url(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    setup = set_up(hooked_partner(server, admin, receiver.url), admin, master_usdt=None)
    client = setup.partner.client
    deposit(admin, setup.sub, "USDT", "30")
    own = Receiver().start()
    try:
        body = accepted(
            client.post(TO_MASTER, json={"wallet_id": setup.sub, "currency": "USDT",
                                         "amount": "12.000001", "callback_url": own.url})
        )  # fmt: skip
        done = final(client, body["transfer_id"])
        assert done["status"] == "completed" and done["transfer_type"] == "to_master"
        assert (done["from_wallet_id"], done["to_wallet_id"]) == (setup.sub, setup.master)
        assert usdt(client, setup.sub) == "17.999999"
        assert usdt(client, setup.master) == "12.000001"
        event = one_signed_event(own, setup.partner, body["transfer_id"])
        assert event["type"] == "transfer.completed" and event["data"] == done
        assert events_of(receiver, body["transfer_id"]) == []  # not to the partner's URL
    finally:
        own.stop()


def test_without_the_funds_the_transfer_fails_asynchronously_and_moves_nothing(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    setup = set_up(hooked_partner(server, admin, receiver.url), admin, master_usdt="10")
    client = setup.partner.client
    body = accepted(
        client.post(TO_SUB, json={"wallet_id": setup.sub, "currency": "USDT", "amount": "25"})
    )
    assert body["transfer"]["status"] == "pending"  # the balance is not checked before 202
    failed = final(client, body["transfer_id"])
    assert failed["status"] == "failed" and failed["reason"] == "insufficient_funds"
    assert failed["processing_status"] == "INVALID" and failed["completed_at"] is not None
    assert usdt(client, setup.master) == "10.000000" and usdt(client, setup.sub) == "0.000000"
    assert history(client, setup.sub, status="failed")["transfers"] == [failed]
    assert history(client, setup.sub, status="completed")["transfers"] == []
    event = one_signed_event(receiver, setup.partner, body["transfer_id"])
    assert event["type"] == "transfer.failed" and event["data"] == failed
    # Back from the sub-account: it has nothing either.
    back = accepted(
        client.post(TO_MASTER, json={"wallet_id": setup.sub, "currency": "USDT", "amount": "1"})
    )
    assert final(client, back["transfer_id"])["reason"] == "insufficient_funds"
    assert usdt(client, setup.master) == "10.000000"


def test_a_repeated_key_answers_the_first_transfer_and_other_content_is_a_conflict(
    server: ServerProcess, admin: httpx.Client
) -> None:
    setup = set_up(new_partner(server, admin), admin)
    client = setup.partner.client
    external_id = f"ext-{uuid.uuid4().hex[:12]}"
    request = {"wallet_id": setup.sub, "currency": "USDT", "amount": "5",
               "external_id": external_id}  # fmt: skip
    first = accepted(client.post(TO_SUB, json=request))
    assert first["transfer"]["external_id"] == external_id
    done = final(client, first["transfer_id"])
    again = accepted(client.post(TO_SUB, json=request))
    assert again["transfer_id"] == first["transfer_id"] and again["transfer"] == done
    # The same key in the header, alone or with the same external_id: the same transfer.
    same_content = {key: value for key, value in request.items() if key != "external_id"}
    for body in (same_content, request):
        header = client.post(TO_SUB, json=body, headers={"Idempotency-Key": external_id})
        assert accepted(header)["transfer_id"] == first["transfer_id"]
    # A USDT withdrawal code names the same currency: the same content.
    code = accepted(client.post(TO_SUB, json={**request, "currency": "USDTERC20"}))
    assert code["transfer_id"] == first["transfer_id"]
    for changed in (
        {"amount": "6"},
        {"amount": "5.000001"},
        {"callback_url": "https://partner.example.com/hook"},
        {"wallet_id": new_wallet(client, "other")},
    ):
        conflict = client.post(TO_SUB, json={**request, **changed})
        assert_problem(conflict, 409, "idempotency_conflict")
    # Another kind under the same key is other content too.
    assert_problem(client.post(TO_MASTER, json=request), 409, "idempotency_conflict")
    mismatch = client.post(TO_SUB, json=request, headers={"Idempotency-Key": "another-key"})
    problem = assert_problem(mismatch, 422, "idempotency_key_mismatch")
    assert problem["errors"][0]["field"] == "external_id"
    assert usdt(client, setup.sub) == "5.000000"  # moved once
    assert history(client, setup.sub)["total"] == 1
    # An Idempotency-Key alone works the same way.
    key = uuid.uuid4().hex
    body = {"wallet_id": setup.sub, "currency": "USDT", "amount": "1"}
    header_first = accepted(client.post(TO_MASTER, json=body, headers={"Idempotency-Key": key}))
    header_again = accepted(client.post(TO_MASTER, json=body, headers={"Idempotency-Key": key}))
    assert header_first["transfer_id"] == header_again["transfer_id"]
    assert header_again["transfer"]["external_id"] == key
    final(client, header_first["transfer_id"])
    assert usdt(client, setup.sub) == "4.000000"
    # Keys are each partner's own: another partner may use the same one.
    other = set_up(new_partner(server, admin), admin)
    theirs = accepted(other.partner.client.post(TO_SUB, json={**request, "wallet_id": other.sub}))
    assert theirs["transfer_id"] != first["transfer_id"]


@pytest.fixture(scope="module")
def quiet(server: ServerProcess, admin: httpx.Client) -> Iterator[Setup]:
    """A funded partner for the bad requests, which must never move anything."""
    partner = new_partner(server, admin)
    setup = set_up(partner, admin)
    deposit(admin, setup.sub, "USDT", "10")
    yield setup
    partner.client.close()


OTHER_WALLET = "<another partner's wallet>"
MASTER = "<master>"


@pytest.mark.parametrize(
    ("changes", "status", "code", "field"),
    [
        ({"currency": "DOGE"}, 422, "unsupported_currency", "currency"),
        ({"currency": "usdt"}, 422, "unsupported_currency", "currency"),
        ({"currency": ""}, 422, "validation_error", "currency"),
        ({"amount": 5}, 422, "validation_error", "amount"),
        ({"amount": 5.5}, 422, "validation_error", "amount"),
        ({"amount": "1.0000001"}, 422, "validation_error", "amount"),
        ({"amount": "0"}, 422, "validation_error", "amount"),
        ({"amount": "0.000000"}, 422, "validation_error", "amount"),
        ({"amount": "-1"}, 422, "validation_error", "amount"),
        ({"amount": "1e2"}, 422, "validation_error", "amount"),
        ({"amount": " 1"}, 422, "validation_error", "amount"),
        ({"amount": "NaN"}, 422, "validation_error", "amount"),
        ({"amount": None}, 422, "validation_error", "amount"),
        ({"wallet_id": None}, 422, "validation_error", "wallet_id"),
        ({"wallet_id": "no-such-wallet"}, 404, "not_found", None),
        ({"wallet_id": OTHER_WALLET}, 404, "not_found", None),
        ({"wallet_id": MASTER}, 422, "master_wallet", "wallet_id"),
        ({"callback_url": "ftp://partner.example.com/"}, 422, "validation_error", "callback_url"),
        ({"callback_url": ""}, 422, "validation_error", "callback_url"),
        ({"external_id": ""}, 422, "validation_error", "external_id"),
        ({"external_id": "x" * 65}, 422, "validation_error", "external_id"),
        ({"unknown": 1}, 422, "validation_error", "unknown"),
    ],
)
@pytest.mark.parametrize("path", [TO_SUB, TO_MASTER])
def test_bad_transfer_requests_are_precise_problems_and_move_nothing(
    server: ServerProcess,
    admin: httpx.Client,
    quiet: Setup,
    path: str,
    changes: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    client = quiet.partner.client
    body: dict[str, Any] = {"wallet_id": quiet.sub, "currency": "USDT", "amount": "1"}
    body.update(changes)
    if body["wallet_id"] == OTHER_WALLET:
        body["wallet_id"] = new_wallet(admin, "not theirs")
    elif body["wallet_id"] == MASTER:
        body["wallet_id"] = quiet.master
    body = {key: value for key, value in body.items() if value is not None}
    before = (balances(client, quiet.master), balances(client, quiet.sub))
    problem = assert_problem(client.post(path, json=body), status, code)
    if field is not None:
        assert problem["errors"][0]["field"] == field, problem
    assert (balances(client, quiet.master), balances(client, quiet.sub)) == before
    assert history(client, quiet.sub)["total"] == 0


def test_bad_bodies_and_headers_move_nothing(quiet: Setup) -> None:
    client = quiet.partner.client
    before = (balances(client, quiet.master), balances(client, quiet.sub))
    good = {"wallet_id": quiet.sub, "currency": "USDT", "amount": "1"}
    cases = [
        (client.post(TO_SUB, content=b'{"wallet_id": ', headers={"Content-Type":
                                                                  "application/json"}),
         400, "malformed_json"),
        (client.post(TO_SUB, content=b"[]", headers={"Content-Type": "application/json"}),
         422, "validation_error"),
        (client.post(TO_SUB, content=b"wallet_id=x", headers={"Content-Type": "text/plain"}),
         415, "unsupported_media_type"),
        (client.post(TO_SUB, json=good, headers={"Idempotency-Key": "k" * 65}),
         422, "validation_error"),
        (client.post(TO_MASTER, json=good,
                     headers={b"Idempotency-Key": "caf\u00e9".encode("latin-1")}),
         422, "validation_error"),
    ]  # fmt: skip
    for response, status, code in cases:
        assert_problem(response, status, code)
    assert (balances(client, quiet.master), balances(client, quiet.sub)) == before
    assert history(client, quiet.sub)["total"] == 0


def test_history_filters_pages_and_is_the_partners_own(
    server: ServerProcess, admin: httpx.Client
) -> None:
    setup = set_up(new_partner(server, admin), admin)
    client = setup.partner.client
    made = []
    for path, amount in ((TO_SUB, "3"), (TO_SUB, "2"), (TO_MASTER, "1"), (TO_SUB, "500")):
        body = {"wallet_id": setup.sub, "currency": "USDT", "amount": amount}
        made.append(final(client, accepted(client.post(path, json=body))["transfer_id"]))
    newest_first = made[::-1]
    whole = history(client, setup.sub)
    assert whole["transfers"] == newest_first and whole["total"] == 4
    pages = [history(client, setup.sub, limit=3, offset=offset) for offset in (0, 3)]
    assert pages[0]["transfers"] + pages[1]["transfers"] == newest_first
    assert [page["total"] for page in pages] == [4, 4] and pages[1]["offset"] == 3
    assert history(client, setup.sub, transfer_type="to_master")["transfers"] == [made[2]]
    assert history(client, setup.sub, status="failed")["transfers"] == [made[3]]
    to_sub_done = history(client, setup.sub, status="completed", transfer_type="to_sub")
    assert to_sub_done["transfers"] == [made[1], made[0]] and to_sub_done["total"] == 2
    assert history(client, setup.sub, currency="USDTTRC20")["total"] == 4
    assert history(client, setup.sub, currency="BTC")["total"] == 0
    assert history(client, setup.master, transfer_type="secure_send")["total"] == 0
    assert usdt(client, setup.sub) == "4.000000"
    for bad in (
        {"status": "done"},
        {"transfer_type": "sideways"},
        {"currency": "DOGE"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "20"},
        {"offset": -1},
        {"page": 2},
    ):
        response = client.post(HISTORY, json={"wallet_id": setup.sub, **bad})
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == next(iter(bad)), problem
    # Another partner sees neither the wallet's history nor its transfers.
    other = new_partner(server, admin).client
    assert_problem(other.post(HISTORY, json={"wallet_id": setup.sub}), 404, "not_found")
    assert_problem(other.get(f"/wallets/transfers/{made[0]['transfer_id']}/"), 404, "not_found")
    for name in ("t_0", "t_x", "wd_1", "1", "t_" + "9" * 20, "t_99999999999999"):
        assert_problem(client.get(f"/wallets/transfers/{name}/"), 404, "not_found")
    # Reading needs scope read only; moving money needs write.
    operators = new_wallet(admin, "read only")
    with server.client(scope="read") as reader:
        assert reader.post(HISTORY, json={"wallet_id": operators}).json()["total"] == 0
        refused = reader.post(TO_SUB, json={"wallet_id": operators, "currency": "USDT",
                                            "amount": "1"})  # fmt: skip
        assert_problem(refused, 403, "insufficient_scope")


# --------------------------------------------------------------------------- secure send


@dataclass
class User:
    uid: str
    email: str
    wallet_id: str
    client: httpx.Client
    totp: pyotp.TOTP | None


def register(server: ServerProcess, registrar: httpx.Client, *, two_factor: bool) -> User:
    """A user who logged in (before 2FA was on, so its token needs no OTP) and, with
    `two_factor`, confirmed 2FA with the OTP of the previous time step: the current and the
    next step's codes are left for the test."""
    address = f"send-{uuid.uuid4().hex[:12]}@example.com"
    made = registrar.post("/users/register", json={"email": address, "password": PASSWORD})
    assert made.status_code == 201, made.text
    user = made.json()
    login = httpx.post(f"{server.base_url}/users/login",
                       json={"email": address, "password": PASSWORD})  # fmt: skip
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    client = httpx.Client(
        base_url=server.base_url, timeout=30.0, headers={"Authorization": f"Bearer {token}"}
    )
    totp = None
    if two_factor:
        totp = pyotp.TOTP(client.post("/users/2fa/setup").json()["secret"])
        confirmed = client.post("/users/2fa/confirm", json={"otp": totp.at(time.time() - 30)})
        assert confirmed.status_code == 200, confirmed.text
    return User(user["uid"], address, user["wallet_id"], client, totp)


def wrong_code(totp: pyotp.TOTP) -> str:
    now = time.time()
    valid = {totp.at(now + 30 * step) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


def send(user: User, to_email: str, amount: str, otp: str, **headers: str) -> httpx.Response:
    body = {"wallet_id": user.wallet_id, "to_email": to_email, "currency": "USDT",
            "amount": amount, "otp": otp}  # fmt: skip
    return user.client.post(SECURE_SEND, json=body, headers=headers)


def test_secure_send_moves_money_at_once_and_each_otp_works_once(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = hooked_partner(server, admin, receiver.url)
    sender = register(server, partner.client, two_factor=True)
    recipient = register(server, partner.client, two_factor=False)
    stranger = register(server, admin, two_factor=False)  # a user of another partner
    assert sender.totp is not None
    deposit(admin, sender.wallet_id, "USDT", "50")
    otp = sender.totp.now()
    key = uuid.uuid4().hex
    response = send(sender, recipient.email.upper(), "20.25", otp, **{"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    sent = response.json()
    assert sent["status"] == "completed" and sent["transfer_type"] == "secure_send"
    assert (sent["from_wallet_id"], sent["to_wallet_id"]) == (sender.wallet_id,
                                                              recipient.wallet_id)  # fmt: skip
    assert (sent["currency"], sent["amount"]) == ("USDT", "20.250000")
    assert sent["external_id"] == f"secure_send:{sender.uid}:{key}"
    assert sent["completed_at"] is not None
    assert usdt(sender.client, sender.wallet_id) == "29.750000"
    assert usdt(recipient.client, recipient.wallet_id) == "20.250000"
    # A retry of the same send (its answer lost) answers it again; its OTP is spent.
    again = send(sender, recipient.email, "20.25", otp, **{"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.json() == sent
    other = send(sender, recipient.email, "1", otp, **{"Idempotency-Key": key})
    assert_problem(other, 409, "idempotency_conflict")
    # A used OTP, or a wrong one, is refused before anything else.
    assert_problem(send(sender, recipient.email, "1", otp), 401, "otp_rejected")
    assert_problem(send(sender, recipient.email, "1", wrong_code(sender.totp)), 401)
    assert usdt(sender.client, sender.wallet_id) == "29.750000"
    # Any user's address will do, another partner's user's too.
    response = send(sender, stranger.email, "0.75", sender.totp.at(time.time() + 30))
    assert response.status_code == 201, response.text
    assert usdt(sender.client, sender.wallet_id) == "29.000000"
    assert usdt(stranger.client, stranger.wallet_id) == "0.750000"
    # The partner sees the sends in its user's history and by id, and had a webhook.
    listed = history(partner.client, sender.wallet_id, transfer_type="secure_send")
    assert listed["transfers"] == [response.json(), sent]
    assert transfer(partner.client, sent["transfer_id"]) == sent
    assert history(partner.client, recipient.wallet_id)["transfers"] == [sent]
    event = one_signed_event(receiver, partner, sent["transfer_id"])
    assert event["type"] == "transfer.completed" and event["data"] == sent


def test_secure_send_refusals(server: ServerProcess, admin: httpx.Client) -> None:
    sender = register(server, admin, two_factor=True)
    recipient = register(server, admin, two_factor=False)
    assert sender.totp is not None
    deposit(admin, sender.wallet_id, "USDT", "5")
    now = time.time()
    # Checks that need no second factor: no OTP is used up by them.
    assert_problem(send(sender, sender.email, "1", "123456"), 422, "same_wallet")
    for bad_address in ("not-an-address", "a@b"):
        problem = assert_problem(send(sender, bad_address, "1", "123456"), 422, "invalid_email")
        assert problem["errors"][0]["field"] == "to_email"
    someone_else = {"wallet_id": recipient.wallet_id, "to_email": recipient.email,
                    "currency": "USDT", "amount": "1", "otp": "123456"}  # fmt: skip
    assert_problem(sender.client.post(SECURE_SEND, json=someone_else), 404, "not_found")
    for changes, field in (
        ({"amount": 1}, "amount"),
        ({"amount": "0.0000001"}, "amount"),
        ({"currency": "DOGE"}, "currency"),
        ({"otp": 123456}, "otp"),
        ({"memo": "x"}, "memo"),
    ):
        body = {"wallet_id": sender.wallet_id, "to_email": recipient.email,
                "currency": "USDT", "amount": "1", "otp": "123456", **changes}  # fmt: skip
        problem = assert_problem(sender.client.post(SECURE_SEND, json=body), 422)
        assert problem["errors"][0]["field"] == field, problem
    # Then the OTP, then the recipient: an unknown address costs an OTP.
    unknown = f"nobody-{uuid.uuid4().hex[:12]}@example.com"
    assert_problem(send(sender, unknown, "1", sender.totp.at(now)), 404, "not_found")
    refused = send(sender, recipient.email, "5.000001", sender.totp.at(now + 30))
    problem = assert_problem(refused, 422, "insufficient_funds")
    assert problem["errors"][0]["field"] == "amount"
    assert usdt(sender.client, sender.wallet_id) == "5.000000"
    assert usdt(recipient.client, recipient.wallet_id) == "0.000000"
    assert history(admin, sender.wallet_id)["total"] == 0
    # Without 2FA there is no Secure Send; partners cannot call it at all.
    plain = register(server, admin, two_factor=False)
    deposit(admin, plain.wallet_id, "USDT", "1")
    assert_problem(send(plain, recipient.email, "1", "123456"), 403, "two_factor_required")
    as_partner = admin.post(SECURE_SEND, json={**someone_else, "wallet_id": sender.wallet_id})
    assert_problem(as_partner, 403, "users_only")
    # And users cannot move their partner's money.
    body = {"wallet_id": sender.wallet_id, "currency": "USDT", "amount": "1"}
    assert_problem(sender.client.post(TO_MASTER, json=body), 403, "partners_only")
    assert usdt(plain.client, plain.wallet_id) == "1.000000"
