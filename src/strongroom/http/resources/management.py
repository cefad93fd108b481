"""Peatio's management API v2 (seed 002): deposits and account balances (admin scope)."""

from __future__ import annotations

import hashlib
import uuid
from typing import ClassVar

import falcon
import falcon.asgi

from strongroom.actors.messages import DepositState, Refused
from strongroom.http.body import read_form_or_json
from strongroom.http.context import Services
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.representations import deposit_json
from strongroom.money import format_minor, parse_amount
from strongroom.persistence import repositories

TID_LENGTH_MAX = 64


def _fields(form: dict[str, str], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(form) - allowed)
    if unknown:
        raise Problem(
            422,
            "validation_error",
            f"unknown fields: {', '.join(unknown)}",
            errors=[{"field": name, "message": "unknown field"} for name in unknown],
        )
    missing = sorted(required - set(form))
    if missing:
        raise Problem(
            422,
            "validation_error",
            f"missing fields: {', '.join(missing)}",
            errors=[{"field": name, "message": "is required"} for name in missing],
        )


class DepositsNewResource:
    scopes: ClassVar[dict[str, str]] = {"POST": "admin"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_form_or_json(req)
        _fields(form, {"uid", "currency", "amount", "tid", "state"}, {"uid", "currency", "amount"})
        config = self.services.config
        currency = config.currencies.get(form["currency"])
        if currency is None:
            raise invalid("currency", f"unknown currency {form['currency']}")
        amount = parse_amount("amount", form["amount"], currency.decimals)
        state = form.get("state", "submitted")
        if state not in ("submitted", "accepted"):
            raise invalid("state", "must be submitted or accepted")
        header_key = req.get_header("Idempotency-Key")
        if header_key is not None and form.get("tid", header_key) != header_key:
            raise invalid("tid", "differs from the Idempotency-Key header")
        tid = form.get("tid") or header_key or f"TID{uuid.uuid4().hex[:20]}"
        if len(tid) > TID_LENGTH_MAX:
            raise invalid("tid", f"must not exceed {TID_LENGTH_MAX} characters")
        wallet_id = self.services.require_wallet(req, form["uid"])
        fingerprint = hashlib.sha256(
            f"{wallet_id}|{currency.code}|{amount}|{state}".encode()
        ).hexdigest()
        reply = await self.services.trading.deposit(
            tid=tid,
            wallet_id=wallet_id,
            currency=currency.code,
            amount=amount,
            accept=state == "accepted",
            fingerprint=fingerprint,
        )
        if isinstance(reply, Refused):
            raise Problem(409, reply.code, reply.detail)
        assert isinstance(reply, DepositState)
        resp.status = falcon.HTTP_201
        resp.media = deposit_json(reply, config)


class DepositStateResource:
    """Load the money of a submitted deposit (`accepted`) or drop it (`canceled`, `rejected`)."""

    scopes: ClassVar[dict[str, str]] = {"PUT": "admin"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_form_or_json(req)
        _fields(form, {"tid", "state"}, {"tid", "state"})
        if form["state"] not in ("accepted", "canceled", "rejected"):
            raise invalid("state", "must be accepted, canceled or rejected")
        deposit = await repositories.deposit_by_tid(self.services.pool, form["tid"])
        if deposit is None or not self.services.wallet_visible(
            req.context.principal, deposit.wallet_id
        ):
            raise not_found(f"deposit {form['tid']}")
        reply = await self.services.trading.deposit_state(form["tid"], form["state"])
        if isinstance(reply, Refused):
            raise Problem(404 if reply.code == "not_found" else 409, reply.code, reply.detail)
        assert isinstance(reply, DepositState)
        resp.media = deposit_json(reply, self.services.config)


class DepositsGetResource:
    scopes: ClassVar[dict[str, str]] = {"POST": "admin"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_form_or_json(req)
        _fields(form, {"tid"}, {"tid"})
        deposit = await repositories.deposit_by_tid(self.services.pool, form["tid"])
        if deposit is None:
            raise not_found(f"deposit {form['tid']}")
        resp.status = falcon.HTTP_201
        resp.media = deposit_json(deposit, self.services.config)


class AccountBalanceResource:
    scopes: ClassVar[dict[str, str]] = {"POST": "admin"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_form_or_json(req)
        _fields(form, {"uid", "currency"}, {"uid", "currency"})
        currency = self.services.config.currencies.get(form["currency"])
        if currency is None:
            raise invalid("currency", f"unknown currency {form['currency']}")
        wallet_id = self.services.require_wallet(req, form["uid"])
        amounts = await repositories.member_balances(self.services.pool, [wallet_id])
        by_code = amounts[wallet_id].get(currency.code, {})
        main_code, locked_code = (201, 211) if currency.kind == "fiat" else (202, 212)
        resp.status = falcon.HTTP_201
        resp.media = {
            "uid": wallet_id,
            "currency": currency.code,
            "balance": format_minor(by_code.get(main_code, 0), currency.decimals),
            "locked": format_minor(by_code.get(locked_code, 0), currency.decimals),
        }
