"""What each actor does with a batch, whatever runtime hosts it.

A shell wraps the behaviours of one actor (a book; the clearing and custody desk of the
ledger; the vaults of a shard) and turns one mailbox batch into `Effects`: the messages
to tell other actors (by `Route`), the journal unit to commit, the replies that need no
commit. The runtime performs them: `runtime/pykka.py` with actor references and the
bridge to the event loop, `runtime/sim.py` with a seeded scheduler and an in-memory
journal. Both run exactly this routing, so a deterministic simulation tests the
production paths and not a copy of them.

Pure like the behaviours: no I/O, no threads; clocks are injected.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from strongroom.actors.book import OrderBook
from strongroom.actors.clearing import Clearing
from strongroom.actors.messages import (
    Admitted,
    BookBatch,
    BookCommand,
    BookResults,
    CancelOrder,
    CancelRequest,
    DepositRequest,
    DepositStateRequest,
    JournalUnit,
    OrderRequest,
    OrdersEnded,
    PlaceOrder,
    Refused,
    ReplaceAdmitted,
    ReplaceOrder,
    ReplaceRequest,
)
from strongroom.actors.system import MarketTop, shard_of
from strongroom.actors.vault import Vault
from strongroom.config import TradingConfig
from strongroom.custody.desk import CompleteTransfer, Custody, CustodyCommand, TransferRequest

# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Inspect:
    """Run `function(behaviour)` inside the actor and reply with its result (reads only)."""

    token: int
    function: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class InspectCustody(Inspect):
    """`Inspect` of the custody desk hosted in the ledger actor."""


@dataclass(frozen=True, slots=True)
class RestoreOpenOrder:
    wallet_id: str
    order_id: int
    market: str


# --------------------------------------------------------------------------- effects


class Route(NamedTuple):
    """Where a message goes: the ledger, the book of a market, or a vault shard by index."""

    kind: str  # "ledger", "book", "shard"
    key: str | int = ""


LEDGER = Route("ledger")


def book_route(market: str) -> Route:
    return Route("book", market)


def shard_route(index: int) -> Route:
    return Route("shard", index)


@dataclass(slots=True)
class Effects:
    """What one batch asks of the runtime.

    `inspected` are answers to `Inspect` (read at their place in the batch); `commit` the
    batch's journal unit, whose own replies leave after its commit; `sends` the batches
    told to other actors, in order; `replies` answers that changed nothing.
    """

    sends: list[tuple[Route, tuple[Any, ...]]] = field(default_factory=list)
    commit: JournalUnit | None = None
    replies: list[tuple[int, Any]] = field(default_factory=list)
    inspected: list[tuple[int, Any]] = field(default_factory=list)


def merge(units: list[JournalUnit]) -> JournalUnit:
    if len(units) == 1:
        return units[0]
    merged = JournalUnit([], [], [], [], {}, [])
    for unit in units:
        merged.transfers.extend(unit.transfers)
        merged.orders.extend(unit.orders)
        merged.trades.extend(unit.trades)
        merged.deposits.extend(unit.deposits)
        merged.sequences.update(unit.sequences)
        merged.replies.extend(unit.replies)
        merged.results.extend(unit.results)
        merged.wallet_transfers.extend(unit.wallet_transfers)
        merged.withdrawals.extend(unit.withdrawals)
        merged.payments.extend(unit.payments)
        merged.events.extend(unit.events)
    return merged


# --------------------------------------------------------------------------- shells


class BookShell:
    """A market's book: matches each command of a batch, tells the ledger the results."""

    def __init__(
        self, market: str, book: OrderBook, top: MarketTop, clock_ns: Callable[[], int]
    ) -> None:
        self.market = market
        self.book = book
        self.top = top
        self.clock_ns = clock_ns

    def receive(self, message: tuple[Any, ...]) -> Effects:
        effects = Effects()
        results: list[tuple[int, BookCommand, tuple[Any, ...]]] = []
        handle = self.book.handle
        for item in message:
            if isinstance(item, BookBatch):
                for token, command in item.commands:
                    results.append((token, command, tuple(handle(command))))
            elif isinstance(item, Inspect):
                effects.inspected.append((item.token, item.function(self.book)))
        if not results:
            return effects
        top = self.top
        top.best_bid, top.best_ask, top.last_price = (
            self.book.best_bid(),
            self.book.best_ask(),
            self.book.last_price,
        )
        effects.sends.append(
            (
                LEDGER,
                (BookResults(self.market, tuple(results), self.book.sequence, self.clock_ns()),),
            )
        )
        return effects


class LedgerShell:
    """The clearing (holds, settlement, deposits) and the custody desk of the ledger actor."""

    def __init__(
        self,
        clearing: Clearing,
        custody: Custody,
        clock_ns: Callable[[], int],
        shards: int,
    ) -> None:
        self.clearing = clearing
        self.custody = custody
        self.clock_ns = clock_ns
        self.shards = shards

    def start(self) -> Effects:
        """Transfers received before a restart and not completed: complete them now."""
        effects = Effects()
        pending = tuple(self.custody.transfers)
        if pending:
            at_ns = self.clock_ns()
            effects.sends.append((LEDGER, tuple(CompleteTransfer(i, at_ns) for i in pending)))
        return effects

    def receive(self, message: tuple[Any, ...]) -> Effects:
        effects = Effects()
        clearing = self.clearing
        to_books: defaultdict[str, list[tuple[int, BookCommand]]] = defaultdict(list)
        units: list[JournalUnit] = []
        replies = effects.replies
        ended: list[tuple[str, int]] = []
        refused: list[tuple[str, int]] = []
        received: list[int] = []
        top_ups = JournalUnit([], [], [], [], {}, [])
        for item in message:
            if isinstance(item, Admitted):
                refusal = clearing.admit(item)
                request = item.request
                if refusal is None:
                    to_books[request.market].append((request.token, PlaceOrder(item.order)))
                else:
                    replies.append((request.token, refusal))
                    refused.append((request.wallet_id, request.order_id))
            elif isinstance(item, ReplaceAdmitted):
                replace = item.request
                refusal = clearing.admit_replace(item, top_ups)
                if refusal is None:
                    command = ReplaceOrder(
                        replace.order_id, replace.wallet_id, replace.price, replace.quantity
                    )
                    to_books[item.market].append((replace.token, command))
                else:
                    replies.append((replace.token, refusal))
            elif isinstance(item, BookResults):
                unit, finished = clearing.settle(item)
                units.append(unit)
                ended.extend(finished)
            elif isinstance(item, DepositRequest | DepositStateRequest):
                outcome = (
                    clearing.deposit(item)
                    if isinstance(item, DepositRequest)
                    else clearing.deposit_state(item)
                )
                if isinstance(outcome, JournalUnit):
                    units.append(outcome)
                else:
                    replies.append((item.token, outcome))
            elif isinstance(item, CustodyCommand):
                outcome = self.custody.handle(item)
                if isinstance(outcome, JournalUnit):
                    units.append(outcome)
                    if isinstance(item, TransferRequest) and not item.instant:
                        received.append(item.transfer.transfer_id)
                elif outcome is not None and not isinstance(item, CompleteTransfer):
                    replies.append((item.token, outcome))
            elif isinstance(item, InspectCustody):
                effects.inspected.append((item.token, item.function(self.custody)))
            elif isinstance(item, Inspect):
                effects.inspected.append((item.token, item.function(clearing)))
        if received:  # completed in a later unit: the receipt commits first
            at_ns = self.clock_ns()
            effects.sends.append((LEDGER, tuple(CompleteTransfer(i, at_ns) for i in received)))
        if top_ups.transfers:
            units.append(top_ups)
        if units:
            effects.commit = merge(units)
        for market, commands in to_books.items():
            effects.sends.append((book_route(market), (BookBatch(market, tuple(commands)),)))
        if ended or refused:
            by_shard: defaultdict[int, tuple[list[tuple[str, int]], list[tuple[str, int]]]] = (
                defaultdict(lambda: ([], []))
            )
            for wallet_id, order_id in ended:
                by_shard[shard_of(wallet_id, self.shards)][0].append((wallet_id, order_id))
            for wallet_id, order_id in refused:
                by_shard[shard_of(wallet_id, self.shards)][1].append((wallet_id, order_id))
            for index, (orders, refusals) in by_shard.items():
                effects.sends.append(
                    (shard_route(index), (OrdersEnded(tuple(orders), tuple(refusals)),))
                )
        return effects


class VaultShardShell:
    """Hosts virtual vaults: activated on first message, passivated when idle."""

    def __init__(
        self,
        config: TradingConfig,
        tops: dict[str, MarketTop],
        *,
        idle_s: float = 60.0,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.tops = tops
        self.vaults: dict[str, Vault] = {}
        self.last_used: dict[str, float] = {}
        self.idle_s = idle_s
        self.clock_s = clock_s
        self.next_sweep_s = clock_s() + idle_s

    def vault(self, wallet_id: str, now_s: float) -> Vault:
        vault = self.vaults.get(wallet_id)
        if vault is None:
            vault = self.vaults[wallet_id] = Vault(wallet_id, self.config)
        self.last_used[wallet_id] = now_s
        return vault

    def receive(self, message: tuple[Any, ...]) -> Effects:
        effects = Effects()
        now_s = self.clock_s()
        admitted: list[Admitted | ReplaceAdmitted] = []
        cancels: defaultdict[str, list[tuple[int, BookCommand]]] = defaultdict(list)
        replies = effects.replies
        for item in message:
            if isinstance(item, OrderRequest):
                top = self.tops.get(item.market)
                outcome = self.vault(item.wallet_id, now_s).admit(
                    item, top.best_ask if top is not None else None
                )
                if isinstance(outcome, Admitted):
                    admitted.append(outcome)
                else:
                    replies.append((item.token, outcome))
            elif isinstance(item, CancelRequest | ReplaceRequest):
                market = self.vault(item.wallet_id, now_s).open_orders.get(item.order_id)
                if market is None:
                    refusal = Refused("order_not_open", f"order {item.order_id} is not open")
                    replies.append((item.token, refusal))
                elif isinstance(item, CancelRequest):
                    cancels[market].append((item.token, CancelOrder(item.order_id, item.wallet_id)))
                else:
                    admitted.append(ReplaceAdmitted(item, market))
            elif isinstance(item, OrdersEnded):
                for wallet_id, order_id in item.orders:
                    vault = self.vaults.get(wallet_id)
                    if vault is not None:
                        vault.ended(order_id)
                for wallet_id, order_id in item.refused:
                    vault = self.vaults.get(wallet_id)
                    if vault is not None:
                        vault.refused(order_id)
            elif isinstance(item, RestoreOpenOrder):
                self.vault(item.wallet_id, now_s).open_orders[item.order_id] = item.market
            elif isinstance(item, Inspect):
                effects.inspected.append((item.token, item.function(self.vaults)))
        if admitted:
            effects.sends.append((LEDGER, tuple(admitted)))
        for market, commands in cancels.items():
            effects.sends.append((book_route(market), (BookBatch(market, tuple(commands)),)))
        if now_s >= self.next_sweep_s:
            self.passivate(now_s)
        return effects

    def passivate(self, now_s: float) -> None:
        self.next_sweep_s = now_s + self.idle_s
        for wallet_id in [
            wallet_id
            for wallet_id, used_s in self.last_used.items()
            if now_s - used_s >= self.idle_s and self.vaults[wallet_id].idle
        ]:
            del self.vaults[wallet_id]
            del self.last_used[wallet_id]
