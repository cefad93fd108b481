"""The custody desk: the behaviour that moves custody money, hosted in the ledger actor.

It takes wallet transfers, withdrawals and payments, checks their idempotency keys,
moves their money through the `Ledger` (via the `Clearing`, which numbers transfers) and
packs each change into a `JournalUnit` with its webhook events: a change, its postings
and the events announcing it commit in one transaction, or not at all.

Pure: no I/O, no clock (commands carry `at_ns`), no ids of its own but the ledger's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from strongroom.actors.clearing import Clearing
from strongroom.actors.messages import (
    JournalUnit,
    Message,
    OutboxEvent,
    Posting,
    Refused,
    TransferRejected,
)
from strongroom.actors.vault import asset_account, main_account
from strongroom.custody import payments as payment_rules
from strongroom.custody import transfers as transfer_rules
from strongroom.custody import views
from strongroom.custody.errors import CustodyError
from strongroom.custody.payments import Payment, PaymentStatus
from strongroom.custody.transfers import TransferEvent, WalletTransfer
from strongroom.custody.views import event_id_for
from strongroom.custody.withdrawals import (
    MoneyEffect,
    TrackedWithdrawal,
    WithdrawalEvent,
    WithdrawalState,
    apply,
    observe_confirmations,
    withdrawal_postings,
)

# --------------------------------------------------------------------------- commands


class TransferRequest(Message, frozen=True):
    """A transfer received at the perimeter (status pending), or a Secure Send (`instant`:
    completed in the same unit, refused at once when the source cannot pay)."""

    token: int
    transfer: WalletTransfer
    instant: bool = False


class CompleteTransfer(Message, frozen=True):
    """Told by the ledger actor to itself after a transfer was received (and again for
    every pending transfer after a restart): move the money, or fail the transfer."""

    transfer_id: int
    at_ns: int


class WithdrawalRequest(Message, frozen=True):
    """A prepared withdrawal (checked by `withdrawals.prepare`): accepted and held here."""

    token: int
    tracked: TrackedWithdrawal


class WithdrawalChange(Message, frozen=True):
    """An event of the state machine (`event`), or only newly observed `confirmations`."""

    token: int
    withdrawal_id: int
    at_ns: int
    event: WithdrawalEvent | None = None
    txid: str | None = None
    confirmations: int | None = None
    reason: str | None = None


class PaymentRequest(Message, frozen=True):
    token: int
    payment: Payment


class PaymentIncoming(Message, frozen=True):
    """Coins arrived at a payment's address (the sandbox chain, or a chain watcher)."""

    token: int
    payment_id: int
    txid: str
    amount: int
    at_ns: int


class PaymentsDue(Message, frozen=True):
    """Apply what time alone does now: confirm or expire the payments that are due."""

    token: int
    now_ns: int


CustodyCommand = (
    TransferRequest
    | CompleteTransfer
    | WithdrawalRequest
    | WithdrawalChange
    | PaymentRequest
    | PaymentIncoming
    | PaymentsDue
)


class Known(Message, frozen=True):
    """The reply to a repeat (same idempotency key, same content): the first entity's
    kind and id; its current state is read from what was committed."""

    entity: str  # transfer, withdrawal, payment
    entity_id: int


# --------------------------------------------------------------------------- the desk


class Custody:
    def __init__(self, clearing: Clearing, *, payment_confirm_delay_ns: int = 0) -> None:
        self.clearing = clearing
        self.payment_confirm_delay_ns = payment_confirm_delay_ns
        self.ledger = clearing.ledger
        self.currencies = clearing.config.currencies
        self.transfers: dict[int, WalletTransfer] = {}  # pending only
        self.withdrawals: dict[int, TrackedWithdrawal] = {}  # not final only
        self.payments: dict[int, Payment] = {}  # not final only
        self.closed_payments: dict[int, PaymentStatus] = {}  # final ones: how they ended
        # (partner, entity, key) → (fingerprint, entity id): every key ever used.
        self.keys: dict[tuple[str, str, str], tuple[str, int]] = {}

    # ------------------------------------------------------------------ recovery

    def restore(
        self,
        transfers: Iterable[WalletTransfer],
        withdrawals: Iterable[TrackedWithdrawal],
        payments: Iterable[Payment],
    ) -> None:
        for transfer in transfers:
            self._remember("transfer", transfer.partner_id, transfer.key, transfer.fingerprint,
                           transfer.transfer_id)  # fmt: skip
            if not transfer.final:
                self.transfers[transfer.transfer_id] = transfer
        for tracked in withdrawals:
            self._remember("withdrawal", tracked.partner_id, tracked.key, tracked.fingerprint,
                           tracked.withdrawal.withdrawal_id)  # fmt: skip
            if not tracked.withdrawal.final:
                self.withdrawals[tracked.withdrawal.withdrawal_id] = tracked
        for payment in payments:
            self._remember("payment", payment.partner_id, payment.key, payment.fingerprint,
                           payment.payment_id)  # fmt: skip
            if payment.final:
                self.closed_payments[payment.payment_id] = payment.status
            else:
                self.payments[payment.payment_id] = payment

    # ------------------------------------------------------------------ dispatch

    def handle(self, command: CustodyCommand) -> JournalUnit | Any:
        """A unit to commit (its replies inside), or a reply that changed nothing."""
        if isinstance(command, TransferRequest):
            return self._transfer_request(command)
        if isinstance(command, CompleteTransfer):
            return self._complete_transfer(command.transfer_id, command.at_ns)
        if isinstance(command, WithdrawalRequest):
            return self._withdrawal_request(command)
        if isinstance(command, WithdrawalChange):
            return self._withdrawal_change(command)
        if isinstance(command, PaymentRequest):
            return self._payment_request(command)
        if isinstance(command, PaymentIncoming):
            return self._payment_incoming(command)
        return self._payments_due(command)

    # ------------------------------------------------------------------ transfers

    def _transfer_request(self, command: TransferRequest) -> JournalUnit | Any:
        transfer = command.transfer
        repeat = self._repeat(command.token, "transfer", transfer.partner_id, transfer.key,
                              transfer.fingerprint)  # fmt: skip
        if repeat is not None:
            return repeat
        unit = _unit()
        if command.instant:
            moved = self._move(unit, transfer)
            if isinstance(moved, Refused):
                return moved
            transfer = transfer_rules.advance(
                transfer, TransferEvent.COMPLETE, transfer.created_ns, ledger_transfer_id=moved
            )
            self._event(unit, transfer.partner_id, f"transfer.{transfer.status}",
                        views.transfer(transfer, self.currencies), transfer.callback_url,
                        str(transfer.transfer_id), str(transfer.updated_ns))  # fmt: skip
        else:
            self.transfers[transfer.transfer_id] = transfer
        self._remember("transfer", transfer.partner_id, transfer.key, transfer.fingerprint,
                       transfer.transfer_id)  # fmt: skip
        unit.wallet_transfers.append(transfer)
        unit.replies.append((command.token, transfer))
        return unit

    def _complete_transfer(self, transfer_id: int, at_ns: int) -> JournalUnit | None:
        transfer = self.transfers.pop(transfer_id, None)
        if transfer is None:
            return None  # completed already
        unit = _unit()
        moved = self._move(unit, transfer)
        if isinstance(moved, Refused):
            transfer = transfer_rules.advance(
                transfer, TransferEvent.FAIL, at_ns, reason=moved.code
            )
        else:
            transfer = transfer_rules.advance(
                transfer, TransferEvent.COMPLETE, at_ns, ledger_transfer_id=moved
            )
        unit.wallet_transfers.append(transfer)
        self._event(unit, transfer.partner_id, f"transfer.{transfer.status}",
                    views.transfer(transfer, self.currencies), transfer.callback_url,
                    str(transfer.transfer_id), str(transfer.updated_ns))  # fmt: skip
        return unit

    def _move(self, unit: JournalUnit, transfer: WalletTransfer) -> int | Refused:
        currency = self.currencies[transfer.currency]
        posting = Posting(
            main_account(currency, transfer.from_wallet),
            main_account(currency, transfer.to_wallet),
            transfer.amount,
        )
        outcome = self.clearing.try_apply(
            unit, "wallet_transfer", (posting,), key=f"wallet_transfer:{transfer.transfer_id}"
        )
        if isinstance(outcome, TransferRejected):
            return Refused("insufficient_funds", "not enough available balance to transfer")
        return outcome

    # ------------------------------------------------------------------ withdrawals

    def _withdrawal_request(self, command: WithdrawalRequest) -> JournalUnit | Any:
        tracked = command.tracked
        withdrawal = tracked.withdrawal
        repeat = self._repeat(command.token, "withdrawal", tracked.partner_id, tracked.key,
                              tracked.fingerprint)  # fmt: skip
        if repeat is not None:
            return repeat
        accepted, effect = apply(withdrawal, WithdrawalEvent.ACCEPT, withdrawal.created_ns)
        unit = _unit()
        postings = withdrawal_postings(accepted, effect, self.currencies[accepted.currency])
        outcome = self.clearing.try_apply(unit, "withdrawal_hold", postings)
        if isinstance(outcome, TransferRejected):
            return Refused(
                "insufficient_funds",
                "not enough available balance for the withdrawal and its fee",
            )
        tracked = msgspec.structs.replace(tracked, withdrawal=accepted)
        self.withdrawals[accepted.withdrawal_id] = tracked
        self._remember("withdrawal", tracked.partner_id, tracked.key, tracked.fingerprint,
                       accepted.withdrawal_id)  # fmt: skip
        self._withdrawal_changed(unit, tracked)
        unit.replies.append((command.token, tracked))
        return unit

    def _withdrawal_change(self, command: WithdrawalChange) -> JournalUnit | Any:
        tracked = self.withdrawals.get(command.withdrawal_id)
        if tracked is None:
            return Refused("not_found", f"no live withdrawal {command.withdrawal_id}")
        withdrawal = tracked.withdrawal
        try:
            if command.event is None:
                if command.confirmations is None:
                    return Refused("invalid_event_details", "no event and no confirmations")
                changed = observe_confirmations(withdrawal, command.confirmations, command.at_ns)
                effect = MoneyEffect.NONE
            else:
                changed, effect = apply(
                    withdrawal,
                    command.event,
                    command.at_ns,
                    txid=command.txid,
                    confirmations=command.confirmations,
                    reason=command.reason,
                )
        except CustodyError as error:
            return Refused(error.code, str(error))
        if changed == withdrawal:
            return JournalUnit([], [], [], [], {}, [(command.token, tracked)])
        unit = _unit()
        if effect is not MoneyEffect.NONE:
            postings = withdrawal_postings(changed, effect, self.currencies[changed.currency])
            kind = "withdrawal_send" if effect is MoneyEffect.SEND else "withdrawal_release"
            outcome = self.clearing.try_apply(
                unit, kind, postings, key=f"withdrawal:{changed.withdrawal_id}:{effect}"
            )
            if isinstance(outcome, TransferRejected):
                raise AssertionError(f"withdrawal {changed.withdrawal_id} lost its hold")
        tracked = msgspec.structs.replace(tracked, withdrawal=changed)
        if changed.final:
            del self.withdrawals[changed.withdrawal_id]
        else:
            self.withdrawals[changed.withdrawal_id] = tracked
        if changed.state is not withdrawal.state:
            self._withdrawal_changed(unit, tracked)
        else:
            unit.withdrawals.append(tracked)
        unit.replies.append((command.token, tracked))
        return unit

    def _withdrawal_changed(self, unit: JournalUnit, tracked: TrackedWithdrawal) -> None:
        withdrawal = tracked.withdrawal
        unit.withdrawals.append(tracked)
        self._event(unit, tracked.partner_id, f"withdrawal.{withdrawal.state}",
                    views.withdrawal(tracked, self.currencies), tracked.callback_url,
                    str(withdrawal.withdrawal_id), str(withdrawal.updated_ns))  # fmt: skip

    def live_withdrawals(self, states: frozenset[WithdrawalState]) -> list[TrackedWithdrawal]:
        return [t for t in self.withdrawals.values() if t.withdrawal.state in states]

    # ------------------------------------------------------------------ payments

    def _payment_request(self, command: PaymentRequest) -> JournalUnit | Any:
        payment = command.payment
        repeat = self._repeat(command.token, "payment", payment.partner_id, payment.key,
                              payment.fingerprint)  # fmt: skip
        if repeat is not None:
            return repeat
        self.payments[payment.payment_id] = payment
        self._remember("payment", payment.partner_id, payment.key, payment.fingerprint,
                       payment.payment_id)  # fmt: skip
        unit = _unit()
        self._payment_changed(unit, payment)
        unit.replies.append((command.token, payment))
        return unit

    def _payment_incoming(self, command: PaymentIncoming) -> JournalUnit | Any:
        payment = self.payments.get(command.payment_id)
        if payment is None:
            closed = self.closed_payments.get(command.payment_id)
            if closed is PaymentStatus.EXPIRED:
                return Refused("payment_expired", f"payment {command.payment_id} expired")
            if closed is None:
                return Refused("not_found", f"no payment {command.payment_id}")
            return Refused("payment_closed", f"payment {command.payment_id} is {closed}")
        try:
            changed = payment_rules.receive(
                payment, command.txid, command.amount, command.at_ns,
                confirm_delay_ns=self.payment_confirm_delay_ns,
            )  # fmt: skip
        except CustodyError as error:
            return Refused(error.code, str(error))
        if changed == payment:
            return JournalUnit([], [], [], [], {}, [(command.token, payment)])
        self.payments[changed.payment_id] = changed
        unit = _unit()
        if changed.status is not payment.status:
            self._payment_changed(unit, changed)
        else:
            unit.payments.append(changed)
        unit.replies.append((command.token, changed))
        return unit

    def _payments_due(self, command: PaymentsDue) -> JournalUnit | None:
        unit = _unit()
        for payment in list(self.payments.values()):
            event = payment_rules.due_event(payment, command.now_ns)
            if event is None:
                continue
            ended, credit = payment_rules.end(payment, event, command.now_ns)
            ledger_transfer_id = None
            if credit:
                currency = self.currencies[ended.currency]
                posting = Posting(
                    asset_account(currency), main_account(currency, ended.wallet_id), credit
                )
                outcome = self.clearing.try_apply(
                    unit, "payment", (posting,), key=f"payment:{ended.payment_id}"
                )
                assert not isinstance(outcome, TransferRejected), outcome
                ledger_transfer_id = outcome
            ended = msgspec.structs.replace(ended, ledger_transfer_id=ledger_transfer_id)
            del self.payments[ended.payment_id]
            self.closed_payments[ended.payment_id] = ended.status
            self._payment_changed(unit, ended)
        if command.token:
            unit.replies.append((command.token, len(unit.payments)))
        return unit if unit.payments or unit.replies else None

    def _payment_changed(self, unit: JournalUnit, payment: Payment) -> None:
        unit.payments.append(payment)
        self._event(unit, payment.partner_id, f"payment.{payment.status}",
                    views.payment(payment, self.currencies), payment.callback_url,
                    str(payment.payment_id), str(payment.updated_ns))  # fmt: skip

    # ------------------------------------------------------------------ helpers

    def _remember(
        self, entity: str, partner_id: str, key: str | None, fingerprint: str, entity_id: int
    ) -> None:
        if key is not None:
            self.keys[(partner_id, entity, key)] = (fingerprint, entity_id)

    def _repeat(
        self, token: int, entity: str, partner_id: str, key: str | None, fingerprint: str
    ) -> JournalUnit | Refused | None:
        """None for a new key; the first result for a repeat; a refusal for a reuse."""
        if key is None:
            return None
        known = self.keys.get((partner_id, entity, key))
        if known is None:
            return None
        if known[0] != fingerprint:
            return Refused("idempotency_conflict", f"key {key[:64]!r} was used with other content")
        # After the first result's commit (it may still be on its way to the journal).
        return JournalUnit([], [], [], [], {}, [(token, Known(entity, known[1]))])

    @staticmethod
    def _event(
        unit: JournalUnit,
        partner_id: str,
        event_type: str,
        payload: dict[str, Any],
        callback_url: str | None,
        *cause: str,
    ) -> None:
        unit.events.append(
            OutboxEvent(
                event_id_for(event_type, *cause),
                partner_id,
                event_type,
                msgspec.json.encode(payload).decode(),
                callback_url,
            )
        )


def _unit() -> JournalUnit:
    return JournalUnit([], [], [], [], {}, [])
