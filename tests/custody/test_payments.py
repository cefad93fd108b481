"""Payments (invoices): the transition table, `receive`, `due_event` and `end`, then random
receive/time sequences, on the pure functions and on the custody desk with a real Ledger.

What must hold whatever the order of events: a txid counts once; what arrived is credited
exactly once, when the payment ends, and equals the sum of the counted transactions; a
final payment (finished, expired) never changes again; coins after the deadline or
after the end are refused; the ledger balances."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as record_event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from msgspec.structs import replace

from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import JournalUnit, Refused
from strongroom.actors.vault import asset_account, main_account
from strongroom.config import DEFAULT
from strongroom.custody.desk import Custody, Known, PaymentIncoming, PaymentRequest, PaymentsDue
from strongroom.custody.errors import IllegalTransition
from strongroom.custody.payments import (
    FINAL_STATES,
    RECEIPTS_MAX,
    TRANSITIONS,
    Payment,
    PaymentClosed,
    PaymentEvent,
    PaymentExpired,
    PaymentStatus,
    due_event,
    end,
    receive,
)

S = PaymentStatus
E = PaymentEvent
PAY_AMOUNT = 1_000
EXPIRES_NS = 1_000_000
CONFIRM_DELAY_NS = 10_000

EXPECTED = {
    (S.WAITING, E.PAY_FULL): S.CONFIRMING,
    (S.WAITING, E.PAY_PART): S.PARTIALLY_PAID,
    (S.PARTIALLY_PAID, E.PAY_PART): S.PARTIALLY_PAID,
    (S.PARTIALLY_PAID, E.PAY_FULL): S.CONFIRMING,
    (S.CONFIRMING, E.PAY_PART): S.CONFIRMING,
    (S.CONFIRMING, E.PAY_FULL): S.CONFIRMING,
    (S.CONFIRMING, E.CONFIRM): S.FINISHED,
    (S.WAITING, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_PAID, E.EXPIRE): S.EXPIRED,
}


def invoice(payment_id: int = 1, wallet_id: str = "merchant", **fields: object) -> Payment:
    values: dict[str, object] = {
        "payment_id": payment_id,
        "partner_id": "partner",
        "wallet_id": wallet_id,
        "code": "USDTTRC20",
        "currency": "USDT",
        "chain": "TRON",
        "pay_address": f"T-address-{payment_id}",
        "pay_amount": PAY_AMOUNT,
        "price_amount": "0.001000",
        "price_currency": "USDT",
        "status": S.WAITING,
        "expires_ns": EXPIRES_NS,
        "created_ns": 0,
        "updated_ns": 0,
        **fields,
    }
    return Payment(**values)


# --------------------------------------------------------------------------- the table


def test_the_table_is_the_documented_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    assert {S.FINISHED, S.EXPIRED} == FINAL_STATES
    for (source, _event), _target in TRANSITIONS.items():
        assert source not in FINAL_STATES  # nothing leaves a final state


@pytest.mark.parametrize(("status", "event"), list(product(S, [E.CONFIRM, E.EXPIRE])))
def test_end_follows_the_table_or_raises_and_changes_nothing(
    status: PaymentStatus, event: PaymentEvent
) -> None:
    payment = invoice(status=status, received=400, confirm_ns=5)
    if (status, event) in TRANSITIONS:
        ended, credit = end(payment, event, 77)
        assert ended.status is TRANSITIONS[status, event] and ended.updated_ns == 77
        assert credit == 400  # everything that arrived, once
    else:
        with pytest.raises(IllegalTransition):
            end(payment, event, 77)


@pytest.mark.parametrize("event", [E.PAY_FULL, E.PAY_PART])
def test_end_takes_only_the_time_events(event: PaymentEvent) -> None:
    with pytest.raises(IllegalTransition):
        end(invoice(status=S.CONFIRMING, confirm_ns=1), event, 2)


# --------------------------------------------------------------------------- receive


def test_a_full_payment_confirms_after_the_delay_and_finishes() -> None:
    paid = receive(invoice(), "tx1", PAY_AMOUNT, 100, confirm_delay_ns=CONFIRM_DELAY_NS)
    assert paid.status is S.CONFIRMING and paid.received == PAY_AMOUNT
    assert paid.txids == ("tx1",) and paid.confirm_ns == 100 + CONFIRM_DELAY_NS
    assert due_event(paid, 100 + CONFIRM_DELAY_NS - 1) is None
    assert due_event(paid, 100 + CONFIRM_DELAY_NS) is E.CONFIRM
    # Past its expiry too: a paid invoice confirms, it does not expire.
    assert due_event(paid, EXPIRES_NS * 2) is E.CONFIRM


def test_parts_add_up_and_more_than_asked_is_kept() -> None:
    part = receive(invoice(), "tx1", 300, 10, confirm_delay_ns=CONFIRM_DELAY_NS)
    assert (part.status, part.received, part.confirm_ns) == (S.PARTIALLY_PAID, 300, None)
    assert due_event(part, EXPIRES_NS - 1) is None
    assert due_event(part, EXPIRES_NS) is E.EXPIRE
    full = receive(part, "tx2", 800, 20, confirm_delay_ns=CONFIRM_DELAY_NS)
    assert (full.status, full.received, full.confirm_ns) == (S.CONFIRMING, 1_100, 20 + 10_000)
    more = receive(full, "tx3", 5, 30, confirm_delay_ns=CONFIRM_DELAY_NS)
    assert (more.status, more.received) == (S.CONFIRMING, 1_105)
    assert more.confirm_ns == full.confirm_ns  # the first full payment set the clock
    ended, credit = end(more, E.CONFIRM, 20 + 10_000)
    assert ended.status is S.FINISHED and credit == 1_105


def test_a_txid_counts_once_whatever_it_carries() -> None:
    part = receive(invoice(), "tx1", 300, 10, confirm_delay_ns=1)
    assert receive(part, "tx1", 300, 11, confirm_delay_ns=1) is part
    assert receive(part, "tx1", 999_999, 12, confirm_delay_ns=1) is part
    # Even once the payment is over: the txid was counted, nothing is refused or added.
    expired, _ = end(part, E.EXPIRE, EXPIRES_NS)
    assert receive(expired, "tx1", 300, EXPIRES_NS + 1, confirm_delay_ns=1) is expired


def test_coins_after_the_deadline_or_the_end_are_refused() -> None:
    with pytest.raises(PaymentExpired):
        receive(invoice(), "late", PAY_AMOUNT, EXPIRES_NS, confirm_delay_ns=1)
    expired, credit = end(invoice(), E.EXPIRE, EXPIRES_NS)
    assert credit == 0
    with pytest.raises(PaymentExpired):
        receive(expired, "late", PAY_AMOUNT, 0, confirm_delay_ns=1)  # whatever the clock says
    paid = receive(invoice(), "tx1", PAY_AMOUNT, 1, confirm_delay_ns=1)
    finished, _ = end(paid, E.CONFIRM, 2)
    with pytest.raises(PaymentClosed) as raised:
        receive(finished, "tx2", 1, 3, confirm_delay_ns=1)
    assert not isinstance(raised.value, PaymentExpired)
    assert raised.value.code == "payment_closed"


def test_past_the_deadline_a_confirming_payment_takes_no_more_coins_but_still_finishes() -> None:
    paid = receive(invoice(), "tx1", PAY_AMOUNT, 1, confirm_delay_ns=EXPIRES_NS * 2)
    with pytest.raises(PaymentExpired):
        receive(paid, "tx2", 7, EXPIRES_NS + 5, confirm_delay_ns=1)
    assert due_event(paid, EXPIRES_NS + 5) is None
    assert due_event(paid, EXPIRES_NS * 2 + 1) is E.CONFIRM


def test_a_payment_takes_a_bounded_number_of_transactions() -> None:
    payment = invoice(pay_amount=10**9)
    for index in range(RECEIPTS_MAX):
        payment = receive(payment, f"tx{index}", 1, 1, confirm_delay_ns=1)
    assert payment.status is S.PARTIALLY_PAID and len(payment.txids) == RECEIPTS_MAX
    with pytest.raises(PaymentClosed):
        receive(payment, "one-too-many", 1, 1, confirm_delay_ns=1)


@given(
    receipts=st.lists(
        st.tuples(st.sampled_from([f"tx{i}" for i in range(6)]), st.integers(1, 2 * PAY_AMOUNT)),
        max_size=12,
    )
)
def test_received_is_the_sum_of_distinct_txids_and_the_status_says_how_much(
    receipts: list[tuple[str, int]],
) -> None:
    payment = invoice()
    first: dict[str, int] = {}
    for txid, amount in receipts:
        payment = receive(payment, txid, amount, 5, confirm_delay_ns=1)
        first.setdefault(txid, amount)
    assert payment.received == sum(first.values())
    assert payment.txids == tuple(first)
    if not first:
        assert payment.status is S.WAITING
    elif payment.received < PAY_AMOUNT:
        assert payment.status is S.PARTIALLY_PAID
    else:
        assert payment.status is S.CONFIRMING


# --------------------------------------------------------------------------- stateful, pure


class PaymentMachine(RuleBasedStateMachine):
    """Random receipts, repeated txids and clock moves on the pure functions; the worker's
    step (`due_event` → `end`) runs when time passes. The credit `end` returns is summed."""

    def __init__(self) -> None:
        super().__init__()
        self.now_ns = 0
        self.payment = invoice()
        self.counted: dict[str, int] = {}
        self.credited = 0
        self.ends = 0
        self.final_seen: Payment | None = None

    @rule(
        txid=st.sampled_from([f"tx{i}" for i in range(8)]),
        amount=st.integers(1, PAY_AMOUNT),
    )
    def coins_arrive(self, txid: str, amount: int) -> None:
        before = self.payment
        try:
            after = receive(before, txid, amount, self.now_ns, confirm_delay_ns=CONFIRM_DELAY_NS)
        except PaymentExpired:
            assert txid not in before.txids
            assert before.status is S.EXPIRED or (
                not before.final and self.now_ns >= before.expires_ns
            )
            record_event("refused: expired")
            return
        except PaymentClosed:
            assert txid not in before.txids and before.status is S.FINISHED
            record_event("refused: closed")
            return
        if txid in before.txids:
            assert after is before
            record_event("repeat txid")
            return
        assert not before.final
        self.counted[txid] = amount
        self.payment = after

    @rule(elapsed_ns=st.sampled_from([0, 1, CONFIRM_DELAY_NS, EXPIRES_NS // 3, EXPIRES_NS]))
    def time_passes(self, elapsed_ns: int) -> None:
        self.now_ns += elapsed_ns
        event = due_event(self.payment, self.now_ns)
        if event is None:
            return
        assert not self.payment.final
        ended, credit = end(self.payment, event, self.now_ns)
        self.credited += credit
        self.ends += 1
        self.payment = ended
        record_event(f"ended {ended.status}")

    @precondition(lambda self: self.payment.final)
    @rule(event=st.sampled_from(list(E)))
    def final_is_absorbing(self, event: PaymentEvent) -> None:
        with pytest.raises(IllegalTransition):
            end(self.payment, event, self.now_ns)
        assert due_event(self.payment, self.now_ns + EXPIRES_NS * 10) is None

    @invariant()
    def received_is_the_sum_of_the_counted_transactions(self) -> None:
        assert self.payment.received == sum(self.counted.values())
        assert set(self.payment.txids) == set(self.counted)

    @invariant()
    def credited_once_and_everything_when_it_ends(self) -> None:
        assert self.ends <= 1
        if self.payment.final:
            assert self.ends == 1 and self.credited == self.payment.received
        else:
            assert self.ends == 0 and self.credited == 0

    @invariant()
    def the_status_says_what_arrived(self) -> None:
        payment = self.payment
        if payment.status is S.WAITING:
            assert payment.received == 0
        elif payment.status is S.PARTIALLY_PAID:
            assert 0 < payment.received < PAY_AMOUNT
        elif payment.status in (S.CONFIRMING, S.FINISHED):
            assert payment.received >= PAY_AMOUNT and payment.confirm_ns is not None
        else:
            assert payment.received < PAY_AMOUNT  # an expired invoice was never paid in full

    @invariant()
    def final_states_never_change(self) -> None:
        if self.final_seen is not None:
            assert self.payment == self.final_seen
        elif self.payment.final:
            self.final_seen = self.payment


PaymentMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
test_payment_machine = PaymentMachine.TestCase


# --------------------------------------------------------------------------- stateful, the desk

USDT = DEFAULT.currencies["USDT"]
WALLETS = ("merchant-a", "merchant-b")


class DeskMachine(RuleBasedStateMachine):
    """Several payments through the custody desk, with a real Ledger under it: what the
    ledger credits each wallet is what its ended payments received, each credited once."""

    def __init__(self) -> None:
        super().__init__()
        self.desk = Custody(Clearing(DEFAULT, Ledger(DEFAULT.currencies)),
                            payment_confirm_delay_ns=CONFIRM_DELAY_NS)  # fmt: skip
        self.now_ns = 0
        self.token = 0
        self.created: dict[int, Payment] = {}  # the last committed state of each
        self.counted: dict[int, dict[str, int]] = {}
        self.credit_transfers = 0

    def command_token(self) -> int:
        self.token += 1
        return self.token

    def commit(self, outcome: object) -> object:
        """The unit's reply, and its payments recorded as the journal would."""
        if not isinstance(outcome, JournalUnit):
            return outcome
        for payment in outcome.payments:
            self.created[payment.payment_id] = payment
        self.credit_transfers += sum(1 for t in outcome.transfers if t.kind == "payment")
        replies = [reply for _, reply in outcome.replies]
        return replies[0] if replies else None

    @rule(wallet_id=st.sampled_from(WALLETS), pay_amount=st.integers(1, 3 * PAY_AMOUNT),
          key=st.sampled_from([None, "k1", "k2"]))  # fmt: skip
    def create(self, wallet_id: str, pay_amount: int, key: str | None) -> None:
        payment_id = len(self.created) + 1
        payment = invoice(payment_id, wallet_id, pay_amount=pay_amount, key=key,
                          fingerprint=f"{wallet_id}|{pay_amount}",
                          expires_ns=self.now_ns + EXPIRES_NS, created_ns=self.now_ns)  # fmt: skip
        reply = self.commit(self.desk.handle(PaymentRequest(self.command_token(), payment)))
        if isinstance(reply, Known):
            assert key is not None and self.created[reply.entity_id].key == key
            assert self.created[reply.entity_id].fingerprint == payment.fingerprint
            return
        if isinstance(reply, Refused):
            assert reply.code == "idempotency_conflict" and key is not None
            return
        assert reply == payment and self.created[payment_id] == payment
        self.counted[payment_id] = {}

    @precondition(lambda self: self.created)
    @rule(data=st.data(), txid=st.sampled_from(["a", "b", "c", "d"]),
          amount=st.integers(1, 2 * PAY_AMOUNT))  # fmt: skip
    def coins_arrive(self, data: st.DataObject, txid: str, amount: int) -> None:
        payment_id = data.draw(st.sampled_from(sorted(self.created)))
        before = self.created[payment_id]
        command = PaymentIncoming(self.command_token(), payment_id, txid, amount, self.now_ns)
        reply = self.commit(self.desk.handle(command))
        if isinstance(reply, Refused):
            assert before.final or self.now_ns >= before.expires_ns
            assert reply.code in ("payment_expired", "payment_closed")
            if before.status is S.EXPIRED or not before.final:
                assert reply.code == "payment_expired"
            return
        assert isinstance(reply, Payment)
        if txid not in before.txids:
            self.counted[payment_id][txid] = amount
        assert reply == self.created[payment_id]

    @rule(elapsed_ns=st.sampled_from([1, CONFIRM_DELAY_NS, EXPIRES_NS // 2, EXPIRES_NS]))
    def time_passes(self, elapsed_ns: int) -> None:
        self.now_ns += elapsed_ns
        outcome = self.desk.handle(PaymentsDue(0, self.now_ns))
        if isinstance(outcome, JournalUnit):
            for payment in outcome.payments:
                record_event(f"ended {payment.status}, received {bool(payment.received)}")
        self.commit(outcome)

    @invariant()
    def received_is_what_was_counted(self) -> None:
        for payment_id, payment in self.created.items():
            assert payment.received == sum(self.counted[payment_id].values())

    @invariant()
    def each_wallet_holds_what_its_ended_payments_received(self) -> None:
        ended = [p for p in self.created.values() if p.final]
        for wallet_id in WALLETS:
            expected = sum(p.received for p in ended if p.wallet_id == wallet_id)
            assert self.desk.ledger.balance(main_account(USDT, wallet_id)) == expected
        total = sum(p.received for p in ended)
        assert self.desk.ledger.balance(asset_account(USDT)) == total
        assert self.desk.ledger.totals("USDT") == 0
        assert self.credit_transfers == sum(1 for p in ended if p.received)

    @invariant()
    def live_and_closed_are_what_was_committed(self) -> None:
        for payment_id, payment in self.created.items():
            if payment.final:
                assert payment_id not in self.desk.payments
                assert self.desk.closed_payments[payment_id] is payment.status
            else:
                assert self.desk.payments[payment_id] == payment


DeskMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
test_desk_machine = DeskMachine.TestCase


def test_a_repeat_of_a_key_answers_the_first_payment_and_other_content_is_a_conflict() -> None:
    desk = Custody(Clearing(DEFAULT, Ledger(DEFAULT.currencies)))
    first = invoice(1, key="order-7", fingerprint="same")
    created = desk.handle(PaymentRequest(1, first))
    assert isinstance(created, JournalUnit) and created.replies == [(1, first)]
    assert [event.event_type for event in created.events] == ["payment.waiting"]
    again = desk.handle(PaymentRequest(2, replace(first, payment_id=2)))
    assert isinstance(again, JournalUnit) and again.replies == [(2, Known("payment", 1))]
    assert not again.payments and not again.events
    other = desk.handle(PaymentRequest(3, replace(first, payment_id=3, fingerprint="other")))
    assert isinstance(other, Refused) and other.code == "idempotency_conflict"
