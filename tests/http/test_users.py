"""Users end to end (seed 000 Basic Integration Flow): register, log in, TOTP 2FA with pyotp
as the authenticator, the master password and the vault, profiles and deposit keys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pyotp
import pytest
from bip_utils import SegwitBech32Decoder  # type: ignore[import-untyped, unused-ignore]
from Crypto.Hash import keccak  # type: ignore[import-untyped, unused-ignore]
from websockets.asyncio.client import connect

from strongroom.identity.credentials import UserTokens
from tests.server import ServerProcess
from tests.support import (
    assert_not_logged,
    assert_problem,
    assert_quiet,
    deposit,
    new_wallet,
    order,
)

PASSWORD = "Correct-Horse-Battery-9"
MASTER_PASSWORD = "Vault-Master-Password-42!"
SEEN: list[str] = []  # secrets the tests handled: none may reach the server's log


def email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@Example.COM"


@pytest.fixture
def anonymous(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30.0)


def register(admin: httpx.Client, address: str, **extra: Any) -> dict[str, Any]:
    response = admin.post("/users/register", json={"email": address, "password": PASSWORD, **extra})
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


def login(anonymous: httpx.Client, address: str, **extra: Any) -> httpx.Response:
    return anonymous.post("/users/login", json={"email": address, "password": PASSWORD, **extra})


def as_user(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, timeout=30.0, headers={"Authorization": f"Bearer {token}"}
    )


def eip55(address: str) -> bool:
    """EIP-55 computed here from its definition (keccak of the lower-case hex)."""
    body = address[2:]
    digest = keccak.new(digest_bits=256, data=body.lower().encode()).hexdigest()
    return all(
        (c.upper() if int(h, 16) >= 8 else c.lower()) == c
        for c, h in zip(body, digest[:40], strict=True)
    )


def test_register_log_in_2fa_master_password_vault_and_deposit_keys(
    server: ServerProcess, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    address = email()
    user = register(admin, address, external_id=f"ext-{uuid.uuid4().hex[:8]}")
    assert user["email"] == address.lower()
    assert user["vault_status"] == "PREPARING" and user["main_vault_uuid"] is None
    assert user["rsa_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert user["2fa_enabled"] is False
    token = login(anonymous, address).json()["access_token"]
    with as_user(server, token) as client:
        basic = client.get("/users/me/profile/basic").json()
        assert basic["uid"] == user["uid"] and basic["vault_status"] == "PREPARING"
        assert_problem(client.get("/users/me/deposit-keys"), 409, "vault_not_ready")
        setup = client.post("/users/2fa/setup").json()
        SEEN.extend((setup["secret"], token))
        assert setup["otpauth_uri"].startswith("otpauth://totp/")
        totp = pyotp.TOTP(setup["secret"])
        wrong = "000000" if totp.now() != "000000" else "111111"
        assert_problem(client.post("/users/2fa/confirm", json={"otp": wrong}), 401, "otp_rejected")
        now = time.time()
        confirmed = client.post("/users/2fa/confirm", json={"otp": totp.at(now - 30)})
        assert confirmed.status_code == 200, confirmed.text
    # From now on a login needs an OTP, and each OTP works once.
    assert_problem(login(anonymous, address), 401, "otp_required")
    code = totp.at(now)
    logged = login(anonymous, address, otp=code)
    assert logged.status_code == 200, logged.text
    assert_problem(login(anonymous, address, otp=code), 401, "otp_rejected")
    token = logged.json()["access_token"]
    SEEN.extend((code, token, totp.at(now - 30), totp.at(now + 30)))
    with as_user(server, token) as client:
        weak = client.post("/users/master-password", json={"master_password": "short", "otp": "1"})
        assert_problem(weak, 422, "weak_password")
        accepted = client.post(
            "/users/master-password",
            json={"master_password": MASTER_PASSWORD, "otp": totp.at(now + 30)},
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["vault_status"] == "GENERATING"
        deadline = time.monotonic() + 30
        while (profile := client.get("/users/me/profile").json())["vault_status"] != "READY":
            assert profile["vault_status"] == "GENERATING"
            assert time.monotonic() < deadline, "the vault was never generated"
            time.sleep(0.1)
        vault_uuid = profile["main_vault_uuid"]
        assert len(vault_uuid) == 32 and int(vault_uuid, 16) >= 0
        keys = {key["currency"]: key for key in client.get("/users/me/deposit-keys").json()}
        assert set(keys) == {"BTC", "ETH", "USDT"}  # coins only, never fiat
        btc = keys["BTC"]["address"]
        version, program = SegwitBech32Decoder.Decode("bc", btc)  # checks the checksum
        assert btc.startswith("bc1q") and version == 0 and len(program) == 20  # P2WPKH
        assert eip55(keys["ETH"]["address"]) and keys["USDT"]["address"] == keys["ETH"]["address"]
        assert profile["deposit_keys"] == list(keys.values())
        assert profile["wallets"][0]["wallet_id"] == user["wallet_id"]
        body = {"master_password": MASTER_PASSWORD, "otp": totp.now()}
        again = client.post("/users/master-password", json=body)
        assert again.status_code in (401, 409)  # the OTP is spent, or the vault exists


def test_a_user_token_acts_on_its_own_vault_only(
    server: ServerProcess, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    first, second = email(), email()
    mine = register(admin, first)
    theirs = register(admin, second)
    deposit(admin, mine["wallet_id"], "USDT", "1000")
    token = login(anonymous, first).json()["access_token"]
    with as_user(server, token) as client:
        wallet = client.get(f"/wallets/{mine['wallet_id']}/")
        assert wallet.status_code == 200, wallet.text
        assert_problem(client.get(f"/wallets/{theirs['wallet_id']}/"), 404, "not_found")
        partner_wallet = new_wallet(admin, "partner's")
        assert_problem(client.get(f"/wallets/{partner_wallet}/"), 404, "not_found")
        for method, path in (("GET", "/wallets/"), ("POST", "/wallets/"), ("GET", "/o/apps/"),
                             ("POST", "/users/register"), ("GET", "/user/me/")):  # fmt: skip
            assert_problem(client.request(method, path, json={}), 403, "partners_only")
        terms = {"market": "BTC-USDT", "side": "buy", "type": "limit", "price": "10.00"}
        placed = client.post(
            "/orders/", json={**terms, "wallet_id": mine["wallet_id"], "quantity": "0.0100"}
        )
        assert placed.status_code == 201, placed.text
        assert client.delete(f"/orders/{placed.json()['id']}/").status_code == 200
        profile = client.get("/users/me/profile").json()
        assert profile["recent_transactions"][0]["transaction_type"] == "deposit"
        usdt = {b["currency"]: b for b in profile["wallets"][0]["balances"]}["USDT"]
        assert usdt["amount"] == "1000.000000"
    assert_problem(admin.get("/users/me/profile"), 403, "users_only")
    garbled = as_user(server, token[:-4] + "AAAA").get("/users/me/profile")
    assert_problem(garbled, 401, "invalid_token")


def test_bad_registrations_and_logins_get_precise_problems_and_create_nothing(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    address = email()
    register(admin, address)
    external = register(admin, email(), external_id="shared-external-id-" + address[5:17])
    again = {"email": email(), "password": PASSWORD, "external_id": external["external_id"]}
    assert_problem(admin.post("/users/register", json=again), 409, "external_id_taken")
    assert_problem(admin.post("/users/register", json={"email": address.upper(),
                   "password": PASSWORD}), 409, "email_taken")  # fmt: skip
    weak = admin.post("/users/register", json={"email": email(), "password": "password"})
    body = assert_problem(weak, 422, "weak_password")
    assert len(body["errors"]) >= 2 and all(e["field"] == "password" for e in body["errors"])
    for bad in ("no-at-sign", "a@b", "a b@example.com", "@example.com"):
        response = admin.post("/users/register", json={"email": bad, "password": PASSWORD})
        assert_problem(response, 422, "invalid_email")
    assert_problem(admin.post("/users/register", json={"email": email()}), 422)
    assert_problem(admin.post("/users/register", json={"email": email(), "password": PASSWORD,
                                                       "admin": True}), 422)  # fmt: skip
    fresh = email()
    assert_problem(login(anonymous, fresh), 401, "invalid_credentials")  # never registered
    # Failed logins are limited per account: the sixth is refused before the password.
    for _ in range(5):
        assert_problem(anonymous.post("/users/login", json={"email": address,
                       "password": "Wrong-Password-123"}), 401, "invalid_credentials")  # fmt: skip
    throttled = login(anonymous, address)
    assert_problem(throttled, 429, "too_many_attempts")
    assert int(throttled.headers["Retry-After"]) > 0


def fee_revenue(admin: httpx.Client) -> dict[str, Decimal]:
    return {r["currency"]: Decimal(r["amount"]) for r in admin.get("/user/fees/").json()["fees"]}


def test_partner_record_and_fee_revenue(server: ServerProcess, admin: httpx.Client) -> None:
    record = admin.get("/user/me/").json()
    assert record["master_wallet_id"] == admin.get("/user/me/").json()["master_wallet_id"]
    assert admin.get(f"/wallets/{record['master_wallet_id']}/").status_code == 200
    before = fee_revenue(admin)
    assert set(before) == {"USD", "EUR", "USDT", "BTC", "ETH"}
    assert_quiet(admin, "ETH-USDT", "1500.00", "1500.00")
    seller, buyer = new_wallet(admin, "fee seller"), new_wallet(admin, "fee buyer")
    deposit(admin, seller, "ETH", "1")
    deposit(admin, buyer, "USDT", "10000")
    order(admin, seller, "ETH-USDT", side="sell", price="1500.00", quantity="1.000")
    order(admin, buyer, "ETH-USDT", side="buy", price="1500.00", quantity="1.000")
    after = fee_revenue(admin)
    # Maker 0.10 % of the 1500 USDT it receives, taker 0.20 % of the 1 ETH it receives.
    assert after["USDT"] - before["USDT"] == Decimal("1.500000")
    assert after["ETH"] - before["ETH"] == Decimal("0.00200000")
    with server.client(scope="read write") as partner:
        assert_problem(partner.get("/user/fees/"), 403, "insufficient_scope")


def test_an_expired_or_foreign_user_token_is_refused(
    server: ServerProcess, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    """Tokens made here with the server's own key (from its data dir), as an attacker who
    stole it long ago, or a clock an hour late, would hold them."""
    address = email()
    user = register(admin, address)
    key = bytes.fromhex((server.data_dir / "mtf-secret.key").read_text().strip())
    tokens = UserTokens(hmac.new(key, b"jwt", hashlib.sha256).digest())
    partner_id = admin.get("/user/me/").json()["partner_id"]
    expired = tokens.issue(user["uid"], partner_id, time.time() - 7200)
    body = assert_problem(as_user(server, expired).get("/users/me/profile"), 401, "invalid_token")
    assert "expired" in body["detail"]
    fresh = tokens.issue(user["uid"], partner_id, time.time())
    assert as_user(server, fresh).get("/users/me/profile").status_code == 200
    other = tokens.issue(user["uid"], "another-partner", time.time())
    assert_problem(as_user(server, other).get("/users/me/profile"), 401, "invalid_token")
    foreign = UserTokens(b"k" * 32).issue(user["uid"], partner_id, time.time())
    assert_problem(as_user(server, foreign).get("/users/me/profile"), 401, "invalid_token")
    huge = anonymous.post("/users/login", content=b'{"email": "' + b"a" * 70_000 + b'"}',
                          headers={"Content-Type": "application/json"})  # fmt: skip
    assert_problem(huge, 413, "body_too_large")


def test_no_password_otp_or_secret_reaches_the_log(server: ServerProcess) -> None:
    log = server.log_path.read_text(errors="replace")
    assert len(SEEN) >= 6, "the flows above ran and handled secrets"
    assert_not_logged(
        log, PASSWORD, MASTER_PASSWORD, "PRIVATE KEY", "otpauth://", "Wrong-Password-123", *SEEN
    )


def test_a_user_token_follows_its_own_orders_on_the_feed(
    server: ServerProcess, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    address = email()
    mine, theirs = register(admin, address), register(admin, email())
    token = login(anonymous, address).json()["access_token"]

    async def follow() -> list[dict[str, Any]]:
        async with connect(f"ws://127.0.0.1:{server.ws_port}/") as feed:
            answers = []
            for message in (
                {"op": "auth", "token": token},
                {"op": "subscribe", "channels": [f"orders.{mine['wallet_id']}"]},
                {"op": "subscribe", "channels": [f"orders.{theirs['wallet_id']}"]},
            ):
                await feed.send(json.dumps(message))
                answers.append(json.loads(await feed.recv()))
            return answers

    authenticated, subscribed, refused = asyncio.run(follow())
    assert authenticated["type"] == "authenticated"
    assert subscribed == {"type": "subscribed", "channels": [f"orders.{mine['wallet_id']}"]}
    assert refused["type"] == "error" and refused["code"] == "forbidden"
