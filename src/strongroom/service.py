"""The trading service as the edges see it: async calls answered after commit."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from strongroom.actors.messages import (
    CancelRequest,
    DepositRequest,
    DepositStateRequest,
    OrderKind,
    OrderRequest,
    Refused,
    ReplaceRequest,
    Reply,
    Side,
    TimeInForce,
)
from strongroom.actors.runtime.pykka import Directory, Inspect, InspectCustody
from strongroom.actors.system import (
    ActorAddress,
    Bridge,
    ReplyCallback,
    UnitListener,
    shard_of,
)
from strongroom.config import TradingConfig
from strongroom.custody.desk import (
    Custody,
    Known,
    PaymentIncoming,
    PaymentRequest,
    PaymentsDue,
    TransferRequest,
    WithdrawalChange,
    WithdrawalRequest,
)
from strongroom.custody.payments import Payment
from strongroom.custody.transfers import WalletTransfer
from strongroom.custody.withdrawals import TrackedWithdrawal, WithdrawalEvent
from strongroom.errors import StrongroomError

T = TypeVar("T")
IN_FLIGHT_MAX = 50_000


class ServiceUnavailable(StrongroomError):
    code = "service_unavailable"


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """A new order as an edge validated it: ticks, lots, and the id it will carry."""

    order_id: int
    wallet_id: str
    market: str
    side: Side
    kind: OrderKind
    price: int
    quantity: int
    stop_price: int = 0
    display_quantity: int = 0
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    external_id: str | None = None
    fingerprint: str = ""


class Trading:
    def __init__(
        self,
        config: TradingConfig,
        bridge: Bridge,
        directory: Directory,
        *,
        next_order_id: int,
        next_deposit_id: int,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self._bridge = bridge
        self._directory = directory
        self._order_ids = itertools.count(next_order_id)
        self._deposit_ids = itertools.count(next_deposit_id)
        self._clock_ns = clock_ns
        self.accepting = True
        # Backpressure: mailboxes are unbounded, so the edge bounds what it lets in.
        self.in_flight_max = IN_FLIGHT_MAX

    def listen(self, listener: UnitListener) -> None:
        """Have `listener` called with every committed unit that settled book results."""
        self._bridge.listen(listener)

    def new_order_id(self) -> int:
        """An order id for `place_nowait` (edges that must know it before the reply)."""
        return next(self._order_ids)

    def _submit(
        self, address: ActorAddress, make: Callable[[int], Any], on_reply: ReplyCallback
    ) -> None:
        """Send a command; `on_reply` gets its reply on the loop, or None if none came in time."""
        if not self.accepting:
            raise ServiceUnavailable("the service is shutting down")
        if self._bridge.in_flight >= self.in_flight_max:
            raise ServiceUnavailable("too many commands in flight; retry shortly")
        self._bridge.send(address, make(self._bridge.expect(on_reply)))

    async def _call_with(self, send: Callable[[ReplyCallback], None]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_reply(reply: Any) -> None:
            if not future.done():
                future.set_result(reply)

        send(on_reply)
        reply = await future
        if reply is None:
            raise ServiceUnavailable("no answer in time; the command may still complete")
        return reply

    async def _call(self, address: ActorAddress, make: Callable[[int], Any]) -> Any:
        return await self._call_with(lambda on_reply: self._submit(address, make, on_reply))

    def _shard(self, wallet_id: str) -> ActorAddress:
        shards = self._directory.shards
        return shards[shard_of(wallet_id, len(shards))]

    def place_nowait(self, on_reply: ReplyCallback, terms: OrderTerms) -> None:
        at_ns = self._clock_ns()
        self._submit(
            self._shard(terms.wallet_id),
            lambda token: OrderRequest(
                token,
                terms.order_id,
                terms.wallet_id,
                terms.market,
                terms.side,
                terms.kind,
                terms.price,
                terms.quantity,
                terms.stop_price,
                terms.display_quantity,
                terms.time_in_force,
                terms.post_only,
                terms.external_id,
                terms.fingerprint,
                at_ns,
            ),
            on_reply,
        )

    def cancel_nowait(self, on_reply: ReplyCallback, wallet_id: str, order_id: int) -> None:
        at_ns = self._clock_ns()
        self._submit(
            self._shard(wallet_id),
            lambda token: CancelRequest(token, wallet_id, order_id, at_ns),
            on_reply,
        )

    def replace_nowait(
        self, on_reply: ReplyCallback, wallet_id: str, order_id: int, price: int, quantity: int
    ) -> None:
        at_ns = self._clock_ns()
        self._submit(
            self._shard(wallet_id),
            lambda token: ReplaceRequest(token, wallet_id, order_id, price, quantity, at_ns),
            on_reply,
        )

    async def place(
        self,
        *,
        wallet_id: str,
        market: str,
        side: Side,
        kind: OrderKind,
        price: int,
        quantity: int,
        stop_price: int = 0,
        display_quantity: int = 0,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        external_id: str | None = None,
        fingerprint: str = "",
    ) -> Reply:
        terms = OrderTerms(
            self.new_order_id(), wallet_id, market, side, kind, price, quantity, stop_price,
            display_quantity, time_in_force, post_only, external_id, fingerprint,
        )  # fmt: skip
        result: Reply = await self._call_with(lambda on_reply: self.place_nowait(on_reply, terms))
        return result

    async def cancel(self, wallet_id: str, order_id: int) -> Reply:
        result: Reply = await self._call_with(
            lambda on_reply: self.cancel_nowait(on_reply, wallet_id, order_id)
        )
        return result

    async def replace(self, wallet_id: str, order_id: int, price: int, quantity: int) -> Reply:
        result: Reply = await self._call_with(
            lambda on_reply: self.replace_nowait(on_reply, wallet_id, order_id, price, quantity)
        )
        return result

    async def deposit(
        self,
        *,
        tid: str,
        wallet_id: str,
        currency: str,
        amount: int,
        accept: bool,
        fingerprint: str,
    ) -> Reply:
        deposit_id = next(self._deposit_ids)
        at_ns = self._clock_ns()
        assert self._directory.ledger is not None
        result: Reply = await self._call(
            self._directory.ledger,
            lambda token: DepositRequest(
                token, deposit_id, tid, wallet_id, currency, amount, accept, fingerprint, at_ns
            ),
        )
        return result

    async def deposit_state(self, tid: str, state: str) -> Reply:
        at_ns = self._clock_ns()
        assert self._directory.ledger is not None
        result: Reply = await self._call(
            self._directory.ledger, lambda token: DepositStateRequest(token, tid, state, at_ns)
        )
        return result

    # ------------------------------------------------------------------ custody
    # Each answers the entity after the commit of its change, `Known` for a repeat of an
    # idempotency key with the same content (read the entity back), or `Refused`.

    def clock_ns(self) -> int:
        return self._clock_ns()

    async def _custody(self, make: Callable[[int], Any]) -> Any:
        assert self._directory.ledger is not None
        return await self._call(self._directory.ledger, make)

    async def transfer(
        self, transfer: WalletTransfer, *, instant: bool = False
    ) -> WalletTransfer | Known | Refused:
        """Receive a transfer (pending, completed later) or, `instant`, make it at once."""
        result: WalletTransfer | Known | Refused = await self._custody(
            lambda token: TransferRequest(token, transfer, instant)
        )
        return result

    async def withdraw(self, tracked: TrackedWithdrawal) -> TrackedWithdrawal | Known | Refused:
        """Accept a prepared withdrawal: its total is held, or it is refused."""
        result: TrackedWithdrawal | Known | Refused = await self._custody(
            lambda token: WithdrawalRequest(token, tracked)
        )
        return result

    async def withdrawal_change(
        self,
        withdrawal_id: int,
        event: WithdrawalEvent | None,
        *,
        txid: str | None = None,
        confirmations: int | None = None,
        reason: str | None = None,
    ) -> TrackedWithdrawal | Refused:
        at_ns = self._clock_ns()
        result: TrackedWithdrawal | Refused = await self._custody(
            lambda token: WithdrawalChange(
                token, withdrawal_id, at_ns, event, txid, confirmations, reason
            )
        )
        return result

    async def create_payment(self, payment: Payment) -> Payment | Known | Refused:
        result: Payment | Known | Refused = await self._custody(
            lambda token: PaymentRequest(token, payment)
        )
        return result

    async def payment_incoming(self, payment_id: int, txid: str, amount: int) -> Payment | Refused:
        at_ns = self._clock_ns()
        result: Payment | Refused = await self._custody(
            lambda token: PaymentIncoming(token, payment_id, txid, amount, at_ns)
        )
        return result

    async def payments_due(self) -> int:
        """Confirm or expire the payments due now; how many changed."""
        now_ns = self._clock_ns()
        result: int = await self._custody(lambda token: PaymentsDue(token, now_ns))
        return result

    async def inspect_custody(self, function: Callable[[Custody], T]) -> T:
        result: T = await self._custody(lambda token: InspectCustody(token, function))
        return result

    async def inspect_book(self, market: str, function: Callable[[Any], T]) -> T:
        result: T = await self._call(
            self._directory.books[market], lambda token: Inspect(token, function)
        )
        return result
