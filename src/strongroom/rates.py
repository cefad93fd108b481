"""Exchange rates and conversions, exactly: the arithmetic and the routes, with no I/O.

A rate from `source` to `target` is how many units of `target` one unit of `source` is
worth. It is found, in this order:

1. the same currency: 1;
2. a market `source-target` (source is the base): its price, exactly;
3. the opposite market `target-source`: 1 / its price;
4. a fiat side and a reference rate for both currencies (`TradingConfig.reference_rates`,
   the value of one unit in USD): reference(source) / reference(target);
5. otherwise crossed through USDT: the rate source → USDT times the rate USDT → target,
   each leg found by 1–4.

A market's price is its mid, (best bid + best ask) / 2, which is exact (at most one
decimal place more than the tick); a book without a bid or without an ask has no mid, and
then its last trade price stands in (the edge decides; this module only takes prices).

Precision and rounding, stated once:

- a direct market price is exact, never rounded;
- an inverse (step 3) and a reference ratio (step 4) are correctly rounded quotients to
  `SIGNIFICANT_DIGITS` (18) significant digits, ROUND_HALF_EVEN;
- a crossed rate is the exact product of its two legs (each as above), rounded once to
  18 significant digits, ROUND_HALF_EVEN.

A conversion multiplies the amount by the rate as published, exactly, and rounds only the
result, always down to the target's minor unit: an estimate never promises a member more
than the rate gives. The fee is the difference
`floor(amount × rate) − floor(amount × rate × (1 − fee / 100))` (in minor units), so it
takes the rounding's remainder and, when the user pays it, the fee and the amount received
add up to the rounded-down conversion.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

from strongroom.config import Market, TradingConfig

SIGNIFICANT_DIGITS = 18
HUB = "USDT"  # the currency rates are crossed through
_EXACT_DIGITS_MAX = 400  # far beyond any product met here; an inexact result raises

_ROUNDED = Context(
    prec=SIGNIFICANT_DIGITS,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
_EXACT = Context(
    prec=_EXACT_DIGITS_MAX,
    rounding=ROUND_HALF_EVEN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
_HUNDRED = Decimal(100)


class LegKind(enum.Enum):
    SAME = "same"
    MARKET = "market"  # the market's price as is
    INVERSE = "inverse"  # 1 / the market's price
    REFERENCE = "reference"  # reference(source) / reference(target)


@dataclass(frozen=True, slots=True)
class Leg:
    source: str
    target: str
    kind: LegKind
    market: str | None = None


@dataclass(frozen=True, slots=True)
class Conversion:
    estimated: int  # minor units of the target currency the member receives
    fee: int  # minor units of the target currency the fee comes to


# ---------------------------------------------------------------- routes


def leg(config: TradingConfig, source: str, target: str) -> Leg | None:
    """One step from `source` to `target` (steps 1–4 above), or None."""
    if source == target:
        return Leg(source, target, LegKind.SAME)
    for market in config.markets.values():
        if market.base == source and market.quote == target:
            return Leg(source, target, LegKind.MARKET, market.symbol)
    for market in config.markets.values():
        if market.base == target and market.quote == source:
            return Leg(source, target, LegKind.INVERSE, market.symbol)
    kinds = {config.currencies[source].kind, config.currencies[target].kind}
    references = config.reference_rates
    if "fiat" in kinds and source in references and target in references:
        return Leg(source, target, LegKind.REFERENCE)
    return None


def route(config: TradingConfig, source: str, target: str) -> tuple[Leg, ...] | None:
    """The legs from `source` to `target`: one, or two crossed through `HUB`; None when
    there is no way between them. Both currencies must be in the configuration."""
    direct = leg(config, source, target)
    if direct is not None:
        return (direct,)
    if HUB in (source, target) or HUB not in config.currencies:
        return None
    first, second = leg(config, source, HUB), leg(config, HUB, target)
    if first is None or second is None:
        return None
    return (first, second)


def markets_of(legs: Sequence[Leg]) -> list[str]:
    """The markets whose prices the legs need, in order, each once."""
    symbols: list[str] = []
    for one in legs:
        if one.market is not None and one.market not in symbols:
            symbols.append(one.market)
    return symbols


# ---------------------------------------------------------------- arithmetic


def price(market: Market, ticks: int) -> Decimal:
    """A price in ticks as a decimal of quote per base, exactly."""
    return _EXACT.multiply(Decimal(ticks), market.tick_size)


def mid(bid: Decimal, ask: Decimal) -> Decimal:
    """(bid + ask) / 2, exactly: halving a finite decimal adds at most one digit."""
    return _EXACT.divide(_EXACT.add(bid, ask), 2)


def round_significant(value: Decimal) -> Decimal:
    """`value` to `SIGNIFICANT_DIGITS` significant digits, ROUND_HALF_EVEN."""
    return _ROUNDED.plus(value)


def invert(rate: Decimal) -> Decimal:
    """1 / rate, correctly rounded to `SIGNIFICANT_DIGITS` significant digits."""
    if rate <= 0:
        raise ValueError("a rate is positive")
    return _ROUNDED.divide(Decimal(1), rate)


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator / denominator, correctly rounded to `SIGNIFICANT_DIGITS` significant
    digits (a reference-rate leg)."""
    if numerator <= 0 or denominator <= 0:
        raise ValueError("a rate is positive")
    return _ROUNDED.divide(numerator, denominator)


def exact_product(first: Decimal, second: Decimal) -> Decimal:
    return _EXACT.multiply(first, second)


def cross(first: Decimal, second: Decimal) -> Decimal:
    """A crossed rate: the exact product of its legs, rounded once."""
    return round_significant(exact_product(first, second))


def leg_rate(config: TradingConfig, one: Leg, prices: dict[str, Decimal]) -> Decimal:
    """The rate of one leg; `prices` holds the price of every market the legs name."""
    if one.kind is LegKind.SAME:
        return Decimal(1)
    if one.kind is LegKind.REFERENCE:
        references = config.reference_rates
        return ratio(references[one.source], references[one.target])
    assert one.market is not None
    market_price = prices[one.market]
    return market_price if one.kind is LegKind.MARKET else invert(market_price)


def rate(config: TradingConfig, legs: Sequence[Leg], prices: dict[str, Decimal]) -> Decimal:
    """The rate along `legs` (one, or two crossed), as published."""
    values = [leg_rate(config, one, prices) for one in legs]
    if len(values) == 1:
        return values[0]
    first, second = values
    return cross(first, second)


def convert(
    amount: int,
    source_decimals: int,
    rate_value: Decimal,
    target_decimals: int,
    fee_percentage: Decimal,
    fee_paid_by_user: bool,
) -> Conversion:
    """`amount` minor units of the source in minor units of the target, rounded down.

    The fee is `fee_percentage` % of the converted amount; it is deducted from what the
    member receives only when `fee_paid_by_user`, and reported either way.
    """
    if amount < 0 or rate_value <= 0 or not 0 <= fee_percentage <= _HUNDRED:
        raise ValueError("amount, rate or fee out of range")
    # amount × rate in minor units of the target, exactly
    converted = _EXACT.multiply(
        Decimal(amount).scaleb(target_decimals - source_decimals, _EXACT), rate_value
    )
    after_fee = _EXACT.subtract(
        converted, _EXACT.divide(_EXACT.multiply(converted, fee_percentage), _HUNDRED)
    )
    gross, net = _floor(converted), _floor(after_fee)
    return Conversion(estimated=net if fee_paid_by_user else gross, fee=gross - net)


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR, context=_EXACT))


def text(value: Decimal) -> str:
    """A rate as the shortest plain decimal string (no exponent, no trailing zeros)."""
    normalized = value.normalize(_EXACT)
    return f"{normalized:f}"
