"""JSON shapes of the REST edge: integers inside become decimal strings here, exactly."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from strongroom.actors.messages import DepositState, OrderKind, OrderState, Side, TimeInForce
from strongroom.config import Market, TradingConfig
from strongroom.custody import views
from strongroom.money import format_minor, format_units, minor_step
from strongroom.persistence.journal import timestamp

SIDES = {"buy": Side.BUY, "sell": Side.SELL}
KINDS = {
    "limit": OrderKind.LIMIT,
    "market": OrderKind.MARKET,
    "stop_limit": OrderKind.STOP_LIMIT,
    "stop_market": OrderKind.STOP_MARKET,
}
TIMES_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
SIDE_NAMES = {value: key for key, value in SIDES.items()}
KIND_NAMES = {value: key for key, value in KINDS.items()}
TIME_IN_FORCE_NAMES = {value: key for key, value in TIMES_IN_FORCE.items()}


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def iso_ns(ns: int | None) -> str | None:
    return None if ns is None else iso(timestamp(ns))


def price_text(market: Market, ticks: int) -> str:
    return format_units(ticks, market.tick_size)


def quantity_text(market: Market, lots: int) -> str:
    return format_units(lots, market.lot_size)


def average_price(market: Market, config: TradingConfig, funds: int, filled: int) -> str | None:
    if filled == 0:
        return None
    quote = minor_step(config.currencies[market.quote].decimals)
    with localcontext() as context:
        context.prec = 40
        value = Decimal(funds) * quote / (Decimal(filled) * market.lot_size)
    tick_places = max(0, -market.tick_size.normalize().as_tuple().exponent)  # type: ignore[operator]
    text = f"{value.quantize(Decimal(1).scaleb(-tick_places - 4)):f}"
    return text[: len(text) - 4] + text[len(text) - 4 :].rstrip("0")  # at least tick places


def order_json(state: OrderState, config: TradingConfig) -> dict[str, Any]:
    market = config.markets[state.market]
    market_kind = state.kind in (OrderKind.MARKET, OrderKind.STOP_MARKET)
    return {
        "id": state.order_id,
        "wallet_id": state.wallet_id,
        "market": state.market,
        "side": SIDE_NAMES[state.side],
        "type": KIND_NAMES[state.kind],
        "price": None if market_kind else price_text(market, state.price),
        "stop_price": price_text(market, state.stop_price) if state.stop_price else None,
        "quantity": quantity_text(market, state.quantity),
        "display_quantity": (
            quantity_text(market, state.display_quantity) if state.display_quantity else None
        ),
        "time_in_force": TIME_IN_FORCE_NAMES[state.time_in_force],
        "post_only": state.post_only,
        "filled_quantity": quantity_text(market, state.filled),
        "remaining_quantity": quantity_text(market, state.remaining),
        "average_price": average_price(market, config, state.funds, state.filled),
        "funds": format_minor(state.funds, config.currencies[market.quote].decimals),
        "status": state.status,
        "reason": state.reason or None,
        "external_id": state.external_id,
        "created_at": iso_ns(state.created_ns),
        "updated_at": iso_ns(state.updated_ns),
    }


def deposit_json(state: DepositState, config: TradingConfig) -> dict[str, Any]:
    return views.deposit(state, config.currencies)


def market_json(market: Market, config: TradingConfig) -> dict[str, Any]:
    return {
        "id": market.symbol,
        "market_id": market.market_id,
        "base": market.base,
        "quote": market.quote,
        "tick_size": format_units(1, market.tick_size),
        "lot_size": format_units(1, market.lot_size),
        "base_precision": config.currencies[market.base].decimals,
        "quote_precision": config.currencies[market.quote].decimals,
        "maker_fee": f"{Decimal(config.fees.maker_bps) / 10000:f}",
        "taker_fee": f"{Decimal(config.fees.taker_bps) / 10000:f}",
        "state": "enabled",
    }


def balances_json(
    amounts: dict[str, dict[int, int]], config: TradingConfig
) -> list[dict[str, str]]:
    """`amount` = available + pending, `pending_amount` = held (locked)."""
    rows = []
    for code, currency in config.currencies.items():
        by_code = amounts.get(code, {})
        main_code, locked_code = (201, 211) if currency.kind == "fiat" else (202, 212)
        available, locked = by_code.get(main_code, 0), by_code.get(locked_code, 0)
        rows.append({
            "currency": code,
            "amount": format_minor(available + locked, currency.decimals),
            "pending_amount": format_minor(locked, currency.decimals),
            "available_balance": format_minor(available, currency.decimals),
        })  # fmt: skip
    return rows
