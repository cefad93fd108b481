"""Withdrawals (seed 001, "Withdrawals"): create, list, details, status, cancel.

Partners only; scope `write` to create or cancel, `read` to look (the status check is a
POST that only reads, so it takes `read`, as the calculators of `withdrawal_info` do).
A partner sees its own withdrawals only: another partner's id is a 404 like an unknown
one.

`POST /withdrawal/` takes the currency in one of two ways and the amount in one of two:

- the currency: `currency`, a withdrawal code (`BTC`, `ETH`, `USDTERC20`, `USDTTRC20`;
  resolved as `withdrawal_info` does), or `blockchain` (`BTC`, `ETH`, `TRX`; also
  `bitcoin`, `ethereum`, `tron`, `erc20`, `trc20`, any case) with `token` (the ledger
  currency, `USDT`; default the chain's own coin);
- the amount: `amount`, a decimal string of that currency, or `price_amount` with
  `price_currency` (`USD`, `EUR` or any configured currency), converted at the rate
  `GET /rates/` publishes from `price_currency` to the withdrawal's ledger currency. The
  product price × rate is exact; only when it falls between two minor units is it rounded
  DOWN to the minor unit (the conversion itself demands it; nothing else is rounded). The
  201 answer then says so: `price_amount`, `price_currency`, `rate` and `rounded_down`.
  No rate (an empty book, no route) is a 422 `no_rate`.

Seed 001's Option 1 is `{amount, currency, address}`, its Option 2 `{price_amount,
price_currency, blockchain, token, address}`; the other two pairings work the same way.
Also: `final_amount` (default true: the amount is what the address receives and the fee
comes on top; false: the amount is what the wallet pays, fee included), `wallet_id`
(default the partner's master wallet; one of the partner's own wallets, else 404),
`callback_url` (this withdrawal's webhooks go there instead of the partner's URL) and
`custom_id` (the caller's reference and idempotency key; the `Idempotency-Key` header
may give it instead, or the same, not another).

Checks (`withdrawals.prepare`): the address is a mainnet address of the chain (bech32 or
base58 for BTC, EIP-55 for ETH, base58check for TRON), what the address receives is
within the currency's limits; the problems come from `withdrawal_info.PROBLEMS`. Then the
desk holds amount + fee (main → locked): 201 with the withdrawal, status `accepted`; not
enough available → 422 `insufficient_funds`, nothing held. A repeat of a key with the same
content (a sha256 of the request as understood: wallet, code, address, amounts in minor
units, final_amount, callback_url, custom_id) → 200 with the first withdrawal as it is
now; with other content → 409 `idempotency_conflict`.

The custody worker then takes it accepted → processing → confirming → succeed (the amount
leaves custody, the fee goes to revenue) or failed (released); a webhook
`withdrawal.<status>` announces each change. `POST /withdrawal/{id}/cancel/` cancels an
`accepted` withdrawal (released); once processing has begun it is a 409
`illegal_transition`.

`GET /withdrawal/` filters `status`, `blockchain` (or `chain`), `token`, `currency` (a
code), `custom_id`, `wallet_id`, `start_date` and `end_date` (ISO 8601 dates or date-times,
UTC when no offset is given; a date as `end_date` includes that whole day), and pages with
`limit` (1-100, 20) and `offset`; `sort` is `-created_at` (newest first, the default) or
`created_at`. Answer: `{withdrawals, total, limit, offset}`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import asyncpg
import falcon
import falcon.asgi
import msgspec

from strongroom import rates
from strongroom.actors.messages import Refused
from strongroom.config import Currency
from strongroom.custody import views
from strongroom.custody.desk import Known
from strongroom.custody.errors import BelowMinimum, CustodyError
from strongroom.custody.withdrawals import (
    TrackedWithdrawal,
    WithdrawalEvent,
    WithdrawalRule,
    WithdrawalState,
    prepare,
)
from strongroom.http.body import read_json
from strongroom.http.context import Services, int_param, principal
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.resources.rates import NoRate, Pricer, single_param
from strongroom.http.resources.withdrawal_info import WithdrawalInfo, custody_problem
from strongroom.http.webhooks import validate_callback_url
from strongroom.identity.vault_keys import BITCOIN, ETHEREUM, TRON
from strongroom.money import format_minor, parse_amount
from strongroom.persistence import repositories
from strongroom.persistence.recovery import withdrawal_from_row

CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Amount = Annotated[str, msgspec.Meta(max_length=64)]
CustomId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
WalletId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CallbackUrl = Annotated[str, msgspec.Meta(max_length=2048)]
PublicId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
OFFSET_MAX = 10**9
KEY_LENGTH_MAX = 64
CANCEL_REASON = "canceled at the partner's request"
SORTS = {"-created_at": "DESC", "created_at": "ASC"}

# Blockchain names as callers write them (seed 001 says TRX) → the chains of the rules.
CHAINS_BY_NAME = {
    "btc": BITCOIN,
    "bitcoin": BITCOIN,
    "eth": ETHEREUM,
    "ethereum": ETHEREUM,
    "erc20": ETHEREUM,
    "trx": TRON,
    "tron": TRON,
    "trc20": TRON,
}
NATIVE_COINS = {BITCOIN: "BTC", ETHEREUM: "ETH"}  # the token when none is named
REFUSALS = {
    "insufficient_funds": 422,
    "idempotency_conflict": 409,
    "illegal_transition": 409,
    "not_found": 404,
}


class WithdrawalIn(msgspec.Struct, forbid_unknown_fields=True):
    address: Address
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    price_amount: Amount | None = None
    price_currency: CurrencyCode | None = None
    blockchain: CurrencyCode | None = None
    token: CurrencyCode | None = None
    final_amount: bool = True
    wallet_id: WalletId | None = None
    callback_url: CallbackUrl | None = None
    custom_id: CustomId | None = None


class WithdrawalStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    withdrawal_id: PublicId


# --------------------------------------------------------------------------- shared


def refusal_problem(reply: Refused) -> Problem:
    return Problem(REFUSALS.get(reply.code, 422), reply.code, reply.detail)


def chain_of(field: str, name: str) -> str:
    chain = CHAINS_BY_NAME.get(name.lower())
    if chain is None:
        raise invalid(field, "must be BTC, ETH or TRX (bitcoin, ethereum, tron)")
    return chain


def _renamed(problem: Problem, field: str) -> Problem:
    """A problem about `amount` said of the field the caller wrote (`price_amount`)."""
    if problem.errors is None or field == "amount":
        return problem
    errors = [
        {**error, "field": field} if error.get("field") == "amount" else error
        for error in problem.errors
    ]
    detail = problem.detail
    if detail.startswith("amount: "):
        detail = f"{field}: " + detail.removeprefix("amount: ")
    return Problem(problem.status, problem.code, detail, errors=errors)


def parse_public_withdrawal_id(text: str) -> int:
    number = views.parse_public_id(views.WITHDRAWAL_PREFIX, text)
    if number is None:
        raise not_found(f"withdrawal {text[:64]}")
    return number


async def owned_withdrawal(services: Services, partner_id: str, text: str) -> TrackedWithdrawal:
    """The partner's withdrawal of public id `text`; 404 when unknown or another's."""
    number = parse_public_withdrawal_id(text)
    row = await services.pool.fetchrow(
        "SELECT * FROM withdrawals WHERE withdrawal_id = $1 AND partner_id = $2",
        number,
        partner_id,
    )
    if row is None:
        raise not_found(f"withdrawal {text[:64]}")
    return withdrawal_from_row(row)


def withdrawal_json(services: Services, tracked: TrackedWithdrawal) -> dict[str, Any]:
    return views.withdrawal(tracked, services.config.currencies)


class _Priced(msgspec.Struct, frozen=True):
    """How a price amount became the withdrawal's amount."""

    price_amount: str
    price_currency: str
    rate: str
    rounded_down: bool


# --------------------------------------------------------------------------- resources


class WithdrawalsResource:
    """POST /withdrawal/ (create) and GET /withdrawal/ (list); see the module's docstring."""

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    @property
    def services(self) -> Services:
        return self.info.services

    # ------------------------------------------------------------------ create

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.services
        caller = principal(req)
        body = await read_json(req, WithdrawalIn)
        key = self._key(req, body)
        rule = self._rule(body)
        currency = self.info.currency(rule)
        amount, price = self._amounts(body)
        if body.callback_url is not None:
            validate_callback_url(body.callback_url)
        wallet_id = await self._wallet(req, caller.partner_id, body.wallet_id)
        fingerprint = hashlib.sha256(
            msgspec.json.encode(
                [wallet_id, rule.code, body.address, amount,
                 None if price is None else [price[0], price[1].code],
                 body.final_amount, body.callback_url, key]
            )
        ).hexdigest()  # fmt: skip
        if key is not None:
            row = await services.pool.fetchrow(
                "SELECT * FROM withdrawals WHERE partner_id = $1 AND idempotency_key = $2",
                caller.partner_id,
                key,
            )
            if row is not None:
                self._answer_repeat(resp, row, fingerprint, price)
                return
        priced: _Priced | None = None
        if price is not None:
            amount, priced = await self._convert(price, rule, currency)
        assert amount is not None
        field = "amount" if price is None else "price_amount"
        try:
            prepared = prepare(
                self.info.rules,
                withdrawal_id=services.trading.new_order_id(),
                wallet_id=wallet_id,
                code=rule.code,
                address=body.address,
                amount=amount,
                at_ns=services.trading.clock_ns(),
                custom_id=key,
                includes_fee=not body.final_amount,
            )
        except CustodyError as error:
            raise _renamed(custody_problem(error, currency), field) from None
        tracked = TrackedWithdrawal(
            prepared, caller.partner_id, rule.code, key, fingerprint, body.callback_url
        )
        reply = await services.trading.withdraw(tracked)
        if isinstance(reply, Refused):
            raise refusal_problem(reply)
        if isinstance(reply, Known):
            row = await services.pool.fetchrow(
                "SELECT * FROM withdrawals WHERE withdrawal_id = $1", reply.entity_id
            )
            assert row is not None, "a known withdrawal is committed"
            self._answer_repeat(resp, row, fingerprint, price)
            return
        assert isinstance(reply, TrackedWithdrawal)
        resp.status = falcon.HTTP_201
        answer = withdrawal_json(services, reply)
        if priced is not None:
            answer |= msgspec.structs.asdict(priced)
        resp.media = answer

    def _key(self, req: falcon.asgi.Request, body: WithdrawalIn) -> str | None:
        header = req.get_header("Idempotency-Key")
        if header is None:
            return body.custom_id
        if not 0 < len(header) <= KEY_LENGTH_MAX:
            raise invalid("Idempotency-Key", f"must be 1 to {KEY_LENGTH_MAX} characters")
        if body.custom_id is not None and body.custom_id != header:
            raise invalid("custom_id", "differs from the Idempotency-Key header")
        return header

    def _rule(self, body: WithdrawalIn) -> WithdrawalRule:
        if body.currency is not None:
            if body.blockchain is not None or body.token is not None:
                raise invalid("currency", "give currency, or blockchain and token, not both")
            return self.info.rule(body.currency)
        if body.blockchain is None:
            if body.token is not None:
                raise invalid("blockchain", "is required with token")
            raise invalid("currency", "give currency, or blockchain and token")
        chain = chain_of("blockchain", body.blockchain)
        token = body.token.upper() if body.token is not None else NATIVE_COINS.get(chain)
        if token is None:
            raise invalid("token", f"is required on {chain}")
        for rule in self.info.rules:
            if rule.currency == token and rule.chain == chain:
                return rule
        raise invalid(
            "token", f"no withdrawals of {token[:32]} on {chain}", code="unsupported_currency"
        )

    def _amounts(self, body: WithdrawalIn) -> tuple[int | None, tuple[int, Currency] | None]:
        """(amount in the withdrawal's minor units, None) or (None, (price in the price
        currency's minor units, that currency))."""
        if body.amount is not None:
            if body.price_amount is not None or body.price_currency is not None:
                raise invalid("amount", "give amount, or price_amount and price_currency, not both")
            rule = self._rule(body)
            return self.info.amount(body.amount, rule), None
        if body.price_amount is None:
            raise invalid("amount", "give amount, or price_amount and price_currency")
        if body.price_currency is None:
            raise invalid("price_currency", "is required with price_amount")
        price_currency = self.services.config.currencies.get(body.price_currency.upper())
        if price_currency is None:
            raise invalid("price_currency", f"unknown currency {body.price_currency[:16]!r}")
        price = parse_amount("price_amount", body.price_amount, price_currency.decimals)
        return None, (price, price_currency)

    async def _wallet(
        self, req: falcon.asgi.Request, partner_id: str, wallet_id: str | None
    ) -> str:
        services = self.services
        if wallet_id is None:
            master = await repositories.master_wallet(services.pool, partner_id)
            services.wallet_owners[master] = partner_id
            return master
        # Even an operator withdraws from its own wallets only.
        if services.wallet_owners.get(wallet_id) != partner_id:
            raise not_found(f"wallet {wallet_id}")
        return services.require_wallet(req, wallet_id)

    async def _convert(
        self, price: tuple[int, Currency], rule: WithdrawalRule, currency: Currency
    ) -> tuple[int, _Priced]:
        price_minor, price_currency = price
        try:
            rate = await Pricer(self.services).rate(price_currency.code, currency.code)
        except NoRate as error:
            raise Problem(
                422,
                "no_rate",
                f"price_amount: no rate from {price_currency.code} to {currency.code}:"
                f" {error.detail}",
                errors=[{"field": "price_currency", "message": error.detail}],
            ) from None
        exact = rates.exact_product(
            rates.exact_product(Decimal(price_minor), rate),
            Decimal(1).scaleb(currency.decimals - price_currency.decimals),
        )
        converted = rates.convert(
            price_minor, price_currency.decimals, rate, currency.decimals, Decimal(0), False
        ).estimated
        if converted <= 0:
            raise _renamed(
                custody_problem(BelowMinimum(0, rule.amount_min), currency), "price_amount"
            )
        return converted, _Priced(
            price_amount=format_minor(price_minor, price_currency.decimals),
            price_currency=price_currency.code,
            rate=rates.text(rate),
            rounded_down=Decimal(converted) != exact,
        )

    def _answer_repeat(
        self,
        resp: falcon.asgi.Response,
        row: asyncpg.Record,
        fingerprint: str,
        price: tuple[int, Currency] | None,
    ) -> None:
        if row["fingerprint"] != fingerprint:
            raise Problem(409, "idempotency_conflict", "custom_id was used with other content")
        resp.status = falcon.HTTP_200
        answer = withdrawal_json(self.services, withdrawal_from_row(row))
        if price is not None:
            # The same request's price; its rate and rounding were the first answer's.
            price_minor, price_currency = price
            answer |= {
                "price_amount": format_minor(price_minor, price_currency.decimals),
                "price_currency": price_currency.code,
            }
        resp.media = answer

    # ------------------------------------------------------------------ list

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.services
        caller = principal(req)
        conditions = ["partner_id = $1"]
        arguments: list[Any] = [caller.partner_id]

        def where(condition: str, value: Any) -> None:
            arguments.append(value)
            conditions.append(condition.format(f"${len(arguments)}"))

        status = single_param(req, "status")
        if status is not None:
            if status not in set(WithdrawalState):
                states = ", ".join(str(state) for state in WithdrawalState)
                raise invalid("status", f"must be one of {states}")
            where("state = {}", status)
        blockchain = single_param(req, "blockchain")
        chain_name = single_param(req, "chain")
        if blockchain is not None and chain_name is not None:
            raise invalid("chain", "give blockchain or chain, not both")
        if blockchain is not None or chain_name is not None:
            field = "blockchain" if blockchain is not None else "chain"
            where("chain = {}", chain_of(field, blockchain or chain_name or ""))
        token = single_param(req, "token")
        if token is not None:
            if token.upper() not in {rule.currency for rule in self.info.rules}:
                raise invalid("token", f"no withdrawals of {token[:32]!r}")
            where("currency = {}", token.upper())
        code = single_param(req, "currency")
        if code is not None:
            where("code = {}", self.info.rule(code).code)
        custom_id = single_param(req, "custom_id")
        if custom_id is not None:
            if not 0 < len(custom_id) <= KEY_LENGTH_MAX:
                raise invalid("custom_id", f"must be 1 to {KEY_LENGTH_MAX} characters")
            where("custom_id = {}", custom_id)
        wallet_id = single_param(req, "wallet_id")
        if wallet_id is not None:
            where("wallet_id = {}", wallet_id)  # the partner's rows only: no leak
        start = date_param(req, "start_date", end=False)
        if start is not None:
            where("created_at >= {}", start[0])
        end = date_param(req, "end_date", end=True)
        if end is not None:
            moment, whole_day = end
            where("created_at < {}" if whole_day else "created_at <= {}", moment)
        if start is not None and end is not None and end[0] < start[0]:
            raise invalid("end_date", "is before start_date")
        sort = single_param(req, "sort") or "-created_at"
        if sort not in SORTS:
            raise invalid("sort", "must be created_at or -created_at")
        limit = int_param(req, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
        offset = int_param(req, "offset", 0, 0, OFFSET_MAX)
        clause = " AND ".join(conditions)
        direction = SORTS[sort]
        async with (
            services.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            total = await connection.fetchval(
                f"SELECT count(*) FROM withdrawals WHERE {clause}", *arguments
            )
            rows = await connection.fetch(
                f"SELECT * FROM withdrawals WHERE {clause}"
                f" ORDER BY created_at {direction}, withdrawal_id {direction}"
                f" LIMIT {limit} OFFSET {offset}",
                *arguments,
            )
        resp.media = {
            "withdrawals": [withdrawal_json(services, withdrawal_from_row(row)) for row in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }


def date_param(req: falcon.asgi.Request, name: str, *, end: bool) -> tuple[datetime, bool] | None:
    """An ISO 8601 date or date-time as an aware UTC moment, and whether it was a date.

    A date as an end names its whole day: the moment is the next midnight (exclusive)."""
    text = single_param(req, name)
    if text is None:
        return None
    message = "must be an ISO 8601 date or date-time, e.g. 2025-01-31 or 2025-01-31T12:00:00Z"
    if not 0 < len(text) <= 40:
        raise invalid(name, message)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(0), tzinfo=UTC)
            return (moment + timedelta(days=1) if end else moment), end
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(name, message) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC), False


class WithdrawalResource:
    """GET /withdrawal/{withdrawal_id}/: one of the partner's withdrawals."""

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, withdrawal_id: str
    ) -> None:
        services = self.info.services
        tracked = await owned_withdrawal(services, principal(req).partner_id, withdrawal_id)
        resp.media = withdrawal_json(services, tracked)


class WithdrawalStatusResource:
    """POST /withdrawal/status/ {withdrawal_id}: the same answer as the details."""

    scopes: ClassVar[dict[str, str]] = {"POST": "read"}

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.info.services
        body = await read_json(req, WithdrawalStatusIn)
        tracked = await owned_withdrawal(services, principal(req).partner_id, body.withdrawal_id)
        resp.media = withdrawal_json(services, tracked)


class WithdrawalCancelResource:
    """POST /withdrawal/{withdrawal_id}/cancel/ (no body): cancel an accepted withdrawal,
    its funds released; 409 `illegal_transition` once processing has begun."""

    def __init__(self, info: WithdrawalInfo) -> None:
        self.info = info

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, withdrawal_id: str
    ) -> None:
        services = self.info.services
        tracked = await owned_withdrawal(services, principal(req).partner_id, withdrawal_id)
        state = tracked.withdrawal.state
        if state is not WithdrawalState.ACCEPTED:
            raise illegal_cancel(withdrawal_id, state)
        reply = await services.trading.withdrawal_change(
            tracked.withdrawal.withdrawal_id, WithdrawalEvent.CANCEL, reason=CANCEL_REASON
        )
        if isinstance(reply, Refused):
            if reply.code == "not_found":  # it became final meanwhile
                again = await owned_withdrawal(services, tracked.partner_id, withdrawal_id)
                raise illegal_cancel(withdrawal_id, again.withdrawal.state)
            raise refusal_problem(reply)
        resp.media = withdrawal_json(services, reply)


def illegal_cancel(withdrawal_id: str, state: WithdrawalState) -> Problem:
    return Problem(
        409,
        "illegal_transition",
        f"withdrawal {withdrawal_id[:64]} is {state}: only an accepted withdrawal can be canceled",
    )


# --------------------------------------------------------------------------- routes

OPERATIONS: tuple[tuple[str, str, str, int], ...] = (
    (
        "/withdrawal/",
        "post",
        "Create a withdrawal {amount, currency | price_amount, price_currency, blockchain,"
        " token; address, final_amount?, wallet_id?, callback_url?, custom_id?}: 201"
        " accepted and held; a repeat of custom_id 200, other content 409",
        201,
    ),
    (
        "/withdrawal/",
        "get",
        "The partner's withdrawals: status, blockchain, token, currency, custom_id,"
        " wallet_id, start_date, end_date, sort, limit, offset",
        200,
    ),
    ("/withdrawal/status/", "post", "A withdrawal's status {withdrawal_id}", 200),
    ("/withdrawal/{withdrawal_id}/", "get", "One withdrawal", 200),
    (
        "/withdrawal/{withdrawal_id}/cancel/",
        "post",
        "Cancel an accepted withdrawal (funds released); 409 once it is processing",
        200,
    ),
)
REQUESTS: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("/withdrawal/", "post"): WithdrawalIn,
    ("/withdrawal/status/", "post"): WithdrawalStatusIn,
}


def routes(services: Services, info: WithdrawalInfo) -> list[tuple[str, object]]:
    return [
        ("/withdrawal/", WithdrawalsResource(info)),
        ("/withdrawal/status/", WithdrawalStatusResource(info)),
        ("/withdrawal/{withdrawal_id}/", WithdrawalResource(info)),
        ("/withdrawal/{withdrawal_id}/cancel/", WithdrawalCancelResource(info)),
    ]
