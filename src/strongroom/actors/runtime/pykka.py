"""The default runtime: each behaviour hosted by a pykka `ThreadingActor`.

Every mailbox message is a tuple: a batch. What an actor does with a batch is its shell's
(`strongroom.actors.shells`, shared with the deterministic simulation); this module only
performs the shell's effects: tells to other actors' references, commits and replies
through the `Bridge`. Actors only `tell`; nothing here waits on another actor.

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
from strongroom.actors.shells import (
    BookShell,
    Effects,
    Inspect,
    InspectCustody,
    LedgerShell,
    RestoreOpenOrder,
    Route,
    VaultShardShell,
    merge,
)
from strongroom.actors.system import ActorAddress, Bridge, MarketTop, shard_of
from strongroom.config import TradingConfig
from strongroom.custody.desk import Custody

__all__ = [
    "BookActor",
    "Directory",
    "Fatal",
    "Inspect",
    "InspectCustody",
    "LedgerActor",
    "PykkaRuntime",
    "RestoreOpenOrder",
    "VaultShardActor",
    "merge",
    "start",
]

Fatal = Callable[[BaseException], None]


@dataclass(slots=True)
class Directory:
    """Addresses of every actor, filled in before the first command flows."""

    ledger: ActorAddress | None = None
    books: dict[str, ActorAddress] = field(default_factory=dict)
    shards: list[ActorAddress] = field(default_factory=list)

    def address(self, route: Route) -> ActorAddress:
        if route.kind == "book":
            return self.books[str(route.key)]
        if route.kind == "shard":
            return self.shards[int(route.key)]
        assert self.ledger is not None
        return self.ledger


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

    def perform(self, effects: Effects) -> None:
        bridge = self.bridge
        bridge.reply_threadsafe(effects.inspected)
        if effects.commit is not None:
            bridge.commit_threadsafe(effects.commit)
        address = self.address
        for route, message in effects.sends:
            address(route).tell(message)
        bridge.reply_threadsafe(effects.replies)

    def address(self, route: Route) -> ActorAddress:
        return self.directory.address(route)


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
        self.shell = BookShell(market, book, top, clock_ns)

    def on_receive(self, message: Any) -> None:
        self.perform(self.shell.receive(message))


class LedgerActor(_Actor):
    def __init__(
        self,
        clearing: Clearing,
        custody: Custody,
        bridge: Bridge,
        directory: Directory,
        fatal: Fatal,
        clock_ns: Callable[[], int],
        shards: int,
    ) -> None:
        super().__init__(bridge, directory, fatal)
        self.shell = LedgerShell(clearing, custody, clock_ns, shards)

    def address(self, route: Route) -> ActorAddress:
        # Its own reference: `on_start` may run before the directory names the ledger.
        return self.actor_ref if route.kind == "ledger" else self.directory.address(route)

    def on_start(self) -> None:
        self.perform(self.shell.start())

    def on_receive(self, message: Any) -> None:
        self.perform(self.shell.receive(message))


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
        self.shell = VaultShardShell(config, tops, idle_s=idle_s, clock_s=clock_s)

    def on_receive(self, message: Any) -> None:
        self.perform(self.shell.receive(message))


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
    ledger = LedgerActor.start(clearing, custody, bridge, directory, fatal, clock_ns, shards)
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
