"""How custody entities look outside: one representation for REST answers and webhooks.

Amounts are decimal strings with exactly the currency's places, times ISO 8601 in UTC,
ids prefixed by their kind (`t_12` a transfer, `wd_12` a withdrawal, `pay_12` a payment).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from strongroom.actors.messages import DepositState
from strongroom.config import Currency
from strongroom.custody.payments import Payment
from strongroom.custody.transfers import PROCESSING_STATUS, WalletTransfer
from strongroom.custody.withdrawals import TrackedWithdrawal
from strongroom.money import format_minor

TRANSFER_PREFIX = "t_"
WITHDRAWAL_PREFIX = "wd_"
PAYMENT_PREFIX = "pay_"
ID_DIGITS_MAX = 19  # a positive bigint

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_id_for(*cause: str) -> str:
    """A deterministic webhook event id for an event that names its cause: a retried
    cause enqueues nothing new."""
    return "evt_" + hashlib.sha256("|".join(cause).encode()).hexdigest()[:32]


def public_id(prefix: str, number: int) -> str:
    return f"{prefix}{number}"


def parse_public_id(prefix: str, text: object) -> int | None:
    """The number of a public id (`wd_12` → 12), or None if `text` is not one."""
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    digits = text[len(prefix) :]
    if not digits.isascii() or not digits.isdigit() or len(digits) > ID_DIGITS_MAX:
        return None
    number = int(digits)
    return number if 0 < number < 2**63 else None


def iso_ns(ns: int | None) -> str | None:
    if ns is None:
        return None
    moment = _EPOCH + timedelta(microseconds=ns // 1_000)
    return moment.isoformat().replace("+00:00", "Z")


def _amount(amount: int, currency: Currency) -> str:
    return format_minor(amount, currency.decimals)


def transfer(item: WalletTransfer, currencies: Mapping[str, Currency]) -> dict[str, Any]:
    currency = currencies[item.currency]
    return {
        "transfer_id": public_id(TRANSFER_PREFIX, item.transfer_id),
        "transfer_type": str(item.kind),
        "from_wallet_id": item.from_wallet,
        "to_wallet_id": item.to_wallet,
        "currency": item.currency,
        "amount": _amount(item.amount, currency),
        "status": str(item.status),
        "processing_status": PROCESSING_STATUS[item.status],
        "reason": item.reason or None,
        "external_id": item.key,
        "created_at": iso_ns(item.created_ns),
        "completed_at": None if not item.final else iso_ns(item.updated_ns),
    }


def withdrawal(tracked: TrackedWithdrawal, currencies: Mapping[str, Currency]) -> dict[str, Any]:
    item = tracked.withdrawal
    currency = currencies[item.currency]
    return {
        "withdrawal_id": public_id(WITHDRAWAL_PREFIX, item.withdrawal_id),
        "wallet_id": item.wallet_id,
        "currency": tracked.code,
        "ledger_currency": item.currency,
        "chain": item.chain,
        "address": item.address,
        "amount": _amount(item.amount, currency),
        "fee": _amount(item.fee, currency),
        "total": _amount(item.total, currency),
        "status": str(item.state),
        "txid": item.txid,
        "confirmations": item.confirmations,
        "reason": item.reason or None,
        "custom_id": item.custom_id,
        "created_at": iso_ns(item.created_ns),
        "updated_at": iso_ns(item.updated_ns),
    }


def payment(item: Payment, currencies: Mapping[str, Currency]) -> dict[str, Any]:
    currency = currencies[item.currency]
    return {
        "payment_id": public_id(PAYMENT_PREFIX, item.payment_id),
        "transaction_id": public_id(PAYMENT_PREFIX, item.payment_id),
        "wallet_id": item.wallet_id,
        "currency": item.code,
        "ledger_currency": item.currency,
        "chain": item.chain,
        "pay_address": item.pay_address,
        "pay_amount": _amount(item.pay_amount, currency),
        "received_amount": _amount(item.received, currency),
        "price_amount": item.price_amount,
        "price_currency": item.price_currency,
        "status": str(item.status),
        "order_id": item.order_id,
        "order_description": item.order_description,
        "txids": list(item.txids),
        "expires_at": iso_ns(item.expires_ns),
        "created_at": iso_ns(item.created_ns),
        "updated_at": iso_ns(item.updated_ns),
    }


def deposit(state: DepositState, currencies: Mapping[str, Currency]) -> dict[str, Any]:
    """Peatio's deposit entity (seed 002)."""
    currency = currencies[state.currency]
    return {
        "id": state.deposit_id,
        "tid": state.tid,
        "uid": state.wallet_id,
        "currency": state.currency,
        "type": currency.kind,
        "amount": _amount(state.amount, currency),
        "state": state.state,
        "created_at": iso_ns(state.created_ns),
        "completed_at": iso_ns(state.completed_ns),
        "blockchain_txid": None,
        "blockchain_confirmations": None,
    }
