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

import msgspec

from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Admitted,
    BookCommand,
    BookEvent,
    BookResults,
    CancelOrder,
    DepositRequest,
    DepositState,
    DepositStateRequest,
    JournalUnit,
    OrderAccepted,
    OrderCanceled,
    OrderFields,
    OrderPending,
    OrderRejected,
    OrderReplaced,
    OrderRested,
    OrderState,
    OrderTriggered,
    PlaceOrder,
    Posting,
    Refused,
    RejectReason,
    ReplaceAdmitted,
    ReplaceOrder,
    Reply,
    Trade,
    TradeRecord,
    Transfer,
    TransferDuplicate,
    TransferRejected,
)
from strongroom.actors.vault import (
    asset_account,
    hold_needed,
    locked_account,
    main_account,
    settlement,
)
from strongroom.config import TradingConfig

# Deposit states (seed 002) as a table: (from, to) → whether the money is credited.
DEPOSIT_TRANSITIONS: dict[tuple[str, str], bool] = {
    ("submitted", "accepted"): True,
    ("submitted", "canceled"): False,
    ("submitted", "rejected"): False,
}


class OrderRecord(OrderFields):
    """The clearing's mutable record of a live order; only `snapshot()`s leave it."""

    @classmethod
    def of(cls, state: OrderState) -> OrderRecord:
        return cls(*msgspec.structs.astuple(state))

    def snapshot(self) -> OrderState:
        return OrderState(*msgspec.structs.astuple(self))


class ClearingError(AssertionError):
    """An effect the books promised could not be settled: a bug, never user input."""


class Clearing:
    def __init__(self, config: TradingConfig, ledger: Ledger, *, next_transfer_id: int = 1) -> None:
        self.config = config
        self.ledger = ledger
        self.orders: dict[int, OrderRecord] = {}
        self.deposits: dict[str, DepositState] = {}
        # Holds applied in memory, journaled with the book's result for their order.
        self._holds_not_journaled: dict[int, Transfer] = {}
        # Order id → (price, quantity) of each replace on its way to the book, in order.
        self._replacing: dict[int, list[tuple[int, int]]] = {}
        self._next_transfer_id = next_transfer_id

    # ------------------------------------------------------------------ recovery

    def restore(self, orders: Iterable[OrderState], deposits: Iterable[DepositState]) -> None:
        for order in orders:
            self.orders[order.order_id] = OrderRecord.of(order)
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
        self.orders[request.order_id] = OrderRecord(
            request.order_id, request.wallet_id, request.market, request.side, request.kind,
            admitted.order.price, request.quantity, request.stop_price,
            request.display_quantity, request.time_in_force, request.post_only,
            request.external_id, request.fingerprint, status="new", filled=0, funds=0,
            remaining=request.quantity, visible=0, priority=0, created_ns=request.at_ns,
            updated_ns=request.at_ns,
        )  # fmt: skip
        return None

    def settle(self, results: BookResults) -> tuple[JournalUnit, list[tuple[str, int]]]:
        """One unit for a batch of book results, and the orders that ended in it."""
        unit = JournalUnit([], [], [], [], {results.market: results.sequence}, [], [results])
        touched: dict[int, OrderRecord] = {}
        ended: list[tuple[str, int]] = []
        at_ns = results.at_ns
        orders = self.orders

        def record(order_id: int) -> OrderRecord:
            order = touched.get(order_id)
            if order is None:
                order = touched[order_id] = orders[order_id]
                order.updated_ns = at_ns
            return order

        def end(order: OrderRecord, status: str, reason: str = "") -> None:
            order.status, order.reason, order.remaining, order.visible = status, reason, 0, 0
            release = self.ledger.release_postings(order.order_id)
            if release:
                self._apply(unit, "release", release)
            del orders[order.order_id]
            ended.append((order.wallet_id, order.order_id))

        market = self.config.markets[results.market]
        for token, command, events in results.results:
            if isinstance(command, PlaceOrder):
                hold = self._holds_not_journaled.pop(command.order.order_id, None)
                if hold is not None:
                    unit.transfers.append(hold)
            for event in events:
                if isinstance(event, Trade):
                    # No idempotency key: a trade id is settled once by construction, and
                    # the trades table's key guards it in the same transaction.
                    self._apply(
                        unit,
                        "trade",
                        settlement(market, self.config.currencies, self.config.fees, event),
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
                        order = record(order_id)
                        order.filled += event.quantity
                        order.funds += notional
                        order.remaining = remaining
                        order.visible = max(0, order.visible - event.quantity)
                        if remaining == 0:
                            end(order, "filled")
                elif isinstance(event, OrderAccepted | OrderTriggered):
                    record(event.order_id).status = "open"
                elif isinstance(event, OrderRested):
                    order = record(event.order_id)
                    order.status = "open"
                    order.price = event.price
                    order.remaining = event.remaining
                    order.visible = event.visible
                    order.priority = event.priority
                elif isinstance(event, OrderCanceled):
                    end(record(event.order_id), "canceled", event.reason.name.lower())
                elif isinstance(event, OrderRejected):
                    if isinstance(command, PlaceOrder):
                        end(record(event.order_id), "rejected", event.reason.name.lower())
                elif isinstance(event, OrderPending):
                    order = record(event.order_id)
                    order.status = "pending"
                    order.priority = event.priority  # orders stops of one stop price
                elif isinstance(event, OrderReplaced):
                    order = record(event.order_id)
                    order.price = event.price
                    order.quantity = event.quantity
                    order.remaining = event.remaining
                    order.visible = min(order.visible, event.remaining)
            if isinstance(command, ReplaceOrder):
                if command.order_id in orders:
                    self._release_excess(unit, orders[command.order_id])
                else:
                    self._replacing.pop(command.order_id, None)  # ended: nothing held
            if token:
                unit.replies.append((token, self._reply(command, events, touched, orders)))
        unit.orders.extend(order.snapshot() for order in touched.values())
        return unit, ended

    def admit_replace(self, admitted: ReplaceAdmitted, unit: JournalUnit) -> Refused | None:
        """Top up the hold if the new terms need more; None means it may go to its book.

        The top-up goes into `unit`, journaled at once: a cancel that overtakes the replace
        releases the whole hold, top-up included, and its unit must not reach the journal
        before the top-up does. What the new terms need less of is released once the book
        has answered (`_release_excess`), so a refused replace never leaves funds unheld.
        """
        request = admitted.request
        order = self.orders.get(request.order_id)
        if order is None or order.wallet_id != request.wallet_id or order.status != "open":
            return Refused("order_not_open", f"order {request.order_id} is not open")
        if request.quantity - order.filled <= 0:
            return Refused("invalid_quantity", "quantity must be above what is already filled")
        replacing = [*self._replacing.get(order.order_id, ()), (request.price, request.quantity)]
        currency_code, needed = self._hold_for(order, replacing)
        missing = needed - self.ledger.hold_remaining(order.order_id)
        if missing > 0:
            currency = self.config.currencies[currency_code]
            posting = Posting(
                main_account(currency, order.wallet_id),
                locked_account(currency, order.wallet_id),
                missing,
                order.order_id,
            )
            transfer = self._transfer("hold", (posting,))
            if isinstance(self.ledger.apply(transfer), TransferRejected):
                self._next_transfer_id -= 1
                return Refused(
                    "insufficient_funds", "not enough available balance for the new terms"
                )
            unit.transfers.append(transfer)
        self._replacing[order.order_id] = replacing
        return None

    def _hold_for(self, order: OrderRecord, replacing: list[tuple[int, int]]) -> tuple[str, int]:
        """What the order's hold must cover while `replacing` are on their way to its book.

        Until the book has answered the last of them, the order may still fill at the price
        it rests at now or at the price of any replace before the last, and up to the
        largest of their quantities: hold for the dearest price and the largest quantity.
        With nothing on its way, exactly what the live order needs.
        """
        market = self.config.markets[order.market]
        if not replacing:
            return hold_needed(market, order.side, order.price, order.remaining)
        price = max(order.price, *(price for price, _ in replacing))
        quantity = max(order.quantity, *(quantity for _, quantity in replacing))
        return hold_needed(market, order.side, price, quantity - order.filled)

    def _release_excess(self, unit: JournalUnit, order: OrderRecord) -> None:
        """After a replace (done or refused), hold what the order needs with the replaces
        still on their way to its book (`_hold_for`)."""
        replacing = self._replacing.get(order.order_id)
        if replacing:
            replacing.pop(0)  # this replace's own entry: replaces are answered in order
            if not replacing:
                del self._replacing[order.order_id]
        _, needed = self._hold_for(order, self._replacing.get(order.order_id, []))
        excess = self.ledger.hold_remaining(order.order_id) - needed
        account = self.ledger.hold_account(order.order_id)
        if excess > 0 and account is not None:
            main = main_account(self.config.currencies[account.currency], order.wallet_id)
            self._apply(unit, "release", (Posting(account, main, excess, order.order_id),))

    @staticmethod
    def _reply(
        command: BookCommand,
        events: tuple[BookEvent, ...],
        touched: dict[int, OrderRecord],
        orders: dict[int, OrderRecord],
    ) -> Reply:
        order_id = command.order.order_id if isinstance(command, PlaceOrder) else command.order_id
        order = touched.get(order_id) or orders.get(order_id)
        if isinstance(command, PlaceOrder):
            assert order is not None
            return order.snapshot()
        rejected = next((event for event in events if isinstance(event, OrderRejected)), None)
        if order is None or (
            rejected is not None and rejected.reason is RejectReason.UNKNOWN_ORDER
        ):
            verb = "canceled" if isinstance(command, CancelOrder) else "replaced"
            return Refused("order_not_open", f"order {order_id} cannot be {verb}: not open")
        if rejected is not None:
            return Refused(rejected.reason.name.lower(), f"order {order_id} cannot be replaced so")
        return order.snapshot()

    # ------------------------------------------------------------------ deposits

    def deposit(self, request: DepositRequest) -> JournalUnit | Reply:
        """A deposit by its tid: credited once when accepted, whatever the retries."""
        existing = self.deposits.get(request.tid)
        if existing is not None:
            if existing.fingerprint != request.fingerprint:
                return Refused(
                    "idempotency_conflict", f"tid {request.tid} was used with other content"
                )
            return self._after_commit(request.token, existing)
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

    def deposit_state(self, request: DepositStateRequest) -> JournalUnit | Reply:
        deposit = self.deposits.get(request.tid)
        if deposit is None:
            return Refused("not_found", f"deposit {request.tid} not found")
        if deposit.state == request.state:
            # A repeat of the same change answers the first result.
            return self._after_commit(request.token, deposit)
        credit = DEPOSIT_TRANSITIONS.get((deposit.state, request.state))
        if credit is None:
            return Refused(
                "invalid_transition", f"a {deposit.state} deposit cannot become {request.state}"
            )
        unit = JournalUnit([], [], [], [], {}, [])
        transfer_id = None
        if credit:
            currency = self.config.currencies[deposit.currency]
            posting = Posting(
                asset_account(currency), main_account(currency, deposit.wallet_id), deposit.amount
            )
            transfer_id = self._apply(unit, "deposit", (posting,), key=f"deposit:{deposit.tid}")
        changed = DepositState(
            deposit.deposit_id, deposit.tid, deposit.wallet_id, deposit.currency,
            deposit.amount, request.state, deposit.fingerprint, transfer_id,
            deposit.created_ns, request.at_ns,
        )  # fmt: skip
        self.deposits[request.tid] = changed
        unit.deposits.append(changed)
        unit.replies.append((request.token, changed))
        return unit

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _after_commit(token: int, reply: Reply) -> JournalUnit:
        """A reply with no effects of its own that must not overtake the commit of the
        effects it reports (the first attempt may still be on its way to the journal)."""
        return JournalUnit([], [], [], [], {}, [(token, reply)])

    def _transfer(
        self, kind: str, postings: tuple[Posting, ...], key: str | None = None
    ) -> Transfer:
        transfer = Transfer(self._next_transfer_id, kind, postings, key)
        self._next_transfer_id += 1
        return transfer

    def try_apply(
        self, unit: JournalUnit, kind: str, postings: tuple[Posting, ...], key: str | None = None
    ) -> int | TransferRejected:
        """Apply a transfer into `unit`: its id (the first's for a duplicate key), or the
        ledger's rejection (nothing applied, no id used)."""
        transfer = self._transfer(kind, postings, key)
        outcome = self.ledger.apply(transfer)
        if isinstance(outcome, TransferDuplicate):
            self._next_transfer_id -= 1
            return outcome.first.transfer_id
        if isinstance(outcome, TransferRejected):
            self._next_transfer_id -= 1
            return outcome
        unit.transfers.append(transfer)
        return transfer.transfer_id

    def _apply(
        self, unit: JournalUnit, kind: str, postings: tuple[Posting, ...], key: str | None = None
    ) -> int:
        """`try_apply` of a transfer the books or the journal promised: a refusal is a bug."""
        outcome = self.try_apply(unit, kind, postings, key)
        if isinstance(outcome, TransferRejected):
            raise ClearingError(f"{kind} transfer refused: {outcome}")
        return outcome
