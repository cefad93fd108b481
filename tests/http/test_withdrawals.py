"""Withdrawals end to end (seed 001 "Withdrawals"): create in both formats, the hold, the
worker's way over the simulated chain to `succeed` (or `failed`), cancel, repeats,
listing with filters, details and status, webhooks, and bad input.

Most tests run on the session's server (1 s blocks, 3 confirmations, the worker every
0.5 s), each with a partner of its own, funded by the operator's deposits into its
master wallet. Three servers of this module's own hold what a shared one cannot:

- `fast` (blocks of 0.05 s): money moved exactly, fee revenue included (`/user/fees/`
  is the whole server's, so every withdrawal made there is awaited to its end), the
  webhooks of each state, and what needs withdrawals to end soon (repeats, the list);
- `failing` (every chain transaction fails): the funds come back;
- `slow` (the worker runs every 300 s, so a withdrawal stays `accepted`): cancel, and
  prices converted at the books' rates, or at none.

Expected figures are computed here with `Decimal` from the rules (`DEFAULT_RULES`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest

from strongroom.custody.withdrawals import DEFAULT_RULES
from tests.http.partners import (
    Partner,
    Receiver,
    eventually,
    hooked_partner,
    new_partner,
    partner_accepts,
)
from tests.ledger import check_ledger
from tests.server import ServerProcess
from tests.support import assert_problem, balances, deposit, new_wallet, order

BITCOIN_ADDRESS = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
ETHEREUM_ADDRESS = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
TRON_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
ADDRESSES = {
    "BTC": BITCOIN_ADDRESS,
    "ETH": ETHEREUM_ADDRESS,
    "USDTERC20": ETHEREUM_ADDRESS,
    "USDTTRC20": TRON_ADDRESS,
}
LEDGER = {"BTC": "BTC", "ETH": "ETH", "USDTERC20": "USDT", "USDTTRC20": "USDT"}
CHAINS = {"BTC": "BTC", "ETH": "ETH", "USDTERC20": "ETH", "USDTTRC20": "TRON"}
DECIMALS = {"BTC": 8, "ETH": 8, "USDT": 6, "USD": 2, "EUR": 2}
FINAL = {"succeed", "failed", "canceled", "rejected"}
FAILED_ON_CHAIN = "transaction failed on chain"

FAST = ("--chain-block-s", "0.05", "--chain-confirmations", "2", "--custody-interval-s", "0.05")
FAILING = (*FAST, "--chain-failure-rate", "1")
SLOW = ("--custody-interval-s", "300")


# --------------------------------------------------------------------------- helpers


@dataclass
class Holder:
    """A partner of its own and its master wallet (where withdrawals come from)."""

    partner: Partner
    wallet_id: str

    @property
    def client(self) -> httpx.Client:
        return self.partner.client


def holder(
    server: ServerProcess, admin: httpx.Client, url: str | None = None, **amounts: str
) -> Holder:
    """A new partner (with webhooks to `url`, if given) whose master wallet the operator
    funds with `amounts` (`USDT="100"`)."""
    partner = new_partner(server, admin) if url is None else hooked_partner(server, admin, url)
    me = partner.client.get("/user/me/")
    assert me.status_code == 200, me.text
    wallet_id: str = me.json()["master_wallet_id"]
    for currency, amount in amounts.items():
        deposit(admin, wallet_id, currency, amount)
    return Holder(partner, wallet_id)


def body(code: str = "USDTTRC20", amount: Any = "10", **fields: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": code, "address": ADDRESSES[code], **fields}


def create(client: httpx.Client, payload: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = client.post("/withdrawal/", json=payload)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def money(client: httpx.Client, wallet_id: str, currency: str) -> tuple[Decimal, Decimal]:
    """(available, locked) of the wallet in `currency`."""
    row = balances(client, wallet_id)[currency]
    return Decimal(row["available_balance"]), Decimal(row["pending_amount"])


def details(client: httpx.Client, withdrawal_id: str) -> dict[str, Any]:
    response = client.get(f"/withdrawal/{withdrawal_id}/")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def until(
    client: httpx.Client, withdrawal_id: str, statuses: set[str], timeout_s: float = 30.0
) -> dict[str, Any]:
    """The withdrawal once its status is one of `statuses`."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(details(client, withdrawal_id))
        return seen["status"] in statuses

    eventually(reached, f"{withdrawal_id} {'/'.join(sorted(statuses))}", timeout_s)
    return seen


def listed(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/withdrawal/", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def fees(admin: httpx.Client) -> dict[str, Decimal]:
    response = admin.get("/user/fees/")
    assert response.status_code == 200, response.text
    return {row["currency"]: Decimal(row["amount"]) for row in response.json()["fees"]}


def rule_figures(code: str, amount: str, final_amount: bool = True) -> tuple[str, str, str]:
    """(amount received, fee, total) as the server writes them."""
    rule = DEFAULT_RULES.rule(code)
    places = DECIMALS[LEDGER[code]]
    unit = Decimal(1).scaleb(-places)
    requested = Decimal(amount)
    flat = Decimal(rule.fee_flat) * unit
    receive = requested if final_amount else requested - flat  # no percentage in the rules
    assert rule.fee_bps == 0
    return tuple(f"{value:.{places}f}" for value in (receive, flat, receive + flat))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def dedicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """The module's three servers by name, started side by side (each takes seconds)."""
    processes = {
        name: ServerProcess(tmp_path_factory.mktemp(f"withdrawals-{name}"), arguments)
        for name, arguments in (("fast", FAST), ("failing", FAILING), ("slow", SLOW))
    }
    errors: list[BaseException] = []

    def start(process: ServerProcess) -> None:
        try:
            process.start()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(p,)) for p in processes.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        if errors:
            raise errors[0]
        yield processes
        for process in processes.values():
            if process.running:
                check_ledger(process)
    finally:
        for process in processes.values():
            process.close()


@pytest.fixture(scope="module")
def fast(dedicated: dict[str, ServerProcess]) -> ServerProcess:
    return dedicated["fast"]


@pytest.fixture(scope="module")
def failing(dedicated: dict[str, ServerProcess]) -> ServerProcess:
    return dedicated["failing"]


@pytest.fixture(scope="module")
def slow(dedicated: dict[str, ServerProcess]) -> ServerProcess:
    return dedicated["slow"]


@pytest.fixture(scope="module")
def operator_of(dedicated: dict[str, ServerProcess]) -> Iterator[dict[str, httpx.Client]]:
    """An operator's client (read write admin) per dedicated server, by name."""
    clients = {name: process.client() for name, process in dedicated.items()}
    yield clients
    for client in clients.values():
        client.close()


# --------------------------------------------------------------------------- create


def test_option_1_holds_the_total_then_the_worker_sends_it(
    server: ServerProcess, admin: httpx.Client
) -> None:
    mine = holder(server, admin, USDT="100")
    custom_id = f"o1-{uuid.uuid4().hex[:10]}"
    created = create(mine.client, body("USDTTRC20", "10", custom_id=custom_id))
    assert created["withdrawal_id"].startswith("wd_")
    assert {key: created[key] for key in (
        "wallet_id", "currency", "ledger_currency", "chain", "address", "amount", "fee", "total",
        "status", "txid", "confirmations", "reason", "custom_id",
    )} == {
        "wallet_id": mine.wallet_id, "currency": "USDTTRC20", "ledger_currency": "USDT",
        "chain": "TRON", "address": TRON_ADDRESS, "amount": "10.000000", "fee": "1.000000",
        "total": "11.000000", "status": "accepted", "txid": None, "confirmations": 0,
        "reason": None, "custom_id": custom_id,
    }  # fmt: skip
    assert created["created_at"] == created["updated_at"] and created["created_at"].endswith("Z")
    available, locked = money(mine.client, mine.wallet_id, "USDT")
    assert available == Decimal("89")  # amount + fee are not available from the moment of 201
    assert locked in (Decimal("11"), Decimal(0))  # held until sent (it may be sent already)

    done = until(mine.client, created["withdrawal_id"], FINAL)
    assert done["status"] == "succeed", done
    assert done["txid"] and len(done["txid"]) == 64 and done["confirmations"] >= 3
    assert done["created_at"] == created["created_at"] and done["updated_at"] > done["created_at"]
    assert money(mine.client, mine.wallet_id, "USDT") == (Decimal("89"), Decimal(0))
    status = mine.client.post("/withdrawal/status/", json={"withdrawal_id": done["withdrawal_id"]})
    assert status.status_code == 200 and status.json() == done
    assert listed(mine.client)["withdrawals"] == [done]
    # Sent: too late to cancel.
    late = mine.client.post(f"/withdrawal/{done['withdrawal_id']}/cancel/")
    assert "succeed" in assert_problem(late, 409, "illegal_transition")["detail"]
    assert details(mine.client, done["withdrawal_id"]) == done


def pick(answer: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(answer[key] for key in keys)


FIGURES = ("amount", "fee", "total")
PRICE = ("price_amount", "price_currency", "rate", "rounded_down")


def test_option_2_a_price_in_usd_or_eur_at_the_reference_rates(
    server: ServerProcess, admin: httpx.Client
) -> None:
    mine = holder(server, admin, USDT="200", ETH="1")
    in_usd = create(
        mine.client,
        {
            "price_amount": "25.00",
            "price_currency": "USD",
            "blockchain": "TRX",
            "token": "USDT",
            "address": TRON_ADDRESS,
        },
    )
    assert pick(in_usd, "currency", "chain") == ("USDTTRC20", "TRON")
    assert pick(in_usd, *FIGURES) == ("25.000000", "1.000000", "26.000000")
    assert pick(in_usd, *PRICE) == ("25.00", "USD", "1", False)
    # 20.01 EUR at 1.08 USD per EUR is 21.6108 USDT exactly: nothing to round.
    in_eur = create(
        mine.client,
        {
            "price_amount": "20.01",
            "price_currency": "eur",
            "currency": "USDTERC20",
            "address": ETHEREUM_ADDRESS,
        },
    )
    assert pick(in_eur, "currency", "chain") == ("USDTERC20", "ETH")
    assert pick(in_eur, *FIGURES) == ("21.610800", "5.000000", "26.610800")
    assert pick(in_eur, *PRICE) == ("20.01", "EUR", "1.08", False)
    # The price as what the wallet pays, fee included.
    paying = create(
        mine.client,
        {
            "price_amount": "30",
            "price_currency": "USD",
            "blockchain": "trc20",
            "token": "usdt",
            "address": TRON_ADDRESS,
            "final_amount": False,
        },
    )
    assert pick(paying, *FIGURES) == ("29.000000", "1.000000", "30.000000")
    # An amount with blockchain and no token: the chain's own coin.
    ether = create(
        mine.client, {"amount": "0.01", "blockchain": "ethereum", "address": ETHEREUM_ADDRESS}
    )
    assert pick(ether, "currency", "amount", "fee") == ("ETH", "0.01000000", "0.00100000")
    assert "rate" not in ether
    available, _ = money(mine.client, mine.wallet_id, "USDT")
    assert available == Decimal("200") - Decimal("26") - Decimal("26.6108") - Decimal("30")
    assert money(mine.client, mine.wallet_id, "ETH")[0] == Decimal("0.989")


def test_final_amount_false_takes_the_fee_out_of_the_amount(
    server: ServerProcess, admin: httpx.Client
) -> None:
    mine = holder(server, admin, BTC="0.01")
    created = create(mine.client, body("BTC", "0.0011", final_amount=False))
    expected = rule_figures("BTC", "0.0011", final_amount=False)
    assert (created["amount"], created["fee"], created["total"]) == expected
    assert expected == ("0.00100000", "0.00010000", "0.00110000")
    assert money(mine.client, mine.wallet_id, "BTC")[0] == Decimal("0.0089")


def test_a_wallet_of_the_partners_own_and_no_other(
    server: ServerProcess, admin: httpx.Client
) -> None:
    mine = holder(server, admin)
    sub = new_wallet(mine.client, "sub-account")
    deposit(admin, sub, "USDT", "50")
    created = create(mine.client, body(wallet_id=sub))
    assert created["wallet_id"] == sub
    assert money(mine.client, sub, "USDT")[0] == Decimal("39")
    other = holder(server, admin, USDT="50")
    for wallet_id in (other.wallet_id, new_wallet(admin, "operator's"), "no-such-wallet"):
        refused = mine.client.post("/withdrawal/", json=body(wallet_id=wallet_id))
        assert_problem(refused, 404, "not_found")
    # Even the operator withdraws from its own wallets only.
    assert_problem(admin.post("/withdrawal/", json=body(wallet_id=sub)), 404, "not_found")
    assert money(other.client, other.wallet_id, "USDT") == (Decimal("50"), Decimal(0))


# --------------------------------------------------------------------------- idempotency


def test_a_repeat_answers_the_first_and_other_content_is_a_conflict(
    fast: ServerProcess, operator_of: dict[str, httpx.Client]
) -> None:
    server, admin = fast, operator_of["fast"]
    mine = holder(server, admin, USDT="100")
    custom_id = f"rep-{uuid.uuid4().hex[:10]}"
    first = create(mine.client, body(custom_id=custom_id))
    again = create(mine.client, body(custom_id=custom_id), status=200)
    assert again["withdrawal_id"] == first["withdrawal_id"]
    moving = {"status", "txid", "confirmations", "updated_at"}  # the worker's, meanwhile
    assert {k: v for k, v in again.items() if k not in moving} == {
        k: v for k, v in first.items() if k not in moving
    }
    spelled = create(mine.client, body(amount="10.000000", custom_id=custom_id), status=200)
    assert spelled["withdrawal_id"] == first["withdrawal_id"]  # the same amount, in minor units
    by_header = mine.client.post(
        "/withdrawal/", json=body(), headers={"Idempotency-Key": custom_id}
    )
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["withdrawal_id"] == first["withdrawal_id"]
    for changed in (
        body("USDTTRC20", "11", custom_id=custom_id),
        body("USDTERC20", "20", custom_id=custom_id),
        body(custom_id=custom_id, final_amount=False),
        body(custom_id=custom_id, callback_url="https://partner.example.com/hook"),
        {**body(custom_id=custom_id), "address": "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"},
    ):
        assert_problem(mine.client.post("/withdrawal/", json=changed), 409, "idempotency_conflict")
    mismatch = mine.client.post(
        "/withdrawal/", json=body(custom_id=custom_id), headers={"Idempotency-Key": "other"}
    )
    assert assert_problem(mismatch, 422, "validation_error")["errors"][0]["field"] == "custom_id"
    assert money(mine.client, mine.wallet_id, "USDT")[0] == Decimal("89")  # held once
    done = until(mine.client, first["withdrawal_id"], FINAL)
    late = create(mine.client, body(custom_id=custom_id), status=200)
    assert late == done and late["status"] == "succeed"
    assert listed(mine.client)["total"] == 1
    # Keys are each partner's own.
    other = holder(server, admin, USDT="100")
    theirs = create(other.client, body(custom_id=custom_id))
    assert theirs["withdrawal_id"] != first["withdrawal_id"]
    assert until(other.client, theirs["withdrawal_id"], FINAL)["status"] == "succeed"


def test_concurrent_repeats_hold_once(server: ServerProcess, admin: httpx.Client) -> None:
    mine = holder(server, admin, USDT="100")
    payload = body("USDTTRC20", "20", custom_id=f"race-{uuid.uuid4().hex[:10]}")
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        response = mine.client.post("/withdrawal/", json=payload)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * 7 + [201], [response.text for response in answers]
    assert len({response.json()["withdrawal_id"] for response in answers}) == 1
    assert money(mine.client, mine.wallet_id, "USDT")[0] == Decimal("79")
    assert listed(mine.client)["total"] == 1


def test_not_enough_available_holds_nothing(server: ServerProcess, admin: httpx.Client) -> None:
    mine = holder(server, admin, USDT="10.5")
    custom_id = f"poor-{uuid.uuid4().hex[:10]}"
    refused = mine.client.post("/withdrawal/", json=body(amount="10", custom_id=custom_id))
    assert "fee" in assert_problem(refused, 422, "insufficient_funds")["detail"]
    priced = mine.client.post("/withdrawal/", json={
        "price_amount": "10", "price_currency": "USD", "currency": "USDTTRC20",
        "address": TRON_ADDRESS,
    })  # fmt: skip
    assert_problem(priced, 422, "insufficient_funds")
    assert money(mine.client, mine.wallet_id, "USDT") == (Decimal("10.5"), Decimal(0))
    assert listed(mine.client)["total"] == 0
    # A refusal does not take the key: once funded, the same request is accepted.
    deposit(admin, mine.wallet_id, "USDT", "0.5")
    accepted = create(mine.client, body(amount="10", custom_id=custom_id))
    assert accepted["custom_id"] == custom_id
    assert money(mine.client, mine.wallet_id, "USDT")[0] == Decimal(0)


# --------------------------------------------------------------------------- bad input

CHANGED = {
    "BTC": BITCOIN_ADDRESS[:-1] + "v",  # the bech32 checksum breaks
    "ETH": "0x9858efFD232B4033E47d90003D41EC34EcaEda94",  # E → e: the EIP-55 checksum breaks
    "TRON": TRON_ADDRESS[:-1] + "u",  # the base58check checksum breaks
}


@pytest.fixture(scope="module")
def idle(server: ServerProcess, admin: httpx.Client) -> Holder:
    """A funded partner no request of the bad-input tests may touch the money of."""
    return holder(server, admin, USDT="1000", BTC="1", ETH="10")


BAD: list[tuple[str, Any, int, str, str | None]] = [
    # (name, body, status, code, field)
    ("bech32 checksum", body("BTC", "0.001", address=CHANGED["BTC"]), 422, "invalid_address",
     "address"),
    ("EIP-55 checksum", body("ETH", "0.01", address=CHANGED["ETH"]), 422, "invalid_address",
     "address"),
    ("EIP-55 for ERC-20", body("USDTERC20", "20", address=CHANGED["ETH"]), 422,
     "invalid_address", "address"),
    ("base58check checksum", body(address=CHANGED["TRON"]), 422, "invalid_address", "address"),
    ("another chain's address", body(address=BITCOIN_ADDRESS), 422, "invalid_address",
     "address"),
    ("a TRON address for BTC", body("BTC", "0.001", address=TRON_ADDRESS), 422,
     "invalid_address", "address"),
    ("an empty address", body(address=""), 422, "validation_error", "address"),
    ("below the minimum", body(amount="9.999999"), 422, "below_minimum", "amount"),
    ("below the minimum once the fee is out", body(amount="10.5", final_amount=False), 422,
     "below_minimum", "amount"),
    ("BTC below the minimum", body("BTC", "0.0004"), 422, "below_minimum", "amount"),
    ("above the maximum", body(amount="100000.000001"), 422, "above_maximum", "amount"),
    ("an unknown currency", body(currency="DOGE"), 422, "unsupported_currency", "currency"),
    ("a fiat currency", body(currency="USD"), 422, "unsupported_currency", "currency"),
    ("USDT names no chain", body(currency="USDT"), 422, "ambiguous_currency", "currency"),
    ("too many decimals", body(amount="10.1234567"), 422, "validation_error", "amount"),
    ("too many BTC decimals", body("BTC", "0.123456789"), 422, "validation_error", "amount"),
    ("a float amount", body(amount=10.5), 422, "validation_error", "amount"),
    ("an integer amount", body(amount=10), 422, "validation_error", "amount"),
    ("a negative amount", body(amount="-10"), 422, "validation_error", "amount"),
    ("a zero amount", body(amount="0"), 422, "validation_error", "amount"),
    ("an exponent", body(amount="1e2"), 422, "validation_error", "amount"),
    ("spaces", body(amount=" 10"), 422, "validation_error", "amount"),
    ("an unknown field", body(memo="hi"), 422, "validation_error", "memo"),
    ("no address", {"amount": "10", "currency": "USDTTRC20"}, 422, "validation_error",
     "address"),
    ("no amount", {"currency": "USDTTRC20", "address": TRON_ADDRESS}, 422, "validation_error",
     "amount"),
    ("no currency", {"amount": "10", "address": TRON_ADDRESS}, 422, "validation_error",
     "currency"),
    ("an empty object", {}, 422, "validation_error", "address"),
    ("not an object", [body()], 422, "validation_error", None),
    ("amount and price_amount", body(price_amount="10", price_currency="USD"), 422,
     "validation_error", "amount"),
    ("price_amount alone", {"price_amount": "10", "currency": "USDTTRC20",
                            "address": TRON_ADDRESS}, 422, "validation_error", "price_currency"),
    ("an unknown price currency", {"price_amount": "10", "price_currency": "XYZ",
                                   "currency": "USDTTRC20", "address": TRON_ADDRESS}, 422,
     "validation_error", "price_currency"),
    ("too many cents", {"price_amount": "10.001", "price_currency": "USD",
                        "currency": "USDTTRC20", "address": TRON_ADDRESS}, 422,
     "validation_error", "price_amount"),
    ("a float price", {"price_amount": 10.0, "price_currency": "USD", "currency": "USDTTRC20",
                       "address": TRON_ADDRESS}, 422, "validation_error", "price_amount"),
    ("a price below the minimum", {"price_amount": "9.99", "price_currency": "USD",
                                   "currency": "USDTTRC20", "address": TRON_ADDRESS}, 422,
     "below_minimum", "price_amount"),
    ("currency and blockchain", body(blockchain="TRX"), 422, "validation_error", "currency"),
    ("an unknown blockchain", {"amount": "10", "blockchain": "DOGE", "token": "USDT",
                               "address": TRON_ADDRESS}, 422, "validation_error", "blockchain"),
    ("a token not on the chain", {"amount": "10", "blockchain": "BTC", "token": "USDT",
                                  "address": BITCOIN_ADDRESS}, 422, "unsupported_currency",
     "token"),
    ("TRON needs a token", {"amount": "10", "blockchain": "TRX", "address": TRON_ADDRESS}, 422,
     "validation_error", "token"),
    ("a token without a chain", {"amount": "10", "token": "USDT", "address": TRON_ADDRESS}, 422,
     "validation_error", "blockchain"),
    ("a bad callback URL", body(callback_url="ftp://partner.example.com/"), 422,
     "validation_error", "callback_url"),
    ("an empty custom_id", body(custom_id=""), 422, "validation_error", "custom_id"),
    ("a long custom_id", body(custom_id="c" * 65), 422, "validation_error", "custom_id"),
    ("final_amount not a boolean", body(final_amount="yes"), 422, "validation_error",
     "final_amount"),
    ("an unknown wallet", body(wallet_id="no-such-wallet"), 404, "not_found", None),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "status", "code", "field"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])  # fmt: skip
def test_bad_input_is_a_precise_problem_and_holds_nothing(
    idle: Holder, payload: Any, status: int, code: str, field: str | None
) -> None:
    problem = assert_problem(idle.client.post("/withdrawal/", json=payload), status, code)
    if field is not None:
        assert problem["errors"][0]["field"] == field, problem
    for currency, amount in (("USDT", "1000"), ("BTC", "1"), ("ETH", "10")):
        assert money(idle.client, idle.wallet_id, currency) == (Decimal(amount), Decimal(0))
    assert listed(idle.client)["total"] == 0


def test_the_limits_are_written_in_the_currency(idle: Holder) -> None:
    below = assert_problem(idle.client.post("/withdrawal/", json=body(amount="5")), 422)
    assert below["detail"] == (
        "amount: 5.000000 USDT to receive is below the minimum 10.000000 USDT"
    )
    above = assert_problem(idle.client.post("/withdrawal/", json=body("BTC", "100.5")), 422)
    assert above["detail"] == (
        "amount: 100.50000000 BTC to receive is above the maximum 100.00000000 BTC"
    )


def test_malformed_json_and_other_media(idle: Holder) -> None:
    for content in (b'{"amount": "10", ', b"\xff\xfe", b"", b"not json"):
        response = idle.client.post(
            "/withdrawal/", content=content, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "malformed_json")
    form = idle.client.post("/withdrawal/", data={"amount": "10"})
    assert_problem(form, 415, "unsupported_media_type")
    assert listed(idle.client)["total"] == 0


# --------------------------------------------------------------------------- list, details


def test_the_list_filters_sorts_and_pages(
    fast: ServerProcess, operator_of: dict[str, httpx.Client]
) -> None:
    server, admin = fast, operator_of["fast"]
    mine = holder(server, admin, USDT="1000", BTC="1", ETH="10")
    tag = uuid.uuid4().hex[:8]
    made = [
        create(mine.client, body("USDTTRC20", "10", custom_id=f"{tag}-trc")),
        create(mine.client, body("USDTERC20", "20", custom_id=f"{tag}-erc")),
        create(mine.client, body("BTC", "0.001", custom_id=f"{tag}-btc")),
        create(mine.client, body("ETH", "0.01", custom_id=f"{tag}-eth")),
    ]
    made = [until(mine.client, item["withdrawal_id"], FINAL) for item in made]
    assert {item["status"] for item in made} == {"succeed"}
    ids = [item["withdrawal_id"] for item in made]

    def ids_of(**params: Any) -> list[str]:
        return [item["withdrawal_id"] for item in listed(mine.client, **params)["withdrawals"]]

    everything = listed(mine.client)
    assert (everything["total"], everything["limit"], everything["offset"]) == (4, 20, 0)
    assert everything["withdrawals"] == made[::-1]  # newest first
    assert ids_of(sort="-created_at") == ids[::-1]
    assert ids_of(sort="created_at") == ids
    first_page = listed(mine.client, limit=3, sort="created_at")
    assert [item["withdrawal_id"] for item in first_page["withdrawals"]] == ids[:3]
    assert first_page["total"] == 4 and first_page["limit"] == 3
    assert ids_of(limit=3, offset=3, sort="created_at") == ids[3:]
    assert ids_of(offset=10) == [] and listed(mine.client, offset=10)["total"] == 4
    assert ids_of(status="succeed") == ids[::-1]
    assert ids_of(status="accepted") == [] and ids_of(status="failed") == []
    assert ids_of(blockchain="TRX") == [ids[0]] == ids_of(blockchain="tron")
    assert ids_of(chain="ETH", sort="created_at") == [ids[1], ids[3]]
    assert ids_of(blockchain="erc20", sort="created_at") == [ids[1], ids[3]]
    assert ids_of(blockchain="BTC") == [ids[2]]
    assert (
        ids_of(token="USDT", sort="created_at")
        == ids[:2]
        == ids_of(token="usdt", sort="created_at")
    )
    assert ids_of(token="ETH") == [ids[3]]
    assert ids_of(currency="USDTERC20") == [ids[1]]
    assert ids_of(currency="BTC", blockchain="BTC", token="BTC") == [ids[2]]
    assert ids_of(custom_id=f"{tag}-btc") == [ids[2]]
    assert ids_of(custom_id="nothing") == []
    assert ids_of(wallet_id=mine.wallet_id) == ids[::-1]
    assert ids_of(wallet_id="no-such-wallet") == []

    moments = [datetime.fromisoformat(item["created_at"].replace("Z", "+00:00")) for item in made]
    day = moments[0].date()
    assert ids_of(start_date=day.isoformat(), end_date=moments[-1].date().isoformat()) == ids[::-1]
    assert ids_of(start_date=(moments[-1] + timedelta(days=1)).date().isoformat()) == []
    assert ids_of(end_date=(day - timedelta(days=1)).isoformat()) == []
    from_third = moments[2].isoformat().replace("+00:00", "Z")
    assert ids_of(start_date=from_third, sort="created_at") == ids[2:]
    to_second = moments[1].isoformat()  # +00:00, inclusive
    assert ids_of(end_date=to_second, sort="created_at") == ids[:2]
    naive = moments[1].replace(tzinfo=None).isoformat()  # UTC when no offset is given
    assert ids_of(end_date=naive, sort="created_at") == ids[:2]
    elsewhere = moments[2].astimezone(timezone(timedelta(hours=2))).isoformat()
    assert ids_of(start_date=elsewhere, sort="created_at") == ids[2:]
    assert ids_of(start_date=from_third, end_date=moments[2].isoformat()) == [ids[2]]

    other = holder(server, admin)
    assert listed(other.client) == {"withdrawals": [], "total": 0, "limit": 20, "offset": 0}
    assert listed(other.client, custom_id=f"{tag}-btc")["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"blockchain": "DOGE"}, "blockchain"),
        ({"chain": "solana"}, "chain"),
        ({"blockchain": "BTC", "chain": "BTC"}, "chain"),
        ({"token": "XYZ"}, "token"),
        ({"currency": "USDT"}, "currency"),
        ({"currency": "DOGE"}, "currency"),
        ({"custom_id": "c" * 65}, "custom_id"),
        ({"start_date": "2025-13-01"}, "start_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2025-01-01T25:00:00"}, "end_date"),
        ({"end_date": ""}, "end_date"),
        ({"start_date": "2025-02-01", "end_date": "2025-01-01"}, "end_date"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "amount"}, "sort"),
        ({"sort": "+created_at"}, "sort"),
    ],
)
def test_bad_list_parameters_are_422(
    admin: httpx.Client, params: dict[str, Any], field: str
) -> None:
    problem = assert_problem(admin.get("/withdrawal/", params=params), 422)
    assert problem["errors"][0]["field"] == field, problem


def test_a_parameter_given_twice_is_422(admin: httpx.Client) -> None:
    response = admin.get("/withdrawal/?status=succeed&status=failed")
    assert assert_problem(response, 422)["errors"][0]["field"] == "status"


def test_unknown_and_others_withdrawals_are_404(server: ServerProcess, admin: httpx.Client) -> None:
    mine = holder(server, admin, USDT="100")
    created = create(mine.client, body())
    other = holder(server, admin)
    for client in (other.client, admin):
        assert_problem(client.get(f"/withdrawal/{created['withdrawal_id']}/"), 404, "not_found")
        status = client.post(
            "/withdrawal/status/", json={"withdrawal_id": created["withdrawal_id"]}
        )
        assert_problem(status, 404, "not_found")
        cancel = client.post(f"/withdrawal/{created['withdrawal_id']}/cancel/")
        assert_problem(cancel, 404, "not_found")
    for unknown in ("wd_999999999999", "wd_0", "12", "abc", "wd_-1", "wd_99999999999999999999"):
        assert_problem(mine.client.get(f"/withdrawal/{unknown}/"), 404, "not_found")
        status = mine.client.post("/withdrawal/status/", json={"withdrawal_id": unknown})
        assert_problem(status, 404, "not_found")
        assert_problem(mine.client.post(f"/withdrawal/{unknown}/cancel/"), 404, "not_found")
    for bad in ({}, {"withdrawal_id": 12}, {"withdrawal_id": ""}, {"id": "wd_1"}):
        assert_problem(mine.client.post("/withdrawal/status/", json=bad), 422, "validation_error")
    assert (
        details(mine.client, created["withdrawal_id"])["withdrawal_id"] == created["withdrawal_id"]
    )


def test_scopes_read_to_look_write_to_act(server: ServerProcess, admin: httpx.Client) -> None:
    wallet_id = new_wallet(admin, "scoped")
    deposit(admin, wallet_id, "USDT", "100")
    created = create(admin, body(wallet_id=wallet_id))
    with server.client(scope="read") as reader, server.client(scope="write") as writer:
        assert reader.get("/withdrawal/").status_code == 200
        assert reader.get(f"/withdrawal/{created['withdrawal_id']}/").status_code == 200
        status = reader.post(
            "/withdrawal/status/", json={"withdrawal_id": created["withdrawal_id"]}
        )
        assert status.status_code == 200, status.text
        for response in (
            reader.post("/withdrawal/", json=body(wallet_id=wallet_id)),
            reader.post(f"/withdrawal/{created['withdrawal_id']}/cancel/"),
            writer.get("/withdrawal/"),
            writer.get(f"/withdrawal/{created['withdrawal_id']}/"),
        ):
            assert_problem(response, 403, "insufficient_scope")
    assert money(admin, wallet_id, "USDT")[0] == Decimal("89")


# --------------------------------------------------------------------------- dedicated servers


def test_succeed_moves_the_money_exactly(
    fast: ServerProcess, operator_of: dict[str, httpx.Client]
) -> None:
    operator = operator_of["fast"]
    funded = {"USDT": Decimal("1000"), "BTC": Decimal("1"), "ETH": Decimal("5")}
    mine = holder(fast, operator, **{code: str(amount) for code, amount in funded.items()})
    before = fees(operator)
    requests = [
        ("USDTTRC20", "10", True), ("USDTTRC20", "123.456789", True), ("USDTERC20", "50", False),
        ("BTC", "0.0123", True), ("BTC", "0.01", False), ("ETH", "0.5", True),
    ]  # fmt: skip
    made = [
        create(mine.client, body(code, amount, final_amount=final_amount))
        for code, amount, final_amount in requests
    ]
    for item, (code, amount, final_amount) in zip(made, requests, strict=True):
        assert (item["amount"], item["fee"], item["total"]) == rule_figures(
            code, amount, final_amount
        )
    finals = [until(mine.client, item["withdrawal_id"], FINAL) for item in made]
    assert {item["status"] for item in finals} == {"succeed"}
    after = fees(operator)
    for currency, deposited in funded.items():
        mine_in = [item for item in finals if item["ledger_currency"] == currency]
        spent = sum((Decimal(item["total"]) for item in mine_in), Decimal(0))
        fee = sum((Decimal(item["fee"]) for item in mine_in), Decimal(0))
        assert money(mine.client, mine.wallet_id, currency) == (deposited - spent, Decimal(0))
        assert after[currency] - before[currency] == fee, currency
    check_ledger(fast)


def test_webhooks_announce_each_state_signed_to_the_partner_or_the_requests_url(
    fast: ServerProcess, operator_of: dict[str, httpx.Client], receiver: Receiver
) -> None:
    mine = holder(fast, operator_of["fast"], receiver.url, USDT="100")
    own_url = Receiver().start()
    try:
        to_partner = create(mine.client, body())
        to_request = create(mine.client, body(callback_url=own_url.url))
        for item in (to_partner, to_request):
            assert until(mine.client, item["withdrawal_id"], FINAL)["status"] == "succeed"
        states = ["accepted", "processing", "confirming", "succeed"]

        def announced(where: Receiver, withdrawal_id: str) -> list[dict[str, Any]]:
            return [
                received.event
                for received in where.snapshot()
                if received.event["type"].startswith("withdrawal.")
                and received.event["data"]["withdrawal_id"] == withdrawal_id
            ]

        for where, item in ((receiver, to_partner), (own_url, to_request)):
            withdrawal_id = item["withdrawal_id"]
            eventually(lambda w=where, i=withdrawal_id: len(announced(w, i)) >= 4,  # type: ignore[misc]
                       f"the four webhooks of {withdrawal_id}")  # fmt: skip
            events = announced(where, withdrawal_id)
            for received in where.snapshot():
                assert partner_accepts(mine.partner.secret, received)
                assert received.headers["x-webhook-id"] == received.event["id"]
            # One event per state, each once (a retry would repeat its id, never a new one).
            assert sorted(event["type"] for event in events) == sorted(
                f"withdrawal.{state}" for state in states
            )
            assert len({event["id"] for event in events}) == 4
            # In the withdrawal's own order (the outbox delivers concurrently: arrival may
            # swap two changes committed within a millisecond, their timestamps never).
            in_order = sorted(events, key=lambda event: event["data"]["updated_at"])
            assert [event["type"] for event in in_order] == [f"withdrawal.{s}" for s in states]
            assert [event["data"]["status"] for event in in_order] == states
            assert in_order[-1]["data"] == details(mine.client, withdrawal_id)
            assert in_order[0]["data"]["txid"] is None and in_order[2]["data"]["txid"]
        assert announced(receiver, to_request["withdrawal_id"]) == []  # its own URL only
        assert announced(own_url, to_partner["withdrawal_id"]) == []
    finally:
        own_url.stop()


def test_once_processing_it_cannot_be_canceled(
    fast: ServerProcess, operator_of: dict[str, httpx.Client]
) -> None:
    mine = holder(fast, operator_of["fast"], USDT="100")
    created = create(mine.client, body())
    moved = until(mine.client, created["withdrawal_id"], {"processing", "confirming", "succeed"})
    refused = mine.client.post(f"/withdrawal/{created['withdrawal_id']}/cancel/")
    assert_problem(refused, 409, "illegal_transition")
    assert moved["status"] in refused.json()["detail"] or "succeed" in refused.json()["detail"]
    assert until(mine.client, created["withdrawal_id"], FINAL)["status"] == "succeed"


def test_a_failed_chain_transaction_releases_the_funds(
    failing: ServerProcess, operator_of: dict[str, httpx.Client], receiver: Receiver
) -> None:
    operator = operator_of["failing"]
    mine = holder(failing, operator, receiver.url, USDT="100", BTC="1")
    before = fees(operator)
    made = [create(mine.client, body()), create(mine.client, body("BTC", "0.001"))]
    assert money(mine.client, mine.wallet_id, "USDT")[0] == Decimal("89")
    finals = [until(mine.client, item["withdrawal_id"], FINAL) for item in made]
    for final in finals:
        assert (final["status"], final["reason"]) == ("failed", FAILED_ON_CHAIN)
        assert final["txid"]  # it was broadcast, and failed on chain
    assert money(mine.client, mine.wallet_id, "USDT") == (Decimal("100"), Decimal(0))
    assert money(mine.client, mine.wallet_id, "BTC") == (Decimal("1"), Decimal(0))
    assert fees(operator) == before
    eventually(
        lambda: sum(r.event["type"] == "withdrawal.failed" for r in receiver.snapshot()) == 2,
        "the failures are announced",
    )
    assert all(partner_accepts(mine.partner.secret, r) for r in receiver.snapshot())
    check_ledger(failing)


def test_cancel_releases_the_funds_of_an_accepted_withdrawal(
    slow: ServerProcess, operator_of: dict[str, httpx.Client], receiver: Receiver
) -> None:
    mine = holder(slow, operator_of["slow"], receiver.url, USDT="100")
    created = create(mine.client, body(custom_id="to-cancel"))
    assert money(mine.client, mine.wallet_id, "USDT") == (Decimal("89"), Decimal("11"))
    other = holder(slow, operator_of["slow"])
    cancel_path = f"/withdrawal/{created['withdrawal_id']}/cancel/"
    assert_problem(other.client.post(cancel_path), 404, "not_found")
    canceled = mine.client.post(cancel_path)
    assert canceled.status_code == 200, canceled.text
    answer = canceled.json()
    assert (answer["status"], answer["withdrawal_id"]) == ("canceled", created["withdrawal_id"])
    assert answer["reason"] and answer["txid"] is None
    assert money(mine.client, mine.wallet_id, "USDT") == (Decimal("100"), Decimal(0))
    again = mine.client.post(cancel_path)
    assert "canceled" in assert_problem(again, 409, "illegal_transition")["detail"]
    assert details(mine.client, created["withdrawal_id"]) == answer
    assert [
        item["withdrawal_id"] for item in listed(mine.client, status="canceled")["withdrawals"]
    ] == [created["withdrawal_id"]]
    # A repeat of the request answers the canceled withdrawal; the key stays taken.
    assert create(mine.client, body(custom_id="to-cancel"), status=200) == answer

    def types() -> list[str]:
        found = (received.event["type"] for received in receiver.snapshot())
        return sorted(kind for kind in found if kind.startswith("withdrawal."))

    eventually(lambda: len(types()) >= 2, "accepted and canceled are announced")
    assert types() == ["withdrawal.accepted", "withdrawal.canceled"]
    check_ledger(slow)


def test_a_price_is_converted_at_the_books_rate_and_rounded_down_once(
    slow: ServerProcess, operator_of: dict[str, httpx.Client]
) -> None:
    """USD → BTC crosses USD → USDT (reference rate 1) and USDT → BTC (1 / the BTC-USDT
    mid): 100 USD at a mid of 60000.005 is 0.00166666652… BTC, rounded down to 0.00166666."""
    operator = operator_of["slow"]
    maker = new_wallet(operator, "maker")
    deposit(operator, maker, "USDT", "100")
    deposit(operator, maker, "BTC", "0.01")
    orders = [
        order(operator, maker, side="buy", price="60000.00", quantity="0.0001"),
        order(operator, maker, side="sell", price="60000.01", quantity="0.0001"),
    ]
    try:
        mine = holder(slow, operator, BTC="1")
        query = {"currency_from": "USD", "currency_to": "BTC", "amount": "100"}
        quoted = operator.get("/rates/", params={**query, "fee_percentage": "0"})
        assert quoted.status_code == 200, quoted.text
        rate = Decimal(quoted.json()["rate"])
        priced = {"price_amount": "100", "price_currency": "USD", "currency": "BTC"}
        created = create(mine.client, {**priced, "address": BITCOIN_ADDRESS})
        exact = Decimal(100) * rate
        expected = exact.quantize(Decimal("0.00000001"), rounding=ROUND_FLOOR)
        assert exact != expected and expected == Decimal("0.00166666")
        assert created["amount"] == f"{expected:.8f}" == quoted.json()["estimated_amount"]
        assert (created["rate"], created["rounded_down"]) == (quoted.json()["rate"], True)
        assert (created["price_amount"], created["price_currency"]) == ("100.00", "USD")
        assert created["fee"] == "0.00010000" and created["total"] == "0.00176666"
        assert money(mine.client, mine.wallet_id, "BTC")[0] == Decimal("1") - Decimal("0.00176666")
        # The same request again: the first withdrawal, whatever the rate is now.
        repeat = {**priced, "price_amount": "100.0", "address": BITCOIN_ADDRESS,
                  "custom_id": "priced"}  # fmt: skip
        first = create(mine.client, repeat)
        again = create(mine.client, repeat, status=200)
        assert again["withdrawal_id"] == first["withdrawal_id"]
        assert (again["price_amount"], again["price_currency"]) == ("100.00", "USD")
        for item in (created, first):
            assert (
                mine.client.post(f"/withdrawal/{item['withdrawal_id']}/cancel/").status_code == 200
            )
    finally:
        for placed in orders:
            operator.delete(f"/orders/{placed['id']}/")


def test_no_rate_is_422(slow: ServerProcess, operator_of: dict[str, httpx.Client]) -> None:
    """ETH → BTC has a market of its own, empty and never traded; USD → ETH crosses the
    empty ETH-USDT book: no rate either way, and nothing is held."""
    mine = holder(slow, operator_of["slow"], BTC="1", ETH="1")
    for payload in (
        {"price_amount": "0.5", "price_currency": "ETH", "currency": "BTC",
         "address": BITCOIN_ADDRESS},
        {"price_amount": "100", "price_currency": "USD", "blockchain": "ETH",
         "address": ETHEREUM_ADDRESS},
    ):  # fmt: skip
        problem = assert_problem(mine.client.post("/withdrawal/", json=payload), 422, "no_rate")
        assert problem["errors"][0]["field"] == "price_currency"
    assert money(mine.client, mine.wallet_id, "BTC") == (Decimal("1"), Decimal(0))
    assert listed(mine.client)["total"] == 0
