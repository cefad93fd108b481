"""What a withdrawal would be, before there is one (seed 001, "Withdrawals"): the address
check, the fee, the full estimate, the limits and the currencies a partner can withdraw.

These only compute (and read balances): the POST routes need scope `read`, declared per
method, and `GET /withdrawal/available-currencies/` needs `read` too. Partners only.

`currency` is a withdrawal code (`BTC`, `ETH`, `USDTERC20`, `USDTTRC20`: the currency and
the chain in one name, as in seed 001). A ledger currency that leaves by exactly one
chain is accepted for its code; one that leaves by several (`USDT`) is a 422
`ambiguous_currency` naming the codes; anything else a 422 `unsupported_currency`.
Answers name the code (`currency`), its ledger currency (`ledger_currency`) and the chain
it leaves by (`chain`: BTC, ETH or TRON).

Amounts are decimal strings, never JSON numbers (SPEC §5), with at most the ledger
currency's decimals (more is a 422, never rounded); answers have exactly that many places.

- `POST /withdrawal/validate-address/` `{currency, address}` → `{currency,
  ledger_currency, chain, valid, reason}`. A malformed address is a 200 with `valid`
  false and the `reason` (null when valid): the call asks a question.
- `POST /withdrawal/fee-estimate/` `{currency, amount, address?}` → `{currency,
  ledger_currency, chain, amount, fee, network_fee, platform_fee}`: `amount` is what the
  address receives, the fee comes on top. An `address` given must be valid for the chain
  (else 422 `invalid_address`); it does not change the fee.
- `POST /withdrawal/estimate/` `{currency, amount, final_amount?}` → `{currency,
  ledger_currency, chain, final_amount, requested_amount, amount, receive, fee,
  network_fee, platform_fee, total}`. With `final_amount` true (the default) `amount` is
  what the address receives; with false it is what the wallet pays, fee included (seed
  001's example: 100 requested, 98.5 received), and the recipient gets the largest amount
  whose total fits. `amount` (seed 001's name) and `receive` are what the address gets,
  `total` = receive + fee what the wallet pays; `network_fee` is the flat part of the fee,
  `platform_fee` the percentage part.
- `POST /withdrawal/min-amount/` `{currency}` → `{currency, ledger_currency, chain,
  min_amount, max_amount}`: the limits on what the address receives.
- `GET /withdrawal/available-currencies/[?wallet_id=…]` → `{currencies: [{currency,
  ledger_currency, chain, available}]}`: the codes whose ledger currency has a positive
  available (main, not held) balance summed over the partner's own wallets, or in the one
  wallet named (404 if the caller may not see it). USDT's two codes share one balance.

A received amount below the minimum or above the maximum is a 422 `below_minimum` or
`above_maximum` with the limit in the detail. Custody errors become problems through
`PROBLEMS`, one table.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import falcon.asgi
import msgspec

from strongroom.actors.messages import AccountCode
from strongroom.config import Currency
from strongroom.custody.errors import (
    AboveMaximum,
    BelowMinimum,
    ChainError,
    CustodyError,
    IllegalTransition,
    InvalidAddress,
    InvalidAmount,
    InvalidEventDetails,
    InvalidWithdrawal,
    UnknownTransaction,
    UnsupportedCurrency,
)
from strongroom.custody.withdrawals import (
    WithdrawalRule,
    WithdrawalRules,
    default_rules,
    estimate,
)
from strongroom.http.body import read_json
from strongroom.http.context import Services, principal
from strongroom.http.problems import Problem, invalid
from strongroom.http.resources.rates import single_param
from strongroom.identity.vault_keys import validate_address
from strongroom.money import format_minor, parse_amount
from strongroom.persistence import repositories

CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
MAIN_ACCOUNT = {"fiat": AccountCode.MAIN_FIAT, "coin": AccountCode.MAIN_COIN}  # available
READ_ONLY: dict[str, str] = {"POST": "read"}


class ValidateAddressIn(msgspec.Struct, forbid_unknown_fields=True):
    currency: CurrencyCode
    address: str


class FeeEstimateIn(msgspec.Struct, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: str
    address: str | None = None


class EstimateIn(msgspec.Struct, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: str
    final_amount: bool = True


class MinAmountIn(msgspec.Struct, forbid_unknown_fields=True):
    currency: CurrencyCode


# --------------------------------------------------------------------------- errors

# Custody error → (status, the request field it is about, or None). The most specific
# class in an error's MRO wins; a custody error of no listed class is not caught here.
PROBLEMS: dict[type[CustodyError], tuple[int, str | None]] = {
    UnsupportedCurrency: (422, "currency"),
    InvalidAmount: (422, "amount"),
    BelowMinimum: (422, "amount"),
    AboveMaximum: (422, "amount"),
    InvalidAddress: (422, "address"),
    InvalidWithdrawal: (422, None),
    InvalidEventDetails: (422, None),
    IllegalTransition: (409, None),
    UnknownTransaction: (404, None),
    ChainError: (502, None),
}


def custody_problem(error: CustodyError, amounts: Currency | None = None) -> Problem:
    """The problem `PROBLEMS` maps `error` to; limits are written in `amounts`' decimals."""
    for kind in type(error).__mro__:
        if kind in PROBLEMS:
            status, field = PROBLEMS[kind]
            break
    else:
        raise error
    message = str(error)
    if amounts is not None and isinstance(error, BelowMinimum | AboveMaximum):
        decimals, code = amounts.decimals, amounts.code
        received = format_minor(error.amount, decimals)
        if isinstance(error, BelowMinimum):
            limit = format_minor(error.minimum, decimals)
            message = f"{received} {code} to receive is below the minimum {limit} {code}"
        else:
            limit = format_minor(error.maximum, decimals)
            message = f"{received} {code} to receive is above the maximum {limit} {code}"
    if field is None:
        return Problem(status, error.code, message)
    return Problem(
        status,
        error.code,
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


# --------------------------------------------------------------------------- shared


class WithdrawalInfo:
    """The rules of the server's currencies, and what the resources share."""

    def __init__(self, services: Services, rules: WithdrawalRules | None = None) -> None:
        self.services = services
        self._rules = rules

    @property
    def rules(self) -> WithdrawalRules:
        """The given rules, else the defaults in the configured currencies (made on first use:
        routes are listed before there are services, for the OpenAPI document)."""
        if self._rules is None:
            self._rules = default_rules(self.services.config.currencies)
        return self._rules

    def rule(self, code: str) -> WithdrawalRule:
        """The rule of a withdrawal code, or of a ledger currency that leaves by one chain."""
        rules = list(self.rules)
        for rule in rules:
            if rule.code == code:
                return rule
        leaving = [rule for rule in rules if rule.currency == code]
        if len(leaving) == 1:
            return leaving[0]
        if leaving:
            codes = " or ".join(rule.code for rule in leaving)
            raise invalid(
                "currency",
                f"{code} leaves by more than one chain: give {codes}",
                code="ambiguous_currency",
            )
        raise custody_problem(UnsupportedCurrency(repr(code)))

    def currency(self, rule: WithdrawalRule) -> Currency:
        return self.services.config.currencies[rule.currency]

    def amount(self, text: str, rule: WithdrawalRule) -> int:
        """Minor units of a decimal string with at most the currency's decimals (else 422)."""
        return parse_amount("amount", text, self.currency(rule).decimals)

    def describe(self, rule: WithdrawalRule) -> dict[str, Any]:
        return {"currency": rule.code, "ledger_currency": rule.currency, "chain": rule.chain}

    def figures(self, rule: WithdrawalRule, amount: int, *, includes_fee: bool) -> dict[str, str]:
        """Received amount, fee (network and platform parts) and total, as decimal strings."""
        currency = self.currency(rule)
        try:
            found = estimate(self.rules, rule.code, amount, includes_fee=includes_fee)
        except CustodyError as error:
            raise custody_problem(error, currency) from None
        network_fee = min(rule.fee_flat, found.fee)
        decimals = currency.decimals
        return {
            "receive": format_minor(found.receive, decimals),
            "fee": format_minor(found.fee, decimals),
            "network_fee": format_minor(network_fee, decimals),
            "platform_fee": format_minor(found.fee - network_fee, decimals),
            "total": format_minor(found.total, decimals),
        }


# --------------------------------------------------------------------------- resources


class ValidateAddressResource:
    """POST /withdrawal/validate-address/ (see the module's docstring)."""

    scopes: ClassVar[dict[str, str]] = READ_ONLY

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, ValidateAddressIn)
        rule = self.info.rule(body.currency)
        valid, reason = validate_address(rule.chain, body.address)
        resp.media = {
            **self.info.describe(rule),
            "valid": valid,
            "reason": None if valid else reason,
        }


class FeeEstimateResource:
    """POST /withdrawal/fee-estimate/ (see the module's docstring)."""

    scopes: ClassVar[dict[str, str]] = READ_ONLY

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, FeeEstimateIn)
        rule = self.info.rule(body.currency)
        amount = self.info.amount(body.amount, rule)
        if body.address is not None:
            valid, reason = validate_address(rule.chain, body.address)
            if not valid:
                raise custody_problem(InvalidAddress(rule.chain, reason))
        figures = self.info.figures(rule, amount, includes_fee=False)
        resp.media = {
            **self.info.describe(rule),
            "amount": figures["receive"],
            "fee": figures["fee"],
            "network_fee": figures["network_fee"],
            "platform_fee": figures["platform_fee"],
        }


class EstimateResource:
    """POST /withdrawal/estimate/ (see the module's docstring)."""

    scopes: ClassVar[dict[str, str]] = READ_ONLY

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, EstimateIn)
        rule = self.info.rule(body.currency)
        amount = self.info.amount(body.amount, rule)
        figures = self.info.figures(rule, amount, includes_fee=not body.final_amount)
        resp.media = {
            **self.info.describe(rule),
            "final_amount": body.final_amount,
            "requested_amount": format_minor(amount, self.info.currency(rule).decimals),
            "amount": figures["receive"],
            **figures,
        }


class MinAmountResource:
    """POST /withdrawal/min-amount/ (see the module's docstring)."""

    scopes: ClassVar[dict[str, str]] = READ_ONLY

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, MinAmountIn)
        rule = self.info.rule(body.currency)
        decimals = self.info.currency(rule).decimals
        resp.media = {
            **self.info.describe(rule),
            "min_amount": format_minor(rule.amount_min, decimals),
            "max_amount": format_minor(rule.amount_max, decimals),
        }


class AvailableCurrenciesResource:
    """GET /withdrawal/available-currencies/ (see the module's docstring)."""

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.info.services
        caller = principal(req)
        wallet_id = single_param(req, "wallet_id")
        if wallet_id is not None:
            wallet_ids = [services.require_wallet(req, wallet_id)]
        else:
            wallet_ids = sorted(
                wallet for wallet, owner in services.wallet_owners.items()
                if owner == caller.partner_id
            )  # fmt: skip
        amounts = await repositories.member_balances(services.pool, wallet_ids)
        available: dict[str, int] = {}
        for by_currency in amounts.values():
            for code, by_account in by_currency.items():
                currency = services.config.currencies.get(code)
                if currency is None:
                    continue
                main = by_account.get(MAIN_ACCOUNT[currency.kind], 0)
                available[code] = available.get(code, 0) + main
        listed = []
        for rule in self.info.rules:
            balance = available.get(rule.currency, 0)
            if balance > 0:
                decimals = self.info.currency(rule).decimals
                listed.append(
                    {**self.info.describe(rule), "available": format_minor(balance, decimals)}
                )
        resp.media = {"currencies": listed}
