from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.errors import ValidationError
from strongroom.money import format_minor, format_units, parse_amount, parse_decimal, to_units


@given(st.integers(min_value=1, max_value=2**62), st.integers(min_value=0, max_value=18))
def test_format_then_parse_is_exact(amount: int, decimals: int) -> None:
    assert parse_amount("amount", format_minor(amount, decimals), decimals) == amount


@given(st.integers(min_value=1, max_value=10**12), st.sampled_from(["0.01", "0.0001", "0.00001"]))
def test_units_round_trip_on_any_grid(units: int, step_text: str) -> None:
    step = Decimal(step_text)
    assert to_units("price", format_units(units, step), step) == units


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=9))
def test_one_decimal_too_many_is_refused_not_rounded(whole: int, extra_digit: int) -> None:
    text = f"{whole}.00000000{extra_digit}"  # nine places for an eight-decimal currency
    with pytest.raises(ValidationError, match="decimal places"):
        parse_amount("amount", text, 8)


@pytest.mark.parametrize(
    "text", ["0", "-1", "0.000", "abc", "1e3x", "NaN", "Infinity", "", " 1", "1 ", "1" * 70]
)
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_amount("amount", text, 8)


@pytest.mark.parametrize("value", [1, 1.5, None, True, ["1"]])
def test_only_strings_are_amounts(value: object) -> None:
    with pytest.raises(ValidationError, match="decimal string"):
        parse_amount("amount", value, 8)


def test_off_grid_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"multiple of 0\.01"):
        to_units("price", "100.001", Decimal("0.01"))
    assert to_units("price", "100.010", Decimal("0.01")) == 10001


def test_too_large_is_refused() -> None:
    with pytest.raises(ValidationError, match="too large"):
        parse_amount("amount", str(2**63), 0)


@pytest.mark.parametrize("text", ["1e-2", "1E2", "+1", ".5", "1.", "0x10", "1_000", "١٢"])
def test_only_plain_positional_notation_is_a_decimal(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_decimal("amount", text)
