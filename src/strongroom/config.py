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

from strongroom.errors import ConfigurationError

CurrencyKind = Literal["fiat", "coin"]
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    kind: CurrencyKind
    decimals: int


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
        {"code": "USD", "kind": "fiat", "decimals": 2},
        {"code": "EUR", "kind": "fiat", "decimals": 2},
        {"code": "USDT", "kind": "coin", "decimals": 6},
        {"code": "BTC", "kind": "coin", "decimals": 8},
        {"code": "ETH", "kind": "coin", "decimals": 8},
    ],
    "markets": [
        {"symbol": "BTC-USDT", "market_id": 1, "base": "BTC", "quote": "USDT",
         "tick_size": "0.01", "lot_size": "0.0001"},
        {"symbol": "ETH-USDT", "market_id": 2, "base": "ETH", "quote": "USDT",
         "tick_size": "0.01", "lot_size": "0.001"},
        {"symbol": "ETH-BTC", "market_id": 3, "base": "ETH", "quote": "BTC",
         "tick_size": "0.00001", "lot_size": "0.001"},
    ],
}  # fmt: skip


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
            currencies[code] = Currency(code, kind, decimals)
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
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ConfigurationError(f"invalid trading configuration: {error!r}") from error
    return TradingConfig(currencies=currencies, markets=markets, fees=fees)


def load(path: Path | None) -> TradingConfig:
    document: dict[str, Any] = {
        "currencies": list(BUILT_IN["currencies"]),
        "markets": list(BUILT_IN["markets"]),
    }
    if path is not None:
        extra = tomllib.loads(path.read_text())
        document["currencies"] += extra.get("currencies", [])
        document["markets"] += extra.get("markets", [])
        if "fees" in extra:
            document["fees"] = extra["fees"]
    return build(document)


DEFAULT = build(BUILT_IN)
