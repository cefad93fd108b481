"""The default runtime: each behaviour hosted by a pykka `ThreadingActor`.

Every mailbox message is a tuple: a batch. Actors only `tell`; nothing here waits on
another actor. Results reach the event loop through the `Bridge`.

An exception escaping a behaviour is a broken invariant, not bad input (edges and
behaviours refuse bad input with replies): the actor reports it to `fatal`, which
stops the process so that recovery rebuilds a consistent state from the journal.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pykka
from loguru import logger

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
    Reply,
)
from strongroom.actors.system import ActorAddress, Bridge, MarketTop, shard_of
from strongroom.actors.vault import Vault
from strongroom.config import TradingConfig
from strongroom.custody.desk import CompleteTransfer, Custody, CustodyCommand, TransferRequest

Fatal = Callable[[BaseException], None]


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


@dataclass(slots=True)
class Directory:
    """Addresses of every actor, filled in before the first command flows."""

    ledger: ActorAddress | None = None
    books: dict[str, ActorAddress] = field(default_factory=dict)
    shards: list[ActorAddress] = field(default_factory=list)


class _Actor(pykka.ThreadingActor):
    def __init__(self, bridge: Bridge, directory: Directory, fatal: Fatal) -> None:
        super().__init__()
        self.bridge = bridge
        self.directory = directory
        self.fatal = fatal

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        logger.opt(exception=exception_value).critical("actor failed", actor=self.actor_urn)
        self.fatal(exception_value or RuntimeError("actor failed"))

    def inspect(self, behaviour: Any, message: Inspect) -> None:
        self.bridge.reply_threadsafe([(message.token, message.function(behaviour))])

    def _ledger(self) -> ActorAddress:
        assert self.directory.ledger is not None
        return self.directory.ledger


class BookActor(_Actor):
    def __init__(
        self,
        market: str,
        book: OrderBook,
        top: MarketTop,
        bridge: Bridge,
        directory: Directory,
        fatal: Fatal,
        clock_ns: Callable[[], int],
    ) -> None:
        super().__init__(bridge, directory, fatal)
        self.market = market
        self.book = book
        self.top = top
        self.clock_ns = clock_ns

    def on_receive(self, message: Any) -> None:
        results: list[tuple[int, BookCommand, tuple[Any, ...]]] = []
        handle = self.book.handle
        for item in message:
            if isinstance(item, BookBatch):
                for token, command in item.commands:
                    results.append((token, command, tuple(handle(command))))
            elif isinstance(item, Inspect):
                self.inspect(self.book, item)
        if not results:
            return
        top = self.top
        top.best_bid, top.best_ask, top.last_price = (
            self.book.best_bid(),
            self.book.best_ask(),
            self.book.last_price,
        )
        self._ledger().tell(
            (BookResults(self.market, tuple(results), self.book.sequence, self.clock_ns()),)
        )


class LedgerActor(_Actor):
    def __init__(
        self,
        clearing: Clearing,
        custody: Custody,
        bridge: Bridge,
        directory: Directory,
        fatal: Fatal,
        clock_ns: Callable[[], int],
    ) -> None:
        super().__init__(bridge, directory, fatal)
        self.clearing = clearing
        self.custody = custody
        self.clock_ns = clock_ns

    def on_start(self) -> None:
        """Transfers received before a restart and not completed: complete them now."""
        pending = tuple(self.custody.transfers)
        if pending:
            at_ns = self.clock_ns()
            self.actor_ref.tell(tuple(CompleteTransfer(i, at_ns) for i in pending))

    def on_receive(self, message: Any) -> None:
        clearing = self.clearing
        to_books: defaultdict[str, list[tuple[int, BookCommand]]] = defaultdict(list)
        units: list[JournalUnit] = []
        replies: list[tuple[int, Reply]] = []
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
                self.inspect(self.custody, item)
            elif isinstance(item, Inspect):
                self.inspect(clearing, item)
        if received:  # completed in a later unit: the receipt commits first
            at_ns = self.clock_ns()
            self.actor_ref.tell(tuple(CompleteTransfer(i, at_ns) for i in received))
        if top_ups.transfers:
            units.append(top_ups)
        if units:
            self.bridge.commit_threadsafe(merge(units))
        for market, commands in to_books.items():
            self.directory.books[market].tell((BookBatch(market, tuple(commands)),))
        self.bridge.reply_threadsafe(replies)
        if ended or refused:
            shards = self.directory.shards
            by_shard: defaultdict[int, tuple[list[tuple[str, int]], list[tuple[str, int]]]] = (
                defaultdict(lambda: ([], []))
            )
            for wallet_id, order_id in ended:
                by_shard[shard_of(wallet_id, len(shards))][0].append((wallet_id, order_id))
            for wallet_id, order_id in refused:
                by_shard[shard_of(wallet_id, len(shards))][1].append((wallet_id, order_id))
            for index, (orders, refusals) in by_shard.items():
                shards[index].tell((OrdersEnded(tuple(orders), tuple(refusals)),))


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


class VaultShardActor(_Actor):
    """Hosts virtual vaults: activated on first message, passivated when idle."""

    def __init__(
        self,
        config: TradingConfig,
        tops: dict[str, MarketTop],
        bridge: Bridge,
        directory: Directory,
        fatal: Fatal,
        *,
        idle_s: float = 60.0,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(bridge, directory, fatal)
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

    def on_receive(self, message: Any) -> None:
        now_s = self.clock_s()
        admitted: list[Admitted | ReplaceAdmitted] = []
        cancels: defaultdict[str, list[tuple[int, BookCommand]]] = defaultdict(list)
        replies: list[tuple[int, Reply]] = []
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
                self.inspect(self.vaults, item)
        if admitted:
            self._ledger().tell(tuple(admitted))
        for market, commands in cancels.items():
            self.directory.books[market].tell((BookBatch(market, tuple(commands)),))
        self.bridge.reply_threadsafe(replies)
        if now_s >= self.next_sweep_s:
            self.passivate(now_s)

    def passivate(self, now_s: float) -> None:
        self.next_sweep_s = now_s + self.idle_s
        for wallet_id in [
            wallet_id
            for wallet_id, used_s in self.last_used.items()
            if now_s - used_s >= self.idle_s and self.vaults[wallet_id].idle
        ]:
            del self.vaults[wallet_id]
            del self.last_used[wallet_id]


@dataclass(slots=True)
class PykkaRuntime:
    directory: Directory
    actors: list[pykka.ActorRef[Any]]

    def stop(self, timeout_s: float = 10.0) -> None:
        for actor in self.actors:
            actor.stop(block=True, timeout=timeout_s)


def start(
    config: TradingConfig,
    clearing: Clearing,
    custody: Custody,
    books: dict[str, OrderBook],
    open_orders: Iterable[RestoreOpenOrder],
    bridge: Bridge,
    fatal: Fatal,
    *,
    shards: int = 4,
    vault_idle_s: float = 60.0,
    clock_ns: Callable[[], int] = time.time_ns,
) -> tuple[PykkaRuntime, dict[str, MarketTop]]:
    directory = Directory()
    tops = {market: MarketTop(book.best_bid(), book.best_ask(), book.last_price)
            for market, book in books.items()}  # fmt: skip
    actors: list[pykka.ActorRef[Any]] = []
    ledger = LedgerActor.start(clearing, custody, bridge, directory, fatal, clock_ns)
    actors.append(ledger)
    directory.ledger = ledger
    for market, book in books.items():
        reference: pykka.ActorRef[Any] = BookActor.start(
            market, book, tops[market], bridge, directory, fatal, clock_ns
        )
        directory.books[market] = reference
        actors.append(reference)
    for _ in range(shards):
        shard: pykka.ActorRef[Any] = VaultShardActor.start(
            config, tops, bridge, directory, fatal, idle_s=vault_idle_s
        )
        directory.shards.append(shard)
        actors.append(shard)
    by_shard: defaultdict[int, list[RestoreOpenOrder]] = defaultdict(list)
    for restore in open_orders:
        by_shard[shard_of(restore.wallet_id, shards)].append(restore)
    for index, restores in by_shard.items():
        directory.shards[index].tell(tuple(restores))
    return PykkaRuntime(directory, actors), tops
