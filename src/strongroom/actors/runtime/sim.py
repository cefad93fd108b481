"""The deterministic runtime: the actors' shells on one thread, under a seeded scheduler.

The behaviours and their shells (`strongroom.actors.shells`) are exactly those the pykka
runtime hosts; only the delivery of messages, the clock and the journal are simulated:

- `Scheduler`: every tell becomes a pending delivery on the channel of its (sender,
  receiver) pair. Each channel is FIFO, as a pykka mailbox is for one sender; which
  channel delivers next is chosen by a `random.Random` (reordering across pairs), and a
  delivery may be held back a number of steps (delay). Nothing else decides the order,
  so one seed gives one run.
- `SimClock`: the only time there is; actors and the edge read it, the driver moves it.
- `SimJournal` and `CommittedStore`: the journal's commit semantics in memory. Units
  are committed in submission order, in groups, each group all or nothing; the store
  keeps the tables' constraints (a transfer id or key, a trade id, a tid used twice
  fails the group, as PostgreSQL would), and replies leave only after the commit of
  the unit that holds them (the driver resolves them from the committed group).
- `recovered_state` and `boot`: what `persistence/recovery.py` reads from the database
  and what `server.start_core` builds from it (balances from postings, holds, live
  orders in priority order, counters), from the store instead; `build_books` is the
  server's own.

A failed commit, a crashed actor or a restart discard the whole `SimProcess`: like the
production fail-stop (`server.fatal`), the next one is booted from the committed state.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from strongroom.actors.book import OrderBook
from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Account,
    AccountCode,
    DepositState,
    JournalUnit,
    OrderState,
    OutboxEvent,
    TradeRecord,
    Transfer,
)
from strongroom.actors.shells import (
    BookShell,
    Effects,
    LedgerShell,
    RestoreOpenOrder,
    Route,
    VaultShardShell,
)
from strongroom.actors.system import MarketTop, shard_of
from strongroom.config import TradingConfig
from strongroom.custody.desk import Custody
from strongroom.custody.payments import Payment
from strongroom.custody.transfers import WalletTransfer
from strongroom.custody.withdrawals import TrackedWithdrawal
from strongroom.persistence.errors import PersistenceError
from strongroom.persistence.journal import GROUP_UNITS_MAX, balance_deltas, is_debit_normal
from strongroom.persistence.recovery import MarketCounters, RecoveredState

EDGE = "edge"
"""The sender name of the event loop: REST, MTF, the custody worker share one `Bridge`."""

BIGINT_MAX = 2**63 - 1

# --------------------------------------------------------------------------- clock


class SimClock:
    """Simulated wall time in nanoseconds (whole microseconds, as the database keeps it)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.now_ns = start_ns

    def ns(self) -> int:
        return self.now_ns

    def s(self) -> float:
        return self.now_ns / 1e9

    def advance(self, ns: int) -> None:
        self.now_ns += ns


# --------------------------------------------------------------------------- scheduler


class Delivery(NamedTuple):
    sender: str
    receiver: str
    message: tuple[Any, ...]
    sequence: int  # global send order


class _Pending(NamedTuple):
    sequence: int
    ready_step: int
    message: tuple[Any, ...]


class Scheduler:
    """Pending deliveries, FIFO per (sender, receiver); the seeded choice of the next one.

    `reorder`: the next delivery comes from any ready channel, chosen at random (else the
    oldest ready message overall goes first). `delay_probability`: a message is held back
    up to `delay_steps_max` steps; the messages behind it on its channel wait too.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        reorder: bool = False,
        delay_probability: float = 0.0,
        delay_steps_max: int = 20,
    ) -> None:
        self.random = rng
        self.reorder = reorder
        self.delay_probability = delay_probability
        self.delay_steps_max = delay_steps_max
        self.step = 0
        self.delayed = 0
        self.reordered = 0
        self._sequence = 0
        self._channels: dict[tuple[str, str], deque[_Pending]] = {}

    def send(self, sender: str, receiver: str, message: tuple[Any, ...]) -> None:
        channel = self._channels.get((sender, receiver))
        if channel is None:
            channel = self._channels[(sender, receiver)] = deque()
        ready_step = self.step
        if self.delay_probability and self.random.random() < self.delay_probability:
            ready_step += self.random.randint(1, self.delay_steps_max)
            self.delayed += 1
        if channel:  # FIFO: never ready before the message ahead of it
            ready_step = max(ready_step, channel[-1].ready_step)
        self._sequence += 1
        channel.append(_Pending(self._sequence, ready_step, message))

    @property
    def pending(self) -> int:
        return sum(len(channel) for channel in self._channels.values())

    def ready(self) -> bool:
        step = self.step
        return any(channel and channel[0].ready_step <= step for channel in self._channels.values())

    def next(self, *, force: bool = False) -> Delivery | None:
        """The next delivery (taken off its channel), or None when none is ready.

        `force`: ignore delays (to drain); the order stays seeded.
        """
        step = self.step
        ready = [
            (pair, channel)
            for pair, channel in self._channels.items()
            if channel and (force or channel[0].ready_step <= step)
        ]
        if not ready:
            return None
        oldest = min(ready, key=lambda entry: entry[1][0].sequence)
        chosen = self.random.choice(ready) if self.reorder else oldest
        if chosen is not oldest:
            self.reordered += 1
        (sender, receiver), channel = chosen
        pending = channel.popleft()
        return Delivery(sender, receiver, pending.message, pending.sequence)

    def clear(self) -> int:
        """Drop every pending delivery (the process they lived in is gone); how many."""
        dropped = self.pending
        self._channels.clear()
        return dropped

    def channels(self) -> list[tuple[tuple[str, str], list[tuple[Any, ...]]]]:
        """Every non-empty channel and its messages in delivery order (for tests)."""
        return [(pair, [p.message for p in channel]) for pair, channel in self._channels.items()
                if channel]  # fmt: skip


# --------------------------------------------------------------------------- the store


class ConstraintViolation(PersistenceError):
    """A group broke a table constraint: PostgreSQL would refuse the whole transaction."""


def _micro(ns: int) -> int:
    """A timestamp as the database returns it: `timestamp(ns)` keeps microseconds."""
    return ns // 1_000 * 1_000


BalanceKey = tuple[int, str, str]  # (code, wallet_id or "", currency): the balances table
HoldKey = tuple[int, int, str, str]  # (hold_id, code, wallet_id, currency)


@dataclass(slots=True)
class CommittedStore:
    """The tables the journal writes, in memory, with their keys and constraints.

    `commit` applies a group in one step or raises `ConstraintViolation` and changes
    nothing; upserts change only the columns the journal's `ON CONFLICT` clauses do.
    """

    transfers: dict[int, Transfer] = field(default_factory=dict)
    transfer_keys: dict[str, int] = field(default_factory=dict)
    postings_count: int = 0
    balances: dict[BalanceKey, int] = field(default_factory=dict)
    holds: dict[HoldKey, int] = field(default_factory=dict)
    orders: dict[int, OrderState] = field(default_factory=dict)
    trades: dict[tuple[str, int], TradeRecord] = field(default_factory=dict)
    deposits: dict[int, DepositState] = field(default_factory=dict)
    deposit_tids: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    wallet_transfers: dict[int, WalletTransfer] = field(default_factory=dict)
    withdrawals: dict[int, TrackedWithdrawal] = field(default_factory=dict)
    payments: dict[int, Payment] = field(default_factory=dict)
    custody_keys: dict[tuple[str, str, str], int] = field(default_factory=dict)
    pay_addresses: dict[str, int] = field(default_factory=dict)
    events: dict[str, OutboxEvent] = field(default_factory=dict)
    groups_committed: int = 0
    units_committed: int = 0

    def commit(self, group: Sequence[JournalUnit]) -> None:
        self._check(group)
        self._apply(group)
        self.groups_committed += 1
        self.units_committed += len(group)

    # ------------------------------------------------------------------ constraints

    def _check(self, group: Sequence[JournalUnit]) -> None:
        transfer_ids: set[int] = set()
        keys: dict[str, int] = {}
        trade_ids: set[tuple[str, int]] = set()
        tids: dict[str, int] = {}
        custody_keys: dict[tuple[str, str, str], int] = {}
        addresses: dict[str, int] = {}
        for unit in group:
            for transfer in unit.transfers:
                if transfer.transfer_id in self.transfers or transfer.transfer_id in transfer_ids:
                    raise ConstraintViolation(f"transfers: duplicate key {transfer.transfer_id}")
                transfer_ids.add(transfer.transfer_id)
                if transfer.key is not None:
                    if transfer.key in self.transfer_keys or transfer.key in keys:
                        raise ConstraintViolation(f"transfers: duplicate key {transfer.key!r}")
                    keys[transfer.key] = transfer.transfer_id
                for posting in transfer.postings:
                    if not 0 < posting.amount <= BIGINT_MAX:
                        raise ConstraintViolation(f"postings: amount {posting.amount} breaks CHECK")
            for trade in unit.trades:
                key = (trade.market, trade.trade_id)
                if key in self.trades or key in trade_ids:
                    raise ConstraintViolation(f"trades: duplicate key {key}")
                trade_ids.add(key)
            for deposit in unit.deposits:
                if deposit.deposit_id in self.deposits:
                    continue  # an update: the tid is not rewritten
                owner = self.deposit_tids.get(deposit.tid, tids.get(deposit.tid))
                if owner is not None and owner != deposit.deposit_id:
                    raise ConstraintViolation(f"deposits: duplicate tid {deposit.tid!r}")
                tids[deposit.tid] = deposit.deposit_id
            for entity, items in (
                ("transfer", [(t.transfer_id, t.partner_id, t.key, t.amount) for t in
                              unit.wallet_transfers]),
                ("withdrawal", [(t.withdrawal.withdrawal_id, t.partner_id, t.key,
                                 t.withdrawal.amount) for t in unit.withdrawals]),
                ("payment", [(p.payment_id, p.partner_id, p.key, p.pay_amount) for p in
                             unit.payments]),
            ):  # fmt: skip
                table = self._custody_table(entity)
                for entity_id, partner_id, idempotency_key, amount in items:
                    if amount <= 0:
                        raise ConstraintViolation(f"{entity}: amount {amount} breaks CHECK")
                    if entity_id in table or idempotency_key is None:
                        continue
                    unique = (entity, partner_id, idempotency_key)
                    owner = self.custody_keys.get(unique, custody_keys.get(unique))
                    if owner is not None and owner != entity_id:
                        raise ConstraintViolation(
                            f"{entity}s: duplicate idempotency key {idempotency_key!r}"
                        )
                    custody_keys[unique] = entity_id
            for payment in unit.payments:
                if payment.payment_id in self.payments:
                    continue
                owner = self.pay_addresses.get(
                    payment.pay_address, addresses.get(payment.pay_address)
                )
                if owner is not None and owner != payment.payment_id:
                    raise ConstraintViolation(
                        f"payments: duplicate pay_address {payment.pay_address!r}"
                    )
                addresses[payment.pay_address] = payment.payment_id

    def _custody_table(self, entity: str) -> dict[int, Any]:
        if entity == "transfer":
            return self.wallet_transfers
        if entity == "withdrawal":
            return self.withdrawals
        return self.payments

    # ------------------------------------------------------------------ writes

    def _apply(self, group: Sequence[JournalUnit]) -> None:
        for unit in group:
            for transfer in unit.transfers:
                self.transfers[transfer.transfer_id] = transfer
                if transfer.key is not None:
                    self.transfer_keys[transfer.key] = transfer.transfer_id
                for posting in transfer.postings:
                    self.postings_count += 1
                    if posting.hold_id is None:
                        continue
                    for account, sign in ((posting.credit, 1), (posting.debit, -1)):
                        if account.code in (AccountCode.LOCKED_FIAT, AccountCode.LOCKED_COIN):
                            key = (posting.hold_id, int(account.code), account.wallet_id or "",
                                   account.currency)  # fmt: skip
                            remaining = self.holds.get(key, 0) + sign * posting.amount
                            if remaining:
                                self.holds[key] = remaining
                            else:
                                del self.holds[key]
            for trade in unit.trades:
                self.trades[(trade.market, trade.trade_id)] = msgspec.structs.replace(
                    trade, at_ns=_micro(trade.at_ns)
                )
        for account, delta in balance_deltas(group).items():
            if delta:
                row = (int(account.code), account.wallet_id or "", account.currency)
                amount = self.balances.get(row, 0) + delta
                if amount:
                    self.balances[row] = amount
                else:  # the table keeps a zero row; recovery reads `amount <> 0`
                    self.balances.pop(row, None)
        orders: dict[int, OrderState] = {}
        deposits: dict[int, DepositState] = {}
        transfers: dict[int, WalletTransfer] = {}
        withdrawals: dict[int, TrackedWithdrawal] = {}
        payments: dict[int, Payment] = {}
        for unit in group:  # the latest state of each row in the group, as the journal
            for order in unit.orders:
                orders[order.order_id] = order
            for deposit in unit.deposits:
                deposits[deposit.deposit_id] = deposit
            for wallet_transfer in unit.wallet_transfers:
                transfers[wallet_transfer.transfer_id] = wallet_transfer
            for tracked in unit.withdrawals:
                withdrawals[tracked.withdrawal.withdrawal_id] = tracked
            for payment in unit.payments:
                payments[payment.payment_id] = payment
            self.sequences.update(unit.sequences)
            for event in unit.events:
                self.events.setdefault(event.event_id, event)
        replace = msgspec.structs.replace
        for order_id, order in orders.items():
            old = self.orders.get(order_id)
            if old is None:
                self.orders[order_id] = replace(
                    order, created_ns=_micro(order.created_ns), updated_ns=_micro(order.updated_ns)
                )
            else:
                self.orders[order_id] = replace(
                    old, price=order.price, quantity=order.quantity, status=order.status,
                    filled=order.filled, funds=order.funds, remaining=order.remaining,
                    visible=order.visible, priority=order.priority,
                    updated_ns=_micro(order.updated_ns), reason=order.reason,
                )  # fmt: skip
        for deposit_id, deposit in deposits.items():
            completed = None if deposit.completed_ns is None else _micro(deposit.completed_ns)
            old_deposit = self.deposits.get(deposit_id)
            if old_deposit is None:
                self.deposits[deposit_id] = replace(
                    deposit, created_ns=_micro(deposit.created_ns), completed_ns=completed
                )
                self.deposit_tids[deposit.tid] = deposit_id
            else:
                self.deposits[deposit_id] = replace(
                    old_deposit, state=deposit.state, transfer_id=deposit.transfer_id,
                    completed_ns=completed,
                )  # fmt: skip
        for transfer_id, item in transfers.items():
            old_transfer = self.wallet_transfers.get(transfer_id)
            if old_transfer is None:
                self.wallet_transfers[transfer_id] = replace(
                    item, created_ns=_micro(item.created_ns), updated_ns=_micro(item.updated_ns)
                )
                if item.key is not None:
                    self.custody_keys[("transfer", item.partner_id, item.key)] = transfer_id
            else:
                self.wallet_transfers[transfer_id] = replace(
                    old_transfer, status=item.status, reason=item.reason,
                    ledger_transfer_id=item.ledger_transfer_id,
                    updated_ns=_micro(item.updated_ns),
                )  # fmt: skip
        for withdrawal_id, tracked in withdrawals.items():
            old_tracked = self.withdrawals.get(withdrawal_id)
            w = tracked.withdrawal
            if old_tracked is None:
                self.withdrawals[withdrawal_id] = replace(
                    tracked,
                    withdrawal=replace(
                        w, created_ns=_micro(w.created_ns), updated_ns=_micro(w.updated_ns)
                    ),
                )
                if tracked.key is not None:
                    self.custody_keys[("withdrawal", tracked.partner_id, tracked.key)] = (
                        withdrawal_id
                    )
            else:
                self.withdrawals[withdrawal_id] = replace(
                    old_tracked,
                    withdrawal=replace(
                        old_tracked.withdrawal, state=w.state, txid=w.txid,
                        confirmations=w.confirmations, reason=w.reason,
                        updated_ns=_micro(w.updated_ns),
                    ),
                )  # fmt: skip
        for payment_id, p in payments.items():
            old_payment = self.payments.get(payment_id)
            confirm = None if p.confirm_ns is None else _micro(p.confirm_ns)
            if old_payment is None:
                self.payments[payment_id] = replace(
                    p, expires_ns=_micro(p.expires_ns), confirm_ns=confirm,
                    created_ns=_micro(p.created_ns), updated_ns=_micro(p.updated_ns),
                )  # fmt: skip
                self.pay_addresses[p.pay_address] = payment_id
                if p.key is not None:
                    self.custody_keys[("payment", p.partner_id, p.key)] = payment_id
            else:
                self.payments[payment_id] = replace(
                    old_payment, received=p.received, txids=p.txids, status=p.status,
                    ledger_transfer_id=p.ledger_transfer_id, confirm_ns=confirm,
                    updated_ns=_micro(p.updated_ns),
                )  # fmt: skip

    # ------------------------------------------------------------------ reads

    def hold_remaining(self, hold_id: int) -> int:
        return sum(amount for (held, *_), amount in self.holds.items() if held == hold_id)

    def live_orders(self) -> list[OrderState]:
        """`status IN ('open', 'pending') ORDER BY market, priority, order_id`."""
        live = [order for order in self.orders.values() if order.status in ("open", "pending")]
        live.sort(key=lambda order: (order.market, order.priority, order.order_id))
        return live


def balances_from_postings(store: CommittedStore) -> dict[BalanceKey, int]:
    """`BALANCES_FROM_POSTINGS`: every account's natural balance summed from its postings."""
    sums: defaultdict[BalanceKey, int] = defaultdict(int)
    for transfer in store.transfers.values():
        for posting in transfer.postings:
            for account, debit in ((posting.debit, True), (posting.credit, False)):
                sign = 1 if is_debit_normal(account.code) == debit else -1
                sums[(int(account.code), account.wallet_id or "", account.currency)] += (
                    sign * posting.amount
                )
    return {key: amount for key, amount in sums.items() if amount}


def recovered_state(store: CommittedStore) -> RecoveredState:
    """What `persistence.recovery.recover` reads from the database, read from the store.

    Rows come sorted (the SQL leaves some orders unspecified; a simulation must not).
    """
    state = RecoveredState()
    summed = balances_from_postings(store)
    if summed != store.balances:
        raise PersistenceError("balances table disagrees with the sum of postings")
    for (code, wallet, currency), amount in sorted(summed.items()):
        state.balances.append((Account(AccountCode(code), currency, wallet or None), amount))
    holds: defaultdict[HoldKey, int] = defaultdict(int)
    for transfer in store.transfers.values():
        for posting in transfer.postings:
            if posting.hold_id is None:
                continue
            for account, sign in ((posting.credit, 1), (posting.debit, -1)):
                if account.code in (AccountCode.LOCKED_FIAT, AccountCode.LOCKED_COIN):
                    holds[(posting.hold_id, int(account.code), account.wallet_id or "",
                           account.currency)] += sign * posting.amount  # fmt: skip
    for (hold_id, code, wallet, currency), amount in sorted(holds.items()):
        if amount:
            state.holds.append((hold_id, Account(AccountCode(code), currency, wallet), amount))
    state.live_orders = store.live_orders()
    state.deposits = [store.deposits[key] for key in sorted(store.deposits)]
    state.wallet_transfers = [store.wallet_transfers[key] for key in sorted(store.wallet_transfers)]
    state.withdrawals = [store.withdrawals[key] for key in sorted(store.withdrawals)]
    state.payments = [store.payments[key] for key in sorted(store.payments)]
    state.next_order_id = 1 + max(
        max(store.orders, default=0),
        max(store.withdrawals, default=0),
        max(store.wallet_transfers, default=0),
        max(store.payments, default=0),
    )
    state.next_transfer_id = 1 + max(store.transfers, default=0)
    state.next_deposit_id = 1 + max(store.deposits, default=0)
    counters: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for market, sequence in sorted(store.sequences.items()):
        counters[market]["sequence"] = sequence
    last_trades: dict[str, TradeRecord] = {}
    for (market, _), trade in sorted(store.trades.items()):
        last_trades[market] = trade
    for market, trade in last_trades.items():
        counters[market]["next_trade_id"] = trade.trade_id + 1
        counters[market]["last_price"] = trade.price
    priorities: dict[str, int] = {}
    for order in store.orders.values():
        priorities[order.market] = max(priorities.get(order.market, order.priority), order.priority)
    for market in sorted(priorities):
        counters[market]["next_priority"] = priorities[market] + 1
    state.markets = {market: MarketCounters(**values) for market, values in counters.items()}
    held = {hold_id for hold_id, _, _ in state.holds}
    live = {order.order_id for order in state.live_orders}
    holding = {t.withdrawal.withdrawal_id for t in state.withdrawals if t.withdrawal.holding}
    orphans = sorted(held - live - holding)
    if orphans:
        raise PersistenceError(f"holds without a live order: {orphans[:10]}")
    return state


class SimJournal:
    """Units queued in submission order; a commit takes all queued so far as one group."""

    def __init__(self, store: CommittedStore, *, group_units_max: int = GROUP_UNITS_MAX) -> None:
        self.store = store
        self.group_units_max = group_units_max
        self.queue: list[JournalUnit] = []

    def submit(self, unit: JournalUnit) -> None:
        self.queue.append(unit)

    def commit_group(self) -> list[JournalUnit]:
        """Commit the next group (`ConstraintViolation`: nothing committed) and return it:
        its replies may leave now."""
        group = self.queue[: self.group_units_max]
        self.store.commit(group)
        del self.queue[: len(group)]
        return group

    def clear(self) -> int:
        """Forget what was not committed (the process died); how many units."""
        lost = len(self.queue)
        self.queue.clear()
        return lost


# --------------------------------------------------------------------------- the runtime


def actor_name(route: Route) -> str:
    return route.kind if route.kind == "ledger" else f"{route.kind}:{route.key}"


class SimRuntime:
    """The shells of one process on one thread; every tell goes through the scheduler."""

    def __init__(
        self,
        config: TradingConfig,
        clearing: Clearing,
        custody: Custody,
        books: dict[str, OrderBook],
        open_orders: Iterable[RestoreOpenOrder],
        scheduler: Scheduler,
        clock: SimClock,
        commit: Callable[[JournalUnit], None],
        reply: Callable[[Sequence[tuple[int, Any]]], None],
        *,
        shards: int = 4,
        vault_idle_s: float = 60.0,
    ) -> None:
        self.scheduler = scheduler
        self.commit = commit
        self.reply = reply
        self.shard_count = shards
        self.tops = {market: MarketTop(book.best_bid(), book.best_ask(), book.last_price)
                     for market, book in books.items()}  # fmt: skip
        self.ledger = LedgerShell(clearing, custody, clock.ns, shards)
        self.books = {
            market: BookShell(market, book, self.tops[market], clock.ns)
            for market, book in books.items()
        }
        self.shards = [
            VaultShardShell(config, self.tops, idle_s=vault_idle_s, clock_s=clock.s)
            for _ in range(shards)
        ]
        self.shells: dict[str, LedgerShell | BookShell | VaultShardShell] = {"ledger": self.ledger}
        self.shells.update({f"book:{market}": shell for market, shell in self.books.items()})
        self.shells.update({f"shard:{index}": shell for index, shell in enumerate(self.shards)})
        # As `pykka.start` does: the restores are in the shards' mailboxes before any command
        # can be, so they are delivered at once.
        by_shard: defaultdict[int, list[RestoreOpenOrder]] = defaultdict(list)
        for restore in open_orders:
            by_shard[shard_of(restore.wallet_id, shards)].append(restore)
        for index, restores in sorted(by_shard.items()):
            self.perform(f"shard:{index}", self.shards[index].receive(tuple(restores)))
        self.perform("ledger", self.ledger.start())

    def shard_name(self, wallet_id: str) -> str:
        return f"shard:{shard_of(wallet_id, self.shard_count)}"

    def tell(self, receiver: str, message: tuple[Any, ...], sender: str = EDGE) -> None:
        self.scheduler.send(sender, receiver, message)

    def deliver(self, delivery: Delivery) -> None:
        """Hand a batch to its actor's shell and perform the effects (exceptions escape:
        in production they are fatal)."""
        self.perform(delivery.receiver, self.shells[delivery.receiver].receive(delivery.message))

    def perform(self, name: str, effects: Effects) -> None:
        if effects.inspected:
            self.reply(effects.inspected)
        if effects.commit is not None:
            self.commit(effects.commit)
        for route, message in effects.sends:
            self.scheduler.send(name, actor_name(route), message)
        if effects.replies:
            self.reply(effects.replies)


@dataclass(slots=True)
class SimProcess:
    """One life of the service: behaviours rebuilt from the store, hosted by a `SimRuntime`."""

    state: RecoveredState
    ledger: Ledger
    clearing: Clearing
    custody: Custody
    books: dict[str, OrderBook]
    runtime: SimRuntime


def boot(
    config: TradingConfig,
    store: CommittedStore,
    scheduler: Scheduler,
    clock: SimClock,
    commit: Callable[[JournalUnit], None],
    reply: Callable[[Sequence[tuple[int, Any]]], None],
    *,
    shards: int = 4,
    vault_idle_s: float = 60.0,
    payment_confirm_delay_ns: int = 0,
    ledger_factory: Callable[[TradingConfig], Ledger] | None = None,
    clearing_factory: Callable[[TradingConfig, Ledger, int], Clearing] | None = None,
) -> SimProcess:
    """`server.start_core` from the store: recover, restore each behaviour, start actors.

    `ledger_factory` and `clearing_factory` let a test put a deliberately broken
    behaviour in place (to prove that the simulation's checks can fail).
    """
    from strongroom.server import build_books  # the server's own (imports the service)

    state = recovered_state(store)
    ledger = Ledger(config.currencies) if ledger_factory is None else ledger_factory(config)
    ledger.restore(state.balances, state.holds, [])
    clearing = (
        Clearing(config, ledger, next_transfer_id=state.next_transfer_id)
        if clearing_factory is None
        else clearing_factory(config, ledger, state.next_transfer_id)
    )
    clearing.restore(state.live_orders, state.deposits)
    custody = Custody(clearing, payment_confirm_delay_ns=payment_confirm_delay_ns)
    custody.restore(state.wallet_transfers, state.withdrawals, state.payments)
    books = build_books(config, state)
    runtime = SimRuntime(
        config,
        clearing,
        custody,
        books,
        [RestoreOpenOrder(o.wallet_id, o.order_id, o.market) for o in state.live_orders],
        scheduler,
        clock,
        commit,
        reply,
        shards=shards,
        vault_idle_s=vault_idle_s,
    )
    return SimProcess(state, ledger, clearing, custody, books, runtime)
