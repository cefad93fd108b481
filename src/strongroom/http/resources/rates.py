"""Currencies and exchange rates (seed 001, "Currencies & Rates"): `GET /currencies/` and
`GET /rates/`, scope `read`, for partners.

Amounts, rates and percentages are decimal strings, never JSON numbers: the seed's examples
show numbers, but SPEC §5 says amounts and prices are decimal strings, and the contract
wins (a JSON number is a float to most clients).

Query-string booleans are `true`, `false`, `1` or `0` (case-insensitive); anything else,
an empty value or a parameter given twice is a 422. An unknown currency code is a 422
(`validation_error`, with the field): it is a bad query parameter, not a missing resource.

`GET /currencies/`:

- `{"currencies": [codes]}`: deposit currencies (all), or with `withdrawal=true` those
  that can be withdrawn (coins);
- `full=true`: objects `{currency, name, kind, decimals, blockchain, token, is_stable}`;
- `min_max=true` (needs `full=true`, else 422): adds `min_amount`, `max_amount` (config,
  with the currency's decimals; `max_amount` null when there is no maximum);
- `include_usd=true` (needs `min_max=true`, else 422): adds `min_amount_usd`,
  `max_amount_usd`: the limit converted at the `/rates/` rate to USD, rounded down to the
  cent; null when there is no rate (an empty book) or no maximum.

`GET /rates/?currency_to=…[&currency_from=USD][&amount=1][&fee_percentage=…]
[&is_fee_paid_by_user=false][&full=false]`: `{currency_from, currency_to, amount,
estimated_amount, rate}`, and with `full=true` also `fee_percentage`, `fee_amount`,
`is_fee_paid_by_user` and `timestamp` (ISO 8601, UTC, `Z`). How the rate is found and
rounded is in `strongroom.rates`: a direct market's mid price exactly; an inverse or a
reference-rate ratio to 18 significant digits and a crossed rate (through USDT) rounded
once to 18 significant digits, ROUND_HALF_EVEN. A book with no bid or no ask uses the
market's last trade price; with no trade either, the answer is 409 `no_rate` (also when no
route joins the two currencies). A direct market that exists is used even when empty: the
rate is never crossed around it.

- `amount`: a positive decimal with at most the source currency's decimals (else 422).
- `estimated_amount` = amount × rate, minus the fee when `is_fee_paid_by_user`, rounded
  DOWN to the target's minor unit: an estimate never rounds in the member's favour.
- `fee_percentage`: a percent, 0 ≤ p < 100, at most 4 decimal places; default the taker
  fee of the configuration (0.20 for 20 bps). `fee_amount` = floor(amount × rate) −
  floor(amount × rate × (1 − p/100)) in the target currency, reported whoever pays it;
  `estimated_amount + fee_amount` is the rounded-down conversion when the user pays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import falcon.asgi

from strongroom import rates
from strongroom.config import Currency
from strongroom.http.context import Services
from strongroom.http.problems import Problem, invalid
from strongroom.http.representations import iso_ns
from strongroom.money import format_minor, parse_amount, parse_decimal
from strongroom.persistence import repositories

BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
FEE_PERCENTAGE_PLACES_MAX = 4
HUNDRED = Decimal(100)
USD = "USD"


def single_param(req: falcon.asgi.Request, name: str) -> str | None:
    """A query parameter given at most once."""
    value = req.params.get(name)
    if isinstance(value, list):
        raise invalid(name, "must be given once")
    return value


def bool_param(req: falcon.asgi.Request, name: str, default: bool = False) -> bool:
    text = single_param(req, name)
    if text is None:
        return default
    value = BOOLEANS.get(text.lower())
    if value is None:
        raise invalid(name, "must be true, false, 1 or 0")
    return value


def currency_param(
    req: falcon.asgi.Request, services: Services, name: str, default: str | None
) -> Currency:
    code = single_param(req, name)
    if code is None:
        if default is None:
            raise invalid(name, "is required")
        code = default
    currency = services.config.currencies.get(code)
    if currency is None:
        raise invalid(name, f"unknown currency {code[:16]!r}")
    return currency


def fee_percentage_param(req: falcon.asgi.Request, default: Decimal) -> Decimal:
    text = single_param(req, "fee_percentage")
    if text is None:
        return default
    value = parse_decimal("fee_percentage", text)
    if not 0 <= value < HUNDRED:
        raise invalid("fee_percentage", "must be at least 0 and below 100")
    if _places(value) > FEE_PERCENTAGE_PLACES_MAX:
        raise invalid("fee_percentage", f"has more than {FEE_PERCENTAGE_PLACES_MAX} decimal places")
    return value


def percentage_text(value: Decimal) -> str:
    """A percent with at least two places: 0.20, 1.50, 0.125."""
    return f"{value:.{max(2, _places(value))}f}"


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class NoRate(Exception):
    """No price to be had along a route: a book without a mid and without trades."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Pricer:
    """Rates for one request: each market's price is read once (the feed's committed
    depth, else the journal's last trade)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._prices: dict[str, Decimal | None] = {}

    async def market_price(self, symbol: str) -> Decimal | None:
        if symbol in self._prices:
            return self._prices[symbol]
        market = self.services.config.markets[symbol]
        _, bids, asks = await self.services.feed.depth(symbol, 1)
        found: Decimal | None
        if bids and asks:
            found = rates.mid(rates.price(market, bids[0][0]), rates.price(market, asks[0][0]))
        else:
            rows = await repositories.trades(self.services.pool, symbol, 1)
            found = rates.price(market, rows[0]["price"]) if rows else None
        self._prices[symbol] = found
        return found

    async def rate(self, source: str, target: str) -> Decimal:
        """The published rate from `source` to `target`; `NoRate` when there is none."""
        config = self.services.config
        legs = rates.route(config, source, target)
        if legs is None:
            raise NoRate(f"no market or reference rate joins {source} and {target}")
        prices: dict[str, Decimal] = {}
        for symbol in rates.markets_of(legs):
            found = await self.market_price(symbol)
            if found is None:
                raise NoRate(f"{symbol} has no bid or no ask and no trade yet: no price")
            prices[symbol] = found
        return rates.rate(config, legs, prices)


class CurrenciesResource:
    """GET /currencies/ (see the module's docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        full = bool_param(req, "full")
        min_max = bool_param(req, "min_max")
        include_usd = bool_param(req, "include_usd")
        withdrawal = bool_param(req, "withdrawal")
        if min_max and not full:
            raise invalid("min_max", "requires full=true")
        if include_usd and not min_max:
            raise invalid("include_usd", "requires min_max=true")
        listed = [
            currency
            for currency in self.services.config.currencies.values()
            if not withdrawal or currency.kind == "coin"
        ]
        if not full:
            resp.media = {"currencies": [currency.code for currency in listed]}
            return
        pricer = Pricer(self.services)
        rows = []
        for currency in listed:
            row = currency_json(currency)
            if min_max:
                row["min_amount"] = format_minor(currency.min_amount, currency.decimals)
                row["max_amount"] = _optional_minor(currency.max_amount, currency.decimals)
            if include_usd:
                row |= await self._usd_limits(pricer, currency)
            rows.append(row)
        resp.media = {"currencies": rows}

    async def _usd_limits(self, pricer: Pricer, currency: Currency) -> dict[str, str | None]:
        usd = self.services.config.currencies[USD]
        try:
            rate = await pricer.rate(currency.code, USD)
        except NoRate:
            return {"min_amount_usd": None, "max_amount_usd": None}

        def in_usd(amount: int | None) -> str | None:
            if amount is None:
                return None
            conversion = rates.convert(
                amount, currency.decimals, rate, usd.decimals, Decimal(0), False
            )
            return format_minor(conversion.estimated, usd.decimals)

        return {
            "min_amount_usd": in_usd(currency.min_amount),
            "max_amount_usd": in_usd(currency.max_amount),
        }


class RatesResource:
    """GET /rates/ (see the module's docstring)."""

    def __init__(self, services: Services, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.services = services
        self.clock_ns = clock_ns

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.services
        source = currency_param(req, services, "currency_from", USD)
        target = currency_param(req, services, "currency_to", None)
        amount_text = single_param(req, "amount")
        amount = parse_amount(
            "amount", "1" if amount_text is None else amount_text, source.decimals
        )
        default_fee = Decimal(services.config.fees.taker_bps) / HUNDRED  # bps → percent
        fee_percentage = fee_percentage_param(req, default_fee)
        fee_paid_by_user = bool_param(req, "is_fee_paid_by_user")
        full = bool_param(req, "full")
        try:
            rate = await Pricer(services).rate(source.code, target.code)
        except NoRate as error:
            raise Problem(409, "no_rate", error.detail) from None
        conversion = rates.convert(
            amount, source.decimals, rate, target.decimals, fee_percentage, fee_paid_by_user
        )
        body: dict[str, Any] = {
            "currency_from": source.code,
            "currency_to": target.code,
            "amount": format_minor(amount, source.decimals),
            "estimated_amount": format_minor(conversion.estimated, target.decimals),
            "rate": rates.text(rate),
        }
        if full:
            body |= {
                "fee_percentage": percentage_text(fee_percentage),
                "fee_amount": format_minor(conversion.fee, target.decimals),
                "is_fee_paid_by_user": fee_paid_by_user,
                "timestamp": iso_ns(self.clock_ns()),
            }
        resp.media = body


def currency_json(currency: Currency) -> dict[str, Any]:
    return {
        "currency": currency.code,
        "name": currency.name or currency.code,
        "kind": currency.kind,
        "decimals": currency.decimals,
        "blockchain": currency.blockchain,
        "token": currency.token,
        "is_stable": currency.is_stable,
    }


def _optional_minor(amount: int | None, decimals: int) -> str | None:
    return None if amount is None else format_minor(amount, decimals)
