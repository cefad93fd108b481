"""Exact money: integer minor units inside, decimal strings at the edges.

Nothing here rounds. A value that does not land exactly on the requested grid is
rejected with a `ValidationError`; no float is ever accepted.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from strongroom.errors import ValidationError

# Plain positional notation only: no exponent, no sign but minus, no spaces.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
DIGITS_MAX = 40

# Largest amount accepted in minor units: keeps every sum inside PostgreSQL's bigint.
AMOUNT_MINOR_MAX = 2**62


def parse_decimal(field: str, text: object) -> Decimal:
    """A finite decimal from a JSON string; numbers are refused so no float can sneak in."""
    if not isinstance(text, str):
        raise ValidationError(field, 'must be a decimal string, e.g. "1.25"')
    stripped = text.strip()
    if not stripped or len(stripped) > 64 or stripped != text:
        raise ValidationError(field, 'must be a decimal string, e.g. "1.25"')
    if _DECIMAL_TEXT.fullmatch(stripped) is None:
        raise ValidationError(field, 'must be a decimal in plain notation, e.g. "1.25"')
    return Decimal(stripped)  # plain notation: always finite, never an exponent


def to_units(field: str, text: object, step: Decimal, *, allow_zero: bool = False) -> int:
    """Exact count of `step`s in a decimal string; off-grid, zero or negative values are refused."""
    value = parse_decimal(field, text)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(field, "must be greater than zero")
    if value > AMOUNT_MINOR_MAX * step:
        raise ValidationError(field, "is too large")
    try:
        units, remainder = divmod(value, step)
    except InvalidOperation:
        raise ValidationError(field, "is too large or too precise") from None
    if remainder != 0:
        raise ValidationError(field, f"must be a multiple of {format_decimal(step)}")
    count = int(units)
    if count > AMOUNT_MINOR_MAX:
        raise ValidationError(field, "is too large")
    return count


def minor_step(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def parse_amount(field: str, text: object, decimals: int) -> int:
    """Minor units of a currency with `decimals` places; more decimals than that is an error."""
    value = parse_decimal(field, text)
    if value <= 0:
        raise ValidationError(field, "must be greater than zero")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > decimals:
        raise ValidationError(field, f"has more than {decimals} decimal places")
    return to_units(field, text, minor_step(decimals))


def format_units(units: int, step: Decimal) -> str:
    """Decimal string of `units` steps, with exactly as many places as the step has."""
    return format_decimal(Decimal(units) * step, places=_places(step))


def format_minor(amount: int, decimals: int) -> str:
    return format_units(amount, minor_step(decimals))


def format_decimal(value: Decimal, places: int | None = None) -> str:
    if places is None:
        places = max(0, _places(value))
    return f"{value:.{places}f}"


def _places(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
