"""Orders: place (answered after matching and commit), look up, list, cancel."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

import falcon
import falcon.asgi
import msgspec

from strongroom.actors.messages import (
    DuplicateOrder,
    OrderKind,
    OrderState,
    Refused,
    Reply,
    TimeInForce,
)
from strongroom.http.body import read_json
from strongroom.http.context import Services, int_param
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.representations import KINDS, SIDES, TIMES_IN_FORCE, order_json
from strongroom.money import to_units
from strongroom.persistence import repositories

ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Short = Annotated[str, msgspec.Meta(max_length=64)]
DUPLICATE_WAIT_S = 10.0
REFUSAL_STATUS = {
    "insufficient_funds": 422,
    "too_many_open_orders": 422,
    "invalid_quantity": 422,
    "invalid_price": 422,
    "not_allowed": 422,
    "unknown_market": 404,
    "order_not_open": 409,
    "would_trade": 409,
    "idempotency_conflict": 409,
}
STATUSES = frozenset({"pending", "open", "filled", "canceled", "rejected"})


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    wallet_id: Short
    market: Short
    side: Short
    type: Short
    quantity: Short
    price: Short | None = None
    stop_price: Short | None = None
    display_quantity: Short | None = None
    time_in_force: Short | None = None
    post_only: bool = False
    external_id: ExternalId | None = None


def _choice(field: str, value: str, choices: dict[str, Any]) -> Any:
    if value not in choices:
        raise invalid(field, f"must be one of {', '.join(choices)}")
    return choices[value]


def refusal_problem(reply: Refused) -> Problem:
    return Problem(REFUSAL_STATUS.get(reply.code, 422), reply.code, reply.detail)


class OrdersResource:
    users = True  # a user trades from its own vault

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, OrderIn)
        services = self.services
        market = services.config.markets.get(body.market)
        if market is None:
            raise invalid("market", f"unknown market {body.market}")
        side = _choice("side", body.side, SIDES)
        kind: OrderKind = _choice("type", body.type, KINDS)
        is_market = kind in (OrderKind.MARKET, OrderKind.STOP_MARKET)
        default_time_in_force = "IOC" if is_market else "GTC"
        time_in_force: TimeInForce = _choice(
            "time_in_force", body.time_in_force or default_time_in_force, TIMES_IN_FORCE
        )
        if is_market and time_in_force is TimeInForce.GTC:
            raise invalid("time_in_force", "market orders are IOC or FOK")
        quantity = to_units("quantity", body.quantity, market.lot_size)
        price = 0
        if is_market:
            if body.price is not None:
                raise invalid("price", "market orders take no price")
        elif body.price is None:
            raise invalid("price", "is required for limit orders")
        else:
            price = to_units("price", body.price, market.tick_size)
        stop_price = 0
        if kind in (OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET):
            if body.stop_price is None:
                raise invalid("stop_price", "is required for stop orders")
            stop_price = to_units("stop_price", body.stop_price, market.tick_size)
        elif body.stop_price is not None:
            raise invalid("stop_price", "is only for stop orders")
        display_quantity = 0
        if body.display_quantity is not None:
            if kind is not OrderKind.LIMIT:
                raise invalid("display_quantity", "applies to limit orders only")
            display_quantity = to_units("display_quantity", body.display_quantity, market.lot_size)
            if display_quantity >= quantity:
                raise invalid("display_quantity", "must be below quantity")
        if body.post_only and (kind is not OrderKind.LIMIT or time_in_force is not TimeInForce.GTC):
            raise invalid("post_only", "applies to GTC limit orders only")
        external_id = body.external_id
        header_key = req.get_header("Idempotency-Key")
        if header_key is not None:
            if external_id is not None and header_key != external_id:
                raise invalid("external_id", "differs from the Idempotency-Key header")
            if not 0 < len(header_key) <= 64:
                raise invalid("Idempotency-Key", "must be 1 to 64 characters")
            external_id = header_key
        wallet_id = services.require_wallet(req, body.wallet_id)
        fingerprint = hashlib.sha256(
            repr((market.symbol, int(side), int(kind), price, quantity, stop_price,
                  display_quantity, int(time_in_force), body.post_only)).encode()
        ).hexdigest()  # fmt: skip
        if external_id is not None:
            existing = await repositories.order_by_external_id(
                services.pool, wallet_id, external_id
            )
            if existing is not None:
                self._answer_repeat(resp, existing, fingerprint)
                return
        reply: Reply = await services.trading.place(
            wallet_id=wallet_id,
            market=market.symbol,
            side=side,
            kind=kind,
            price=price,
            quantity=quantity,
            stop_price=stop_price,
            display_quantity=display_quantity,
            time_in_force=time_in_force,
            post_only=body.post_only,
            external_id=external_id,
            fingerprint=fingerprint,
        )
        if isinstance(reply, DuplicateOrder):
            if not reply.same_content:
                raise Problem(409, "idempotency_conflict", "external_id used with other content")
            reply = await self._committed(reply.order_id)
        if isinstance(reply, Refused):
            raise refusal_problem(reply)
        assert isinstance(reply, OrderState)
        resp.status = falcon.HTTP_201
        resp.media = order_json(reply, services.config)

    def _answer_repeat(
        self, resp: falcon.asgi.Response, existing: OrderState, fingerprint: str
    ) -> None:
        if existing.fingerprint != fingerprint:
            raise Problem(409, "idempotency_conflict", "external_id used with other content")
        resp.status = falcon.HTTP_201
        resp.media = order_json(existing, self.services.config)

    async def _committed(self, order_id: int) -> OrderState:
        """A repeat raced its first attempt: answer once the first one is committed."""
        deadline = asyncio.get_running_loop().time() + DUPLICATE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            state = await repositories.order(self.services.pool, order_id)
            if state is not None:
                return state
            await asyncio.sleep(0.02)
        raise Problem(503, "service_unavailable", "the first attempt is still in progress")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        wallet_id = req.get_param("wallet_id")
        if wallet_id is None:
            raise invalid("wallet_id", "is required")
        self.services.require_wallet(req, wallet_id)
        status = req.get_param("status")
        if status is not None and status not in STATUSES:
            raise invalid("status", f"must be one of {', '.join(sorted(STATUSES))}")
        limit = int_param(req, "limit", 100, 1, repositories.PAGE_SIZE_MAX)
        offset = int_param(req, "offset", 0, 0, 10**9)
        states = await repositories.orders(self.services.pool, wallet_id, status, limit, offset)
        resp.media = [order_json(state, self.services.config) for state in states]


class ReplaceIn(msgspec.Struct, forbid_unknown_fields=True):
    price: Short | None = None
    quantity: Short | None = None


class OrderResource:
    users = True  # a user acts on its own vault's orders

    def __init__(self, services: Services) -> None:
        self.services = services

    async def _visible_order(self, req: falcon.asgi.Request, order_id: str) -> OrderState:
        if not order_id.isdigit() or int(order_id) >= 2**63:
            raise not_found(f"order {order_id}")
        state = await repositories.order(self.services.pool, int(order_id))
        if state is None or not self.services.wallet_visible(
            req.context.principal, state.wallet_id
        ):
            raise not_found(f"order {order_id}")
        return state

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, order_id: str
    ) -> None:
        resp.media = order_json(await self._visible_order(req, order_id), self.services.config)

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, order_id: str
    ) -> None:
        """Replace price and/or total quantity: a lower quantity at the same price keeps
        its place in the queue, any other change loses it (SPEC §3)."""
        body = await read_json(req, ReplaceIn)
        if body.price is None and body.quantity is None:
            raise invalid("body", "give a new price, a new quantity or both")
        state = await self._visible_order(req, order_id)
        market = self.services.config.markets[state.market]
        if state.kind not in (OrderKind.LIMIT, OrderKind.STOP_LIMIT):
            raise Problem(422, "not_allowed", "only limit orders can be replaced")
        price = (
            state.price if body.price is None else to_units("price", body.price, market.tick_size)
        )
        quantity = (
            state.quantity
            if body.quantity is None
            else to_units("quantity", body.quantity, market.lot_size)
        )
        if state.status != "open":
            raise Problem(409, "order_not_open", f"order {order_id} is {state.status}")
        reply = await self.services.trading.replace(
            state.wallet_id, state.order_id, price, quantity
        )
        if isinstance(reply, Refused):
            raise refusal_problem(reply)
        assert isinstance(reply, OrderState)
        resp.media = order_json(reply, self.services.config)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, order_id: str
    ) -> None:
        state = await self._visible_order(req, order_id)
        if not state.live:
            raise Problem(409, "order_not_open", f"order {order_id} is {state.status}")
        reply = await self.services.trading.cancel(state.wallet_id, state.order_id)
        if isinstance(reply, Refused):
            raise refusal_problem(reply)
        assert isinstance(reply, OrderState)
        resp.media = order_json(reply, self.services.config)
