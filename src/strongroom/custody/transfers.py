"""Transfers between a partner's wallets (seed 001) and Secure Send between vaults (seed 000).

A transfer is received at the perimeter (seed 004's RECEIVED: committed as `pending`,
answered 202) and completed asynchronously: the ledger moves `amount` from the source
wallet's main account to the destination's, or the transfer fails (seed 004's INVALID)
when the source cannot pay at that moment. Secure Send is received and completed in one
step (an instant transfer), so it never shows as pending.

    pending   complete → completed   move     source main → destination main
    pending   fail     → failed      none     nothing moved (the reason is kept)

`completed` and `failed` are final. Pure: no I/O, no clock (every change takes `at_ns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from msgspec.structs import replace

from strongroom.actors.messages import Message
from strongroom.custody.errors import IllegalTransition


class TransferKind(StrEnum):
    TO_SUB = "to_sub"  # master → sub-account (POST /wallets/transfer-to-user/)
    TO_MASTER = "to_master"  # sub-account → master (POST /wallets/withdraw-to-master/)
    SECURE_SEND = "secure_send"  # vault → vault by e-mail (POST /secure-send/)


class TransferStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class TransferEvent(StrEnum):
    COMPLETE = "complete"
    FAIL = "fail"


TRANSITIONS: Mapping[tuple[TransferStatus, TransferEvent], TransferStatus] = MappingProxyType(
    {
        (TransferStatus.PENDING, TransferEvent.COMPLETE): TransferStatus.COMPLETED,
        (TransferStatus.PENDING, TransferEvent.FAIL): TransferStatus.FAILED,
    }
)

PROCESSING_STATUS: Mapping[TransferStatus, str] = MappingProxyType(
    {
        TransferStatus.PENDING: "RECEIVED",
        TransferStatus.COMPLETED: "CREATED",
        TransferStatus.FAILED: "INVALID",
    }
)
"""Seed 004's processing status of each state: received at the perimeter, then created
(the money moved) or invalid (the full validation, here the balance, refused it)."""


class WalletTransfer(Message, frozen=True):
    """One transfer between two wallets of one currency; `amount` in minor units.

    `key` is the caller's idempotency key (external_id or Idempotency-Key), unique per
    partner; `fingerprint` the digest of the request's content, to tell a retry from a
    conflicting reuse of the key. `ledger_transfer_id` names the ledger's transfer once
    the money moved.
    """

    transfer_id: int
    kind: TransferKind
    partner_id: str
    from_wallet: str
    to_wallet: str
    currency: str
    amount: int
    status: TransferStatus
    created_ns: int
    updated_ns: int
    key: str | None = None
    fingerprint: str = ""
    callback_url: str | None = None
    reason: str = ""
    ledger_transfer_id: int | None = None

    @property
    def final(self) -> bool:
        return self.status is not TransferStatus.PENDING


def advance(
    transfer: WalletTransfer,
    event: TransferEvent,
    at_ns: int,
    *,
    reason: str = "",
    ledger_transfer_id: int | None = None,
) -> WalletTransfer:
    """The transfer after `event`; `IllegalTransition` (nothing changes) if not allowed."""
    target = TRANSITIONS.get((transfer.status, event))
    if target is None:
        raise IllegalTransition(str(transfer.status), str(event))
    return replace(
        transfer,
        status=target,
        updated_ns=at_ns,
        reason=reason,
        ledger_transfer_id=ledger_transfer_id,
    )
