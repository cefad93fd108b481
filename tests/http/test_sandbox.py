"""The sandbox chain (seed 004's incoming test transfer) end to end: coins sent to a user
vault's deposit address (as `GET /users/me/deposit-keys` shows it) are a deposit to the
vault's wallet, credited once per txid; to a payment's address, a payment (see
test_payments.py); to any other address, nothing. Admin scope only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pyotp
import pytest

from tests.http.partners import eventually, new_partner
from tests.server import ServerProcess
from tests.support import assert_problem, balances

PASSWORD = "Sandbox-Horse-Battery-7"
MASTER_PASSWORD = "Sandbox-Vault-Password-31!"
OTP_STEP_S = 30
# Well-formed mainnet addresses nobody here owns (BIP173's example, EIP-55's).
STRANGER_BTC = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
STRANGER_ETH = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@dataclass(frozen=True)
class VaultUser:
    wallet_id: str
    client: httpx.Client  # the user's own token
    addresses: dict[str, str]  # currency → deposit address


@pytest.fixture(scope="module")
def vault_user(server: ServerProcess, admin: httpx.Client) -> Iterator[VaultUser]:
    """A user of the admin's partner with 2FA and a generated vault."""
    email = f"sandbox-{uuid.uuid4().hex[:12]}@example.com"
    registered = admin.post("/users/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    login = httpx.post(f"{server.base_url}/users/login",
                       json={"email": email, "password": PASSWORD})  # fmt: skip
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    client = httpx.Client(base_url=server.base_url, timeout=30.0,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    totp = pyotp.TOTP(client.post("/users/2fa/setup").json()["secret"])
    if time.time() % OTP_STEP_S > OTP_STEP_S - 3:  # two codes of one window, not across two
        time.sleep(OTP_STEP_S - time.time() % OTP_STEP_S + 0.1)
    now = time.time()
    confirmed = client.post("/users/2fa/confirm", json={"otp": totp.at(now - OTP_STEP_S)})
    assert confirmed.status_code == 200, confirmed.text
    master = {"master_password": MASTER_PASSWORD, "otp": totp.at(now)}
    accepted = client.post("/users/master-password", json=master)
    assert accepted.status_code == 202, accepted.text
    eventually(lambda: client.get("/users/me/deposit-keys").status_code == 200, "the vault")
    keys = client.get("/users/me/deposit-keys").json()
    yield VaultUser(registered.json()["wallet_id"], client,
                    {key["currency"]: key["address"] for key in keys})  # fmt: skip
    client.close()


def send(client: httpx.Client, address: str, currency: str, amount: str, txid: str
         ) -> httpx.Response:  # fmt: skip
    body = {"address": address, "currency": currency, "amount": amount, "txid": txid}
    return client.post("/sandbox/chain/incoming", json=body)


def deposited(client: httpx.Client, address: str, currency: str, amount: str, txid: str
              ) -> dict[str, Any]:  # fmt: skip
    response = send(client, address, currency, amount, txid)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["kind"] == "deposit"
    deposit: dict[str, Any] = answer["deposit"]
    return deposit


def amount(client: httpx.Client, wallet_id: str, currency: str) -> str:
    return balances(client, wallet_id)[currency]["amount"]


def test_coins_at_a_deposit_address_are_credited_once_per_txid(
    admin: httpx.Client, vault_user: VaultUser
) -> None:
    wallet_id, btc_address = vault_user.wallet_id, vault_user.addresses["BTC"]
    before = amount(admin, wallet_id, "BTC")
    txid = uuid.uuid4().hex
    first = deposited(admin, btc_address, "BTC", "0.0125", txid)
    assert first["tid"] == f"chain:BTC:{txid}" and first["uid"] == wallet_id
    assert (first["currency"], first["amount"], first["state"]) == ("BTC", "0.01250000", "accepted")
    credited = f"{Decimal(before) + Decimal('0.0125'):.8f}"
    assert amount(admin, wallet_id, "BTC") == credited
    # The same transaction again: the same deposit, no second credit.
    assert deposited(admin, btc_address, "BTC", "0.0125", txid) == first
    assert deposited(admin, btc_address.upper(), "BTC", "0.0125", txid) == first
    assert amount(admin, wallet_id, "BTC") == credited
    # The same txid with another amount is another transaction under a used id.
    assert_problem(send(admin, btc_address, "BTC", "0.5", txid), 409, "idempotency_conflict")
    assert amount(admin, wallet_id, "BTC") == credited
    # The user sees the deposit in its own vault.
    own = vault_user.client.get(f"/wallets/{wallet_id}/").json()
    assert {row["currency"]: row["amount"] for row in own["balances"]}["BTC"] == credited


def test_ether_and_its_tokens_arrive_at_the_ethereum_address(
    admin: httpx.Client, vault_user: VaultUser
) -> None:
    wallet_id, address = vault_user.wallet_id, vault_user.addresses["ETH"]
    assert vault_user.addresses["USDT"] == address  # ERC-20 shares the Ethereum address
    eth, usdt = amount(admin, wallet_id, "ETH"), amount(admin, wallet_id, "USDT")
    deposited(admin, address, "ETH", "0.25", uuid.uuid4().hex)
    deposited(admin, address.lower(), "USDT", "12.5", uuid.uuid4().hex)
    tether = deposited(admin, address, "USDTERC20", "7.5", uuid.uuid4().hex)
    assert tether["currency"] == "USDT" and tether["tid"].startswith("chain:USDT:")
    assert amount(admin, wallet_id, "ETH") == f"{Decimal(eth) + Decimal('0.25'):.8f}"
    assert amount(admin, wallet_id, "USDT") == f"{Decimal(usdt) + 20:.6f}"


@pytest.mark.parametrize(
    ("currency", "chain", "code"),
    [
        ("BTC", "ETH", "currency_mismatch"),
        ("USDTTRC20", "ETH", "currency_mismatch"),  # USDT on TRON: not this address
        ("ETH", "BTC", "currency_mismatch"),
        ("USDT", "BTC", "currency_mismatch"),
        ("USD", "BTC", "unsupported_currency"),
        ("DOGE", "ETH", "unsupported_currency"),
    ],
)
def test_the_coin_must_arrive_at_its_own_address(
    admin: httpx.Client, vault_user: VaultUser, currency: str, chain: str, code: str
) -> None:
    before = balances(admin, vault_user.wallet_id)
    response = send(admin, vault_user.addresses[chain], currency, "1", uuid.uuid4().hex)
    assert assert_problem(response, 422, code)["errors"][0]["field"] == "currency"
    assert balances(admin, vault_user.wallet_id) == before


def test_an_address_nobody_here_owns_is_404(admin: httpx.Client) -> None:
    for address, currency in ((STRANGER_BTC, "BTC"), (STRANGER_ETH, "ETH"), ("nonsense", "BTC")):
        assert_problem(send(admin, address, currency, "1", "tx-1"), 404, "not_found")


def test_only_an_admin_may_play_the_chain(
    server: ServerProcess, admin: httpx.Client, vault_user: VaultUser
) -> None:
    address = vault_user.addresses["BTC"]
    before = amount(admin, vault_user.wallet_id, "BTC")
    with server.client(scope="read write") as partner_side:
        response = send(partner_side, address, "BTC", "1", uuid.uuid4().hex)
        assert_problem(response, 403, "insufficient_scope")
    other = new_partner(server, admin)
    assert_problem(send(other.client, address, "BTC", "1", "tx"), 403, "insufficient_scope")
    own = send(vault_user.client, address, "BTC", "1", uuid.uuid4().hex)
    assert_problem(own, 403, "partners_only")
    anonymous = httpx.post(f"{server.base_url}/sandbox/chain/incoming",
                           json={"address": address, "currency": "BTC", "amount": "1",
                                 "txid": "tx"})  # fmt: skip
    assert_problem(anonymous, 401)
    assert amount(admin, vault_user.wallet_id, "BTC") == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amount": 1}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "0.000000001"}, "amount"),  # BTC has 8 decimals
        ({"amount": "10000000.00000001"}, "amount"),  # beyond 10^15 satoshis in one transfer
        ({"txid": "with space"}, "txid"),
        ({"txid": "t" * 129}, "txid"),
        ({"txid": ""}, "txid"),
        ({"address": ""}, "address"),
        ({"address": "b" * 101}, "address"),
        ({"memo": "hi"}, "memo"),
    ],
)
def test_bad_transfers_are_a_precise_422(
    admin: httpx.Client, vault_user: VaultUser, fields: dict[str, Any], field: str
) -> None:
    body = {"address": vault_user.addresses["BTC"], "currency": "BTC", "amount": "0.01",
            "txid": uuid.uuid4().hex, **fields}  # fmt: skip
    response = admin.post("/sandbox/chain/incoming", json=body)
    assert assert_problem(response, 422)["errors"][0]["field"] == field


def test_missing_fields_are_named(admin: httpx.Client) -> None:
    response = admin.post("/sandbox/chain/incoming", json={"address": STRANGER_BTC})
    assert assert_problem(response, 422, "validation_error")["errors"][0]["field"] == "currency"
