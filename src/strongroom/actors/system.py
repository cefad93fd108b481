"""Wiring: which actor owns what, and how the asyncio edges reach the actors.

Routing: one book actor per market (by symbol), one ledger actor, and a bounded set of
vault-shard actors; a wallet always lands on shard `crc32(wallet_id) % shards`.

Edges never block on an actor. They create a reply token (an asyncio future, or a
plain callback for edges that answer many commands at once), `tell` the command, and
the token is resolved on the event loop, via `loop.call_soon_threadsafe`, by whoever
finishes the command: the journal after the commit that holds its effects, or an actor
that refused it without changing anything. Commands sent in one loop iteration travel
as one batch per destination actor.

Once a unit is committed, the book results it settled are published to every listener
(MTF sessions, the price feed) before its replies are resolved: whatever an edge tells
its client about an order is durable, and the events of one command arrive in the
order the book produced them.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

from strongroom.actors.messages import JournalUnit, Reply

ReplyCallback = Callable[[Reply | None], None]
UnitListener = Callable[[JournalUnit], None]


class ActorAddress(Protocol):
    """What a runtime hands out for an actor: fire-and-forget delivery of one message."""

    def tell(self, message: Any) -> None: ...


def shard_of(wallet_id: str, shards: int) -> int:
    return zlib.crc32(wallet_id.encode()) % shards


@dataclass(slots=True)
class MarketTop:
    """Top of a book as its actor last published it (read by vaults for market collars)."""

    best_bid: int | None = None
    best_ask: int | None = None
    last_price: int = 0


class Bridge:
    """The asyncio side of every actor conversation: tokens, batching, replies, commits.

    Only `*_threadsafe` methods may be called from actor threads.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        commit: Callable[[JournalUnit], None],
        *,
        reply_timeout_s: float = 15.0,
    ) -> None:
        self._loop = loop
        self._commit = commit
        self._reply_timeout_s = reply_timeout_s
        # A waiting token: a future (`token`) or a callback given None on timeout (`expect`).
        self._waiting: dict[int, asyncio.Future[Any] | ReplyCallback] = {}
        self._listeners: list[UnitListener] = []
        self._event_listeners: list[Callable[[], None]] = []
        self._deadlines: deque[tuple[float, int]] = deque()
        self._sweeper: asyncio.Task[None] | None = None
        self._tokens = itertools.count(1)
        self._outbox: defaultdict[ActorAddress, list[Any]] = defaultdict(list)
        self._flush_scheduled = False

    # --------------------------------------------------------------- loop side

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def expect(self, callback: ReplyCallback) -> int:
        """A reply token whose reply goes to `callback` (None if no reply comes in time)."""
        token = next(self._tokens)
        self._waiting[token] = callback
        self._deadlines.append((self._loop.time() + self._reply_timeout_s, token))
        if self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep(), name="reply-deadlines")
        return token

    def listen(self, listener: UnitListener) -> None:
        """Call `listener` with every committed unit that settled book results, in commit
        order, before the unit's replies are resolved."""
        self._listeners.append(listener)

    def listen_events(self, listener: Callable[[], None]) -> None:
        """Call `listener` after a unit carrying webhook events was committed."""
        self._event_listeners.append(listener)

    async def _sweep(self) -> None:
        """One timer for all replies instead of one per call: tokens expire in issue order."""
        while True:
            await asyncio.sleep(min(1.0, self._reply_timeout_s / 4))
            now = self._loop.time()
            deadlines = self._deadlines
            while deadlines and deadlines[0][0] <= now:
                _, token = deadlines.popleft()
                waiter = self._waiting.pop(token, None)
                if isinstance(waiter, asyncio.Future):
                    if not waiter.done():
                        waiter.set_exception(TimeoutError("no reply in time"))
                elif waiter is not None:
                    waiter(None)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    def send(self, address: ActorAddress, message: Any) -> None:
        """Queue for `address`; everything queued in this loop iteration goes as one batch."""
        self._outbox[address].append(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, defaultdict(list)
        for address, messages in outbox.items():
            address.tell(tuple(messages))

    def resolve(self, replies: Sequence[tuple[int, Any]]) -> None:
        waiting = self._waiting
        for token, reply in replies:
            waiter = waiting.pop(token, None)
            if waiter is None:
                continue
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result(reply)
            else:
                waiter(reply)
        if not waiting:
            self._deadlines.clear()

    def committed(self, unit: JournalUnit) -> None:
        """The journal committed `unit`: publish its book results, then answer its replies."""
        if unit.results:
            for listener in self._listeners:
                try:
                    listener(unit)
                except Exception:  # one edge's bug must not stop the journal or the others
                    logger.exception("a results listener failed", listener=repr(listener))
        if unit.events:
            for event_listener in self._event_listeners:
                event_listener()
        self.resolve(unit.replies)

    # --------------------------------------------------------------- actor side

    def reply_threadsafe(self, replies: Sequence[tuple[int, Reply | Any]]) -> None:
        if replies:
            self._loop.call_soon_threadsafe(self.resolve, replies)

    def commit_threadsafe(self, unit: JournalUnit) -> None:
        self._loop.call_soon_threadsafe(self._commit, unit)
