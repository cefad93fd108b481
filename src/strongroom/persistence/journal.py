"""The journal writer: one task on the event loop that commits units in groups.

Every unit queued while the previous group was committing forms the next group: one
transaction, COPY for the append-only tables, then `on_commit` is called for each of
exactly those units (it publishes their book results and resolves their replies).
Nothing is acknowledged before the commit that holds its effects.

A group that cannot be committed stops the process (after retries): the actors'
memory is then ahead of the database, and only a restart from the committed state is
safe.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from loguru import logger

from strongroom.actors.messages import Account, AccountCode, DepositState, JournalUnit
from strongroom.config import DEFAULT, Currency
from strongroom.custody import views
from strongroom.custody.views import event_id_for
from strongroom.persistence.errors import CommitFailed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GROUP_UNITS_MAX = 2_000
COMMIT_ATTEMPTS = 3


def timestamp(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1_000)


def nanoseconds(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1) * 1_000


def is_debit_normal(code: AccountCode) -> bool:
    return code < 200 or code >= 400


def balance_deltas(units: Sequence[JournalUnit]) -> dict[Account, int]:
    deltas: defaultdict[Account, int] = defaultdict(int)
    for unit in units:
        for transfer in unit.transfers:
            for posting in transfer.postings:
                debit, credit, amount = posting.debit, posting.credit, posting.amount
                deltas[debit] += amount if is_debit_normal(debit.code) else -amount
                deltas[credit] += -amount if is_debit_normal(credit.code) else amount
    return deltas


class Journal:
    """`currencies` render the webhook events the journal derives itself: a deposit that
    became `accepted` is announced (`deposit.completed`) in the transaction that credits
    it, the payload built here rather than on the ledger actor's hot path."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        on_commit: Callable[[JournalUnit], None],
        on_fatal: Callable[[BaseException], None],
        *,
        group_units_max: int = GROUP_UNITS_MAX,
        currencies: Mapping[str, Currency] = DEFAULT.currencies,
    ) -> None:
        self._pool = pool
        self._currencies = currencies
        self._on_commit = on_commit
        self._on_fatal = on_fatal
        self._group_units_max = group_units_max
        self._queue: list[JournalUnit] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.groups_committed = 0
        self.units_committed = 0

    def submit(self, unit: JournalUnit) -> None:
        """Queue a unit (on the loop; actors use `Bridge.commit_threadsafe`)."""
        self._queue.append(unit)
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="journal")

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until everything submitted so far is committed."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group = self._queue[: self._group_units_max]
                del self._queue[: self._group_units_max]
                try:
                    await self._commit_with_retries(group)
                except CommitFailed as error:
                    self._on_fatal(error)
                    return
                self.groups_committed += 1
                self.units_committed += len(group)
                for unit in group:
                    self._on_commit(unit)
            if not self._queue:
                self._idle.set()

    async def _commit_with_retries(self, group: list[JournalUnit]) -> None:
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                await self._commit(group)
                return
            except (TimeoutError, OSError, asyncpg.PostgresError) as error:
                logger.opt(exception=error).error("journal commit failed", attempt=attempt)
                if isinstance(error, asyncpg.IntegrityConstraintViolationError):
                    break  # a retry cannot help; the state in memory is wrong
                await asyncio.sleep(0.2 * attempt)
        raise CommitFailed(f"could not commit a group of {len(group)} units")

    async def _commit(self, group: list[JournalUnit]) -> None:
        transfers: list[tuple[Any, ...]] = []
        postings: list[tuple[Any, ...]] = []
        trades: list[tuple[Any, ...]] = []
        orders: dict[int, tuple[Any, ...]] = {}
        deposits: dict[int, tuple[Any, ...]] = {}
        sequences: dict[str, int] = {}
        custody = CustodyRows()
        for unit in group:
            custody.add(unit)
            for deposit in unit.deposits:
                if deposit.state == "accepted":
                    custody.deposit_completed(deposit, self._currencies)
            for transfer in unit.transfers:
                # The creation time is the commit's (column default); transfers carry no clock.
                transfers.append((transfer.transfer_id, transfer.kind, transfer.key))
                for posting in transfer.postings:
                    postings.append((
                        transfer.transfer_id,
                        int(posting.debit.code), posting.debit.wallet_id,
                        int(posting.credit.code), posting.credit.wallet_id,
                        posting.debit.currency, posting.amount, posting.hold_id,
                    ))  # fmt: skip
            for trade in unit.trades:
                trades.append((
                    trade.market, trade.trade_id, trade.price, trade.quantity,
                    int(trade.taker_side), trade.maker_order_id, trade.taker_order_id,
                    timestamp(trade.at_ns),
                ))  # fmt: skip
            for order in unit.orders:
                orders[order.order_id] = (
                    order.order_id, order.wallet_id, order.market, int(order.side),
                    int(order.kind), order.price, order.quantity, order.stop_price,
                    order.display_quantity, int(order.time_in_force), order.post_only,
                    order.external_id, order.fingerprint, order.status, order.filled,
                    order.funds, order.remaining, order.visible, order.priority,
                    timestamp(order.created_ns), timestamp(order.updated_ns), order.reason,
                )  # fmt: skip
            for deposit in unit.deposits:
                deposits[deposit.deposit_id] = (
                    deposit.deposit_id, deposit.tid, deposit.wallet_id, deposit.currency,
                    deposit.amount, deposit.state, deposit.fingerprint, deposit.transfer_id,
                    timestamp(deposit.created_ns),
                    None if deposit.completed_ns is None else timestamp(deposit.completed_ns),
                )  # fmt: skip
            sequences.update(unit.sequences)
        balances = [
            (int(account.code), account.wallet_id or "", account.currency, delta)
            for account, delta in balance_deltas(group).items()
            if delta
        ]
        if not (transfers or trades or orders or deposits or sequences or custody):
            return  # replies only: the groups before this one are already committed
        async with self._pool.acquire() as connection, connection.transaction():
            if transfers:
                await connection.copy_records_to_table(
                    "transfers", records=transfers, columns=["transfer_id", "kind", "key"]
                )
            if postings:
                await connection.copy_records_to_table(
                    "postings",
                    records=postings,
                    columns=[
                        "transfer_id", "debit_code", "debit_wallet", "credit_code",
                        "credit_wallet", "currency", "amount", "hold_id",
                    ],
                )  # fmt: skip
            if trades:
                await connection.copy_records_to_table(
                    "trades",
                    records=trades,
                    columns=[
                        "market", "trade_id", "price", "quantity", "taker_side",
                        "maker_order_id", "taker_order_id", "created_at",
                    ],
                )  # fmt: skip
            # One statement per table over arrays: far cheaper than a row per statement.
            if balances:
                await connection.execute(UPSERT_BALANCES, *columns(balances))
            if orders:
                await connection.execute(UPSERT_ORDERS, *columns(list(orders.values())))
            if deposits:
                await connection.execute(UPSERT_DEPOSITS, *columns(list(deposits.values())))
            if sequences:
                await connection.execute(UPSERT_SEQUENCES, *columns(list(sequences.items())))
            await custody.write(connection)


class CustodyRows:
    """The custody entities of a group (the latest state of each) and its webhook events."""

    def __init__(self) -> None:
        self.transfers: dict[int, tuple[Any, ...]] = {}
        self.withdrawals: dict[int, tuple[Any, ...]] = {}
        self.payments: dict[int, tuple[Any, ...]] = {}
        self.events: dict[str, tuple[Any, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.transfers or self.withdrawals or self.payments or self.events)

    def add(self, unit: JournalUnit) -> None:
        for item in unit.wallet_transfers:
            self.transfers[item.transfer_id] = (
                item.transfer_id, str(item.kind), item.partner_id, item.from_wallet,
                item.to_wallet, item.currency, item.amount, str(item.status), item.key,
                item.fingerprint, item.callback_url, item.reason, item.ledger_transfer_id,
                timestamp(item.created_ns), timestamp(item.updated_ns),
            )  # fmt: skip
        for tracked in unit.withdrawals:
            w = tracked.withdrawal
            self.withdrawals[w.withdrawal_id] = (
                w.withdrawal_id, tracked.partner_id, w.wallet_id, tracked.code, w.currency,
                w.chain, w.address, w.amount, w.fee, str(w.state), w.txid, w.confirmations,
                w.reason, w.custom_id, tracked.key, tracked.fingerprint, tracked.callback_url,
                timestamp(w.created_ns), timestamp(w.updated_ns),
            )  # fmt: skip
        for p in unit.payments:
            self.payments[p.payment_id] = (
                p.payment_id, p.partner_id, p.wallet_id, p.code, p.currency, p.chain,
                p.pay_address, p.pay_amount, p.received, list(p.txids), p.price_amount,
                p.price_currency, str(p.status), p.order_id, p.order_description, p.key,
                p.fingerprint, p.callback_url, p.ledger_transfer_id, timestamp(p.expires_ns),
                None if p.confirm_ns is None else timestamp(p.confirm_ns),
                timestamp(p.created_ns), timestamp(p.updated_ns),
            )  # fmt: skip
        for event in unit.events:
            self.events[event.event_id] = (
                event.event_id, event.partner_id, event.event_type, event.payload,
                event.callback_url, event.wallet_id,
            )  # fmt: skip

    def deposit_completed(self, deposit: DepositState, currencies: Mapping[str, Currency]) -> None:
        """`deposit.completed` to the wallet's owner; the id comes from the tid, so however
        often the deposit is retried it is one event."""
        event_id = event_id_for("deposit.completed", deposit.tid)
        payload = msgspec.json.encode(views.deposit(deposit, currencies)).decode()
        self.events[event_id] = (
            event_id, "", "deposit.completed", payload, None, deposit.wallet_id,
        )  # fmt: skip

    async def write(self, connection: Any) -> None:
        if self.transfers:
            await connection.execute(
                UPSERT_WALLET_TRANSFERS, *columns(list(self.transfers.values()))
            )
        if self.withdrawals:
            await connection.execute(UPSERT_WITHDRAWALS, *columns(list(self.withdrawals.values())))
        if self.payments:
            # txids is an array per row: unnest would flatten a text[][]; one row each.
            await connection.executemany(UPSERT_PAYMENT, list(self.payments.values()))
        if self.events:
            await connection.execute(INSERT_EVENTS, *columns(list(self.events.values())))


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


UPSERT_BALANCES = """
INSERT INTO balances (code, wallet_id, currency, amount)
SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[], $4::bigint[])
ON CONFLICT (code, wallet_id, currency) DO UPDATE SET amount = balances.amount + excluded.amount
"""

UPSERT_SEQUENCES = """
INSERT INTO markets (market, sequence) SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (market) DO UPDATE SET sequence = excluded.sequence
"""

UPSERT_ORDERS = """
INSERT INTO orders (
    order_id, wallet_id, market, side, kind, price, quantity, stop_price,
    display_quantity, time_in_force, post_only, external_id, fingerprint, status,
    filled, funds, remaining, visible, priority, created_at, updated_at, reason
) SELECT * FROM unnest(
    $1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::smallint[], $6::bigint[],
    $7::bigint[], $8::bigint[], $9::bigint[], $10::smallint[], $11::boolean[], $12::text[],
    $13::text[], $14::text[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[],
    $19::bigint[], $20::timestamptz[], $21::timestamptz[], $22::text[]
)
ON CONFLICT (order_id) DO UPDATE SET
    price = excluded.price, quantity = excluded.quantity, status = excluded.status,
    filled = excluded.filled, funds = excluded.funds, remaining = excluded.remaining,
    visible = excluded.visible, priority = excluded.priority,
    updated_at = excluded.updated_at, reason = excluded.reason
"""

UPSERT_DEPOSITS = """
INSERT INTO deposits (
    deposit_id, tid, wallet_id, currency, amount, state, fingerprint, transfer_id,
    created_at, completed_at
) SELECT * FROM unnest(
    $1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
    $8::bigint[], $9::timestamptz[], $10::timestamptz[]
)
ON CONFLICT (deposit_id) DO UPDATE SET
    state = excluded.state, transfer_id = excluded.transfer_id,
    completed_at = excluded.completed_at
"""

UPSERT_WALLET_TRANSFERS = """
INSERT INTO wallet_transfers (
    transfer_id, kind, partner_id, from_wallet, to_wallet, currency, amount, status,
    idempotency_key, fingerprint, callback_url, reason, ledger_transfer_id, created_at,
    updated_at
) SELECT * FROM unnest(
    $1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[],
    $14::timestamptz[], $15::timestamptz[]
)
ON CONFLICT (transfer_id) DO UPDATE SET
    status = excluded.status, reason = excluded.reason,
    ledger_transfer_id = excluded.ledger_transfer_id, updated_at = excluded.updated_at
"""

UPSERT_WITHDRAWALS = """
INSERT INTO withdrawals (
    withdrawal_id, partner_id, wallet_id, code, currency, chain, address, amount, fee,
    state, txid, confirmations, reason, custom_id, idempotency_key, fingerprint,
    callback_url, created_at, updated_at
) SELECT * FROM unnest(
    $1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::integer[], $13::text[],
    $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[],
    $19::timestamptz[]
)
ON CONFLICT (withdrawal_id) DO UPDATE SET
    state = excluded.state, txid = excluded.txid, confirmations = excluded.confirmations,
    reason = excluded.reason, updated_at = excluded.updated_at
"""

UPSERT_PAYMENT = """
INSERT INTO payments (
    payment_id, partner_id, wallet_id, code, currency, chain, pay_address, pay_amount,
    received, txids, price_amount, price_currency, status, order_id, order_description,
    idempotency_key, fingerprint, callback_url, ledger_transfer_id, expires_at, confirm_at,
    created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
          $19, $20, $21, $22, $23)
ON CONFLICT (payment_id) DO UPDATE SET
    received = excluded.received, txids = excluded.txids, status = excluded.status,
    ledger_transfer_id = excluded.ledger_transfer_id, confirm_at = excluded.confirm_at,
    updated_at = excluded.updated_at
"""

# Written in the transaction of their cause; nothing for a partner that cannot be signed
# for (no webhook settings), as `webhooks.enqueue` does.
INSERT_EVENTS = """
INSERT INTO webhook_events (event_id, partner_id, event_type, payload, target_url)
SELECT e.event_id, p.partner_id, e.event_type, e.payload::jsonb, e.target_url
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
       AS e (event_id, partner_id, event_type, payload, target_url, wallet_id)
 CROSS JOIN LATERAL (SELECT coalesce(nullif(e.partner_id, ''),
                     (SELECT owner FROM wallets WHERE wallet_id = e.wallet_id)) AS partner_id) p
 WHERE EXISTS (SELECT 1 FROM partner_webhooks w WHERE w.partner_id = p.partner_id)
ON CONFLICT (event_id) DO NOTHING
"""
