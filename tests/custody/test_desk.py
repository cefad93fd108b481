"""The custody desk's transfer and idempotency paths, pure (the desk over a real Clearing
and Ledger, no actor, no I/O).

A Hypothesis state machine sends random sequences of transfer requests (received or
instant), completions, repeats of earlier requests, reuses of their keys with other
content, deposits and restarts (the desk and the ledger rebuilt from what was committed)
over a few wallets of two partners, and checks after every step: the ledger balances
per currency, no member account is negative, every wallet holds what the model says,
every received transfer ends (completes or fails) at most once, and exactly once after
the remaining ones are completed at the end; a repeat never moves money.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import msgspec
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from msgspec.structs import replace

from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    AccountCode,
    DepositRequest,
    JournalUnit,
    Refused,
    Transfer,
)
from strongroom.actors.vault import main_account
from strongroom.config import DEFAULT
from strongroom.custody import views
from strongroom.custody.desk import (
    CompleteTransfer,
    Custody,
    Known,
    PaymentRequest,
    TransferRequest,
    WithdrawalRequest,
)
from strongroom.custody.payments import Payment, PaymentStatus
from strongroom.custody.transfers import TransferKind, TransferStatus, WalletTransfer
from strongroom.custody.views import event_id_for
from strongroom.custody.withdrawals import DEFAULT_RULES, TrackedWithdrawal, prepare

PARTNERS = ("p1", "p2")
WALLETS = ("m1", "s1", "u1", "m2", "s2")  # m: masters; s: sub-accounts; u: a user's vault
CURRENCIES = ("USDT", "BTC")
KEYS = ("k1", "k2", "k3")
MEMBER_CODES = {AccountCode.MAIN_FIAT, AccountCode.MAIN_COIN, AccountCode.LOCKED_FIAT,
                AccountCode.LOCKED_COIN}  # fmt: skip
TRON_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def content_fingerprint(transfer: WalletTransfer) -> str:
    """What the edge digests: kind, source, destination, currency, amount, callback."""
    return "|".join(
        map(str, (transfer.kind, transfer.from_wallet, transfer.to_wallet, transfer.currency,
                  transfer.amount, transfer.callback_url))
    )  # fmt: skip


class Desk:
    """A desk with its ledger, and everything it committed (what a restart reads back)."""

    def __init__(self) -> None:
        self.ledger = Ledger(DEFAULT.currencies)
        self.clearing = Clearing(DEFAULT, self.ledger)
        self.custody = Custody(self.clearing)
        self.units: list[JournalUnit] = []
        self.rows: dict[int, WalletTransfer] = {}  # the wallet_transfers table
        self.tokens = itertools.count(1)
        self.ids = itertools.count(1)  # the shared id counter of the service

    def handle(self, command: Any) -> Any:
        outcome = self.custody.handle(command)
        if isinstance(outcome, JournalUnit):
            self.commit(outcome)
        return outcome

    def commit(self, unit: JournalUnit) -> None:
        self.units.append(unit)
        for transfer in unit.wallet_transfers:
            self.rows[transfer.transfer_id] = transfer

    def deposit(self, wallet_id: str, currency: str, amount: int) -> None:
        deposit_id = next(self.ids)
        outcome = self.clearing.deposit(
            DepositRequest(next(self.tokens), deposit_id, f"tid-{deposit_id}", wallet_id,
                           currency, amount, True, "f", 0)
        )  # fmt: skip
        assert isinstance(outcome, JournalUnit)
        self.commit(outcome)

    def restart(self) -> None:
        """A new process: the ledger from the committed transfers, the desk from its rows."""
        transfers = [transfer for unit in self.units for transfer in unit.transfers]
        self.ledger = Ledger(DEFAULT.currencies)
        for transfer in transfers:
            self.ledger.apply(transfer)
        next_id = max((transfer.transfer_id for transfer in transfers), default=0) + 1
        self.clearing = Clearing(DEFAULT, self.ledger, next_transfer_id=next_id)
        self.custody = Custody(self.clearing)
        self.custody.restore(self.rows.values(), [], [])

    def ledger_transfers(self) -> list[Transfer]:
        return [transfer for unit in self.units for transfer in unit.transfers]


class TransferDesk(RuleBasedStateMachine):
    requests = Bundle("requests")  # (transfer, instant) of requests that were taken

    def __init__(self) -> None:
        super().__init__()
        self.desk = Desk()
        self.balance: Counter[tuple[str, str]] = Counter()  # (wallet, currency) → main
        self.keys: dict[tuple[str, str], tuple[str, int]] = {}  # (partner, key) → first
        self.pending: set[int] = set()
        self.ended: Counter[int] = Counter()  # transfer id → final units seen
        self.all_received: set[int] = set()
        self.now_ns = 1_000

    def tick(self) -> int:
        self.now_ns += 1_000
        return self.now_ns

    # ------------------------------------------------------------------ rules

    @initialize()
    def fund(self) -> None:
        for wallet in WALLETS:
            for currency in CURRENCIES:
                self.deposit(wallet, currency, 10**7)

    @rule(
        wallet=st.sampled_from(WALLETS),
        currency=st.sampled_from(CURRENCIES),
        amount=st.integers(10**6, 10**7),
    )
    def deposit(self, wallet: str, currency: str, amount: int) -> None:
        self.desk.deposit(wallet, currency, amount)
        self.balance[wallet, currency] += amount

    @rule(
        target=requests,
        partner=st.sampled_from(PARTNERS),
        wallets=st.lists(st.sampled_from(WALLETS), min_size=2, max_size=2, unique=True),
        currency=st.sampled_from(CURRENCIES),
        amount=st.integers(1, 3 * 10**6) | st.integers(10**7, 10**8),  # fits, or may not
        key=st.none() | st.sampled_from(KEYS),
        instant=st.booleans(),
        callback_url=st.none() | st.just("https://partner.example.com/hook"),
    )
    def request(
        self,
        partner: str,
        wallets: list[str],
        currency: str,
        amount: int,
        key: str | None,
        instant: bool,
        callback_url: str | None,
    ) -> Any:
        kind = TransferKind.SECURE_SEND if instant else TransferKind.TO_SUB
        now_ns = self.tick()
        transfer = WalletTransfer(
            transfer_id=next(self.desk.ids), kind=kind, partner_id=partner,
            from_wallet=wallets[0], to_wallet=wallets[1], currency=currency, amount=amount,
            status=TransferStatus.PENDING, created_ns=now_ns, updated_ns=now_ns, key=key,
            callback_url=callback_url,
        )  # fmt: skip
        transfer = replace(transfer, fingerprint=content_fingerprint(transfer))
        return self._send(transfer, instant)

    @rule(request=requests)
    def repeat(self, request: tuple[WalletTransfer, bool]) -> None:
        """The same request again (a retry), as the edge makes it: a new id, a new time."""
        transfer, instant = request
        now_ns = self.tick()
        again = replace(transfer, transfer_id=next(self.desk.ids), created_ns=now_ns,
                        updated_ns=now_ns)  # fmt: skip
        self._send(again, instant)

    @rule(request=requests, amount=st.integers(1, 10**9))
    def reuse_key(self, request: tuple[WalletTransfer, bool], amount: int) -> None:
        """A key used again with other content: refused, whatever else is true."""
        transfer, instant = request
        known = self.keys.get((transfer.partner_id, transfer.key or ""))
        if transfer.key is None or known is None or amount == transfer.amount:
            return
        other = replace(transfer, transfer_id=next(self.desk.ids), amount=amount)
        other = replace(other, fingerprint=content_fingerprint(other))
        before = list(self.desk.ledger.accounts())
        outcome = self.desk.handle(TransferRequest(next(self.desk.tokens), other, instant))
        assert isinstance(outcome, Refused) and outcome.code == "idempotency_conflict"
        assert list(self.desk.ledger.accounts()) == before
        assert other.transfer_id not in self.desk.custody.transfers

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        self._complete(data.draw(st.sampled_from(sorted(self.pending)), "transfer_id"))

    @rule(transfer_id=st.integers(1, 10**6))
    def complete_unknown_or_again(self, transfer_id: int) -> None:
        """A CompleteTransfer for a transfer not pending (done, or never received): no-op."""
        if transfer_id in self.pending:
            return
        before = list(self.desk.ledger.accounts())
        assert self.desk.handle(CompleteTransfer(transfer_id, self.tick())) is None
        assert list(self.desk.ledger.accounts()) == before

    @rule()
    def restart(self) -> None:
        self.desk.restart()

    # ------------------------------------------------------------------ model

    def _send(self, transfer: WalletTransfer, instant: bool) -> Any:
        token = next(self.desk.tokens)
        before = list(self.desk.ledger.accounts())
        units_before = len(self.desk.units)
        outcome = self.desk.handle(TransferRequest(token, transfer, instant))
        known = None if transfer.key is None else self.keys.get((transfer.partner_id, transfer.key))
        if known is not None and known[0] != transfer.fingerprint:
            assert isinstance(outcome, Refused) and outcome.code == "idempotency_conflict"
            assert list(self.desk.ledger.accounts()) == before
            assert len(self.desk.units) == units_before
            event("request: a key reused with other content")
            return multiple()
        if known is not None:
            # The first result, after the first's commit: nothing of its own.
            assert isinstance(outcome, JournalUnit)
            assert outcome.replies == [(token, Known("transfer", known[1]))]
            assert not (outcome.transfers or outcome.wallet_transfers or outcome.events)
            assert list(self.desk.ledger.accounts()) == before
            event("request: a repeat")
            return multiple()
        source = (transfer.from_wallet, transfer.currency)
        if instant and self.balance[source] < transfer.amount:
            assert isinstance(outcome, Refused) and outcome.code == "insufficient_funds"
            assert list(self.desk.ledger.accounts()) == before
            assert len(self.desk.units) == units_before
            event("request: instant, refused")
            return multiple()  # not remembered: the key is still free
        assert isinstance(outcome, JournalUnit)
        [(reply_token, reply)] = outcome.replies
        [row] = outcome.wallet_transfers
        assert reply_token == token and reply == row
        if transfer.key is not None:
            self.keys[transfer.partner_id, transfer.key] = (transfer.fingerprint,
                                                            transfer.transfer_id)  # fmt: skip
        if instant:
            assert row.status is TransferStatus.COMPLETED
            self._moved(outcome, row)
            event("request: instant, completed")
            return multiple((transfer, instant))
        assert row.status is TransferStatus.PENDING and row == transfer
        assert not (outcome.transfers or outcome.events)  # received: nothing moves yet
        self.pending.add(transfer.transfer_id)
        self.all_received.add(transfer.transfer_id)
        event("request: received")
        return multiple((transfer, instant))

    def _complete(self, transfer_id: int) -> None:
        if transfer_id not in self.pending:
            assert self.desk.handle(CompleteTransfer(transfer_id, self.tick())) is None
            return
        first = self.desk.rows[transfer_id]
        outcome = self.desk.handle(CompleteTransfer(transfer_id, self.tick()))
        assert isinstance(outcome, JournalUnit) and outcome.replies == []
        [row] = outcome.wallet_transfers
        self.pending.discard(transfer_id)
        self.ended[transfer_id] += 1
        assert row.final and row.created_ns == first.created_ns
        if self.balance[first.from_wallet, first.currency] >= first.amount:
            assert row.status is TransferStatus.COMPLETED and row.reason == ""
            self._moved(outcome, row)
            event("completion: completed")
        else:
            assert row.status is TransferStatus.FAILED and row.reason == "insufficient_funds"
            assert outcome.transfers == [] and row.ledger_transfer_id is None
            self._announced(outcome, row)
            event("completion: failed")

    def _moved(self, unit: JournalUnit, row: WalletTransfer) -> None:
        [ledger_transfer] = unit.transfers
        assert ledger_transfer.kind == "wallet_transfer"
        assert ledger_transfer.key == f"wallet_transfer:{row.transfer_id}"
        assert row.ledger_transfer_id == ledger_transfer.transfer_id
        currency = DEFAULT.currencies[row.currency]
        [posting] = ledger_transfer.postings
        assert posting.debit == main_account(currency, row.from_wallet)
        assert posting.credit == main_account(currency, row.to_wallet)
        assert posting.amount == row.amount
        self.balance[row.from_wallet, row.currency] -= row.amount
        self.balance[row.to_wallet, row.currency] += row.amount
        self._announced(unit, row)

    def _announced(self, unit: JournalUnit, row: WalletTransfer) -> None:
        [event] = unit.events
        event_type = f"transfer.{row.status}"
        assert event.event_type == event_type and event.partner_id == row.partner_id
        assert event.callback_url == row.callback_url
        assert event.event_id == event_id_for(event_type, str(row.transfer_id),
                                              str(row.updated_ns))  # fmt: skip
        assert msgspec.json.decode(event.payload) == views.transfer(row, DEFAULT.currencies)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def the_ledger_balances_and_no_member_is_negative(self) -> None:
        ledger = self.desk.ledger
        for currency in DEFAULT.currencies:
            assert ledger.totals(currency) == 0
        for account, amount in ledger.accounts():
            if account.code in MEMBER_CODES:
                assert amount >= 0, (account, amount)

    @invariant()
    def every_wallet_holds_what_the_model_says(self) -> None:
        for wallet in WALLETS:
            for code in CURRENCIES:
                account = main_account(DEFAULT.currencies[code], wallet)
                assert self.desk.ledger.balance(account) == self.balance[wallet, code]

    @invariant()
    def a_received_transfer_ends_at_most_once_and_pending_is_what_the_desk_holds(self) -> None:
        assert set(self.desk.custody.transfers) == self.pending
        assert all(count == 1 for count in self.ended.values())
        assert self.pending | set(self.ended) == self.all_received

    @invariant()
    def money_moves_at_most_once_per_transfer(self) -> None:
        keys = [t.key for t in self.desk.ledger_transfers() if t.kind == "wallet_transfer"]
        assert len(keys) == len(set(keys))

    def teardown(self) -> None:
        for transfer_id in sorted(self.pending):
            self._complete(transfer_id)
        assert not self.desk.custody.transfers
        assert set(self.ended) == self.all_received
        assert all(count == 1 for count in self.ended.values())
        self.the_ledger_balances_and_no_member_is_negative()
        self.every_wallet_holds_what_the_model_says()


TransferDesk.TestCase.settings = settings(max_examples=150, stateful_step_count=60,
                                          deadline=None)  # fmt: skip
test_random_sequences_keep_the_books = TransferDesk.TestCase


# --------------------------------------------------------------------------- examples


def new_transfer(desk: Desk, **changes: Any) -> WalletTransfer:
    transfer = WalletTransfer(
        transfer_id=next(desk.ids), kind=TransferKind.TO_SUB, partner_id="p1",
        from_wallet="m1", to_wallet="s1", currency="USDT", amount=5_000_000,
        status=TransferStatus.PENDING, created_ns=10, updated_ns=10,
    )  # fmt: skip
    transfer = replace(transfer, **changes)
    return replace(transfer, fingerprint=content_fingerprint(transfer))


def test_a_refused_instant_transfer_leaves_its_key_free() -> None:
    desk = Desk()
    send = new_transfer(desk, kind=TransferKind.SECURE_SEND, key="once")
    refused = desk.handle(TransferRequest(1, send, True))
    assert isinstance(refused, Refused) and refused.code == "insufficient_funds"
    desk.deposit("m1", "USDT", 5_000_000)
    retried = desk.handle(TransferRequest(2, replace(send, transfer_id=next(desk.ids)), True))
    assert isinstance(retried, JournalUnit)
    [(_, completed)] = retried.replies
    assert completed.status is TransferStatus.COMPLETED
    assert desk.ledger.balance(main_account(DEFAULT.currencies["USDT"], "s1")) == 5_000_000


def test_keys_are_each_partners_and_survive_a_restart() -> None:
    desk = Desk()
    desk.deposit("m1", "USDT", 20_000_000)
    desk.deposit("m2", "USDT", 20_000_000)
    first = new_transfer(desk, key="k")
    assert isinstance(desk.handle(TransferRequest(1, first, False)), JournalUnit)
    theirs = new_transfer(desk, key="k", partner_id="p2", from_wallet="m2", to_wallet="s2")
    unit = desk.handle(TransferRequest(2, theirs, False))
    assert isinstance(unit, JournalUnit) and unit.replies == [(2, theirs)]
    desk.restart()  # both still pending: the restarted desk completes them
    assert set(desk.custody.transfers) == {first.transfer_id, theirs.transfer_id}
    for transfer in (first, theirs):
        done = desk.handle(CompleteTransfer(transfer.transfer_id, 20))
        assert isinstance(done, JournalUnit)
        assert done.wallet_transfers[0].status is TransferStatus.COMPLETED
    desk.restart()  # final now: not pending, but the keys are remembered
    assert desk.custody.transfers == {}
    again = desk.handle(TransferRequest(3, replace(first, transfer_id=next(desk.ids)), False))
    assert isinstance(again, JournalUnit)
    assert again.replies == [(3, Known("transfer", first.transfer_id))]
    conflict = desk.handle(TransferRequest(4, new_transfer(desk, key="k", amount=1), False))
    assert isinstance(conflict, Refused) and conflict.code == "idempotency_conflict"
    for wallet, expected in (("m1", 15_000_000), ("s1", 5_000_000), ("s2", 5_000_000)):
        account = main_account(DEFAULT.currencies["USDT"], wallet)
        assert desk.ledger.balance(account) == expected


def test_a_received_transfer_fails_when_the_money_left_before_its_turn() -> None:
    """Received transfers do not reserve anything: whichever completes first is paid."""
    desk = Desk()
    desk.deposit("m1", "USDT", 5_000_000)
    first, second = new_transfer(desk), new_transfer(desk)
    for token, transfer in enumerate((first, second)):
        assert isinstance(desk.handle(TransferRequest(token, transfer, False)), JournalUnit)
    ended = [desk.handle(CompleteTransfer(t.transfer_id, 30)) for t in (second, first)]
    statuses = [unit.wallet_transfers[0] for unit in ended]
    assert [row.status for row in statuses] == [TransferStatus.COMPLETED, TransferStatus.FAILED]
    assert statuses[1].reason == "insufficient_funds"
    assert [unit.events[0].event_type for unit in ended] == [
        "transfer.completed", "transfer.failed",
    ]  # fmt: skip


# ------------------------------------------------ withdrawals and payments, lightly


def tracked(desk: Desk, amount: int, key: str | None) -> TrackedWithdrawal:
    withdrawal = prepare(
        DEFAULT_RULES, withdrawal_id=next(desk.ids), wallet_id="s1", code="USDTTRC20",
        address=TRON_ADDRESS, amount=amount, at_ns=10,
    )  # fmt: skip
    return TrackedWithdrawal(withdrawal, "p1", "USDTTRC20", key, f"w|{amount}")


def test_a_withdrawal_holds_once_per_key() -> None:
    desk = Desk()
    desk.deposit("s1", "USDT", 100_000_000)
    first = tracked(desk, 20_000_000, "w-1")
    unit = desk.handle(WithdrawalRequest(1, first))
    assert isinstance(unit, JournalUnit) and len(unit.transfers) == 1
    held = dict(desk.ledger.accounts())
    again = desk.handle(WithdrawalRequest(2, tracked(desk, 20_000_000, "w-1")))
    assert isinstance(again, JournalUnit)
    assert again.replies == [(2, Known("withdrawal", first.withdrawal.withdrawal_id))]
    assert dict(desk.ledger.accounts()) == held
    other = desk.handle(WithdrawalRequest(3, tracked(desk, 30_000_000, "w-1")))
    assert isinstance(other, Refused) and other.code == "idempotency_conflict"
    too_much = desk.handle(WithdrawalRequest(4, tracked(desk, 90_000_000, "w-2")))
    assert isinstance(too_much, Refused) and too_much.code == "insufficient_funds"
    assert dict(desk.ledger.accounts()) == held
    # The key w-2 was not taken by the refusal.
    smaller = desk.handle(WithdrawalRequest(5, tracked(desk, 10_000_000, "w-2")))
    assert isinstance(smaller, JournalUnit) and len(smaller.transfers) == 1


def test_a_payment_is_created_once_per_key() -> None:
    desk = Desk()

    def payment(pay_amount: int) -> Payment:
        return Payment(
            payment_id=next(desk.ids), partner_id="p1", wallet_id="m1", code="USDTTRC20",
            currency="USDT", chain="TRON", pay_address=f"address-{pay_amount}",
            pay_amount=pay_amount, price_amount="10", price_currency="USD",
            status=PaymentStatus.WAITING, expires_ns=10**12, created_ns=10, updated_ns=10,
            key="order-1", fingerprint=f"p|{pay_amount}",
        )  # fmt: skip

    first = payment(10_000_000)
    assert isinstance(desk.handle(PaymentRequest(1, first)), JournalUnit)
    again = desk.handle(PaymentRequest(2, payment(10_000_000)))
    assert isinstance(again, JournalUnit)
    assert again.replies == [(2, Known("payment", first.payment_id))]
    other = desk.handle(PaymentRequest(3, payment(20_000_000)))
    assert isinstance(other, Refused) and other.code == "idempotency_conflict"
    assert list(desk.custody.payments) == [first.payment_id]


@pytest.mark.parametrize("instant", [False, True])
def test_a_transfer_without_a_key_is_new_every_time(instant: bool) -> None:
    desk = Desk()
    desk.deposit("m1", "USDT", 20_000_000)
    for token in range(2):
        transfer = new_transfer(desk, kind=TransferKind.SECURE_SEND if instant else
                                TransferKind.TO_SUB)  # fmt: skip
        unit = desk.handle(TransferRequest(token, transfer, instant))
        assert isinstance(unit, JournalUnit) and unit.wallet_transfers[0] == unit.replies[0][1]
        if not instant:
            desk.handle(CompleteTransfer(transfer.transfer_id, 40))
    account = main_account(DEFAULT.currencies["USDT"], "s1")
    assert desk.ledger.balance(account) == 10_000_000
