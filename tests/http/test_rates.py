"""`GET /currencies/` and `GET /rates/` over the real server (seed 001 "Currencies & Rates",
amounts as decimal strings per SPEC §5).

Rates come from the best bid and ask of the whole book, so each test that makes a mid
checks first (`assert_quiet`) that nothing of other tests lies within its own price band:
its bid and ask are then the best ones. Expected figures are computed here with `Decimal`,
independently of `strongroom.rates`. Config-added currencies and markets (crossing through
USDT, a book nobody trades, a one-sided book with a last trade, a coin with no route) live
on a server of this module's own, started with `--config`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import Fund
from tests.server import ServerProcess
from tests.support import assert_problem, assert_quiet, deposit, new_wallet, order

EXACT = Context(prec=200)
EIGHTEEN = Context(prec=18, rounding=ROUND_HALF_EVEN)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

BUILT_IN_CODES = ["USD", "EUR", "USDT", "BTC", "ETH"]
BUILT_IN_DETAILS = {
    "USD": {"currency": "USD", "name": "US Dollar", "kind": "fiat", "decimals": 2,
            "blockchain": None, "token": None, "is_stable": False},
    "EUR": {"currency": "EUR", "name": "Euro", "kind": "fiat", "decimals": 2,
            "blockchain": None, "token": None, "is_stable": False},
    "USDT": {"currency": "USDT", "name": "Tether USD", "kind": "coin", "decimals": 6,
             "blockchain": "eth", "token": "usdt", "is_stable": True},
    "BTC": {"currency": "BTC", "name": "Bitcoin", "kind": "coin", "decimals": 8,
            "blockchain": "btc", "token": None, "is_stable": False},
    "ETH": {"currency": "ETH", "name": "Ether", "kind": "coin", "decimals": 8,
            "blockchain": "eth", "token": None, "is_stable": False},
}  # fmt: skip
BUILT_IN_LIMITS = {
    "USD": ("10.00", "100000.00"),
    "EUR": ("10.00", "100000.00"),
    "USDT": ("10.000000", "100000.000000"),
    "BTC": ("0.00010000", "10.00000000"),
    "ETH": ("0.00100000", "100.00000000"),
}


# ---------------------------------------------------------------- expected arithmetic


def mid(bid: str, ask: str) -> Decimal:
    return EXACT.divide(EXACT.add(Decimal(bid), Decimal(ask)), 2)


def inverse(value: Decimal) -> Decimal:
    return EIGHTEEN.divide(Decimal(1), value)


def ratio(numerator: str, denominator: str) -> Decimal:
    return EIGHTEEN.divide(Decimal(numerator), Decimal(denominator))


def crossed(first: Decimal, second: Decimal) -> Decimal:
    return EIGHTEEN.plus(EXACT.multiply(first, second))


def down(value: Decimal, decimals: int) -> str:
    """`value` rounded down to `decimals` places, as the API writes it."""
    return f"{value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_FLOOR, context=EXACT):f}"


def shown(value: Decimal) -> str:
    return f"{value.normalize(EXACT):f}"


def get_rate(client: httpx.Client, **params: str) -> dict[str, Any]:
    response = client.get("/rates/", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def assert_rate(
    client: httpx.Client,
    source: str,
    target: str,
    rate: Decimal,
    amount: str,
    target_decimals: int,
) -> None:
    """The simple answer for `amount` of `source` in `target` at `rate`, no fee deducted."""
    body = get_rate(client, currency_from=source, currency_to=target, amount=amount)
    assert body == {
        "currency_from": source,
        "currency_to": target,
        "amount": amount,
        "estimated_amount": down(EXACT.multiply(Decimal(amount), rate), target_decimals),
        "rate": shown(rate),
    }


def currencies(client: httpx.Client, **flags: str) -> list[Any]:
    response = client.get("/currencies/", params=flags)
    assert response.status_code == 200, response.text
    listed: list[Any] = response.json()["currencies"]
    assert set(response.json()) == {"currencies"}
    return listed


# ---------------------------------------------------------------- currencies (shared server)


@pytest.mark.parametrize("yes", ["true", "1", "True", "TRUE"])
@pytest.mark.parametrize("no", ["false", "0", "False"])
def test_currencies_for_deposit_and_for_withdrawal(admin: httpx.Client, yes: str, no: str) -> None:
    assert currencies(admin) == BUILT_IN_CODES
    assert currencies(admin, withdrawal=no) == BUILT_IN_CODES
    assert currencies(admin, full=no, withdrawal=no) == BUILT_IN_CODES
    assert currencies(admin, withdrawal=yes) == ["USDT", "BTC", "ETH"]  # coins only


def test_full_currencies_describe_each_currency(admin: httpx.Client) -> None:
    assert currencies(admin, full="true") == [BUILT_IN_DETAILS[code] for code in BUILT_IN_CODES]
    assert currencies(admin, full="true", withdrawal="true") == [
        BUILT_IN_DETAILS[code] for code in ("USDT", "BTC", "ETH")
    ]
    with_limits = currencies(admin, full="1", min_max="1")
    assert with_limits == [
        {
            **BUILT_IN_DETAILS[code],
            "min_amount": BUILT_IN_LIMITS[code][0],
            "max_amount": BUILT_IN_LIMITS[code][1],
        }
        for code in BUILT_IN_CODES
    ]


def test_every_combination_of_the_currency_flags(admin: httpx.Client) -> None:
    for full, min_max, include_usd, withdrawal in itertools.product((False, True), repeat=4):
        flags = {
            "full": str(full).lower(),
            "min_max": str(min_max).lower(),
            "include_usd": str(include_usd).lower(),
            "withdrawal": str(withdrawal).lower(),
        }
        response = admin.get("/currencies/", params=flags)
        if include_usd and not min_max:
            problem = assert_problem(response, 422, "validation_error")
            assert [error["field"] for error in problem["errors"]] == ["include_usd"], flags
            continue
        if min_max and not full:
            problem = assert_problem(response, 422, "validation_error")
            assert [error["field"] for error in problem["errors"]] == ["min_max"], flags
            continue
        assert response.status_code == 200, (flags, response.text)
        listed = response.json()["currencies"]
        codes = ["USDT", "BTC", "ETH"] if withdrawal else BUILT_IN_CODES
        if not full:
            assert listed == codes, flags
            continue
        keys = set(BUILT_IN_DETAILS["USD"])
        if min_max:
            keys |= {"min_amount", "max_amount"}
        if include_usd:
            keys |= {"min_amount_usd", "max_amount_usd"}
        assert [row["currency"] for row in listed] == codes, flags
        assert all(set(row) == keys for row in listed), flags


def test_limits_in_usd_follow_the_rates(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "36400.00", "36500.00")
    buyer, seller = fund(USDT="100"), fund(BTC="0.01")
    order(admin, buyer, "BTC-USDT", side="buy", price="36410.00", quantity="0.0010")
    order(admin, seller, "BTC-USDT", side="sell", price="36477.77", quantity="0.0010")
    btc_in_usd = mid("36410.00", "36477.77")  # × USDT→USD = 1/1

    listed = currencies(admin, full="true", min_max="true", include_usd="true")
    rows = {row["currency"]: row for row in listed}
    assert [row["currency"] for row in listed] == BUILT_IN_CODES

    def usd(code: str) -> tuple[str | None, str | None]:
        return rows[code]["min_amount_usd"], rows[code]["max_amount_usd"]

    assert usd("USD") == ("10.00", "100000.00")
    assert usd("EUR") == ("10.80", "108000.00")  # reference rate 1.08
    assert usd("USDT") == ("10.00", "100000.00")
    assert usd("BTC") == (
        down(Decimal("0.0001") * btc_in_usd, 2),
        down(Decimal(10) * btc_in_usd, 2),
    )
    assert usd("BTC") == ("3.64", "364438.85")
    # ETH's book belongs to other tests: whatever it says, the listing agrees with /rates/
    eth = admin.get("/rates/", params={"currency_from": "ETH", "currency_to": "USD",
                                       "amount": "0.00100000"})  # fmt: skip
    if eth.status_code == 409:
        assert usd("ETH") == (None, None)
    else:
        assert usd("ETH")[0] == eth.json()["estimated_amount"]
    for row in listed:
        code = row["currency"]
        assert {key: row[key] for key in BUILT_IN_DETAILS[code]} == BUILT_IN_DETAILS[code]
        assert (row["min_amount"], row["max_amount"]) == BUILT_IN_LIMITS[code]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"full": "yes"}, "full"),
        ({"full": ""}, "full"),
        ({"full": "2"}, "full"),
        ({"full": "truee"}, "full"),
        ({"withdrawal": "on"}, "withdrawal"),
        ({"full": "true", "min_max": "-1"}, "min_max"),
        ({"full": "true", "min_max": "true", "include_usd": "y"}, "include_usd"),
        ({"min_max": "true"}, "min_max"),
        ({"full": "true", "include_usd": "true"}, "include_usd"),
        ((("full", "true"), ("full", "false")), "full"),
    ],
)
def test_bad_currency_flags_are_422(
    admin: httpx.Client, params: dict[str, str] | tuple[tuple[str, str], ...], field: str
) -> None:
    problem = assert_problem(admin.get("/currencies/", params=params), 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == [field]


# ---------------------------------------------------------------- rates (shared server)


def test_direct_and_inverted_rates_from_the_mid_price(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "36000.00", "36100.00")
    buyer, seller = fund(USDT="100"), fund(BTC="0.01")
    order(admin, buyer, "BTC-USDT", side="buy", price="36010.00", quantity="0.0010")
    order(admin, seller, "BTC-USDT", side="sell", price="36050.01", quantity="0.0010")
    direct = mid("36010.00", "36050.01")
    assert direct == Decimal("36030.005")

    assert_rate(admin, "BTC", "USDT", direct, "0.50000000", 6)
    assert get_rate(admin, currency_from="BTC", currency_to="USDT", amount="0.5") == {
        "currency_from": "BTC",
        "currency_to": "USDT",
        "amount": "0.50000000",
        "estimated_amount": "18015.002500",
        "rate": "36030.005",
    }
    inverted = inverse(direct)
    assert len(inverted.as_tuple().digits) == 18
    assert_rate(admin, "USDT", "BTC", inverted, "1000.000000", 8)
    assert_rate(admin, "USDT", "BTC", inverted, "0.000001", 8)  # rounds down to nothing
    assert (
        get_rate(admin, currency_from="USDT", currency_to="BTC", amount="0.000001")[
            "estimated_amount"
        ]
        == "0.00000000"
    )
    # the amount defaults to 1 of the source
    body = get_rate(admin, currency_from="BTC", currency_to="USDT")
    assert (body["amount"], body["estimated_amount"]) == ("1.00000000", "36030.005000")


def test_eth_btc_direct_and_inverted(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "ETH-BTC", "0.07000", "0.07100")
    buyer, seller = fund(BTC="1"), fund(ETH="1")
    order(admin, buyer, "ETH-BTC", side="buy", price="0.07011", quantity="0.010")
    order(admin, seller, "ETH-BTC", side="sell", price="0.07088", quantity="0.010")
    direct = mid("0.07011", "0.07088")
    assert_rate(admin, "ETH", "BTC", direct, "2.50000000", 8)
    assert_rate(admin, "BTC", "ETH", inverse(direct), "0.12345678", 8)


def test_rates_crossed_through_usdt_and_reference_rates(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "36200.00", "36300.00")
    assert_quiet(admin, "ETH-USDT", "3700.00", "3720.00")
    usdt_buyer = fund(USDT="100")
    btc_seller, eth_seller = fund(BTC="0.01"), fund(ETH="0.1")
    order(admin, usdt_buyer, "BTC-USDT", side="buy", price="36201.37", quantity="0.0010")
    order(admin, btc_seller, "BTC-USDT", side="sell", price="36299.99", quantity="0.0010")
    order(admin, usdt_buyer, "ETH-USDT", side="buy", price="3701.01", quantity="0.010")
    order(admin, eth_seller, "ETH-USDT", side="sell", price="3719.98", quantity="0.010")
    btc, eth = mid("36201.37", "36299.99"), mid("3701.01", "3719.98")

    # a fiat currency reaches USDT by reference rates (USD 1, EUR 1.08, USDT 1)
    assert_rate(admin, "USD", "USDT", Decimal(1), "100.00", 6)
    assert_rate(admin, "EUR", "BTC", crossed(ratio("1.08", "1"), inverse(btc)), "250.00", 8)
    assert_rate(admin, "BTC", "EUR", crossed(btc, ratio("1", "1.08")), "0.00012345", 2)
    assert_rate(admin, "USD", "ETH", crossed(Decimal(1), inverse(eth)), "1234.56", 8)
    assert_rate(admin, "ETH", "EUR", crossed(eth, ratio("1", "1.08")), "3.00000000", 2)
    assert_rate(admin, "ETH", "USD", crossed(eth, Decimal(1)), "0.10000000", 2)
    assert get_rate(admin, currency_to="BTC", amount="100") == {
        "currency_from": "USD",  # the default source
        "currency_to": "BTC",
        "amount": "100.00",
        "estimated_amount": down(100 * inverse(btc), 8),
        "rate": shown(inverse(btc)),
    }
    # between fiat currencies: the reference rates alone
    assert_rate(admin, "USD", "EUR", ratio("1", "1.08"), "100.00", 2)
    assert (
        get_rate(admin, currency_from="USD", currency_to="EUR", amount="100")["estimated_amount"]
        == "92.59"
    )
    assert_rate(admin, "EUR", "USD", Decimal("1.08"), "100.00", 2)
    assert_rate(admin, "BTC", "BTC", Decimal(1), "0.30000000", 8)


def test_full_answers_carry_the_fee_and_a_timestamp(admin: httpx.Client, fund: Fund) -> None:
    assert_quiet(admin, "BTC-USDT", "36600.00", "36700.00")
    buyer, seller = fund(USDT="100"), fund(BTC="0.01")
    order(admin, buyer, "BTC-USDT", side="buy", price="36610.00", quantity="0.0010")
    order(admin, seller, "BTC-USDT", side="sell", price="36650.01", quantity="0.0010")
    rate = mid("36610.00", "36650.01")  # 36630.005
    converted = EXACT.multiply(Decimal("0.5"), rate)  # 18315.0025 USDT

    before = datetime.now(UTC)
    # default fee: the configuration's taker fee, 20 bps = 0.20 %; reported, not deducted
    body = get_rate(admin, currency_from="BTC", currency_to="USDT", amount="0.5", full="true")
    assert set(body) == {
        "currency_from", "currency_to", "amount", "estimated_amount", "rate",
        "fee_percentage", "fee_amount", "is_fee_paid_by_user", "timestamp",
    }  # fmt: skip
    fee = EXACT.multiply(converted, Decimal("0.002"))  # 36.630005
    assert {key: body[key] for key in body if key != "timestamp"} == {
        "currency_from": "BTC",
        "currency_to": "USDT",
        "amount": "0.50000000",
        "estimated_amount": "18315.002500",
        "rate": "36630.005",
        "fee_percentage": "0.20",
        "fee_amount": down(fee, 6),
        "is_fee_paid_by_user": False,
    }
    assert body["fee_amount"] == "36.630005"
    assert ISO_Z.match(body["timestamp"]), body["timestamp"]
    moment = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= moment <= datetime.now(UTC)

    paid = get_rate(admin, currency_from="BTC", currency_to="USDT", amount="0.5", full="1",
                    is_fee_paid_by_user="true")  # fmt: skip
    assert paid["is_fee_paid_by_user"] is True
    assert paid["estimated_amount"] == down(converted - fee, 6) == "18278.372495"
    assert paid["fee_amount"] == "36.630005"

    # a custom fee, with the user paying: the fee takes the rounding's remainder, so the
    # two add up to the conversion rounded down
    custom = get_rate(admin, currency_from="USDT", currency_to="BTC", amount="1000", full="true",
                      fee_percentage="1.5", is_fee_paid_by_user="1")  # fmt: skip
    inverted = inverse(rate)
    gross = EXACT.multiply(Decimal(1000), inverted)
    net = EXACT.multiply(gross, Decimal("0.985"))
    assert custom["fee_percentage"] == "1.50"
    assert custom["estimated_amount"] == down(net, 8)
    assert Decimal(custom["estimated_amount"]) + Decimal(custom["fee_amount"]) == Decimal(
        down(gross, 8)
    )
    # without full the fee is still deducted when the user pays it
    simple = get_rate(admin, currency_from="USDT", currency_to="BTC", amount="1000",
                      fee_percentage="1.5", is_fee_paid_by_user="true")  # fmt: skip
    assert set(simple) == {"currency_from", "currency_to", "amount", "estimated_amount", "rate"}
    assert simple["estimated_amount"] == custom["estimated_amount"]
    zero = get_rate(admin, currency_from="BTC", currency_to="USDT", amount="0.5", full="true",
                    fee_percentage="0", is_fee_paid_by_user="true")  # fmt: skip
    assert (zero["fee_percentage"], zero["fee_amount"], zero["estimated_amount"]) == (
        "0.00", "0.000000", "18315.002500",
    )  # fmt: skip
    finest = get_rate(admin, currency_from="BTC", currency_to="USDT", amount="0.5", full="true",
                      fee_percentage="0.0125")  # fmt: skip
    assert finest["fee_percentage"] == "0.0125"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "currency_to"),
        ({"currency_to": ""}, "currency_to"),
        ({"currency_to": "DOGE"}, "currency_to"),
        ({"currency_to": "btc"}, "currency_to"),
        ({"currency_to": "BTC", "currency_from": "NOPE"}, "currency_from"),
        ({"currency_to": "BTC", "amount": "0"}, "amount"),
        ({"currency_to": "BTC", "amount": "-1"}, "amount"),
        ({"currency_to": "BTC", "amount": "abc"}, "amount"),
        ({"currency_to": "BTC", "amount": ""}, "amount"),
        ({"currency_to": "BTC", "amount": "NaN"}, "amount"),
        ({"currency_to": "BTC", "amount": "Infinity"}, "amount"),
        ({"currency_to": "BTC", "amount": "1.001"}, "amount"),  # USD has 2 decimals
        ({"currency_to": "USD", "currency_from": "BTC", "amount": "0.000000001"}, "amount"),
        ({"currency_to": "BTC", "amount": "9" * 30}, "amount"),
        ({"currency_to": "BTC", "fee_percentage": "100"}, "fee_percentage"),
        ({"currency_to": "BTC", "fee_percentage": "-0.1"}, "fee_percentage"),
        ({"currency_to": "BTC", "fee_percentage": "0.00001"}, "fee_percentage"),
        ({"currency_to": "BTC", "fee_percentage": "much"}, "fee_percentage"),
        ({"currency_to": "BTC", "is_fee_paid_by_user": "maybe"}, "is_fee_paid_by_user"),
        ({"currency_to": "BTC", "full": "yes"}, "full"),
        ((("currency_to", "BTC"), ("currency_to", "ETH")), "currency_to"),
        ((("currency_to", "BTC"), ("amount", "1"), ("amount", "2")), "amount"),
    ],
)
def test_bad_rate_queries_are_422(
    admin: httpx.Client, params: dict[str, str] | tuple[tuple[str, str], ...], field: str
) -> None:
    problem = assert_problem(admin.get("/rates/", params=params), 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == [field]


def test_currencies_and_rates_are_for_partners_with_read(server: ServerProcess) -> None:
    with server.client(scope="read") as reader:
        assert reader.get("/currencies/").status_code == 200
        assert reader.get("/rates/", params={"currency_to": "EUR"}).status_code == 200
    with server.client(scope="write") as writer:
        for path in ("/currencies/", "/rates/?currency_to=EUR"):
            assert_problem(writer.get(path), 403, "insufficient_scope")
    with httpx.Client(base_url=server.base_url, timeout=30.0) as anonymous:
        for path in ("/currencies/", "/rates/?currency_to=EUR"):
            assert_problem(anonymous.get(path), 401)


# ---------------------------------------------------------------- a server with more currencies

CONFIG = """
[[currencies]]
code = "SOL"
kind = "coin"
decimals = 9
name = "Solana"
blockchain = "sol"
min_amount = "0.01"
max_amount = "5000"

[[currencies]]
code = "XRP"
kind = "coin"
decimals = 6

[[currencies]]
code = "ADA"
kind = "coin"
decimals = 6

[[currencies]]
code = "DOGE"
kind = "coin"
decimals = 8

[[currencies]]
code = "GBP"
kind = "fiat"
decimals = 2
name = "Pound Sterling"

[[markets]]
symbol = "SOL-USDT"
market_id = 4
base = "SOL"
quote = "USDT"
tick_size = "0.001"
lot_size = "0.01"

[[markets]]
symbol = "XRP-USDT"
market_id = 5
base = "XRP"
quote = "USDT"
tick_size = "0.0001"
lot_size = "1"

[[markets]]
symbol = "ADA-USDT"
market_id = 6
base = "ADA"
quote = "USDT"
tick_size = "0.0001"
lot_size = "1"

[reference_rates]
GBP = "1.27"
EUR = "1.25"
"""


@pytest.fixture(scope="module")
def wider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: built-in markets plus SOL-USDT (crossing), XRP-USDT
    (never traded: no rate), ADA-USDT (the last-trade fallback), DOGE (no market at all)
    and GBP (fiat by reference rate); EUR's reference rate is 1.25 here."""
    directory = Path(tmp_path_factory.mktemp("rates"))
    config = directory / "trading.toml"
    config.write_text(CONFIG)
    process = ServerProcess(directory / "data", ("--config", str(config)))
    process.start()
    yield process
    process.close()


@pytest.fixture
def operator(wider: ServerProcess) -> Iterator[httpx.Client]:
    with wider.client() as client:
        yield client


@pytest.fixture
def wider_fund(operator: httpx.Client) -> Iterator[Fund]:
    """`fund` on the module's own server: its orders are canceled at teardown."""
    made: list[str] = []

    def make(**amounts: str) -> str:
        wallet_id = new_wallet(operator, "rates")
        made.append(wallet_id)
        for currency, amount in amounts.items():
            deposit(operator, wallet_id, currency, amount)
        return wallet_id

    yield make
    for wallet_id in made:
        listed = operator.get("/orders/", params={"wallet_id": wallet_id, "status": "open"})
        for listed_order in listed.json():
            operator.delete(f"/orders/{listed_order['id']}/")


def assert_no_rate(client: httpx.Client, source: str, target: str) -> dict[str, Any]:
    response = client.get("/rates/", params={"currency_from": source, "currency_to": target})
    return assert_problem(response, 409, "no_rate")


def test_a_config_added_coin_is_crossed_through_usdt(
    operator: httpx.Client, wider_fund: Fund
) -> None:
    assert_quiet(operator, "BTC-USDT", "60000.00", "61000.00")
    assert_quiet(operator, "SOL-USDT", "145.000", "146.000")
    buyer = wider_fund(USDT="1000")
    btc_seller, sol_seller = wider_fund(BTC="0.01"), wider_fund(SOL="10")
    order(operator, buyer, "BTC-USDT", side="buy", price="60123.45", quantity="0.0010")
    order(operator, btc_seller, "BTC-USDT", side="sell", price="60456.78", quantity="0.0010")
    order(operator, buyer, "SOL-USDT", side="buy", price="145.125", quantity="1.00")
    order(operator, sol_seller, "SOL-USDT", side="sell", price="145.250", quantity="1.00")
    btc, sol = mid("60123.45", "60456.78"), mid("145.125", "145.250")

    assert_rate(operator, "SOL", "USDT", sol, "2.500000000", 6)
    assert_rate(operator, "SOL", "BTC", crossed(sol, inverse(btc)), "12.345678912", 8)
    assert_rate(operator, "BTC", "SOL", crossed(btc, inverse(sol)), "0.01000000", 9)
    assert_rate(operator, "GBP", "SOL", crossed(ratio("1.27", "1"), inverse(sol)), "99.99", 9)
    assert_rate(operator, "SOL", "GBP", crossed(sol, ratio("1", "1.27")), "1.000000000", 2)
    assert_rate(operator, "GBP", "EUR", ratio("1.27", "1.25"), "100.00", 2)
    assert ratio("1.27", "1.25") == Decimal("1.016")
    assert_rate(operator, "EUR", "USD", Decimal("1.25"), "100.00", 2)

    listed = currencies(operator, full="true", min_max="true", include_usd="true")
    rows = {row["currency"]: row for row in listed}
    assert [row["currency"] for row in listed] == [
        *BUILT_IN_CODES, "SOL", "XRP", "ADA", "DOGE", "GBP",
    ]  # fmt: skip
    assert rows["SOL"] == {
        "currency": "SOL", "name": "Solana", "kind": "coin", "decimals": 9,
        "blockchain": "sol", "token": None, "is_stable": False,
        "min_amount": "0.010000000", "max_amount": "5000.000000000",
        "min_amount_usd": down(Decimal("0.01") * sol, 2),
        "max_amount_usd": down(5000 * sol, 2),
    }  # fmt: skip
    assert (rows["SOL"]["min_amount_usd"], rows["SOL"]["max_amount_usd"]) == ("1.45", "725937.50")
    # defaults: named by its code, one minor unit at least, no maximum; no rate yet
    assert rows["XRP"] == {
        "currency": "XRP", "name": "XRP", "kind": "coin", "decimals": 6,
        "blockchain": None, "token": None, "is_stable": False,
        "min_amount": "0.000001", "max_amount": None,
        "min_amount_usd": None, "max_amount_usd": None,
    }  # fmt: skip
    assert rows["GBP"]["name"] == "Pound Sterling"
    assert (rows["GBP"]["min_amount_usd"], rows["GBP"]["max_amount_usd"]) == ("0.01", None)
    assert (rows["EUR"]["min_amount_usd"], rows["EUR"]["max_amount_usd"]) == (
        "12.50", "125000.00",
    )  # fmt: skip
    assert currencies(operator, withdrawal="true") == [
        "USDT", "BTC", "ETH", "SOL", "XRP", "ADA", "DOGE",
    ]  # fmt: skip


def test_no_rate_without_a_price_or_a_route(operator: httpx.Client) -> None:
    book = operator.get("/markets/XRP-USDT/depth").json()
    assert (book["bids"], book["asks"]) == ([], [])  # nobody trades XRP here
    problem = assert_no_rate(operator, "XRP", "USDT")
    assert "XRP-USDT" in problem["detail"]
    assert_no_rate(operator, "USDT", "XRP")
    assert_no_rate(operator, "XRP", "BTC")  # crossing needs the XRP-USDT leg
    assert_no_rate(operator, "GBP", "XRP")
    # DOGE has no market at all, and coins never use reference rates
    problem = assert_no_rate(operator, "DOGE", "USDT")
    assert "DOGE" in problem["detail"]
    assert_no_rate(operator, "USD", "DOGE")
    # a bad amount is still a 422 first
    response = operator.get("/rates/", params={"currency_from": "XRP", "currency_to": "USDT",
                                               "amount": "0.0000001"})  # fmt: skip
    assert_problem(response, 422, "validation_error")


def test_a_one_sided_book_falls_back_on_the_last_trade(
    operator: httpx.Client, wider_fund: Fund
) -> None:
    assert_quiet(operator, "ADA-USDT", "0.0001", "100.0000")
    assert_no_rate(operator, "ADA", "USDT")
    buyer, seller = wider_fund(USDT="100"), wider_fund(ADA="100")
    order(operator, buyer, "ADA-USDT", side="buy", price="0.3500", quantity="10")
    assert_no_rate(operator, "ADA", "USDT")  # a bid alone, no trade yet: no mid, no last
    taker = order(operator, seller, "ADA-USDT", side="sell", price="0.3500", quantity="10")
    assert taker["status"] == "filled"
    book = operator.get("/markets/ADA-USDT/depth").json()
    assert (book["bids"], book["asks"]) == ([], [])
    assert_rate(operator, "ADA", "USDT", Decimal("0.35"), "10.000000", 6)
    assert_rate(operator, "USDT", "ADA", inverse(Decimal("0.35")), "1.000000", 6)

    order(operator, buyer, "ADA-USDT", side="buy", price="0.3400", quantity="5")
    assert_rate(operator, "ADA", "USDT", Decimal("0.35"), "10.000000", 6)  # still the last
    order(operator, seller, "ADA-USDT", side="sell", price="0.3701", quantity="5")
    assert_rate(operator, "ADA", "USDT", mid("0.3400", "0.3701"), "10.000000", 6)
