"""The edges the agents act through, and the feed subscribers.

- `InprocEdge`: calls `strongroom.service.Trading` directly (in-process target only);
- `RestEdge`: the REST API through `strongroom.sims.rest_client` (HTTP/1.1 keep-alive),
  as a partner (deposits as the admin, through the management API);
- `MtfMember`: one MTF session per agent over `strongroom.wire.client.MtfClient`;
- `Subscriber`: a websocket on the price feed that checks book sequences and measures
  how late trades arrive.

Each answers an action with a `Result`, and records in `Acked` what the system
acknowledged, for the exactly-once checks over the database at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2
import msgspec
import websockets

from strongroom.actors.messages import (
    DepositState,
    DuplicateOrder,
    OrderKind,
    OrderState,
    Refused,
)
from strongroom.config import TradingConfig
from strongroom.http.representations import (
    KIND_NAMES,
    SIDE_NAMES,
    TIME_IN_FORCE_NAMES,
    price_text,
    quantity_text,
)
from strongroom.money import format_minor
from strongroom.service import Trading
from strongroom.sims.agents import Cancel, Deposit, Place, Withdraw
from strongroom.sims.metrics import FeedFigures, Outcome
from strongroom.sims.rest_client import Response, RestClient
from strongroom.wire.client import MtfClient, MtfError
from strongroom.wire.credentials import external_id
from strongroom.wire.mtf import Code, Frame, Reject

LIVE_STATUSES = frozenset({"open", "pending"})


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    reason: str = ""  # the refusal's code, or the error's kind
    ref: int | None = None  # the order as this edge knows it
    live: bool = False  # the order rests (open or pending) after the answer


ACKED = Result(Outcome.ACKED)


@dataclass(slots=True)
class Acked:
    """What the system acknowledged, to be found exactly once in its database."""

    order_ids: set[int] = field(default_factory=set)
    mtf_orders: set[tuple[str, str]] = field(default_factory=set)  # (wallet, external id)
    deposits: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # tid → …
    withdrawals: dict[int, str] = field(default_factory=dict)  # id → custom_id
    # A retry answered with something other than the first answer (should stay empty).
    retry_mismatches: list[str] = field(default_factory=list)
    _deposit_ids: dict[str, int] = field(default_factory=dict)
    _withdrawal_ids: dict[str, int] = field(default_factory=dict)

    def deposit(self, tid: str, wallet_id: str, currency: str, amount: int, ident: int) -> None:
        first = self._deposit_ids.setdefault(tid, ident)
        if first != ident:
            self.retry_mismatches.append(f"deposit {tid}: first {first}, then {ident}")
        self.deposits[tid] = (wallet_id, currency, amount)

    def withdrawal(self, custom_id: str, ident: int) -> None:
        first = self._withdrawal_ids.setdefault(custom_id, ident)
        if first != ident:
            self.retry_mismatches.append(f"withdrawal {custom_id}: first {first}, then {ident}")
        self.withdrawals[ident] = custom_id


def deposit_fingerprint(wallet_id: str, currency: str, amount: int) -> str:
    """The management API's own, so that the in-process edge and REST agree on repeats."""
    return hashlib.sha256(f"{wallet_id}|{currency}|{amount}|accepted".encode()).hexdigest()


class Unsupported(Exception):
    pass


class InprocEdge:
    name = "inproc"

    def __init__(self, trading: Trading, acked: Acked, timeout_s: float) -> None:
        self.trading = trading
        self.acked = acked
        self.timeout_s = timeout_s

    def still_live(self) -> set[int] | None:
        return None

    async def place(self, wallet_id: str, order: Place) -> Result:
        reply = await asyncio.wait_for(
            self.trading.place(
                wallet_id=wallet_id,
                market=order.market,
                side=order.side,
                kind=order.kind,
                price=order.price,
                quantity=order.quantity,
                stop_price=order.stop_price,
                display_quantity=order.display_quantity,
                time_in_force=order.time_in_force,
                post_only=order.post_only,
            ),
            self.timeout_s,
        )
        return self._order(reply)

    def _order(self, reply: Any) -> Result:
        if isinstance(reply, Refused):
            return Result(Outcome.REJECTED, reply.code)
        if isinstance(reply, DuplicateOrder):  # no external ids are sent: never
            return Result(Outcome.ERROR, "duplicate_order")
        assert isinstance(reply, OrderState)
        if reply.status == "rejected":
            return Result(Outcome.REJECTED, reply.reason or "rejected")
        self.acked.order_ids.add(reply.order_id)
        return Result(Outcome.ACKED, ref=reply.order_id, live=reply.status in LIVE_STATUSES)

    async def cancel(self, wallet_id: str, cancel: Cancel) -> Result:
        reply = await asyncio.wait_for(self.trading.cancel(wallet_id, cancel.ref), self.timeout_s)
        if isinstance(reply, Refused):
            return Result(Outcome.REJECTED, reply.code)
        return ACKED

    async def deposit(self, wallet_id: str, deposit: Deposit) -> Result:
        reply = await asyncio.wait_for(
            self.trading.deposit(
                tid=deposit.tid,
                wallet_id=wallet_id,
                currency=deposit.currency,
                amount=deposit.amount,
                accept=True,
                fingerprint=deposit_fingerprint(wallet_id, deposit.currency, deposit.amount),
            ),
            self.timeout_s,
        )
        if isinstance(reply, Refused):
            return Result(Outcome.REJECTED, reply.code)
        assert isinstance(reply, DepositState)
        self.acked.deposit(
            deposit.tid, wallet_id, deposit.currency, deposit.amount, reply.deposit_id
        )
        return ACKED

    async def withdraw(self, wallet_id: str, withdrawal: Withdraw) -> Result:
        raise Unsupported("withdrawals go through REST")


def problem_code(response: Response) -> str:
    try:
        body = response.json()
    except msgspec.DecodeError:
        return f"http_{response.status_code}"
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code else f"http_{response.status_code}"


def route_missing(response: Response) -> bool:
    """A 405, or the 404 of a path no route matches (Falcon's own, whose detail is only
    its title), as opposed to a resource's 404 for something it does not know."""
    if response.status_code == 405:
        return True
    if response.status_code != 404:
        return False
    try:
        detail = response.json().get("detail", "")
    except (msgspec.DecodeError, AttributeError):
        return True
    return detail in ("404 Not Found", "Not Found", "")


class RestEdge:
    """A partner's client (orders, withdrawals) and the admin's (deposits)."""

    name = "rest"

    def __init__(
        self,
        partner: RestClient,
        admin: RestClient,
        config: TradingConfig,
        acked: Acked,
        warn: Callable[[str], None],
    ) -> None:
        self.partner = partner
        self.admin = admin
        self.config = config
        self.acked = acked
        self.warn = warn
        self._missing: set[str] = set()

    def still_live(self) -> set[int] | None:
        return None

    def _answer(self, response: Response, what: str) -> Result | None:
        """None for a 2xx; a Result for anything else."""
        if response.is_success:
            return None
        if route_missing(response):
            # The route itself is missing (not "no such order"): this is not load.
            if what not in self._missing:
                self._missing.add(what)
                self.warn(f"REST {what} is not served ({response.status_code}): {response.text}")
            return Result(Outcome.ERROR, "route_missing")
        if response.status_code >= 500:
            return Result(Outcome.ERROR, f"http_{response.status_code}")
        return Result(Outcome.REJECTED, problem_code(response))

    async def place(self, wallet_id: str, order: Place) -> Result:
        market = self.config.markets[order.market]
        body: dict[str, Any] = {
            "wallet_id": wallet_id,
            "market": order.market,
            "side": SIDE_NAMES[order.side],
            "type": KIND_NAMES[order.kind],
            "quantity": quantity_text(market, order.quantity),
            "time_in_force": TIME_IN_FORCE_NAMES[order.time_in_force],
        }
        if order.kind in (OrderKind.LIMIT, OrderKind.STOP_LIMIT):
            body["price"] = price_text(market, order.price)
        if order.stop_price:
            body["stop_price"] = price_text(market, order.stop_price)
        if order.display_quantity:
            body["display_quantity"] = quantity_text(market, order.display_quantity)
        if order.post_only:
            body["post_only"] = True
        response = await self.partner.post("/orders/", json=body)
        failed = self._answer(response, "POST /orders/")
        if failed is not None:
            return failed
        answer = response.json()
        if answer["status"] == "rejected":
            return Result(Outcome.REJECTED, answer.get("reason") or "rejected")
        order_id = int(answer["id"])
        self.acked.order_ids.add(order_id)
        return Result(Outcome.ACKED, ref=order_id, live=answer["status"] in LIVE_STATUSES)

    async def cancel(self, wallet_id: str, cancel: Cancel) -> Result:
        response = await self.partner.delete(f"/orders/{cancel.ref}/")
        return self._answer(response, "DELETE /orders/{id}/") or ACKED

    async def deposit(self, wallet_id: str, deposit: Deposit) -> Result:
        decimals = self.config.currencies[deposit.currency].decimals
        response = await self.admin.post(
            "/management/v2/deposits/new",
            json={
                "uid": wallet_id,
                "currency": deposit.currency,
                "amount": format_minor(deposit.amount, decimals),
                "tid": deposit.tid,
                "state": "accepted",
            },
        )
        failed = self._answer(response, "POST /management/v2/deposits/new")
        if failed is not None:
            return failed
        self.acked.deposit(
            deposit.tid, wallet_id, deposit.currency, deposit.amount, int(response.json()["id"])
        )
        return ACKED

    async def withdraw(self, wallet_id: str, withdrawal: Withdraw) -> Result:
        response = await self.partner.post(
            "/withdrawal/",
            json={
                "amount": withdrawal.amount,
                "currency": withdrawal.code,
                "address": withdrawal.address,
                "wallet_id": wallet_id,
                "custom_id": withdrawal.custom_id,
            },
        )
        failed = self._answer(response, "POST /withdrawal/")
        if failed is not None:
            return failed
        answer = response.json()
        public = str(answer.get("withdrawal_id", ""))
        if not public.startswith("wd_") or not public[3:].isdigit():
            return Result(Outcome.ERROR, "withdrawal_id_unreadable")
        self.acked.withdrawal(withdrawal.custom_id, int(public[3:]))
        return ACKED


REJECT_NAMES = {int(reason): reason.name.lower() for reason in Reject}


class MtfMember:
    """One agent's MTF session. Client order ids count from 1; an `A` acks a new order,
    a `J` rejects it (or a cancel of it), a `C` acks a cancel that is pending (and
    otherwise ends an order: an IOC remainder, self-trade prevention), an `E` whose open
    quantity is zero ends it too. What is live is known here, at once, from the frames."""

    name = "mtf"

    def __init__(
        self,
        client: MtfClient,
        config: TradingConfig,
        wallet_id: str,
        acked: Acked,
        timeout_s: float,
    ) -> None:
        self.client = client
        self.config = config
        self.wallet_id = wallet_id
        self.acked = acked
        self.timeout_s = timeout_s
        self._order_ids = itertools.count(1)
        self._new: dict[int, tuple[asyncio.Future[Result], bool]] = {}
        self._cancels: dict[int, asyncio.Future[Result]] = {}
        self.live: set[int] = set()
        self.fills = 0
        self._router = asyncio.create_task(self._route(), name="sim-mtf-router")

    def still_live(self) -> set[int] | None:
        return self.live

    async def _route(self) -> None:
        try:
            while True:
                try:
                    frame = await self.client.next_frame(3_600.0)
                except TimeoutError:
                    continue
                self._frame(frame)
        except MtfError:
            pass
        finally:
            for future, _ in self._new.values():
                if not future.done():
                    future.set_result(Result(Outcome.ERROR, "disconnected"))
            for future in self._cancels.values():
                if not future.done():
                    future.set_result(Result(Outcome.ERROR, "disconnected"))

    def _frame(self, frame: Frame) -> None:
        code, order_id = frame.code, frame.order_id
        if code == Code.ACCEPTED:
            pending = self._new.pop(order_id, None)
            self.acked.mtf_orders.add(
                (self.wallet_id, external_id(self.client.session.client_id, order_id))
            )
            if pending is not None:
                future, rests = pending
                if rests:
                    self.live.add(order_id)
                if not future.done():
                    future.set_result(Result(Outcome.ACKED, ref=order_id, live=rests))
        elif code == Code.REJECTED:
            reason = REJECT_NAMES.get(frame.order_condition, f"reason_{frame.order_condition}")
            cancel = self._cancels.pop(order_id, None)
            if cancel is not None and order_id not in self._new:
                if not cancel.done():
                    cancel.set_result(Result(Outcome.REJECTED, reason))
                return
            pending = self._new.pop(order_id, None)
            if pending is not None and not pending[0].done():
                pending[0].set_result(Result(Outcome.REJECTED, reason))
        elif code == Code.CANCELED:
            self.live.discard(order_id)
            cancel = self._cancels.pop(order_id, None)
            if cancel is not None and not cancel.done():
                cancel.set_result(ACKED)
        elif code == Code.EXECUTED:
            self.fills += 1
            if frame.open_quantity <= 0:
                self.live.discard(order_id)

    async def _wait(self, future: asyncio.Future[Result], forget: Callable[[], object]) -> Result:
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            forget()
            return Result(Outcome.ERROR, "timeout")

    async def place(self, wallet_id: str, order: Place) -> Result:
        if self.client.closed_by_peer:
            return Result(Outcome.ERROR, "disconnected")
        market = self.config.markets[order.market]
        order_id = next(self._order_ids)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._new[order_id] = (future, order.rests)
        limit = order.kind in (OrderKind.LIMIT, OrderKind.STOP_LIMIT)
        self.client.session.new_order(
            order.side,
            market.market_id,
            order_id,
            float(order.quantity * market.lot_size),
            float(order.price * market.tick_size) if limit else 0.0,
            stop_price=float(order.stop_price * market.tick_size),
            tip_quantity=float(order.display_quantity * market.lot_size),
            time_in_force=order.time_in_force,
            post_only=order.post_only,
        )
        self.client.flush()
        return await self._wait(future, lambda: self._new.pop(order_id, None))

    async def cancel(self, wallet_id: str, cancel: Cancel) -> Result:
        if self.client.closed_by_peer:
            return Result(Outcome.ERROR, "disconnected")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._cancels[cancel.ref] = future
        self.client.session.cancel(self.config.markets[cancel.market].market_id, cancel.ref)
        self.client.flush()
        return await self._wait(future, lambda: self._cancels.pop(cancel.ref, None))

    async def deposit(self, wallet_id: str, deposit: Deposit) -> Result:
        raise Unsupported("MTF carries orders only")

    async def withdraw(self, wallet_id: str, withdrawal: Withdraw) -> Result:
        raise Unsupported("MTF carries orders only")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.session.logout()
            self.client.flush()
        await self.client.close()
        self._router.cancel()
        await asyncio.gather(self._router, return_exceptions=True)


Edge = InprocEdge | RestEdge | MtfMember


class Subscriber:
    """A feed client for the whole run: subscribes, then counts what arrives."""

    def __init__(
        self,
        url: str,
        channels: list[str],
        encoding: str,
        figures: FeedFigures,
        started_at: float,
        bin_s: float = 1.0,
    ) -> None:
        self.url = url
        self.channels = channels
        self.encoding = encoding
        self.figures = figures
        self.started_at = started_at  # time.monotonic() of the run's start
        self.bin_s = bin_s
        self.stopping = asyncio.Event()
        self.subscribed = asyncio.Event()
        self._sequences: dict[str, int] = {}
        self._connection: websockets.ClientConnection | None = None

    def _decode(self, data: str | bytes) -> Any:
        if isinstance(data, bytes):
            return cbor2.loads(data)
        return msgspec.json.decode(data)

    def _encode(self, message: dict[str, Any]) -> str | bytes:
        if self.encoding == "cbor":
            return bytes(cbor2.dumps(message))
        return msgspec.json.encode(message).decode()

    async def run(self) -> None:
        figures = self.figures
        figures.connections += 1
        try:
            async with websockets.connect(
                self.url,
                subprotocols=[websockets.Subprotocol("cbor")] if self.encoding == "cbor" else None,
                open_timeout=20,
                max_size=None,
            ) as connection:
                self._connection = connection
                await connection.send(self._encode({"op": "subscribe", "channels": self.channels}))
                async for data in connection:
                    self._message(self._decode(data))
            if not self.stopping.is_set():
                figures.closed_early += 1
        except websockets.ConnectionClosed:
            if not self.stopping.is_set():
                figures.closed_early += 1
        except (OSError, TimeoutError, websockets.InvalidHandshake):
            figures.failed += 1
        finally:
            self.subscribed.set()  # never leave a waiter hanging

    async def stop(self) -> None:
        self.stopping.set()
        if self._connection is not None:
            await self._connection.close()

    def _message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        kind = str(message.get("type"))
        figures = self.figures
        now = time.monotonic()
        figures.messages[kind] += 1
        figures.per_bin[int((now - self.started_at) // self.bin_s)] += 1
        if kind == "subscribed":
            figures.connected += 1
            self.subscribed.set()
        elif kind == "book":
            market = str(message.get("market"))
            sequence = int(message.get("seq", 0))
            previous = self._sequences.get(market)
            if not message.get("snapshot") and previous is not None and sequence != previous + 1:
                figures.gaps += 1
            self._sequences[market] = sequence
        elif kind == "trade":
            lag_ms = time.time() * 1_000 - float(message.get("ts", 0))
            figures.trade_lag.record_value(max(1, round(lag_ms * 1_000)))
            figures.lag_bins[int((now - self.started_at) // self.bin_s)].append(lag_ms)
