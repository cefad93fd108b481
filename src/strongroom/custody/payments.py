"""Payments (invoices): seed 001's Payments, seed 000's merchant flow, as a pure core.

A payment asks a payer for `pay_amount` (minor units of `currency`) at an address of its
own until `expires_ns`. Coins arriving at that address (`receive`, once per txid) move it:

    waiting         pay_full → confirming      the whole amount arrived
    waiting         pay_part → partially_paid  less than the amount arrived
    partially_paid  pay_part → partially_paid
    partially_paid  pay_full → confirming
    confirming      pay_part → confirming      more than asked: it is credited too
    confirming      pay_full → confirming
    confirming      confirm  → finished        credit  asset → wallet main (all received)
    waiting         expire   → expired         none
    partially_paid  expire   → expired         credit  what arrived is the wallet's

`finished` and `expired` are final; coins sent to a final payment are refused
(`PaymentClosed`), so an expired invoice cannot be paid. Whatever arrived is credited
exactly once, when the payment ends: the coins are in custody from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from msgspec.structs import replace

from strongroom.actors.messages import Message
from strongroom.custody.errors import CustodyError, IllegalTransition

RECEIPTS_MAX = 100
"""The most incoming transactions one payment takes (a limit on everything)."""


class PaymentClosed(CustodyError):
    code = "payment_closed"


class PaymentExpired(PaymentClosed):
    code = "payment_expired"


class PaymentStatus(StrEnum):
    WAITING = "waiting"
    PARTIALLY_PAID = "partially_paid"
    CONFIRMING = "confirming"
    FINISHED = "finished"
    EXPIRED = "expired"


class PaymentEvent(StrEnum):
    PAY_FULL = "pay_full"
    PAY_PART = "pay_part"
    CONFIRM = "confirm"
    EXPIRE = "expire"


_S, _E = PaymentStatus, PaymentEvent
TRANSITIONS: Mapping[tuple[PaymentStatus, PaymentEvent], PaymentStatus] = MappingProxyType(
    {
        (_S.WAITING, _E.PAY_FULL): _S.CONFIRMING,
        (_S.WAITING, _E.PAY_PART): _S.PARTIALLY_PAID,
        (_S.PARTIALLY_PAID, _E.PAY_PART): _S.PARTIALLY_PAID,
        (_S.PARTIALLY_PAID, _E.PAY_FULL): _S.CONFIRMING,
        (_S.CONFIRMING, _E.PAY_PART): _S.CONFIRMING,
        (_S.CONFIRMING, _E.PAY_FULL): _S.CONFIRMING,
        (_S.CONFIRMING, _E.CONFIRM): _S.FINISHED,
        (_S.WAITING, _E.EXPIRE): _S.EXPIRED,
        (_S.PARTIALLY_PAID, _E.EXPIRE): _S.EXPIRED,
    }
)
FINAL_STATES = frozenset({_S.FINISHED, _S.EXPIRED})


class Payment(Message, frozen=True):
    """One invoice. `received` is what arrived so far (minor units), `txids` the incoming
    transactions counted (each once); `confirm_ns` when a confirming payment finishes."""

    payment_id: int
    partner_id: str
    wallet_id: str
    code: str  # the currency as the payer sees it: "USDTTRC20"
    currency: str  # the ledger's: "USDT"
    chain: str
    pay_address: str
    pay_amount: int
    price_amount: str  # what was priced, as given ("100.00"), and in what
    price_currency: str
    status: PaymentStatus
    expires_ns: int
    created_ns: int
    updated_ns: int
    received: int = 0
    txids: tuple[str, ...] = ()
    confirm_ns: int | None = None
    order_id: str | None = None
    order_description: str | None = None
    key: str | None = None
    fingerprint: str = ""
    callback_url: str | None = None
    ledger_transfer_id: int | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES


def _step(payment: Payment, event: PaymentEvent) -> PaymentStatus:
    target = TRANSITIONS.get((payment.status, event))
    if target is None:
        raise IllegalTransition(str(payment.status), str(event))
    return target


def receive(
    payment: Payment, txid: str, amount: int, at_ns: int, *, confirm_delay_ns: int
) -> Payment:
    """The payment after `amount` arrived in transaction `txid` (a txid already counted
    returns the payment unchanged). Refused once the payment is final or past its expiry."""
    if txid in payment.txids:
        return payment
    if payment.status is PaymentStatus.EXPIRED or (
        not payment.final and at_ns >= payment.expires_ns
    ):
        raise PaymentExpired(f"payment {payment.payment_id} expired")
    if payment.final:
        raise PaymentClosed(f"payment {payment.payment_id} is {payment.status}")
    if len(payment.txids) >= RECEIPTS_MAX:
        raise PaymentClosed(f"payment {payment.payment_id} took {RECEIPTS_MAX} transactions")
    received = payment.received + amount
    event = PaymentEvent.PAY_FULL if received >= payment.pay_amount else PaymentEvent.PAY_PART
    target = _step(payment, event)
    confirm_ns = payment.confirm_ns
    if target is PaymentStatus.CONFIRMING and confirm_ns is None:
        confirm_ns = at_ns + confirm_delay_ns
    return replace(
        payment,
        status=target,
        received=received,
        txids=(*payment.txids, txid),
        confirm_ns=confirm_ns,
        updated_ns=at_ns,
    )


def due_event(payment: Payment, now_ns: int) -> PaymentEvent | None:
    """What time alone does to the payment now: confirm it, expire it, or nothing."""
    if payment.status is PaymentStatus.CONFIRMING:
        assert payment.confirm_ns is not None
        return PaymentEvent.CONFIRM if now_ns >= payment.confirm_ns else None
    if payment.status in (PaymentStatus.WAITING, PaymentStatus.PARTIALLY_PAID):
        return PaymentEvent.EXPIRE if now_ns >= payment.expires_ns else None
    return None


def end(payment: Payment, event: PaymentEvent, at_ns: int) -> tuple[Payment, int]:
    """The payment after `confirm` or `expire`, and the amount to credit to its wallet."""
    if event not in (PaymentEvent.CONFIRM, PaymentEvent.EXPIRE):
        raise IllegalTransition(str(payment.status), str(event))
    target = _step(payment, event)
    return replace(payment, status=target, updated_ns=at_ns), payment.received
