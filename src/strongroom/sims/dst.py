"""`strongroom sim dst`: deterministic simulation testing of the trading and custody core.

The real behaviours (an `OrderBook` per market, `Vault`s in shards, `Ledger` + `Clearing`
+ `Custody` in the ledger actor) run in their production shells on the deterministic
runtime (`strongroom.actors.runtime.sim`). A seeded workload acts as the edges would:
deposits (and their later state changes), orders of every kind (limit, market, IOC, FOK,
post-only, stop, iceberg), cancels and replaces, wallet transfers and Secure Sends,
withdrawals moved along their state machine by a worker, payments; clients retry with
the same idempotency key when an answer was lost.

Each step the seeded scheduler picks what happens next: a batch of commands from the
edge, the delivery of one pending batch to its actor, or the commit of a journal group.
Faults (`--faults`, comma-separated, `all` or `none`):

- `delay`: a delivery is held back some steps (its channel stays FIFO);
- `reorder`: any ready channel may deliver next, not the oldest message;
- `crash`: an actor fails while it handles a batch: fail-stop, restart;
- `commit`: a journal group fails to commit: fail-stop, restart;
- `restart`: the whole process stops, sometimes between a commit and its acks.

A restart drops everything in memory and in flight and boots the behaviours from the
committed store, as `strongroom serve` does from PostgreSQL.

After every step the invariants are checked: the ledger balances per currency (in memory
and committed), no member balance is negative, no book is crossed; at every commit:
assets equal what deposits and payments brought in minus what withdrawals sent, revenues
equal the fees the committed trades and withdrawals owe, every order's fills equal its
committed trades, no hold outlives its order, an external id names one order; every
acknowledgement leaves only after the commit holding its effects, names what was
committed, and a retry answers the first result; after a restart the rebuilt state
equals the committed one, and once the run drains, memory equals the store.

The last line on stdout is JSON: `{"seed", "steps", "digest", "invariants",
"faults_injected"}`; `digest` hashes the final committed state, so a seed always gives
the same digest. A broken invariant exits 1 and prints the command that reproduces it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    AccountCode,
    CancelRequest,
    DepositRequest,
    DepositState,
    DepositStateRequest,
    DuplicateOrder,
    JournalUnit,
    OrderKind,
    OrderRequest,
    OrderState,
    Refused,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from strongroom.actors.runtime.sim import (
    CommittedStore,
    ConstraintViolation,
    Delivery,
    Scheduler,
    SimClock,
    SimJournal,
    SimProcess,
    boot,
)
from strongroom.actors.shells import VaultShardShell
from strongroom.config import BASIS_POINTS, DEFAULT, TradingConfig
from strongroom.custody.desk import (
    Known,
    PaymentIncoming,
    PaymentRequest,
    PaymentsDue,
    TransferRequest,
    WithdrawalChange,
    WithdrawalRequest,
)
from strongroom.custody.payments import Payment, PaymentStatus
from strongroom.custody.transfers import TransferKind, TransferStatus, WalletTransfer
from strongroom.custody.withdrawals import (
    DEFAULT_RULES,
    TrackedWithdrawal,
    Withdrawal,
    WithdrawalEvent,
    WithdrawalState,
    prepare,
)
from strongroom.persistence.errors import PersistenceError

FAULTS = ("delay", "reorder", "crash", "commit", "restart")
PARTNER = "p1"
ADDRESSES = {  # mainnet addresses of each chain (`validate_address` checks them)
    "BTC": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    "ETH": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "TRON": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
}
WITHDRAWAL_AMOUNTS = {  # code → (min, max) amounts drawn, minor units
    "BTC": (50_000, 400_000),
    "ETH": (500_000, 5_000_000),
    "USDTTRC20": (10_000_000, 60_000_000),
}
DEPOSIT_AMOUNTS = {
    "USDT": (2_000_000_000, 20_000_000_000),
    "BTC": (2_000_000, 20_000_000),
    "ETH": (100_000_000, 1_000_000_000),
}
MIDS = {  # market → (mid price in ticks, tick step of its random walk)
    "BTC-USDT": (3_000_000, 100),
    "ETH-USDT": (200_000, 10),
    "ETH-BTC": (5_000, 1),
}
IN_FLIGHT_MAX = 60
VAULT_IDLE_S = 60.0  # the service's default (`pykka.start`)
DRAIN_ACTIONS_MAX = 200_000
LIVE = ("new", "open", "pending")


def parse_faults(text: str) -> frozenset[str]:
    text = text.strip().lower()
    if text in ("", "none"):
        return frozenset()
    if text == "all":
        return frozenset(FAULTS)
    kinds = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(kinds - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; choose from {', '.join(FAULTS)}")
    return kinds


def faults_text(faults: frozenset[str]) -> str:
    if not faults:
        return "none"
    return ",".join(kind for kind in FAULTS if kind in faults)


@dataclass(frozen=True, slots=True)
class Settings:
    seed: int
    steps: int = 1_000
    faults: frozenset[str] = frozenset(FAULTS)
    wallets: int = 6
    shards: int = 3
    vault_idle_s: float = VAULT_IDLE_S  # small values exercise passivation
    delay_probability: float = 0.08
    delay_steps_max: int = 12
    crash_probability: float = 0.003  # per delivery
    commit_failure_probability: float = 0.01  # per group
    restart_probability: float = 0.002  # per step; as many again between commit and acks
    payment_confirm_delay_ns: int = 2_000_000
    trace: bool = False
    # Test doubles only: a deliberately broken behaviour proves the checks can fail.
    ledger_factory: Callable[[TradingConfig], Ledger] | None = None
    clearing_factory: Callable[[TradingConfig, Ledger, int], Clearing] | None = None

    def command(self) -> str:
        command = (
            f"strongroom sim dst --seed {self.seed} --steps {self.steps}"
            f" --faults {faults_text(self.faults)}"
        )
        if self.vault_idle_s != VAULT_IDLE_S:
            command += f" --vault-idle-s {self.vault_idle_s!r}"
        return command


class InvariantBroken(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclass(slots=True)
class Outcome:
    settings: Settings
    digest: str
    faults_injected: dict[str, int]
    counts: dict[str, int]
    violation: InvariantBroken | None = None
    step: int | None = None
    elapsed_s: float = 0.0

    @property
    def held(self) -> bool:
        return self.violation is None

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "seed": self.settings.seed,
            "steps": self.settings.steps,
            "digest": self.digest,
            "invariants": "held" if self.held else "broken",
            "faults_injected": self.faults_injected,
        }
        if self.violation is not None:
            report["violation"] = str(self.violation)
            report["at_step"] = self.step
            report["reproduce"] = self.settings.command()
        return report


# --------------------------------------------------------------------------- intents
# What a client asked for, kept to retry it with the same idempotency key and content;
# internal ids (order, deposit, transfer ids) are drawn afresh on every attempt, as the
# edges draw them.


@dataclass(frozen=True, slots=True)
class OrderIntent:
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

    @property
    def fingerprint(self) -> str:
        return (
            f"{self.market}|{int(self.side)}|{int(self.kind)}|{self.price}|{self.quantity}|"
            f"{self.stop_price}|{self.display_quantity}|{int(self.time_in_force)}|"
            f"{self.post_only}"
        )


@dataclass(frozen=True, slots=True)
class DepositIntent:
    tid: str
    wallet_id: str
    currency: str
    amount: int
    accept: bool

    @property
    def fingerprint(self) -> str:
        return f"{self.wallet_id}|{self.currency}|{self.amount}|{self.accept}"


@dataclass(frozen=True, slots=True)
class TransferIntent:
    kind: TransferKind
    from_wallet: str
    to_wallet: str
    currency: str
    amount: int
    key: str | None

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}|{self.from_wallet}|{self.to_wallet}|{self.currency}|{self.amount}"


@dataclass(frozen=True, slots=True)
class WithdrawalIntent:
    wallet_id: str
    code: str
    amount: int
    key: str | None

    @property
    def fingerprint(self) -> str:
        return f"{self.wallet_id}|{self.code}|{self.amount}"


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    wallet_id: str
    pay_amount: int
    lifetime_ns: int
    key: str | None

    @property
    def fingerprint(self) -> str:
        return f"{self.wallet_id}|{self.pay_amount}|{self.lifetime_ns}"


Intent = OrderIntent | DepositIntent | TransferIntent | WithdrawalIntent | PaymentIntent


@dataclass(slots=True)
class Sent:
    """A command in flight: what it was, in which life of the process it was sent."""

    kind: str
    message: Any
    life: int
    intent: Intent | None = None


# --------------------------------------------------------------------------- checks


def _natural_total(balances: dict[tuple[int, str, str], int]) -> dict[str, int]:
    totals: defaultdict[str, int] = defaultdict(int)
    for (code, _, currency), amount in balances.items():
        totals[currency] += amount if code < 200 or code >= 400 else -amount
    return totals


class Checker:
    """The invariants, checked against the behaviours in memory and the committed store."""

    def __init__(self, config: TradingConfig, store: CommittedStore) -> None:
        self.config = config
        self.store = store
        self.expected_assets: defaultdict[str, int] = defaultdict(int)
        self.expected_revenues: defaultdict[str, int] = defaultdict(int)
        self.credited_deposits: set[int] = set()
        self.sent_withdrawals: set[int] = set()
        self.credited_payments: set[int] = set()
        self.filled: defaultdict[int, int] = defaultdict(int)
        self.funds: defaultdict[int, int] = defaultdict(int)
        self.order_of_external: dict[tuple[str, str], int] = {}
        self.deposit_of_tid: dict[str, int] = {}
        self.entity_of_key: dict[tuple[str, str], int] = {}
        self.answered: set[int] = set()

    # ------------------------------------------------------------------ every step

    def after_step(self, process: SimProcess) -> None:
        ledger = process.ledger
        for currency in self.config.currencies:
            if ledger.totals(currency):
                raise InvariantBroken(
                    "ledger balanced", f"{currency} off by {ledger.totals(currency)} in memory"
                )
        for account, amount in ledger.accounts():
            if account.wallet_id is not None and amount < 0:
                raise InvariantBroken("no negative balance", f"{account} is {amount} in memory")
        for market, book in process.books.items():
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None and bid >= ask:
                raise InvariantBroken("book not crossed", f"{market}: bid {bid} >= ask {ask}")

    # ------------------------------------------------------------------ every commit

    def after_commit(self, group: Sequence[JournalUnit]) -> None:
        store = self.store
        fees = self.config.fees
        orders: dict[int, None] = {}
        holds: dict[int, None] = {}
        deposits: dict[int, None] = {}
        withdrawals: dict[int, None] = {}
        payments: dict[int, None] = {}
        for unit in group:
            for trade in unit.trades:
                market = self.config.markets[trade.market]
                notional = market.quote_minor(trade.price, trade.quantity)
                base_amount = market.base_minor(trade.quantity)
                # Restated from SPEC §2, not called from the code under test: the seller
                # pays its fee in quote, the buyer in base; the taker's rate for the taker.
                seller_bps = fees.taker_bps if trade.taker_side is Side.SELL else fees.maker_bps
                buyer_bps = fees.taker_bps if trade.taker_side is Side.BUY else fees.maker_bps
                self.expected_revenues[market.quote] += notional * seller_bps // BASIS_POINTS
                self.expected_revenues[market.base] += base_amount * buyer_bps // BASIS_POINTS
                for order_id in (trade.maker_order_id, trade.taker_order_id):
                    self.filled[order_id] += trade.quantity
                    self.funds[order_id] += notional
            for order in unit.orders:
                orders[order.order_id] = None
            for transfer in unit.transfers:
                for posting in transfer.postings:
                    if posting.hold_id is not None:
                        holds[posting.hold_id] = None
            for deposit in unit.deposits:
                deposits[deposit.deposit_id] = None
            for tracked in unit.withdrawals:
                withdrawals[tracked.withdrawal.withdrawal_id] = None
            for payment in unit.payments:
                payments[payment.payment_id] = None
        for deposit_id in deposits:
            deposit = store.deposits[deposit_id]
            if deposit.state == "accepted" and deposit_id not in self.credited_deposits:
                self.credited_deposits.add(deposit_id)
                self.expected_assets[deposit.currency] += deposit.amount
        for withdrawal_id in withdrawals:
            withdrawal = store.withdrawals[withdrawal_id].withdrawal
            if withdrawal.state is WithdrawalState.SUCCEED and (
                withdrawal_id not in self.sent_withdrawals
            ):
                self.sent_withdrawals.add(withdrawal_id)
                self.expected_assets[withdrawal.currency] -= withdrawal.amount
                self.expected_revenues[withdrawal.currency] += withdrawal.fee
        for payment_id in payments:
            payment = store.payments[payment_id]
            if payment.ledger_transfer_id is not None and payment_id not in self.credited_payments:
                self.credited_payments.add(payment_id)
                self.expected_assets[payment.currency] += payment.received
        # The books of the whole store.
        for currency_of, total in _natural_total(store.balances).items():
            if total:
                raise InvariantBroken("ledger balanced", f"{currency_of} off by {total} committed")
        for currency_code, currency in self.config.currencies.items():
            fiat = currency.kind == "fiat"
            asset = AccountCode.ASSET_FIAT if fiat else AccountCode.ASSET_COIN
            revenue = AccountCode.REVENUE_FIAT if fiat else AccountCode.REVENUE_COIN
            assets = store.balances.get((int(asset), "", currency_code), 0)
            if assets != self.expected_assets[currency_code]:
                raise InvariantBroken(
                    "applied exactly once",
                    f"{currency_code} assets are {assets}, deposits, payments and withdrawals "
                    f"committed make {self.expected_assets[currency_code]}",
                )
            revenues = store.balances.get((int(revenue), "", currency_code), 0)
            if revenues != self.expected_revenues[currency_code]:
                raise InvariantBroken(
                    "fees collected",
                    f"{currency_code} revenues are {revenues}, the committed trades and "
                    f"withdrawals owe {self.expected_revenues[currency_code]}",
                )
        for (account_code, wallet, currency_code), amount in store.balances.items():
            if wallet and amount < 0:
                raise InvariantBroken(
                    "no negative balance",
                    f"account {account_code} {currency_code} of {wallet}: {amount}",
                )
        for order_id in orders:
            order = store.orders[order_id]
            if (order.filled, order.funds) != (self.filled[order_id], self.funds[order_id]):
                raise InvariantBroken(
                    "fills match trades",
                    f"order {order_id} filled {order.filled} for {order.funds}; its committed "
                    f"trades make {self.filled[order_id]} for {self.funds[order_id]}",
                )
            if order.status not in LIVE and store.hold_remaining(order_id):
                raise InvariantBroken(
                    "holds released",
                    f"order {order_id} is {order.status} but holds "
                    f"{store.hold_remaining(order_id)}",
                )
            if order.external_id is not None:
                first = self.order_of_external.setdefault(
                    (order.wallet_id, order.external_id), order_id
                )
                if first != order_id:
                    raise InvariantBroken(
                        "applied exactly once",
                        f"external id {order.external_id!r} of {order.wallet_id} names orders "
                        f"{first} and {order_id}",
                    )
        for hold_id in holds:
            remaining = store.hold_remaining(hold_id)
            if remaining < 0:
                raise InvariantBroken("holds released", f"hold {hold_id} is {remaining}")
            if remaining:
                holder = store.orders.get(hold_id)
                holding = store.withdrawals.get(hold_id)
                if not (
                    (holder is not None and holder.status in LIVE)
                    or (holding is not None and holding.withdrawal.holding)
                ):
                    raise InvariantBroken(
                        "holds released", f"hold {hold_id} keeps {remaining} for nothing live"
                    )

    # ------------------------------------------------------------------ every answer

    def answer(self, token: int, reply: Any, sent: Sent, committed: bool) -> None:
        if token in self.answered:
            raise InvariantBroken("answered once", f"token {token} ({sent.kind}) answered twice")
        self.answered.add(token)
        if not committed:
            if not isinstance(reply, Refused | DuplicateOrder):
                raise InvariantBroken(
                    "acknowledged after commit",
                    f"{sent.kind} answered {type(reply).__name__} without a commit",
                )
            return
        store = self.store
        if isinstance(reply, OrderState):
            committed_order = store.orders.get(reply.order_id)
            if committed_order is None:
                raise InvariantBroken(
                    "acknowledged after commit", f"order {reply.order_id} acked, not committed"
                )
            message = sent.message
            if isinstance(message, OrderRequest | CancelRequest | ReplaceRequest) and (
                message.order_id != reply.order_id
            ):
                raise InvariantBroken(
                    "applied exactly once",
                    f"{sent.kind} of order {message.order_id} answered order {reply.order_id}",
                )
        elif isinstance(reply, DepositState):
            committed_deposit = store.deposits.get(reply.deposit_id)
            if committed_deposit is None or committed_deposit.tid != reply.tid:
                raise InvariantBroken(
                    "acknowledged after commit", f"deposit {reply.tid} acked, not committed"
                )
            first = self.deposit_of_tid.setdefault(reply.tid, reply.deposit_id)
            if first != reply.deposit_id:
                raise InvariantBroken(
                    "applied exactly once",
                    f"tid {reply.tid} answered deposits {first} and {reply.deposit_id}",
                )
            if reply.state == "accepted" and f"deposit:{reply.tid}" not in store.transfer_keys:
                raise InvariantBroken(
                    "acknowledged after commit", f"deposit {reply.tid} acked, credit not committed"
                )
        elif isinstance(reply, WalletTransfer | TrackedWithdrawal | Payment | Known):
            entity, entity_id, key = _entity(reply)
            tables: dict[str, dict[int, Any]] = {
                "transfer": store.wallet_transfers,
                "withdrawal": store.withdrawals,
                "payment": store.payments,
            }
            table = tables[entity]
            if entity_id not in table:
                raise InvariantBroken(
                    "acknowledged after commit", f"{entity} {entity_id} acked, not committed"
                )
            intent = sent.intent
            key = key if key is not None else getattr(intent, "key", None)
            if key is not None:
                first = self.entity_of_key.setdefault((entity, key), entity_id)
                if first != entity_id:
                    raise InvariantBroken(
                        "applied exactly once",
                        f"{entity} key {key!r} answered {entity} {first} and {entity_id}",
                    )

    # ------------------------------------------------------------------ restarts

    def memory_equals_store(self, process: SimProcess, when: str) -> None:
        """The behaviours hold what was committed: after a restart, and once drained."""
        store = self.store
        name = "restart rebuilds the committed state" if when == "restart" else "memory committed"
        memory = {
            (int(account.code), account.wallet_id or "", account.currency): amount
            for account, amount in process.ledger.accounts()
        }
        if memory != store.balances:
            diff = sorted(
                (key, memory.get(key, 0), store.balances.get(key, 0))
                for key in set(memory) | set(store.balances)
                if memory.get(key, 0) != store.balances.get(key, 0)
            )
            raise InvariantBroken(name, f"balances differ (memory, committed): {diff[:4]}")
        for (hold_id, *_), amount in sorted(store.holds.items()):
            if process.ledger.hold_remaining(hold_id) != amount:
                raise InvariantBroken(
                    name,
                    f"hold {hold_id}: {process.ledger.hold_remaining(hold_id)} in memory, "
                    f"{amount} committed",
                )
        live = store.live_orders()
        clearing_orders = process.clearing.orders
        if sorted(clearing_orders) != sorted(order.order_id for order in live):
            raise InvariantBroken(
                name,
                f"live orders {sorted(clearing_orders)[:8]} in memory, "
                f"{sorted(o.order_id for o in live)[:8]} committed",
            )
        for order in live:
            in_memory = clearing_orders[order.order_id].snapshot()
            if in_memory != order:
                raise InvariantBroken(name, f"order {order.order_id}: {in_memory} vs {order}")
        for market, book in process.books.items():
            book.check_invariants()
            resting = [
                (o.order.order_id, o.remaining, o.visible, o.priority, o.pending)
                for o in book.open_orders()
            ]
            expected = [
                (o.order_id, o.remaining, o.visible, o.priority, o.status == "pending")
                for o in live
                if o.market == market
            ]
            if resting != expected:
                raise InvariantBroken(name, f"{market} book {resting[:4]} vs {expected[:4]}")
            trades = [trade for (m, _), trade in store.trades.items() if m == market]
            last = max(trades, key=lambda trade: trade.trade_id, default=None)
            if last is not None and (book.next_trade_id, book.last_price) != (
                last.trade_id + 1,
                last.price,
            ):
                raise InvariantBroken(
                    name,
                    f"{market}: next trade {book.next_trade_id}, last price {book.last_price}; "
                    f"committed last trade {last.trade_id} at {last.price}",
                )
            if book.sequence != store.sequences.get(market, 0):
                raise InvariantBroken(
                    name, f"{market}: sequence {book.sequence} vs {store.sequences.get(market)}"
                )
        deposits = {deposit.tid: deposit for deposit in store.deposits.values()}
        if process.clearing.deposits != deposits:
            raise InvariantBroken(name, "deposits differ")
        custody = process.custody
        pending = sorted(i for i, t in store.wallet_transfers.items() if not t.final)
        if sorted(custody.transfers) != pending:
            raise InvariantBroken(
                name, f"pending transfers {sorted(custody.transfers)} vs {pending}"
            )
        live_withdrawals = {i: t for i, t in store.withdrawals.items() if not t.withdrawal.final}
        if custody.withdrawals != live_withdrawals:
            raise InvariantBroken(name, "live withdrawals differ")
        open_payments = {i: p for i, p in store.payments.items() if not p.final}
        if custody.payments != open_payments:
            raise InvariantBroken(name, "open payments differ")
        if when != "restart":
            runtime = process.runtime
            for order in live:
                shard = runtime.shards[int(runtime.shard_name(order.wallet_id).split(":")[1])]
                vault = shard.vaults.get(order.wallet_id)
                if vault is None or vault.open_orders.get(order.order_id) != order.market:
                    raise InvariantBroken(
                        name,
                        f"vault {order.wallet_id} does not know its open order {order.order_id}",
                    )
            live_ids = {order.order_id for order in live}
            for shard in runtime.shards:
                for wallet_id, vault in shard.vaults.items():
                    stale = sorted(set(vault.open_orders) - live_ids)
                    if stale:
                        raise InvariantBroken(
                            name, f"vault {wallet_id} holds ended orders {stale[:5]} as open"
                        )


def _entity(
    reply: WalletTransfer | TrackedWithdrawal | Payment | Known,
) -> tuple[str, int, str | None]:
    if isinstance(reply, Known):
        return reply.entity, reply.entity_id, None
    if isinstance(reply, WalletTransfer):
        return "transfer", reply.transfer_id, reply.key
    if isinstance(reply, TrackedWithdrawal):
        return "withdrawal", reply.withdrawal.withdrawal_id, reply.key
    return "payment", reply.payment_id, reply.key


# --------------------------------------------------------------------------- the run


class Simulation:
    def __init__(self, settings: Settings, config: TradingConfig = DEFAULT) -> None:
        self.settings = settings
        self.config = config
        seed = settings.seed
        faults = settings.faults
        # Independent streams (a str seed is hashed with SHA-512: no PYTHONHASHSEED effect).
        self.random = random.Random(f"dst:{seed}:steps")
        self.workload = random.Random(f"dst:{seed}:workload")
        self.scheduler = Scheduler(
            random.Random(f"dst:{seed}:scheduler"),
            reorder="reorder" in faults,
            delay_probability=settings.delay_probability if "delay" in faults else 0.0,
            delay_steps_max=settings.delay_steps_max,
        )
        self.clock = SimClock()
        self.store = CommittedStore()
        self.journal = SimJournal(self.store)
        self.checker = Checker(config, self.store)
        self.faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.counts: dict[str, int] = defaultdict(int)
        self.life = 0
        self.step = 0
        self.tokens = 0
        self.outstanding: dict[int, Sent] = {}
        self.lost: list[Intent] = []
        self.wallets = [f"w{index}" for index in range(settings.wallets)]
        self.mids = {market: mid for market, (mid, _) in MIDS.items() if market in config.markets}
        self.orders: dict[int, tuple[OrderIntent, str]] = {}  # known order id → (intent, status)
        self.deposits: list[DepositIntent] = []
        self.submitted: dict[str, DepositIntent] = {}  # tids the client knows as submitted
        self.transfers: list[TransferIntent] = []
        self.withdrawals: dict[int, Withdrawal] = {}
        self.payments: dict[int, Payment] = {}
        self.order_intents: list[OrderIntent] = []
        self.serial = 0
        self.process = self._boot()
        self.next_id = self.process.state.next_order_id
        self.next_deposit_id = self.process.state.next_deposit_id

    # ------------------------------------------------------------------ plumbing

    def _boot(self) -> SimProcess:
        settings = self.settings
        return boot(
            self.config,
            self.store,
            self.scheduler,
            self.clock,
            self.journal.submit,
            self._immediate,
            shards=settings.shards,
            vault_idle_s=settings.vault_idle_s,
            payment_confirm_delay_ns=settings.payment_confirm_delay_ns,
            ledger_factory=settings.ledger_factory,
            clearing_factory=settings.clearing_factory,
        )

    def _trace(self, text: str) -> None:
        if self.settings.trace:
            print(f"[{self.step:>6} life {self.life}] {text}", file=sys.stderr)

    def _immediate(self, replies: Sequence[tuple[int, Any]]) -> None:
        """Answers that changed nothing (on the loop at once, as `Bridge.reply_threadsafe`)."""
        for token, reply in replies:
            self._resolve(token, reply, committed=False)

    def _resolve(self, token: int, reply: Any, *, committed: bool) -> None:
        sent = self.outstanding.pop(token, None)
        if sent is None:
            # A restart drops every delivery and unit in flight with the tokens they carry.
            again = "answered twice" if token in self.checker.answered else "never sent"
            raise InvariantBroken("answered once", f"token {token} {again}: {reply!r}"[:300])
        self.checker.answer(token, reply, sent, committed)
        self.counts["answered"] += 1
        self._learn(sent, reply)

    def _learn(self, sent: Sent, reply: Any) -> None:
        """What the client knows from an answer (it may act on it later)."""
        if isinstance(reply, OrderState):
            known = self.orders.get(reply.order_id)
            if known is not None:
                self.orders[reply.order_id] = (known[0], reply.status)
            self.counts["orders acked"] += 1
        elif isinstance(reply, DuplicateOrder):
            # REST then waits for the first attempt's committed row (or answers 503).
            self.counts["duplicates" if reply.same_content else "refused idempotency_conflict"] += 1
        elif isinstance(reply, DepositState):
            intent = sent.intent
            if reply.state == "submitted" and isinstance(intent, DepositIntent):
                self.submitted[reply.tid] = intent
            elif reply.state != "submitted":
                self.submitted.pop(reply.tid, None)
        elif isinstance(reply, TrackedWithdrawal):
            withdrawal = reply.withdrawal
            if withdrawal.final:
                self.withdrawals.pop(withdrawal.withdrawal_id, None)
            else:
                self.withdrawals[withdrawal.withdrawal_id] = withdrawal
        elif isinstance(reply, Payment):
            if reply.final:
                self.payments.pop(reply.payment_id, None)
            else:
                self.payments[reply.payment_id] = reply
        elif isinstance(reply, Refused):
            self.counts[f"refused {reply.code}"] += 1

    def _committed(self, group: Sequence[JournalUnit]) -> None:
        self.checker.after_commit(group)
        self.counts["groups"] += 1
        self.counts["units"] += len(group)
        for unit in group:  # `Bridge.committed`: in commit order
            for token, reply in unit.replies:
                self._resolve(token, reply, committed=True)

    def _send(self, batches: dict[str, list[Any]]) -> None:
        """One batch per destination, as the bridge flushes one loop iteration."""
        for receiver, messages in batches.items():
            self.process.runtime.tell(receiver, tuple(messages))

    def _token(self) -> int:
        self.tokens += 1
        return self.tokens

    def _new_id(self) -> int:
        identifier = self.next_id
        self.next_id += 1
        return identifier

    # ------------------------------------------------------------------ the loop

    def run(self) -> Outcome:
        started = time.perf_counter()
        violation: InvariantBroken | None = None
        try:
            self._fund()
            for step in range(self.settings.steps):
                self.step = step
                self.scheduler.step = step
                self.clock.advance(self.random.randint(1, 500) * 1_000)
                self._one_step()
                self.checker.after_step(self.process)
            self.step = self.settings.steps
            self._drain()
        except InvariantBroken as broken:
            violation = broken
        self.faults["delay"] = self.scheduler.delayed
        self.faults["reorder"] = self.scheduler.reordered
        faults = {kind: self.faults[kind] for kind in FAULTS if kind in self.settings.faults}
        return Outcome(
            self.settings,
            self.digest() if violation is None else "",
            faults,
            dict(sorted(self.counts.items())),
            violation,
            self.step if violation is not None else None,
            time.perf_counter() - started,
        )

    def _one_step(self) -> None:
        faults = self.settings.faults
        rng = self.random
        if "restart" in faults and rng.random() < self.settings.restart_probability:
            self._restart("restart", "the process was stopped")
            return
        weights = (
            3.0 if len(self.outstanding) < IN_FLIGHT_MAX else 0.0,
            6.0 if self.scheduler.ready() else 0.0,
            2.0 if self.journal.queue else 0.0,
        )
        if not any(weights):
            self._trace("idle: every delivery is delayed")
            return
        action = rng.choices(("issue", "deliver", "commit"), weights)[0]
        if action == "issue":
            self._issue()
        elif action == "deliver":
            delivery = self.scheduler.next()
            assert delivery is not None
            if "crash" in faults and rng.random() < self.settings.crash_probability:
                self._crash(delivery)
            else:
                self._deliver(delivery)
        else:
            self._commit()

    def _deliver(self, delivery: Delivery) -> None:
        self._trace(
            f"deliver {delivery.sender} → {delivery.receiver}: "
            + ", ".join(type(item).__name__ for item in delivery.message)
        )
        self.counts["deliveries"] += 1
        shell = self.process.runtime.shells[delivery.receiver]
        vaults = len(shell.vaults) if isinstance(shell, VaultShardShell) else 0
        self._handle(delivery.receiver, lambda: self.process.runtime.deliver(delivery))
        if isinstance(shell, VaultShardShell) and len(shell.vaults) < vaults:
            self.counts["vaults passivated"] += vaults - len(shell.vaults)

    def _handle(self, receiver: str, handle: Callable[[], object]) -> None:
        """An exception escaping a behaviour is a broken invariant (fatal in production)."""
        try:
            handle()
        except InvariantBroken:
            raise
        except Exception as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            raise InvariantBroken(
                "behaviour asserted",
                f"{receiver} raised {error!r} at {where.filename}:{where.lineno}",
            ) from error

    def _crash(self, delivery: Delivery) -> None:
        """The actor fails while it handles the batch: whatever it did is lost with the
        process (`server.fatal` exits at once)."""
        shell = self.process.runtime.shells[delivery.receiver]
        self._handle(delivery.receiver, lambda: shell.receive(delivery.message))
        self._trace(f"crash in {delivery.receiver}")
        self._restart("crash", f"{delivery.receiver} crashed")

    def _commit(self) -> None:
        faults = self.settings.faults
        rng = self.random
        if "commit" in faults and rng.random() < self.settings.commit_failure_probability:
            self._restart("commit", "a journal group failed to commit")
            return
        try:
            group = self.journal.commit_group()
        except ConstraintViolation as error:
            raise InvariantBroken("journal constraints", str(error)) from error
        self._trace(f"commit a group of {len(group)} units")
        if "restart" in faults and rng.random() < self.settings.restart_probability * 5:
            self.checker.after_commit(group)
            self._restart("restart", "the process stopped after a commit, before its acks")
            return
        self._committed(group)

    def _restart(self, kind: str, why: str) -> None:
        self.faults[kind] += 1
        dropped = self.scheduler.clear()
        lost_units = self.journal.clear()
        self._trace(f"{why}: restart ({dropped} deliveries, {lost_units} units lost)")
        # Every command in flight lost its answer; clients retry those with a key.
        for sent in self.outstanding.values():
            intent = sent.intent
            if intent is not None and (
                not isinstance(intent, OrderIntent) or intent.external_id is not None
            ):
                self.lost.append(intent)
        self.outstanding.clear()
        self.life += 1
        self.counts["restarts"] += 1
        try:
            self.process = self._boot()
        except PersistenceError as error:
            raise InvariantBroken("restart rebuilds the committed state", str(error)) from error
        self.checker.memory_equals_store(self.process, "restart")
        # `Trading` starts its counters from the recovered state.
        self.next_id = self.process.state.next_order_id
        self.next_deposit_id = self.process.state.next_deposit_id

    def _drain(self) -> None:
        """No more commands or faults: deliver and commit until nothing is left."""
        for _ in range(DRAIN_ACTIONS_MAX):
            delivery = self.scheduler.next(force=True)
            if delivery is not None:
                self._deliver(delivery)
            elif self.journal.queue:
                self._commit_plain()
            else:
                break
            self.checker.after_step(self.process)
        else:
            raise InvariantBroken("quiescence", f"still busy after {DRAIN_ACTIONS_MAX} actions")
        if self.outstanding:
            token, sent = next(iter(self.outstanding.items()))
            raise InvariantBroken(
                "every command answered",
                f"{len(self.outstanding)} commands never answered, e.g. token {token}: "
                f"{sent.kind} {sent.message!r}"[:400],
            )
        self.checker.memory_equals_store(self.process, "drained")

    def _commit_plain(self) -> None:
        try:
            group = self.journal.commit_group()
        except ConstraintViolation as error:
            raise InvariantBroken("journal constraints", str(error)) from error
        self._committed(group)

    # ------------------------------------------------------------------ the workload

    def _fund(self) -> None:
        batches: dict[str, list[Any]] = defaultdict(list)
        for wallet_id in self.wallets:
            for currency, (low, high) in DEPOSIT_AMOUNTS.items():
                intent = DepositIntent(
                    self._tid(), wallet_id, currency, self.workload.randint(low, high), True
                )
                self._deposit(intent, batches)
        self._send(batches)

    def _tid(self) -> str:
        self.serial += 1
        return f"t{self.serial}"

    def _key(self, prefix: str) -> str | None:
        if self.workload.random() < 0.5:
            return None
        self.serial += 1
        return f"{prefix}{self.serial}"

    def _issue(self) -> None:
        rng = self.workload
        batches: dict[str, list[Any]] = defaultdict(list)
        for _ in range(rng.randint(1, 4)):
            choices = (
                ("order", 40.0),
                ("order again", 3.0 if self.order_intents else 0.0),
                ("cancel", 10.0 if self.orders else 0.0),
                ("replace", 8.0 if self.orders else 0.0),
                ("deposit", 8.0),
                ("deposit again", 2.0 if self.deposits else 0.0),
                ("deposit state", 3.0 if self.submitted else 0.0),
                ("transfer", 6.0),
                ("transfer again", 1.0 if self.transfers else 0.0),
                ("withdrawal", 4.0),
                ("withdrawal change", 8.0 if self.withdrawals else 0.0),
                ("payment", 2.0),
                ("payment incoming", 3.0 if self.payments else 0.0),
                ("payments due", 1.0),
                ("retry", 8.0 if self.lost else 0.0),
            )
            kind = rng.choices([name for name, _ in choices], [weight for _, weight in choices])[0]
            self.counts[f"sent {kind}"] += 1
            getattr(self, "_make_" + kind.replace(" ", "_"))(batches)
        self._trace("issue " + "; ".join(f"{r}: {len(m)}" for r, m in batches.items()))
        self._send(batches)

    def _track(self, token: int, kind: str, message: Any, intent: Intent | None) -> None:
        self.outstanding[token] = Sent(kind, message, self.life, intent)

    # orders

    def _make_order(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        market = rng.choice(sorted(self.mids))
        mid, step = self.mids[market], MIDS[market][1]
        mid = max(step * 20, mid + rng.randint(-3, 3) * step)
        self.mids[market] = mid
        side = rng.choice((Side.BUY, Side.SELL))
        price = mid + rng.randint(-8, 8) * step
        quantity = rng.randint(1, 30)
        shape = rng.choices(
            ("limit", "ioc", "fok", "post", "market", "stop", "stop market", "iceberg"),
            (40, 8, 6, 8, 8, 8, 5, 7),
        )[0]
        external_id = self._key("x")
        stop = mid + rng.choice((-1, 1)) * rng.randint(1, 6) * step
        if shape == "limit":
            intent = OrderIntent(self._pick(), market, side, OrderKind.LIMIT, price, quantity)
        elif shape in ("ioc", "fok"):
            tif = TimeInForce.IOC if shape == "ioc" else TimeInForce.FOK
            intent = OrderIntent(self._pick(), market, side, OrderKind.LIMIT, price, quantity,
                                 time_in_force=tif)  # fmt: skip
        elif shape == "post":
            intent = OrderIntent(self._pick(), market, side, OrderKind.LIMIT, price, quantity,
                                 post_only=True)  # fmt: skip
        elif shape == "market":
            intent = OrderIntent(self._pick(), market, side, OrderKind.MARKET, 0, quantity)
        elif shape == "stop":
            intent = OrderIntent(self._pick(), market, side, OrderKind.STOP_LIMIT, price,
                                 quantity, stop_price=stop)  # fmt: skip
        elif shape == "stop market":
            intent = OrderIntent(self._pick(), market, side, OrderKind.STOP_MARKET, 0, quantity,
                                 stop_price=stop)  # fmt: skip
        else:
            quantity = max(quantity, 4)
            intent = OrderIntent(self._pick(), market, side, OrderKind.LIMIT, price, quantity,
                                 display_quantity=rng.randint(1, quantity - 1))  # fmt: skip
        if external_id is not None:
            intent = OrderIntent(
                intent.wallet_id, intent.market, intent.side, intent.kind, intent.price,
                intent.quantity, intent.stop_price, intent.display_quantity,
                intent.time_in_force, intent.post_only, external_id,
            )  # fmt: skip
            self.order_intents.append(intent)
        self._place(intent, batches)

    def _place(self, intent: OrderIntent, batches: dict[str, list[Any]]) -> None:
        """As the REST edge: a known external id is answered from the committed row."""
        if intent.external_id is not None:
            for order in self.store.orders.values():
                if order.wallet_id == intent.wallet_id and order.external_id == intent.external_id:
                    self.counts["answered from the store"] += 1
                    if order.fingerprint != intent.fingerprint:
                        self.counts["refused idempotency_conflict"] += 1
                    return
        order_id = self._new_id()
        token = self._token()
        request = OrderRequest(
            token, order_id, intent.wallet_id, intent.market, intent.side, intent.kind,
            intent.price, intent.quantity, intent.stop_price, intent.display_quantity,
            intent.time_in_force, intent.post_only, intent.external_id, intent.fingerprint,
            self.clock.ns(),
        )  # fmt: skip
        self.orders[order_id] = (intent, "sent")
        self._track(token, "order", request, intent)
        batches[self.process.runtime.shard_name(intent.wallet_id)].append(request)

    def _make_order_again(self, batches: dict[str, list[Any]]) -> None:
        """A client retrying while its first attempt may still be in flight; sometimes with
        other content under the same key (a conflict)."""
        intent = self.workload.choice(self.order_intents[-50:])
        if self.workload.random() < 0.2:
            intent = OrderIntent(
                intent.wallet_id, intent.market, intent.side, intent.kind, intent.price,
                intent.quantity + 1, intent.stop_price, intent.display_quantity,
                intent.time_in_force, intent.post_only, intent.external_id,
            )  # fmt: skip
        self._place(intent, batches)

    def _known_order(self) -> tuple[int, OrderIntent]:
        rng = self.workload
        live = [order_id for order_id, (_, status) in self.orders.items()
                if status in ("sent", "open", "pending")]  # fmt: skip
        pool = live[-40:] if live and rng.random() < 0.85 else list(self.orders)[-80:]
        order_id = rng.choice(pool)
        return order_id, self.orders[order_id][0]

    def _make_cancel(self, batches: dict[str, list[Any]]) -> None:
        order_id, intent = self._known_order()
        token = self._token()
        request = CancelRequest(token, intent.wallet_id, order_id, self.clock.ns())
        self._track(token, "cancel", request, None)
        batches[self.process.runtime.shard_name(intent.wallet_id)].append(request)

    def _make_replace(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        order_id, intent = self._known_order()
        step = MIDS[intent.market][1]
        price = self.mids[intent.market] + rng.randint(-8, 8) * step
        token = self._token()
        request = ReplaceRequest(
            token, intent.wallet_id, order_id, price, rng.randint(1, 40), self.clock.ns()
        )
        self._track(token, "replace", request, None)
        batches[self.process.runtime.shard_name(intent.wallet_id)].append(request)

    # deposits

    def _deposit(self, intent: DepositIntent, batches: dict[str, list[Any]]) -> None:
        token = self._token()
        deposit_id = self.next_deposit_id
        self.next_deposit_id += 1
        request = DepositRequest(
            token, deposit_id, intent.tid, intent.wallet_id, intent.currency, intent.amount,
            intent.accept, intent.fingerprint, self.clock.ns(),
        )  # fmt: skip
        self._track(token, "deposit", request, intent)
        batches["ledger"].append(request)

    def _make_deposit(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        currency = rng.choice(sorted(DEPOSIT_AMOUNTS))
        low, high = DEPOSIT_AMOUNTS[currency]
        intent = DepositIntent(
            self._tid(), self._pick(), currency, rng.randint(low, high) // 4, rng.random() < 0.8
        )
        self.deposits.append(intent)
        self._deposit(intent, batches)

    def _make_deposit_again(self, batches: dict[str, list[Any]]) -> None:
        intent = self.workload.choice(self.deposits[-40:])
        if self.workload.random() < 0.2:  # the same tid with other content: a conflict
            intent = DepositIntent(intent.tid, intent.wallet_id, intent.currency,
                                   intent.amount + 1, intent.accept)  # fmt: skip
        self._deposit(intent, batches)

    def _make_deposit_state(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        tid = rng.choice(sorted(self.submitted))
        state = rng.choices(("accepted", "canceled", "rejected", "submitted"), (6, 2, 1, 1))[0]
        token = self._token()
        request = DepositStateRequest(token, tid, state, self.clock.ns())
        self._track(token, "deposit state", request, None)
        batches["ledger"].append(request)

    # wallet transfers

    def _transfer(self, intent: TransferIntent, batches: dict[str, list[Any]]) -> None:
        now_ns = self.clock.ns()
        transfer = WalletTransfer(
            transfer_id=self._new_id(), kind=intent.kind, partner_id=PARTNER,
            from_wallet=intent.from_wallet, to_wallet=intent.to_wallet,
            currency=intent.currency, amount=intent.amount, status=TransferStatus.PENDING,
            created_ns=now_ns, updated_ns=now_ns, key=intent.key,
            fingerprint=intent.fingerprint,
        )  # fmt: skip
        token = self._token()
        request = TransferRequest(token, transfer, intent.kind is TransferKind.SECURE_SEND)
        self._track(token, "transfer", request, intent)
        batches["ledger"].append(request)

    def _make_transfer(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        master, subs = self.wallets[0], self.wallets[1:]
        currency = rng.choice(sorted(DEPOSIT_AMOUNTS))
        low, _ = DEPOSIT_AMOUNTS[currency]
        amount = rng.randint(1, low // 4)
        kind = rng.choice((TransferKind.TO_SUB, TransferKind.TO_MASTER, TransferKind.SECURE_SEND))
        sub = rng.choice(subs)
        if kind is TransferKind.TO_SUB:
            source, destination = master, sub
        elif kind is TransferKind.TO_MASTER:
            source, destination = sub, master
        else:
            source, destination = rng.sample(self.wallets, 2)
        intent = TransferIntent(kind, source, destination, currency, amount, self._key("k"))
        self.transfers.append(intent)
        self._transfer(intent, batches)

    def _make_transfer_again(self, batches: dict[str, list[Any]]) -> None:
        intent = self.workload.choice(self.transfers[-40:])
        self._transfer(intent, batches)

    # withdrawals

    def _withdraw(self, intent: WithdrawalIntent, batches: dict[str, list[Any]]) -> None:
        withdrawal = prepare(
            DEFAULT_RULES,
            withdrawal_id=self._new_id(),
            wallet_id=intent.wallet_id,
            code=intent.code,
            address=ADDRESSES[DEFAULT_RULES.rule(intent.code).chain],
            amount=intent.amount,
            at_ns=self.clock.ns(),
        )
        tracked = TrackedWithdrawal(withdrawal, PARTNER, intent.code, intent.key,
                                    intent.fingerprint)  # fmt: skip
        token = self._token()
        request = WithdrawalRequest(token, tracked)
        self._track(token, "withdrawal", request, intent)
        batches["ledger"].append(request)

    def _make_withdrawal(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        code = rng.choice(sorted(WITHDRAWAL_AMOUNTS))
        low, high = WITHDRAWAL_AMOUNTS[code]
        intent = WithdrawalIntent(self._pick(), code, rng.randint(low, high), self._key("wd"))
        self._withdraw(intent, batches)

    def _make_withdrawal_change(self, batches: dict[str, list[Any]]) -> None:
        """The custody worker's steps (and an operator's), from what acks taught it."""
        rng = self.workload
        withdrawal_id = rng.choice(sorted(self.withdrawals))
        withdrawal = self.withdrawals[withdrawal_id]
        state = withdrawal.state
        txid = f"tx{withdrawal_id}"
        event: WithdrawalEvent | None
        details: dict[str, Any] = {}
        if state is WithdrawalState.ACCEPTED:
            event = rng.choices(
                (WithdrawalEvent.PROCESS, WithdrawalEvent.CANCEL, WithdrawalEvent.REJECT),
                (8, 1, 1),
            )[0]
        elif state is WithdrawalState.PROCESSING:
            event = rng.choices(
                (WithdrawalEvent.DISPATCH, WithdrawalEvent.ERROR, WithdrawalEvent.FAIL), (8, 1, 1)
            )[0]
            if event is WithdrawalEvent.DISPATCH:
                details["txid"] = txid
        elif state is WithdrawalState.CONFIRMING:
            event = rng.choices((WithdrawalEvent.SUCCESS, WithdrawalEvent.FAIL, None), (5, 1, 3))[0]
            details["confirmations"] = 3 if event is WithdrawalEvent.SUCCESS else rng.randint(0, 2)
            if event is WithdrawalEvent.FAIL:
                details = {}
        else:  # errored
            event = rng.choice(
                (WithdrawalEvent.PROCESS, WithdrawalEvent.SUCCESS, WithdrawalEvent.FAIL)
            )
            if event is WithdrawalEvent.SUCCESS:
                details["txid"] = withdrawal.txid or txid
        if event in (WithdrawalEvent.CANCEL, WithdrawalEvent.REJECT, WithdrawalEvent.FAIL,
                     WithdrawalEvent.ERROR):  # fmt: skip
            details["reason"] = f"simulated {event}"
        token = self._token()
        request = WithdrawalChange(token, withdrawal_id, self.clock.ns(), event, **details)
        self._track(token, "withdrawal change", request, None)
        batches["ledger"].append(request)

    # payments

    def _pay(self, intent: PaymentIntent, batches: dict[str, list[Any]]) -> None:
        now_ns = self.clock.ns()
        payment_id = self._new_id()
        payment = Payment(
            payment_id=payment_id, partner_id=PARTNER, wallet_id=intent.wallet_id,
            code="USDTTRC20", currency="USDT", chain="TRON", pay_address=f"T-sim-{payment_id}",
            pay_amount=intent.pay_amount, price_amount=str(intent.pay_amount),
            price_currency="USDT", status=PaymentStatus.WAITING,
            expires_ns=now_ns + intent.lifetime_ns, created_ns=now_ns, updated_ns=now_ns,
            key=intent.key, fingerprint=intent.fingerprint,
        )  # fmt: skip
        token = self._token()
        request = PaymentRequest(token, payment)
        self._track(token, "payment", request, intent)
        batches["ledger"].append(request)

    def _make_payment(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        intent = PaymentIntent(
            self._pick(),
            rng.randint(10, 500) * 1_000_000,
            rng.randint(5, 60) * 1_000_000,
            self._key("pay"),
        )
        self._pay(intent, batches)

    def _make_payment_incoming(self, batches: dict[str, list[Any]]) -> None:
        rng = self.workload
        payment_id = rng.choice(sorted(self.payments))
        payment = self.payments[payment_id]
        amount = payment.pay_amount if rng.random() < 0.6 else payment.pay_amount // 3
        self.serial += 1
        token = self._token()
        request = PaymentIncoming(token, payment_id, f"ptx{self.serial}", amount, self.clock.ns())
        self._track(token, "payment incoming", request, None)
        batches["ledger"].append(request)

    def _make_payments_due(self, batches: dict[str, list[Any]]) -> None:
        token = self._token()
        request = PaymentsDue(token, self.clock.ns())
        self._track(token, "payments due", request, None)
        batches["ledger"].append(request)

    # retries after a restart

    def _make_retry(self, batches: dict[str, list[Any]]) -> None:
        intent = self.lost.pop(self.workload.randrange(len(self.lost)))
        if isinstance(intent, OrderIntent):
            self._place(intent, batches)
        elif isinstance(intent, DepositIntent):
            self._deposit(intent, batches)
        elif isinstance(intent, TransferIntent):
            self._transfer(intent, batches)
        elif isinstance(intent, WithdrawalIntent):
            self._withdraw(intent, batches)
        else:
            self._pay(intent, batches)

    def _pick(self) -> str:
        return self.workload.choice(self.wallets)

    # ------------------------------------------------------------------ the digest

    def digest(self) -> str:
        """SHA-256 of the committed state in a canonical encoding (sorted, no ids of
        objects, no clock but the simulated one)."""
        store = self.store
        books = {
            market: [book.depth(1_000), [(o.order.order_id, o.remaining, o.visible, o.priority)
                                         for o in book.open_orders()]]
            for market, book in sorted(self.process.books.items())
        }  # fmt: skip
        document = [
            sorted(store.balances.items()),
            [store.orders[key] for key in sorted(store.orders)],
            [store.trades[key] for key in sorted(store.trades)],
            [store.deposits[key] for key in sorted(store.deposits)],
            [store.wallet_transfers[key] for key in sorted(store.wallet_transfers)],
            [store.withdrawals[key] for key in sorted(store.withdrawals)],
            [store.payments[key] for key in sorted(store.payments)],
            sorted(store.sequences.items()),
            sorted(store.holds.items()),
            books,
        ]
        return hashlib.sha256(msgspec.json.encode(document)).hexdigest()


def run(settings: Settings) -> Outcome:
    return Simulation(settings).run()


# --------------------------------------------------------------------------- the command


def main(arguments: argparse.Namespace) -> int:
    try:
        faults = parse_faults(arguments.faults)
    except ValueError as error:
        print(f"strongroom sim dst: {error}", file=sys.stderr)
        return 2
    if arguments.steps < 0 or arguments.seeds < 1:
        print("strongroom sim dst: --steps must be >= 0 and --seeds >= 1", file=sys.stderr)
        return 2
    trace = bool(getattr(arguments, "trace", False))
    idle_s = float(getattr(arguments, "vault_idle_s", None) or VAULT_IDLE_S)
    if arguments.seeds == 1:
        outcome = run(
            Settings(arguments.seed, arguments.steps, faults, vault_idle_s=idle_s, trace=trace)
        )
        counts = outcome.counts
        print(
            f"seed {arguments.seed}: {arguments.steps} steps in {outcome.elapsed_s:.2f} s, "
            f"{counts.get('deliveries', 0)} deliveries, {counts.get('groups', 0)} commits, "
            f"{counts.get('answered', 0)} answers, {counts.get('restarts', 0)} restarts"
        )
        if outcome.violation is not None:
            print(f"invariant broken at step {outcome.step}: {outcome.violation}")
            print(f"reproduce: {outcome.settings.command()}")
        print(json.dumps(outcome.report()))
        return 0 if outcome.held else 1
    return _long(arguments.seed, arguments.seeds, arguments.steps, faults, idle_s)


def _long(first: int, seeds: int, steps: int, faults: frozenset[str], idle_s: float) -> int:
    started = time.perf_counter()
    failed: list[int] = []
    totals: dict[str, int] = dict.fromkeys(sorted(faults, key=FAULTS.index), 0)
    for seed in range(first, first + seeds):
        outcome = run(Settings(seed, steps, faults, vault_idle_s=idle_s))
        for kind, count in outcome.faults_injected.items():
            totals[kind] += count
        if outcome.violation is not None:
            failed.append(seed)
            print(f"seed {seed}: invariant broken at step {outcome.step}: {outcome.violation}")
            print(f"reproduce: {outcome.settings.command()}")
        done = seed - first + 1
        if done % 500 == 0:
            print(f"{done}/{seeds} seeds, {len(failed)} failed", file=sys.stderr)
    elapsed_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seeds": seeds,
                "first_seed": first,
                "steps": steps,
                "failed": failed,
                "invariants": "broken" if failed else "held",
                "faults_injected": totals,
                "elapsed_s": round(elapsed_s, 3),
            }
        )
    )
    return 1 if failed else 0
