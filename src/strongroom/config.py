"""Currencies, markets and fees: built in, or from a TOML file validated at start.

Inside the system a market counts prices in ticks and quantities in lots (small
integers). The derived factors below turn them into minor units exactly:

    base minor units  = lots × base_minor_per_lot
    quote minor units = ticks × lots × quote_minor_per_tick_lot
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from strongroom.errors import ConfigurationError, ValidationError
from strongroom.money import parse_amount, parse_decimal

CurrencyKind = Literal["fiat", "coin"]
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    kind: CurrencyKind
    decimals: int
    name: str = ""
    blockchain: str | None = None  # the chain a coin moves on; a token's host chain
    token: str | None = None  # a token's own symbol on that chain (USDT: ERC-20 on eth)
    is_stable: bool = False  # a stablecoin
    min_amount: int = 1  # deposit and withdrawal limits, minor units (max None: no limit)
    max_amount: int | None = None


@dataclass(frozen=True, slots=True)
class Market:
    symbol: str
    market_id: int
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    base_minor_per_lot: int
    quote_minor_per_tick_lot: int

    def base_minor(self, lots: int) -> int:
        return lots * self.base_minor_per_lot

    def quote_minor(self, ticks: int, lots: int) -> int:
        return ticks * lots * self.quote_minor_per_tick_lot


@dataclass(frozen=True, slots=True)
class Fees:
    maker_bps: int = 10
    taker_bps: int = 20
    market_collar_bps: int = 500


@dataclass(frozen=True, slots=True)
class TradingConfig:
    currencies: dict[str, Currency]
    markets: dict[str, Market]
    fees: Fees = field(default_factory=Fees)
    # the value of one unit in USD, for rates with a fiat side (strongroom.rates)
    reference_rates: dict[str, Decimal] = field(default_factory=dict)


def _whole(value: Decimal, what: str) -> int:
    if value != value.to_integral_value() or value <= 0:
        raise ConfigurationError(what)
    return int(value)


def make_market(
    currencies: dict[str, Currency],
    symbol: str,
    market_id: int,
    base: str,
    quote: str,
    tick_size: str,
    lot_size: str,
) -> Market:
    if base not in currencies or quote not in currencies:
        raise ConfigurationError(f"market {symbol}: unknown currency {base} or {quote}")
    if not 0 < market_id < 2**16:
        raise ConfigurationError(f"market {symbol}: market_id must fit an unsigned 16-bit int")
    tick, lot = Decimal(tick_size), Decimal(lot_size)
    base_per_lot = lot.scaleb(currencies[base].decimals)
    quote_per_tick_lot = (tick * lot).scaleb(currencies[quote].decimals)
    return Market(
        symbol=symbol,
        market_id=market_id,
        base=base,
        quote=quote,
        tick_size=tick,
        lot_size=lot,
        base_minor_per_lot=_whole(
            base_per_lot, f"market {symbol}: lot is not a whole number of {base} minor units"
        ),
        quote_minor_per_tick_lot=_whole(
            quote_per_tick_lot,
            f"market {symbol}: tick × lot is not a whole number of {quote} minor units",
        ),
    )


BUILT_IN: dict[str, Any] = {
    "currencies": [
        {"code": "USD", "kind": "fiat", "decimals": 2, "name": "US Dollar",
         "min_amount": "10.00", "max_amount": "100000.00"},
        {"code": "EUR", "kind": "fiat", "decimals": 2, "name": "Euro",
         "min_amount": "10.00", "max_amount": "100000.00"},
        {"code": "USDT", "kind": "coin", "decimals": 6, "name": "Tether USD",
         "blockchain": "eth", "token": "usdt", "is_stable": True,
         "min_amount": "10.000000", "max_amount": "100000.000000"},
        {"code": "BTC", "kind": "coin", "decimals": 8, "name": "Bitcoin", "blockchain": "btc",
         "min_amount": "0.00010000", "max_amount": "10.00000000"},
        {"code": "ETH", "kind": "coin", "decimals": 8, "name": "Ether", "blockchain": "eth",
         "min_amount": "0.00100000", "max_amount": "100.00000000"},
    ],
    "markets": [
        {"symbol": "BTC-USDT", "market_id": 1, "base": "BTC", "quote": "USDT",
         "tick_size": "0.01", "lot_size": "0.0001"},
        {"symbol": "ETH-USDT", "market_id": 2, "base": "ETH", "quote": "USDT",
         "tick_size": "0.01", "lot_size": "0.001"},
        {"symbol": "ETH-BTC", "market_id": 3, "base": "ETH", "quote": "BTC",
         "tick_size": "0.00001", "lot_size": "0.001"},
    ],
    "reference_rates": {"USD": "1", "EUR": "1.08", "USDT": "1"},
}  # fmt: skip


def _limit(entry: dict[str, Any], key: str, code: str, decimals: int) -> int | None:
    """A currency's limit from a decimal string on its grid, in minor units."""
    if key not in entry:
        return None
    try:
        return parse_amount(key, entry[key], decimals)
    except ValidationError as error:
        raise ConfigurationError(f"currency {code}: {error}") from None


def _currency(entry: dict[str, Any], code: str, kind: CurrencyKind, decimals: int) -> Currency:
    """The optional descriptive fields and limits of a currency entry, checked."""
    optional_text = {key: entry.get(key) for key in ("name", "blockchain", "token")}
    if any(value is not None and not isinstance(value, str) for value in optional_text.values()):
        raise ConfigurationError(f"currency {code}: name, blockchain and token are strings")
    is_stable = entry.get("is_stable", False)
    if not isinstance(is_stable, bool):
        raise ConfigurationError(f"currency {code}: is_stable is true or false")
    min_amount = _limit(entry, "min_amount", code, decimals) or 1
    max_amount = _limit(entry, "max_amount", code, decimals)
    if max_amount is not None and max_amount < min_amount:
        raise ConfigurationError(f"currency {code}: max_amount is below min_amount")
    return Currency(
        code, kind, decimals, name=optional_text["name"] or code,
        blockchain=optional_text["blockchain"], token=optional_text["token"],
        is_stable=is_stable, min_amount=min_amount, max_amount=max_amount,
    )  # fmt: skip


def _reference_rates(table: dict[str, Any], currencies: dict[str, Currency]) -> dict[str, Decimal]:
    """`[reference_rates] CODE = "decimal"`: known currencies, positive decimal strings."""
    rates: dict[str, Decimal] = {}
    for code, text in table.items():
        if code not in currencies:
            raise ConfigurationError(f"reference rate of unknown currency {code}")
        try:
            value = parse_decimal(f"reference_rates.{code}", text)
        except ValidationError as error:
            raise ConfigurationError(str(error)) from None
        if value <= 0:
            raise ConfigurationError(f"reference_rates.{code}: must be greater than zero")
        rates[code] = value
    return rates


def build(document: dict[str, Any]) -> TradingConfig:
    """A validated trading configuration; a config file adds to the built-in one."""
    try:
        currencies: dict[str, Currency] = {}
        for entry in document.get("currencies", []):
            code = str(entry["code"])
            kind = entry["kind"]
            decimals = int(entry["decimals"])
            if kind not in ("fiat", "coin") or not 0 <= decimals <= 18:
                raise ConfigurationError(f"currency {code}: bad kind or decimals")
            currencies[code] = _currency(entry, code, kind, decimals)
        markets: dict[str, Market] = {}
        for entry in document.get("markets", []):
            market = make_market(
                currencies,
                str(entry["symbol"]),
                int(entry["market_id"]),
                str(entry["base"]),
                str(entry["quote"]),
                str(entry["tick_size"]),
                str(entry["lot_size"]),
            )
            markets[market.symbol] = market
        if len({market.market_id for market in markets.values()}) != len(markets):
            raise ConfigurationError("market ids must be unique")
        fee_entry = document.get("fees", {})
        fees = Fees(
            maker_bps=int(fee_entry.get("maker_bps", 10)),
            taker_bps=int(fee_entry.get("taker_bps", 20)),
            market_collar_bps=int(fee_entry.get("market_collar_bps", 500)),
        )
        reference_rates = _reference_rates(document.get("reference_rates", {}), currencies)
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ConfigurationError(f"invalid trading configuration: {error!r}") from error
    return TradingConfig(
        currencies=currencies, markets=markets, fees=fees, reference_rates=reference_rates
    )


def load(path: Path | None) -> TradingConfig:
    document: dict[str, Any] = {
        "currencies": list(BUILT_IN["currencies"]),
        "markets": list(BUILT_IN["markets"]),
        "reference_rates": dict(BUILT_IN["reference_rates"]),
    }
    if path is not None:
        extra = tomllib.loads(path.read_text())
        document["currencies"] += extra.get("currencies", [])
        document["markets"] += extra.get("markets", [])
        if "fees" in extra:
            document["fees"] = extra["fees"]
        # a file's reference rates add to the built-in ones, or replace them by code
        reference_rates = extra.get("reference_rates", {})
        if not isinstance(reference_rates, dict):
            raise ConfigurationError('reference_rates must be a table of CODE = "decimal"')
        document["reference_rates"].update(reference_rates)
    return build(document)


DEFAULT = build(BUILT_IN)
