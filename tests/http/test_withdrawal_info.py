"""The withdrawal questions over the real server (seed 001 "Withdrawals"): validate-address,
fee-estimate, estimate, min-amount and available-currencies.

Valid addresses are well-known mainnet ones (a bech32 P2WPKH, the EIP-55 example, the
USDT TRC-20 contract); each is made invalid by changing one character. Expected figures
are computed here with `Decimal` from the rules' numbers (`DEFAULT_RULES` is read only
for its limits and fees).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

import httpx
import pytest

from strongroom.custody.withdrawals import DEFAULT_RULES
from tests.http.conftest import Fund
from tests.server import ServerProcess
from tests.support import assert_problem, new_wallet, place

DECIMALS = {"BTC": 8, "ETH": 8, "USDT": 6}
CHAINS = {"BTC": "BTC", "ETH": "ETH", "USDTERC20": "ETH", "USDTTRC20": "TRON"}
LEDGER = {"BTC": "BTC", "ETH": "ETH", "USDTERC20": "USDT", "USDTTRC20": "USDT"}
CODES = list(CHAINS)

BITCOIN_ADDRESS = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
ETHEREUM_ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TRON_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
VALID = {
    "BTC": BITCOIN_ADDRESS,
    "ETH": ETHEREUM_ADDRESS,
    "USDTERC20": ETHEREUM_ADDRESS,
    "USDTTRC20": TRON_ADDRESS,
}
ONE_CHANGED = {  # one character each
    "BTC": BITCOIN_ADDRESS[:-1] + "v",
    "ETH": ETHEREUM_ADDRESS[:-1] + "D",  # the case breaks the EIP-55 checksum
    "USDTERC20": ETHEREUM_ADDRESS[:-2] + "Ad",
    "USDTTRC20": TRON_ADDRESS[:-1] + "u",
}


def units(code: str) -> Decimal:
    return Decimal(1).scaleb(-DECIMALS[LEDGER[code]])


def text(value: Decimal, code: str) -> str:
    """`value` with exactly the currency's places (it must be on the grid)."""
    step = units(code)
    assert value == value.quantize(step)
    return f"{value.quantize(step):f}"


def terms(code: str) -> dict[str, Decimal]:
    """The rule's numbers as decimals of the ledger currency."""
    rule = DEFAULT_RULES.rule(code)
    step = units(code)
    return {
        "min": rule.amount_min * step,
        "max": rule.amount_max * step,
        "flat": rule.fee_flat * step,
        "bps": Decimal(rule.fee_bps),
    }


def fee_of(code: str, receive: Decimal) -> Decimal:
    numbers = terms(code)
    percentage = (receive * numbers["bps"] / 10_000).quantize(units(code), ROUND_CEILING)
    return numbers["flat"] + percentage


def post(client: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/withdrawal/{path}/", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = response.json()
    return answer


def described(code: str) -> dict[str, str]:
    return {"currency": code, "ledger_currency": LEDGER[code], "chain": CHAINS[code]}


# ---------------------------------------------------------------- validate-address


@pytest.mark.parametrize("code", CODES)
def test_a_valid_address_is_valid(admin: httpx.Client, code: str) -> None:
    answer = post(admin, "validate-address", currency=code, address=VALID[code])
    assert answer == {**described(code), "valid": True, "reason": None}


@pytest.mark.parametrize("code", CODES)
def test_one_character_changed_is_invalid_with_a_reason(admin: httpx.Client, code: str) -> None:
    answer = post(admin, "validate-address", currency=code, address=ONE_CHANGED[code])
    assert answer["valid"] is False
    assert "checksum" in answer["reason"]
    assert {key: answer[key] for key in ("currency", "ledger_currency", "chain")} == described(code)


@pytest.mark.parametrize(
    ("code", "address"),
    [
        ("BTC", ETHEREUM_ADDRESS),
        ("ETH", TRON_ADDRESS),
        ("USDTTRC20", ETHEREUM_ADDRESS),
        ("USDTERC20", BITCOIN_ADDRESS),
        ("BTC", ""),
        ("ETH", " " + ETHEREUM_ADDRESS),
        ("USDTTRC20", "T" * 500),
    ],
)
def test_an_address_of_another_chain_or_malformed_is_a_200_answer(
    admin: httpx.Client, code: str, address: str
) -> None:
    answer = post(admin, "validate-address", currency=code, address=address)
    assert answer["valid"] is False
    assert isinstance(answer["reason"], str) and answer["reason"]


def test_a_plain_ledger_currency_is_accepted_when_it_leaves_by_one_chain(
    admin: httpx.Client,
) -> None:
    assert post(admin, "min-amount", currency="BTC")["chain"] == "BTC"
    assert post(admin, "validate-address", currency="ETH", address=ETHEREUM_ADDRESS)["valid"]


def test_usdt_is_ambiguous_and_the_answer_names_both_codes(admin: httpx.Client) -> None:
    for path, body in (
        ("validate-address", {"currency": "USDT", "address": TRON_ADDRESS}),
        ("fee-estimate", {"currency": "USDT", "amount": "50"}),
        ("estimate", {"currency": "USDT", "amount": "50"}),
        ("min-amount", {"currency": "USDT"}),
    ):
        response = admin.post(f"/withdrawal/{path}/", json=body)
        problem = assert_problem(response, 422, "ambiguous_currency")
        assert "USDTERC20" in problem["detail"] and "USDTTRC20" in problem["detail"]
        assert problem["errors"][0]["field"] == "currency"


@pytest.mark.parametrize("currency", ["DOGE", "USD", "usdttrc20", "BTC "])
def test_an_unknown_currency_is_422(admin: httpx.Client, currency: str) -> None:
    for path, body in (
        ("validate-address", {"currency": currency, "address": BITCOIN_ADDRESS}),
        ("fee-estimate", {"currency": currency, "amount": "1"}),
        ("estimate", {"currency": currency, "amount": "1"}),
        ("min-amount", {"currency": currency}),
    ):
        response = admin.post(f"/withdrawal/{path}/", json=body)
        problem = assert_problem(response, 422, "unsupported_currency")
        assert problem["errors"][0]["field"] == "currency"


# ---------------------------------------------------------------- fees, estimates, limits


@pytest.mark.parametrize("code", CODES)
def test_min_amount_gives_both_limits(admin: httpx.Client, code: str) -> None:
    numbers = terms(code)
    assert post(admin, "min-amount", currency=code) == {
        **described(code),
        "min_amount": text(numbers["min"], code),
        "max_amount": text(numbers["max"], code),
    }


@pytest.mark.parametrize("code", CODES)
def test_fee_estimate_for_the_minimum_and_above(admin: httpx.Client, code: str) -> None:
    numbers = terms(code)
    for receive in (numbers["min"], numbers["min"] * 3 + units(code), numbers["max"]):
        answer = post(admin, "fee-estimate", currency=code, amount=text(receive, code))
        fee = fee_of(code, receive)
        assert answer == {
            **described(code),
            "amount": text(receive, code),
            "fee": text(fee, code),
            "network_fee": text(numbers["flat"], code),
            "platform_fee": text(fee - numbers["flat"], code),
        }


def test_fee_estimate_checks_an_address_when_given(admin: httpx.Client) -> None:
    good = post(admin, "fee-estimate", currency="USDTTRC20", amount="100", address=TRON_ADDRESS)
    assert good["fee"] == text(fee_of("USDTTRC20", Decimal(100)), "USDTTRC20")
    response = admin.post(
        "/withdrawal/fee-estimate/",
        json={"currency": "USDTTRC20", "amount": "100", "address": ONE_CHANGED["USDTTRC20"]},
    )
    problem = assert_problem(response, 422, "invalid_address")
    assert problem["errors"][0]["field"] == "address"


@pytest.mark.parametrize("code", CODES)
def test_estimate_with_the_fee_on_top(admin: httpx.Client, code: str) -> None:
    receive = terms(code)["min"] * 2 + units(code)
    fee = fee_of(code, receive)
    for flag in ({}, {"final_amount": True}):  # true is the default
        answer = post(admin, "estimate", currency=code, amount=text(receive, code), **flag)
        assert answer == {
            **described(code),
            "final_amount": True,
            "requested_amount": text(receive, code),
            "amount": text(receive, code),
            "receive": text(receive, code),
            "fee": text(fee, code),
            "network_fee": text(terms(code)["flat"], code),
            "platform_fee": text(fee - terms(code)["flat"], code),
            "total": text(receive + fee, code),
        }


@pytest.mark.parametrize("code", CODES)
def test_estimate_with_the_fee_included(admin: httpx.Client, code: str) -> None:
    """Seed 001's example: 100 requested, the fee taken out of it."""
    numbers = terms(code)
    requested = numbers["min"] * 2 + numbers["flat"]
    assert numbers["bps"] == 0  # no percentage: the recipient gets exactly requested − flat
    receive = requested - numbers["flat"]
    answer = post(
        admin, "estimate", currency=code, amount=text(requested, code), final_amount=False
    )
    assert answer == {
        **described(code),
        "final_amount": False,
        "requested_amount": text(requested, code),
        "amount": text(receive, code),
        "receive": text(receive, code),
        "fee": text(numbers["flat"], code),
        "network_fee": text(numbers["flat"], code),
        "platform_fee": text(Decimal(0), code),
        "total": text(requested, code),
    }


def test_seed_example_usdt_on_tron(admin: httpx.Client) -> None:
    answer = post(admin, "estimate", currency="USDTTRC20", amount="100.00", final_amount=False)
    flat = terms("USDTTRC20")["flat"]
    assert answer["requested_amount"] == "100.000000"
    assert answer["amount"] == text(Decimal(100) - flat, "USDTTRC20")
    assert answer["total"] == "100.000000"


@pytest.mark.parametrize("code", CODES)
def test_below_the_minimum_and_above_the_maximum_are_422_with_the_limit(
    admin: httpx.Client, code: str
) -> None:
    numbers = terms(code)
    below = text(numbers["min"] - units(code), code)
    above = text(numbers["max"] + units(code), code)
    for path in ("fee-estimate", "estimate"):
        low = admin.post(f"/withdrawal/{path}/", json={"currency": code, "amount": below})
        problem = assert_problem(low, 422, "below_minimum")
        assert text(numbers["min"], code) in problem["detail"]
        assert problem["errors"][0]["field"] == "amount"
        high = admin.post(f"/withdrawal/{path}/", json={"currency": code, "amount": above})
        problem = assert_problem(high, 422, "above_maximum")
        assert text(numbers["max"], code) in problem["detail"]
    # Fee included: what is left after the fee must reach the minimum.
    short = text(numbers["min"] + numbers["flat"] - units(code), code)
    response = admin.post(
        "/withdrawal/estimate/", json={"currency": code, "amount": short, "final_amount": False}
    )
    assert text(numbers["min"], code) in assert_problem(response, 422, "below_minimum")["detail"]


@pytest.mark.parametrize(
    ("code", "amount"),
    [
        ("USDTTRC20", "50.0000001"),  # 7 places, USDT has 6
        ("BTC", "0.001000001"),  # 9 places, BTC has 8
        ("USDTERC20", "-30"),
        ("USDTERC20", "0"),
        ("USDTERC20", ""),
        ("BTC", "1,5"),
        ("BTC", " 1"),
    ],
)
def test_malformed_or_too_precise_amounts_are_422(
    admin: httpx.Client, code: str, amount: str
) -> None:
    for path in ("fee-estimate", "estimate"):
        response = admin.post(f"/withdrawal/{path}/", json={"currency": code, "amount": amount})
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "amount"


def test_trailing_zeros_within_the_grid_are_accepted(admin: httpx.Client) -> None:
    answer = post(admin, "fee-estimate", currency="BTC", amount="0.00100000000")
    assert answer["amount"] == "0.00100000"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("validate-address", {"currency": "BTC", "address": BITCOIN_ADDRESS, "memo": "x"}),
        ("fee-estimate", {"currency": "BTC", "amount": "0.001", "network": "BTC"}),
        ("estimate", {"currency": "BTC", "amount": "0.001", "includes_fee": True}),
        ("min-amount", {"currency": "BTC", "blockchain": "BTC"}),
        ("fee-estimate", {"currency": "BTC", "amount": 0.001}),  # a number, not a string
        ("estimate", {"currency": "BTC", "amount": "0.001", "final_amount": "false"}),
        ("validate-address", {"currency": "BTC"}),
        ("min-amount", {}),
    ],
)
def test_unknown_missing_or_mistyped_fields_are_422(
    admin: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    assert_problem(admin.post(f"/withdrawal/{path}/", json=body), 422, "validation_error")


# ---------------------------------------------------------------- available currencies


def available(client: httpx.Client, **params: str) -> list[dict[str, str]]:
    response = client.get("/withdrawal/available-currencies/", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"currencies"}
    listed: list[dict[str, str]] = body["currencies"]
    return listed


def test_available_currencies_of_a_fresh_funded_wallet(admin: httpx.Client, fund: Fund) -> None:
    wallet_id = fund(BTC="1.5", USDT="25.125")
    assert available(admin, wallet_id=wallet_id) == [
        {**described("BTC"), "available": "1.50000000"},
        {**described("USDTERC20"), "available": "25.125000"},
        {**described("USDTTRC20"), "available": "25.125000"},
    ]
    assert available(admin, wallet_id=new_wallet(admin, "empty")) == []
    # Without wallet_id: every wallet of the partner, this one among them.
    summed = {row["currency"]: Decimal(row["available"]) for row in available(admin)}
    assert summed["BTC"] >= Decimal("1.5") and summed["USDTTRC20"] >= Decimal("25.125")
    assert summed["USDTERC20"] == summed["USDTTRC20"]  # one balance, two ways out


def test_a_held_balance_is_not_available(admin: httpx.Client, fund: Fund) -> None:
    wallet_id = fund(BTC="0.5", ETH="2")
    held = place(admin, wallet_id, side="sell", price="9999999", quantity="0.5")
    assert held.status_code == 201, held.text
    assert available(admin, wallet_id=wallet_id) == [
        {**described("ETH"), "available": "2.00000000"}
    ]


def test_a_wallet_not_the_callers_is_404(admin: httpx.Client) -> None:
    response = admin.get(
        "/withdrawal/available-currencies/", params={"wallet_id": "no-such-wallet"}
    )
    assert_problem(response, 404, "not_found")
    twice = admin.get(
        "/withdrawal/available-currencies/", params=[("wallet_id", "a"), ("wallet_id", "b")]
    )
    assert_problem(twice, 422, "validation_error")


# ---------------------------------------------------------------- scopes


ROUTES = [
    ("post", "/withdrawal/validate-address/", {"currency": "BTC", "address": BITCOIN_ADDRESS}),
    ("post", "/withdrawal/fee-estimate/", {"currency": "BTC", "amount": "0.001"}),
    ("post", "/withdrawal/estimate/", {"currency": "BTC", "amount": "0.001"}),
    ("post", "/withdrawal/min-amount/", {"currency": "BTC"}),
    ("get", "/withdrawal/available-currencies/", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_scope_read_suffices_write_alone_does_not_and_no_token_is_401(
    server: ServerProcess, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as anonymous:
        assert_problem(anonymous.request(method.upper(), path, json=body), 401)
    with server.client(scope="read") as reader:
        assert reader.request(method.upper(), path, json=body).status_code == 200
    with server.client(scope="write") as writer:
        refused = writer.request(method.upper(), path, json=body)
        assert_problem(refused, 403, "insufficient_scope")


def test_the_document_describes_the_routes(admin: httpx.Client) -> None:
    document = admin.get("/openapi.json").json()
    for method, path, body in ROUTES:
        operation = document["paths"][path][method]
        assert {"oauth2": ["read"]} in operation["security"]
        assert all("userToken" not in alternative for alternative in operation["security"])
        assert ("requestBody" in operation) == (body is not None)
