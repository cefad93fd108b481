"""The rate arithmetic and routes of `strongroom.rates`, and the configuration they read
(reference rates, currency details and limits): pure, no server."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom import rates
from strongroom.config import BUILT_IN, DEFAULT, TradingConfig, build, load
from strongroom.errors import ConfigurationError
from strongroom.rates import Leg, LegKind

EIGHTEEN = Context(prec=18, rounding=ROUND_HALF_EVEN)

# Positive decimals from 1e-12 to 1e12 with up to 24 significant digits: prices, mids,
# inverses and reference rates all fall in there.
positive = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(min_value=1, max_value=10**24 - 1),
    st.integers(min_value=-36, max_value=0),
).filter(lambda value: Decimal("1e-12") <= value <= Decimal("1e12"))


def ulp(value: Decimal) -> Fraction:
    """One unit in the 18th significant digit of `value`."""
    return Fraction(10) ** (value.adjusted() - 17)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trading.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- arithmetic


@given(st.integers(1, 10**15), st.integers(0, 10**6))
def test_the_mid_is_exact(bid: int, spread: int) -> None:
    market = DEFAULT.markets["BTC-USDT"]
    low, high = rates.price(market, bid), rates.price(market, bid + spread)
    middle = rates.mid(low, high)
    assert Fraction(middle) == (Fraction(low) + Fraction(high)) / 2
    assert low <= middle <= high


@given(positive)
def test_an_inverse_is_correctly_rounded_to_18_significant_digits(value: Decimal) -> None:
    inverse = rates.invert(value)
    assert len(inverse.as_tuple().digits) <= rates.SIGNIFICANT_DIGITS
    assert abs(Fraction(inverse) - 1 / Fraction(value)) <= ulp(inverse) / 2
    assert inverse == EIGHTEEN.divide(Decimal(1), value)


@settings(max_examples=500)
@given(positive)
def test_the_inverse_of_the_inverse_is_within_the_stated_precision(value: Decimal) -> None:
    back = rates.invert(rates.invert(value))
    # two roundings, each within half a unit of the 18th digit: 1e-17 relative covers both
    assert abs(Fraction(back) - Fraction(value)) <= Fraction(value) * Fraction(1, 10**17)
    # so a value of at most 16 significant digits comes back exactly once rounded to 16
    if len(value.normalize().as_tuple().digits) <= 16:
        assert Context(prec=16, rounding=ROUND_HALF_EVEN).plus(back) == value


@given(positive, positive)
def test_crossing_is_the_exact_product_of_the_legs_then_one_rounding(
    first: Decimal, second: Decimal
) -> None:
    product = rates.exact_product(first, second)
    assert Fraction(product) == Fraction(first) * Fraction(second)
    crossed = rates.cross(first, second)
    assert crossed == EIGHTEEN.plus(product)
    assert abs(Fraction(crossed) - Fraction(product)) <= ulp(crossed) / 2


@given(positive, positive)
def test_a_crossed_route_multiplies_its_legs(btc_mid: Decimal, sol_mid: Decimal) -> None:
    config = load_with_sol()
    legs = rates.route(config, "SOL", "BTC")
    assert legs == (
        Leg("SOL", "USDT", LegKind.MARKET, "SOL-USDT"),
        Leg("USDT", "BTC", LegKind.INVERSE, "BTC-USDT"),
    )
    prices = {"BTC-USDT": btc_mid, "SOL-USDT": sol_mid}
    first, second = (rates.leg_rate(config, one, prices) for one in legs)
    assert first == sol_mid and second == rates.invert(btc_mid)
    assert Fraction(rates.exact_product(first, second)) == Fraction(first) * Fraction(second)
    assert rates.rate(config, legs, prices) == EIGHTEEN.plus(
        rates.exact_product(sol_mid, rates.invert(btc_mid))
    )


@given(positive)
def test_a_direct_rate_is_the_price_unrounded(value: Decimal) -> None:
    legs = rates.route(DEFAULT, "BTC", "USDT")
    assert legs == (Leg("BTC", "USDT", LegKind.MARKET, "BTC-USDT"),)
    assert rates.rate(DEFAULT, legs, {"BTC-USDT": value}) == value


@given(positive)
def test_text_is_plain_and_exact(value: Decimal) -> None:
    shown = rates.text(value)
    assert "E" not in shown and "e" not in shown
    assert Decimal(shown) == value
    assert "." not in shown or not shown.endswith("0")


fee_percentages = st.builds(
    lambda units: Decimal(units).scaleb(-4), st.integers(min_value=0, max_value=999_999)
)


@settings(max_examples=500)
@given(
    st.integers(1, 10**15),
    st.integers(0, 8),
    positive,
    st.integers(0, 8),
    fee_percentages,
    st.booleans(),
)
def test_a_conversion_rounds_down_and_the_fee_fills_the_gap(
    amount: int,
    source_decimals: int,
    rate: Decimal,
    target_decimals: int,
    fee_percentage: Decimal,
    fee_paid_by_user: bool,
) -> None:
    conversion = rates.convert(
        amount, source_decimals, rate, target_decimals, fee_percentage, fee_paid_by_user
    )
    # exactly, in minor units of the target
    converted = Fraction(amount, 10**source_decimals) * Fraction(rate) * 10**target_decimals
    after_fee = converted * (1 - Fraction(fee_percentage) / 100)
    gross, net = int(converted // 1), int(after_fee // 1)
    assert conversion.fee == gross - net >= 0
    if fee_paid_by_user:
        assert conversion.estimated == net
        assert conversion.estimated + conversion.fee == gross
        assert conversion.estimated <= after_fee < conversion.estimated + 1
    else:
        assert conversion.estimated == gross
        assert conversion.estimated <= converted < conversion.estimated + 1


def test_a_conversion_by_hand() -> None:
    # 100.00 USD at 0.999 with 1 %: 99.9 gross, 98.901 net → 98.90, fee 99.90 − 98.90
    conversion = rates.convert(10_000, 2, Decimal("0.999"), 2, Decimal(1), True)
    assert conversion == rates.Conversion(estimated=9_890, fee=100)
    assert rates.convert(10_000, 2, Decimal("0.999"), 2, Decimal(1), False) == (
        rates.Conversion(estimated=9_990, fee=100)
    )
    # never rounded up: 1 µUSDT at 1/36030.005 BTC is below a satoshi
    tiny = rates.convert(1, 6, rates.invert(Decimal("36030.005")), 8, Decimal(0), False)
    assert tiny == rates.Conversion(estimated=0, fee=0)


def test_out_of_range_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        rates.invert(Decimal(0))
    with pytest.raises(ValueError):
        rates.ratio(Decimal(1), Decimal(-1))
    with pytest.raises(ValueError):
        rates.convert(1, 2, Decimal(1), 2, Decimal(101), True)


# ---------------------------------------------------------------- routes


def load_with_sol() -> TradingConfig:
    """The built-in configuration with SOL (and a SOL-USDT market), DOGE (no market) and
    GBP (fiat without a reference rate)."""
    return build({
        "currencies": [
            *BUILT_IN["currencies"],
            {"code": "SOL", "kind": "coin", "decimals": 9},
            {"code": "DOGE", "kind": "coin", "decimals": 8},
            {"code": "GBP", "kind": "fiat", "decimals": 2},
        ],
        "markets": [
            *BUILT_IN["markets"],
            {"symbol": "SOL-USDT", "market_id": 4, "base": "SOL", "quote": "USDT",
             "tick_size": "0.001", "lot_size": "0.01"},
        ],
        "reference_rates": BUILT_IN["reference_rates"],
    })  # fmt: skip


def test_routes_prefer_markets_then_reference_rates_then_crossing_through_usdt() -> None:
    config = load_with_sol()
    market, inverse, reference = LegKind.MARKET, LegKind.INVERSE, LegKind.REFERENCE
    assert rates.route(config, "BTC", "BTC") == (Leg("BTC", "BTC", LegKind.SAME),)
    assert rates.route(config, "USDT", "BTC") == (Leg("USDT", "BTC", inverse, "BTC-USDT"),)
    assert rates.route(config, "ETH", "BTC") == (Leg("ETH", "BTC", market, "ETH-BTC"),)
    assert rates.route(config, "BTC", "ETH") == (Leg("BTC", "ETH", inverse, "ETH-BTC"),)
    assert rates.route(config, "USD", "EUR") == (Leg("USD", "EUR", reference),)
    assert rates.route(config, "USD", "USDT") == (Leg("USD", "USDT", reference),)
    assert rates.route(config, "EUR", "BTC") == (
        Leg("EUR", "USDT", reference),
        Leg("USDT", "BTC", inverse, "BTC-USDT"),
    )
    assert rates.route(config, "ETH", "USD") == (
        Leg("ETH", "USDT", market, "ETH-USDT"),
        Leg("USDT", "USD", reference),
    )
    assert rates.route(config, "BTC", "SOL") == (
        Leg("BTC", "USDT", market, "BTC-USDT"),
        Leg("USDT", "SOL", inverse, "SOL-USDT"),
    )
    assert rates.markets_of(rates.route(config, "BTC", "SOL") or ()) == ["BTC-USDT", "SOL-USDT"]
    # no market and no reference rate: no way at all
    assert rates.route(config, "DOGE", "BTC") is None
    assert rates.route(config, "USDT", "DOGE") is None
    assert rates.route(config, "GBP", "USD") is None  # GBP has no reference rate
    # coin to coin never goes through reference rates, even when both have one
    assert rates.route(config, "USDT", "USDT") == (Leg("USDT", "USDT", LegKind.SAME),)


def test_reference_legs_are_ratios_of_reference_rates() -> None:
    legs = rates.route(DEFAULT, "USD", "EUR")
    assert legs is not None
    assert rates.rate(DEFAULT, legs, {}) == EIGHTEEN.divide(Decimal(1), Decimal("1.08"))
    legs = rates.route(DEFAULT, "EUR", "USD")
    assert legs is not None and rates.rate(DEFAULT, legs, {}) == Decimal("1.08")


# ---------------------------------------------------------------- configuration


def test_built_in_reference_rates_and_currency_details() -> None:
    assert load(None).reference_rates == {
        "USD": Decimal("1"),
        "EUR": Decimal("1.08"),
        "USDT": Decimal("1"),
    }
    usdt = DEFAULT.currencies["USDT"]
    assert (usdt.name, usdt.blockchain, usdt.token, usdt.is_stable) == (
        "Tether USD", "eth", "usdt", True,
    )  # fmt: skip
    assert (usdt.min_amount, usdt.max_amount) == (10_000_000, 100_000_000_000)
    assert DEFAULT.currencies["BTC"].blockchain == "btc"
    assert DEFAULT.currencies["ETH"].blockchain == "eth"
    assert DEFAULT.currencies["USD"].blockchain is None


def test_a_config_file_adds_and_overrides_reference_rates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[currencies]]\ncode = "GBP"\nkind = "fiat"\ndecimals = 2\n'
        '[reference_rates]\nGBP = "1.27"\nEUR = "1.25"\n',
    )
    config = load(path)
    assert config.reference_rates == {
        "USD": Decimal("1"),
        "EUR": Decimal("1.25"),
        "USDT": Decimal("1"),
        "GBP": Decimal("1.27"),
    }


def test_a_currency_without_details_gets_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[[currencies]]\ncode = "XRP"\nkind = "coin"\ndecimals = 6\n'))
    xrp = config.currencies["XRP"]
    assert (xrp.name, xrp.blockchain, xrp.token, xrp.is_stable) == ("XRP", None, None, False)
    assert (xrp.min_amount, xrp.max_amount) == (1, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[reference_rates]\nEUR = 1.08\n", "decimal string"),  # a TOML float
        ('[reference_rates]\nEUR = "0"\n', "greater than zero"),
        ('[reference_rates]\nEUR = "-1.08"\n', "greater than zero"),
        ('[reference_rates]\nEUR = "NaN"\n', "plain notation"),
        ('[reference_rates]\nEUR = "lots"\n', "decimal"),
        ('[reference_rates]\nCHF = "1.1"\n', "unknown currency CHF"),
        ('reference_rates = "1"\n', "table"),
        (
            '[[currencies]]\ncode = "XRP"\nkind = "coin"\ndecimals = 6\nmin_amount = "0.0000001"\n',
            "decimal places",
        ),
        (
            '[[currencies]]\ncode = "XRP"\nkind = "coin"\ndecimals = 6\n'
            'min_amount = "10"\nmax_amount = "1"\n',
            "below min_amount",
        ),
        (
            '[[currencies]]\ncode = "XRP"\nkind = "coin"\ndecimals = 6\nmin_amount = 10\n',
            "decimal string",
        ),
        ('[[currencies]]\ncode = "XRP"\nkind = "coin"\ndecimals = 6\nname = 5\n', "strings"),
        (
            '[[currencies]]\ncode = "XRP"\nkind = "coin"\ndecimals = 6\nis_stable = "yes"\n',
            "true or false",
        ),
    ],
)
def test_bad_reference_rates_and_currency_details_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load(write(tmp_path, text))
