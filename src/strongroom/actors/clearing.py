"""Clearing: the behaviour hosted with the Ledger in the ledger actor.

It takes the holds vaults ask for, turns the books' events into settlement transfers
and order states, and packs every effect of a batch into one `JournalUnit`, the
atomic piece the journal commits before anything is acknowledged.

A hold is applied to the in-memory ledger when the order is admitted but reaches the
journal only with the book's result for that order, in the same unit, so a crash
can never leave a hold without its order or a fill without its hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Admitted,
    BookResults,
    CancelOrder,
    DepositRequest,
    DepositState,
    JournalUnit,
    OrderAccepted,
    OrderCanceled,
    OrderPending,
    OrderRejected,
    OrderReplaced,
    OrderRested,
    OrderState,
    OrderTriggered,
    PlaceOrder,
    Posting,
    Refused,
    Reply,
    Trade,
    TradeRecord,
    Transfer,
    TransferApplied,
    TransferDuplicate,
    TransferRejected,
)
from strongroom.actors.vault import asset_account, main_account, settlement
from strongroom.config import TradingConfig


class ClearingError(AssertionError):
    """An effect the books promised could not be settled: a bug, never user input."""


class Clearing:
    def __init__(self, config: TradingConfig, ledger: Ledger, *, next_transfer_id: int = 1) -> None:
        self.config = config
        self.ledger = ledger
        self.orders: dict[int, OrderState] = {}
        self.deposits: dict[str, DepositState] = {}
        self._holds_not_journaled: dict[int, Transfer] = {}
        self._next_transfer_id = next_transfer_id

    # ------------------------------------------------------------------ recovery

    def restore(self, orders: Iterable[OrderState], deposits: Iterable[DepositState]) -> None:
        for order in orders:
            self.orders[order.order_id] = order
        for deposit in deposits:
            self.deposits[deposit.tid] = deposit

    # ------------------------------------------------------------------ orders

    def admit(self, admitted: Admitted) -> Refused | None:
        """Hold the funds of an admitted order; None means it may go to its book."""
        request = admitted.request
        if admitted.hold is not None:
            transfer = self._transfer("hold", (admitted.hold,))
            outcome = self.ledger.apply(transfer)
            if isinstance(outcome, TransferRejected):
                self._next_transfer_id -= 1  # the id was never used
                return Refused("insufficient_funds", "not enough available balance for the hold")
            self._holds_not_journaled[request.order_id] = transfer
        self.orders[request.order_id] = OrderState(
            order_id=request.order_id,
            wallet_id=request.wallet_id,
            market=request.market,
            side=request.side,
            kind=request.kind,
            price=admitted.order.price,
            quantity=request.quantity,
            stop_price=request.stop_price,
            display_quantity=request.display_quantity,
            time_in_force=request.time_in_force,
            post_only=request.post_only,
            external_id=request.external_id,
            fingerprint=request.fingerprint,
            status="new",
            filled=0,
            funds=0,
            remaining=request.quantity,
            visible=0,
            priority=0,
            created_ns=request.at_ns,
            updated_ns=request.at_ns,
        )
        return None

    def settle(self, results: BookResults) -> tuple[JournalUnit, list[tuple[str, int]]]:
        """One unit for a batch of book results, and the orders that ended in it."""
        unit = JournalUnit([], [], [], [], {results.market: results.sequence}, [])
        touched: dict[int, OrderState] = {}
        ended: list[tuple[str, int]] = []
        at_ns = results.at_ns

        def update(order_id: int, **changes: object) -> OrderState:
            state = touched.get(order_id) or self.orders[order_id]
            state = replace(state, updated_ns=at_ns, **changes)  # type: ignore[arg-type]
            touched[order_id] = state
            self.orders[order_id] = state
            return state

        def end(order_id: int, **changes: object) -> None:
            changes.update(remaining=0, visible=0)
            state = update(order_id, **changes)
            release = self.ledger.release_postings(order_id)
            if release:
                self._apply(unit, "release", release)
            del self.orders[order_id]
            ended.append((state.wallet_id, order_id))

        market = self.config.markets[results.market]
        for token, command, events in results.results:
            if isinstance(command, PlaceOrder):
                hold = self._holds_not_journaled.pop(command.order.order_id, None)
                if hold is not None:
                    unit.transfers.append(hold)
            for event in events:
                if isinstance(event, Trade):
                    self._apply(
                        unit,
                        "trade",
                        settlement(market, self.config.currencies, self.config.fees, event),
                        key=f"trade:{market.symbol}:{event.trade_id}",
                    )
                    notional = market.quote_minor(event.price, event.quantity)
                    unit.trades.append(
                        TradeRecord(
                            market.symbol,
                            event.trade_id,
                            event.price,
                            event.quantity,
                            event.taker_side,
                            event.maker_order_id,
                            event.taker_order_id,
                            at_ns,
                        )
                    )
                    for order_id, remaining in (
                        (event.maker_order_id, event.maker_remaining),
                        (event.taker_order_id, event.taker_remaining),
                    ):
                        state = touched.get(order_id) or self.orders[order_id]
                        changes = {
                            "filled": state.filled + event.quantity,
                            "funds": state.funds + notional,
                            "remaining": remaining,
                            "visible": max(0, state.visible - event.quantity),
                        }
                        if remaining == 0:
                            end(order_id, status="filled", **changes)
                        else:
                            update(order_id, **changes)
                elif isinstance(event, OrderAccepted):
                    update(event.order_id, status="open")
                elif isinstance(event, OrderRested):
                    update(
                        event.order_id,
                        status="open",
                        price=event.price,
                        remaining=event.remaining,
                        visible=event.visible,
                        priority=event.priority,
                    )
                elif isinstance(event, OrderCanceled):
                    end(event.order_id, status="canceled", reason=event.reason.name.lower())
                elif isinstance(event, OrderRejected):
                    if isinstance(command, PlaceOrder):
                        end(event.order_id, status="rejected", reason=event.reason.name.lower())
                elif isinstance(event, OrderPending):
                    update(event.order_id, status="pending")
                elif isinstance(event, OrderTriggered):
                    update(event.order_id, status="open")
                elif isinstance(event, OrderReplaced):
                    update(
                        event.order_id,
                        price=event.price,
                        quantity=event.quantity,
                        remaining=event.remaining,
                    )
            if token:
                unit.replies.append((token, self._reply(command, events, touched)))
        unit.orders.extend(touched.values())
        return unit, ended

    def _reply(
        self, command: object, events: tuple[object, ...], touched: dict[int, OrderState]
    ) -> Reply:
        if isinstance(command, PlaceOrder):
            return touched[command.order.order_id]
        if isinstance(command, CancelOrder):
            state = touched.get(command.order_id)
            if state is None:
                return Refused("order_not_open", f"order {command.order_id} is not open")
            return state
        rejected = next((e for e in events if isinstance(e, OrderRejected)), None)
        order_id = getattr(command, "order_id", 0)
        if rejected is not None or order_id not in touched:
            return Refused("order_not_open", f"order {order_id} cannot be replaced")
        return touched[order_id]

    # ------------------------------------------------------------------ deposits

    def deposit(self, request: DepositRequest) -> JournalUnit | Reply:
        """A deposit by its tid: credited once when accepted, whatever the retries."""
        existing = self.deposits.get(request.tid)
        if existing is not None:
            if existing.fingerprint != request.fingerprint:
                return Refused(
                    "idempotency_conflict", f"tid {request.tid} was used with other content"
                )
            return existing
        unit = JournalUnit([], [], [], [], {}, [])
        transfer_id: int | None = None
        if request.accept:
            currency = self.config.currencies[request.currency]
            posting = Posting(
                asset_account(currency), main_account(currency, request.wallet_id), request.amount
            )
            transfer_id = self._apply(unit, "deposit", (posting,), key=f"deposit:{request.tid}")
        state = DepositState(
            deposit_id=request.deposit_id,
            tid=request.tid,
            wallet_id=request.wallet_id,
            currency=request.currency,
            amount=request.amount,
            state="accepted" if request.accept else "submitted",
            fingerprint=request.fingerprint,
            transfer_id=transfer_id,
            created_ns=request.at_ns,
            completed_ns=request.at_ns if request.accept else None,
        )
        self.deposits[request.tid] = state
        unit.deposits.append(state)
        unit.replies.append((request.token, state))
        return unit

    # ------------------------------------------------------------------ helpers

    def _transfer(
        self, kind: str, postings: tuple[Posting, ...], key: str | None = None
    ) -> Transfer:
        transfer = Transfer(self._next_transfer_id, kind, postings, key)
        self._next_transfer_id += 1
        return transfer

    def _apply(
        self, unit: JournalUnit, kind: str, postings: tuple[Posting, ...], key: str | None = None
    ) -> int:
        transfer = self._transfer(kind, postings, key)
        outcome = self.ledger.apply(transfer)
        if isinstance(outcome, TransferDuplicate):
            return outcome.first.transfer_id
        if not isinstance(outcome, TransferApplied):
            raise ClearingError(f"{kind} transfer refused: {outcome}")
        unit.transfers.append(transfer)
        return transfer.transfer_id
