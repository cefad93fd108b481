"""Recovery: rebuild the actors' state from what the journal committed.

Balances are the sums of postings (the `balances` table is checked against them),
holds are the sums of their locked postings, and live orders go back on their books
in ascending priority, which is their original time priority.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
from loguru import logger

from strongroom.actors.messages import (
    Account,
    AccountCode,
    DepositState,
    OrderKind,
    OrderState,
    Side,
    TimeInForce,
)
from strongroom.custody.payments import Payment, PaymentStatus
from strongroom.custody.transfers import TransferKind, TransferStatus, WalletTransfer
from strongroom.custody.withdrawals import TrackedWithdrawal, Withdrawal, WithdrawalState
from strongroom.persistence.errors import PersistenceError
from strongroom.persistence.journal import nanoseconds


@dataclass(frozen=True, slots=True)
class MarketCounters:
    next_trade_id: int = 1
    next_priority: int = 1
    last_price: int = 0
    sequence: int = 0


@dataclass(slots=True)
class RecoveredState:
    balances: list[tuple[Account, int]] = field(default_factory=list)
    holds: list[tuple[int, Account, int]] = field(default_factory=list)
    live_orders: list[OrderState] = field(default_factory=list)
    deposits: list[DepositState] = field(default_factory=list)
    wallet_transfers: list[WalletTransfer] = field(default_factory=list)
    withdrawals: list[TrackedWithdrawal] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    markets: dict[str, MarketCounters] = field(default_factory=dict)
    next_order_id: int = 1
    next_transfer_id: int = 1
    next_deposit_id: int = 1


BALANCES_FROM_POSTINGS = """
SELECT code, wallet, currency, sum(amount)::bigint AS amount FROM (
    SELECT credit_code AS code, credit_wallet AS wallet, currency,
           CASE WHEN credit_code < 200 OR credit_code >= 400 THEN -amount ELSE amount END AS amount
      FROM postings
    UNION ALL
    SELECT debit_code, debit_wallet, currency,
           CASE WHEN debit_code < 200 OR debit_code >= 400 THEN amount ELSE -amount END
      FROM postings
) AS movements GROUP BY code, wallet, currency HAVING sum(amount) <> 0
"""

HOLDS_FROM_POSTINGS = """
SELECT hold_id, code, wallet, currency, sum(amount)::bigint AS amount FROM (
    SELECT hold_id, credit_code AS code, credit_wallet AS wallet, currency, amount
      FROM postings WHERE hold_id IS NOT NULL AND credit_code IN (211, 212)
    UNION ALL
    SELECT hold_id, debit_code, debit_wallet, currency, -amount
      FROM postings WHERE hold_id IS NOT NULL AND debit_code IN (211, 212)
) AS movements GROUP BY hold_id, code, wallet, currency HAVING sum(amount) <> 0
"""


async def recover(
    connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
) -> RecoveredState:
    state = RecoveredState()
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        for row in await connection.fetch(BALANCES_FROM_POSTINGS):
            account = Account(AccountCode(row["code"]), row["currency"], row["wallet"])
            state.balances.append((account, row["amount"]))
        derived = {
            (row["code"], row["wallet_id"], row["currency"]): row["amount"]
            for row in await connection.fetch("SELECT * FROM balances WHERE amount <> 0")
        }
        summed = {
            (int(account.code), account.wallet_id or "", account.currency): amount
            for account, amount in state.balances
        }
        if derived != summed:
            raise PersistenceError("balances table disagrees with the sum of postings")
        for row in await connection.fetch(HOLDS_FROM_POSTINGS):
            account = Account(AccountCode(row["code"]), row["currency"], row["wallet"])
            state.holds.append((row["hold_id"], account, row["amount"]))
        for row in await connection.fetch(
            "SELECT * FROM orders WHERE status IN ('open', 'pending')"
            " ORDER BY market, priority, order_id"
        ):
            state.live_orders.append(order_from_row(row))
        for row in await connection.fetch("SELECT * FROM deposits"):
            state.deposits.append(deposit_from_row(row))
        for row in await connection.fetch("SELECT * FROM wallet_transfers"):
            state.wallet_transfers.append(wallet_transfer_from_row(row))
        for row in await connection.fetch("SELECT * FROM withdrawals"):
            state.withdrawals.append(withdrawal_from_row(row))
        for row in await connection.fetch("SELECT * FROM payments"):
            state.payments.append(payment_from_row(row))
        # Orders, withdrawals (their ids are hold ids), transfers and payments draw their
        # ids from one counter.
        state.next_order_id = 1 + await connection.fetchval(
            "SELECT greatest("
            " (SELECT coalesce(max(order_id), 0) FROM orders),"
            " (SELECT coalesce(max(withdrawal_id), 0) FROM withdrawals),"
            " (SELECT coalesce(max(transfer_id), 0) FROM wallet_transfers),"
            " (SELECT coalesce(max(payment_id), 0) FROM payments))"
        )
        state.next_transfer_id = 1 + await connection.fetchval(
            "SELECT coalesce(max(transfer_id), 0) FROM transfers"
        )
        state.next_deposit_id = 1 + await connection.fetchval(
            "SELECT coalesce(max(deposit_id), 0) FROM deposits"
        )
        counters: defaultdict[str, dict[str, int]] = defaultdict(dict)
        for row in await connection.fetch("SELECT market, sequence FROM markets"):
            counters[row["market"]]["sequence"] = row["sequence"]
        for row in await connection.fetch(
            "SELECT DISTINCT ON (market) market, trade_id, price FROM trades"
            " ORDER BY market, trade_id DESC"
        ):
            counters[row["market"]]["next_trade_id"] = row["trade_id"] + 1
            counters[row["market"]]["last_price"] = row["price"]
        for row in await connection.fetch(
            "SELECT market, max(priority) AS priority FROM orders GROUP BY market"
        ):
            counters[row["market"]]["next_priority"] = row["priority"] + 1
        state.markets = {market: MarketCounters(**values) for market, values in counters.items()}
    orphans = (
        {hold_id for hold_id, _, _ in state.holds}
        - {order.order_id for order in state.live_orders}
        - {t.withdrawal.withdrawal_id for t in state.withdrawals if t.withdrawal.holding}
    )
    if orphans:
        raise PersistenceError(f"holds without a live order: {sorted(orphans)[:10]}")
    logger.info(
        "recovered",
        accounts=len(state.balances),
        live_orders=len(state.live_orders),
        holds=len(state.holds),
        deposits=len(state.deposits),
    )
    return state


def order_from_row(row: asyncpg.Record) -> OrderState:
    return OrderState(
        order_id=row["order_id"],
        wallet_id=row["wallet_id"],
        market=row["market"],
        side=Side(row["side"]),
        kind=OrderKind(row["kind"]),
        price=row["price"],
        quantity=row["quantity"],
        stop_price=row["stop_price"],
        display_quantity=row["display_quantity"],
        time_in_force=TimeInForce(row["time_in_force"]),
        post_only=row["post_only"],
        external_id=row["external_id"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        filled=row["filled"],
        funds=row["funds"],
        remaining=row["remaining"],
        visible=row["visible"],
        priority=row["priority"],
        created_ns=nanoseconds(row["created_at"]),
        updated_ns=nanoseconds(row["updated_at"]),
        reason=row["reason"],
    )


def deposit_from_row(row: asyncpg.Record) -> DepositState:
    completed = row["completed_at"]
    return DepositState(
        deposit_id=row["deposit_id"],
        tid=row["tid"],
        wallet_id=row["wallet_id"],
        currency=row["currency"],
        amount=row["amount"],
        state=row["state"],
        fingerprint=row["fingerprint"],
        transfer_id=row["transfer_id"],
        created_ns=nanoseconds(row["created_at"]),
        completed_ns=None if completed is None else nanoseconds(completed),
    )


def wallet_transfer_from_row(row: asyncpg.Record) -> WalletTransfer:
    return WalletTransfer(
        transfer_id=row["transfer_id"],
        kind=TransferKind(row["kind"]),
        partner_id=row["partner_id"],
        from_wallet=row["from_wallet"],
        to_wallet=row["to_wallet"],
        currency=row["currency"],
        amount=row["amount"],
        status=TransferStatus(row["status"]),
        created_ns=nanoseconds(row["created_at"]),
        updated_ns=nanoseconds(row["updated_at"]),
        key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        callback_url=row["callback_url"],
        reason=row["reason"],
        ledger_transfer_id=row["ledger_transfer_id"],
    )


def withdrawal_from_row(row: asyncpg.Record) -> TrackedWithdrawal:
    withdrawal = Withdrawal(
        withdrawal_id=row["withdrawal_id"],
        wallet_id=row["wallet_id"],
        currency=row["currency"],
        chain=row["chain"],
        address=row["address"],
        amount=row["amount"],
        fee=row["fee"],
        state=WithdrawalState(row["state"]),
        created_ns=nanoseconds(row["created_at"]),
        updated_ns=nanoseconds(row["updated_at"]),
        custom_id=row["custom_id"],
        txid=row["txid"],
        confirmations=row["confirmations"],
        reason=row["reason"],
    )
    return TrackedWithdrawal(
        withdrawal,
        row["partner_id"],
        row["code"],
        row["idempotency_key"],
        row["fingerprint"],
        row["callback_url"],
    )


def payment_from_row(row: asyncpg.Record) -> Payment:
    confirm_at = row["confirm_at"]
    return Payment(
        payment_id=row["payment_id"],
        partner_id=row["partner_id"],
        wallet_id=row["wallet_id"],
        code=row["code"],
        currency=row["currency"],
        chain=row["chain"],
        pay_address=row["pay_address"],
        pay_amount=row["pay_amount"],
        price_amount=row["price_amount"],
        price_currency=row["price_currency"],
        status=PaymentStatus(row["status"]),
        expires_ns=nanoseconds(row["expires_at"]),
        created_ns=nanoseconds(row["created_at"]),
        updated_ns=nanoseconds(row["updated_at"]),
        received=row["received"],
        txids=tuple(row["txids"]),
        confirm_ns=None if confirm_at is None else nanoseconds(confirm_at),
        order_id=row["order_id"],
        order_description=row["order_description"],
        key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        callback_url=row["callback_url"],
        ledger_transfer_id=row["ledger_transfer_id"],
    )
