"""The Ledger behaviour: unit tests per rule, then a stateful model check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from msgspec.structs import replace

from strongroom.actors.ledger import AMOUNT_MAX, Ledger, LedgerInvariantError
from strongroom.actors.messages import (
    Account,
    AccountCode,
    Posting,
    Transfer,
    TransferApplied,
    TransferDuplicate,
    TransferOutcome,
    TransferRejected,
    TransferRejection,
)
from strongroom.config import Currency

CURRENCIES = {
    "USD": Currency("USD", "fiat", 2),
    "BTC": Currency("BTC", "coin", 8),
    "USDT": Currency("USDT", "coin", 6),
}
_CODES = {
    ("asset", "fiat"): AccountCode.ASSET_FIAT,
    ("asset", "coin"): AccountCode.ASSET_COIN,
    ("main", "fiat"): AccountCode.MAIN_FIAT,
    ("main", "coin"): AccountCode.MAIN_COIN,
    ("locked", "fiat"): AccountCode.LOCKED_FIAT,
    ("locked", "coin"): AccountCode.LOCKED_COIN,
    ("revenue", "fiat"): AccountCode.REVENUE_FIAT,
    ("revenue", "coin"): AccountCode.REVENUE_COIN,
    ("expense", "fiat"): AccountCode.EXPENSE_FIAT,
    ("expense", "coin"): AccountCode.EXPENSE_COIN,
}


def _account(role: str, currency: str, wallet_id: str | None = None) -> Account:
    return Account(_CODES[role, CURRENCIES[currency].kind], currency, wallet_id)


def asset(currency: str) -> Account:
    return _account("asset", currency)


def revenue(currency: str) -> Account:
    return _account("revenue", currency)


def expense(currency: str) -> Account:
    return _account("expense", currency)


def main(wallet_id: str, currency: str) -> Account:
    return _account("main", currency, wallet_id)


def locked(wallet_id: str, currency: str) -> Account:
    return _account("locked", currency, wallet_id)


def transfer(transfer_id: int, kind: str, *postings: Posting, key: str | None = None) -> Transfer:
    return Transfer(transfer_id, kind, tuple(postings), key)


def deposit(transfer_id: int, wallet_id: str, currency: str, amount: int) -> Transfer:
    return transfer(
        transfer_id,
        "deposit",
        Posting(asset(currency), main(wallet_id, currency), amount),
        key=f"deposit-{transfer_id}",
    )


def hold(transfer_id: int, wallet_id: str, currency: str, amount: int, hold_id: int) -> Transfer:
    return transfer(
        transfer_id,
        "hold",
        Posting(main(wallet_id, currency), locked(wallet_id, currency), amount, hold_id),
        key=f"hold-{transfer_id}",
    )


def state(ledger: Ledger) -> dict[Account, int]:
    return dict(ledger.accounts())


def assert_balanced(ledger: Ledger) -> None:
    for currency in CURRENCIES:
        assert ledger.totals(currency) == 0


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(CURRENCIES)


def rejected(outcome: TransferOutcome, reason: TransferRejection) -> TransferRejected:
    assert isinstance(outcome, TransferRejected), outcome
    assert outcome.reason is reason, outcome
    return outcome


# ------------------------------------------------------------------ the rules one by one


def test_deposit_credits_the_member_and_the_asset(ledger: Ledger) -> None:
    applied = deposit(1, "w1", "BTC", 5_000)
    assert ledger.apply(applied) == TransferApplied(applied)
    assert ledger.balance(main("w1", "BTC")) == 5_000
    assert ledger.balance(asset("BTC")) == 5_000
    assert ledger.balance(main("w2", "BTC")) == 0
    assert state(ledger) == {asset("BTC"): 5_000, main("w1", "BTC"): 5_000}
    assert_balanced(ledger)


def test_fiat_deposit_uses_fiat_accounts(ledger: Ledger) -> None:
    assert isinstance(ledger.apply(deposit(1, "w1", "USD", 250)), TransferApplied)
    assert ledger.balance(Account(AccountCode.MAIN_FIAT, "USD", "w1")) == 250
    assert ledger.balance(Account(AccountCode.ASSET_FIAT, "USD")) == 250
    assert_balanced(ledger)


def test_withdrawal_debits_the_member_and_the_asset(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 500))
    withdrawal = transfer(2, "withdrawal", Posting(main("w1", "BTC"), asset("BTC"), 200))
    assert isinstance(ledger.apply(withdrawal), TransferApplied)
    assert state(ledger) == {asset("BTC"): 300, main("w1", "BTC"): 300}
    assert_balanced(ledger)


def test_hold_moves_main_to_locked(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "USDT", 1_000))
    assert isinstance(ledger.apply(hold(2, "w1", "USDT", 700, hold_id=77)), TransferApplied)
    assert ledger.balance(main("w1", "USDT")) == 300
    assert ledger.balance(locked("w1", "USDT")) == 700
    assert ledger.hold_remaining(77) == 700
    assert ledger.hold_account(77) == locked("w1", "USDT")
    assert ledger.hold_remaining(78) == 0
    assert ledger.hold_account(78) is None
    assert_balanced(ledger)


def test_settlement_from_a_hold_to_another_member_and_to_revenue(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "USDT", 1_000))
    ledger.apply(deposit(2, "w2", "BTC", 50))
    ledger.apply(hold(3, "w1", "USDT", 1_000, hold_id=10))
    ledger.apply(hold(4, "w2", "BTC", 50, hold_id=20))
    fill = transfer(
        5,
        "fill",
        Posting(locked("w1", "USDT"), main("w2", "USDT"), 600, 10),
        Posting(locked("w1", "USDT"), revenue("USDT"), 6, 10),
        Posting(locked("w2", "BTC"), main("w1", "BTC"), 29, 20),
        Posting(locked("w2", "BTC"), revenue("BTC"), 1, 20),
        key="trade-1",
    )
    assert ledger.apply(fill) == TransferApplied(fill)
    assert ledger.hold_remaining(10) == 394
    assert ledger.hold_remaining(20) == 20
    assert ledger.balance(main("w2", "USDT")) == 600
    assert ledger.balance(main("w1", "BTC")) == 29
    assert ledger.balance(revenue("USDT")) == 6
    assert ledger.balance(revenue("BTC")) == 1
    assert ledger.balance(locked("w1", "USDT")) == 394
    assert ledger.balance(locked("w2", "BTC")) == 20
    assert_balanced(ledger)


def test_release_returns_the_remainder_and_forgets_the_hold(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.apply(hold(2, "w1", "BTC", 80, hold_id=5))
    ledger.apply(transfer(3, "fill", Posting(locked("w1", "BTC"), main("w2", "BTC"), 30, 5)))
    postings = ledger.release_postings(5)
    assert postings == (Posting(locked("w1", "BTC"), main("w1", "BTC"), 50, 5),)
    assert ledger.hold_remaining(5) == 50  # release_postings does not apply them
    assert isinstance(ledger.apply(Transfer(4, "release", postings, "release-5")), TransferApplied)
    assert ledger.hold_remaining(5) == 0
    assert ledger.hold_account(5) is None
    assert ledger.release_postings(5) == ()
    assert ledger.release_postings(999) == ()
    assert ledger.balance(main("w1", "BTC")) == 70
    assert ledger.balance(locked("w1", "BTC")) == 0
    assert locked("w1", "BTC") not in state(ledger)
    assert ledger._hold_remaining == {}  # fully used holds are dropped from memory
    assert ledger._hold_accounts == {}
    assert_balanced(ledger)


def test_fully_settled_hold_is_dropped(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.apply(hold(2, "w1", "BTC", 100, hold_id=5))
    ledger.apply(transfer(3, "fill", Posting(locked("w1", "BTC"), main("w2", "BTC"), 100, 5)))
    assert ledger.hold_remaining(5) == 0
    assert ledger.hold_account(5) is None
    assert ledger.release_postings(5) == ()
    assert ledger._hold_remaining == {}


def test_overdraft_is_rejected_and_changes_nothing(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    before = state(ledger)
    withdrawal = transfer(2, "withdrawal", Posting(main("w1", "BTC"), asset("BTC"), 101))
    outcome = rejected(ledger.apply(withdrawal), TransferRejection.INSUFFICIENT_FUNDS)
    assert outcome.transfer is withdrawal
    assert "w1" in outcome.detail
    over_hold = hold(3, "w1", "BTC", 101, hold_id=1)
    rejected(ledger.apply(over_hold), TransferRejection.INSUFFICIENT_FUNDS)
    assert ledger.hold_remaining(1) == 0
    assert ledger.hold_account(1) is None
    assert state(ledger) == before


def test_settlement_beyond_the_hold_is_rejected(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.apply(hold(2, "w1", "BTC", 40, hold_id=1))
    ledger.apply(hold(3, "w1", "BTC", 60, hold_id=2))
    before = state(ledger)
    # The locked account holds 100, but hold 1 only 40 of it.
    too_much = transfer(4, "fill", Posting(locked("w1", "BTC"), main("w2", "BTC"), 41, 1))
    rejected(ledger.apply(too_much), TransferRejection.INSUFFICIENT_FUNDS)
    assert state(ledger) == before
    assert (ledger.hold_remaining(1), ledger.hold_remaining(2)) == (40, 60)


def test_unknown_hold_cannot_be_debited(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.apply(hold(2, "w1", "BTC", 100, hold_id=1))
    stray = transfer(3, "fill", Posting(locked("w1", "BTC"), main("w2", "BTC"), 1, 99))
    rejected(ledger.apply(stray), TransferRejection.INSUFFICIENT_FUNDS)
    assert ledger.hold_account(99) is None


def test_one_failing_posting_rejects_the_whole_transfer(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.apply(deposit(2, "w1", "USD", 100))
    before = state(ledger)
    mixed = transfer(
        3,
        "mixed",
        Posting(asset("USD"), main("w2", "USD"), 50),
        Posting(main("w1", "USD"), main("w2", "USD"), 100),
        Posting(main("w1", "BTC"), main("w2", "BTC"), 101),  # one too many
        key="mixed",
    )
    rejected(ledger.apply(mixed), TransferRejection.INSUFFICIENT_FUNDS)
    assert state(ledger) == before
    assert_balanced(ledger)


def test_postings_of_one_transfer_net_out_before_the_check(ledger: Ledger) -> None:
    # w1 has nothing: the deposit inside the same transfer pays for the move.
    netted = transfer(
        1,
        "netted",
        Posting(asset("BTC"), main("w1", "BTC"), 100),
        Posting(main("w1", "BTC"), main("w2", "BTC"), 100),
    )
    assert isinstance(ledger.apply(netted), TransferApplied)
    assert state(ledger) == {asset("BTC"): 100, main("w2", "BTC"): 100}
    # A hold made and used up within one transfer leaves nothing behind.
    through_hold = transfer(
        2,
        "through-hold",
        Posting(main("w2", "BTC"), locked("w2", "BTC"), 60, 3),
        Posting(locked("w2", "BTC"), main("w1", "BTC"), 60, 3),
    )
    assert isinstance(ledger.apply(through_hold), TransferApplied)
    assert ledger.hold_remaining(3) == 0
    assert ledger.hold_account(3) is None
    assert ledger._hold_remaining == {}
    assert state(ledger) == {asset("BTC"): 100, main("w2", "BTC"): 40, main("w1", "BTC"): 60}
    assert_balanced(ledger)


def test_duplicate_returns_the_first_transfer_and_changes_nothing(ledger: Ledger) -> None:
    first = deposit(1, "w1", "BTC", 100)
    assert isinstance(ledger.apply(first), TransferApplied)
    before = state(ledger)
    retry = replace(first, transfer_id=2)
    outcome = ledger.apply(retry)
    assert outcome == TransferDuplicate(first)
    assert isinstance(outcome, TransferDuplicate)
    assert outcome.first is first
    assert state(ledger) == before


def test_same_key_with_other_content_is_a_conflict(ledger: Ledger) -> None:
    first = deposit(1, "w1", "BTC", 100)
    ledger.apply(first)
    before = state(ledger)
    other_amount = replace(first, postings=(Posting(asset("BTC"), main("w1", "BTC"), 101),))
    other_kind = replace(first, kind="bonus")
    other_wallet = replace(first, postings=(Posting(asset("BTC"), main("w2", "BTC"), 100),))
    for altered in (other_amount, other_kind, other_wallet):
        rejected(ledger.apply(altered), TransferRejection.CONFLICT)
    assert state(ledger) == before


def test_a_rejected_key_may_be_retried(ledger: Ledger) -> None:
    withdrawal = transfer(
        1, "withdrawal", Posting(main("w1", "BTC"), asset("BTC"), 10), key="withdrawal-1"
    )
    rejected(ledger.apply(withdrawal), TransferRejection.INSUFFICIENT_FUNDS)
    ledger.apply(deposit(2, "w1", "BTC", 10))
    assert ledger.apply(withdrawal) == TransferApplied(withdrawal)
    assert ledger.apply(replace(withdrawal, transfer_id=3)) == TransferDuplicate(withdrawal)
    assert state(ledger) == {}


def test_transfers_without_a_key_are_not_idempotent(ledger: Ledger) -> None:
    unkeyed = transfer(1, "deposit", Posting(asset("BTC"), main("w1", "BTC"), 10))
    assert isinstance(ledger.apply(unkeyed), TransferApplied)
    assert isinstance(ledger.apply(unkeyed), TransferApplied)
    assert ledger.balance(main("w1", "BTC")) == 20


def test_apply_batch_applies_in_order(ledger: Ledger) -> None:
    first = deposit(1, "w1", "BTC", 10)
    spend = transfer(2, "withdrawal", Posting(main("w1", "BTC"), asset("BTC"), 10))
    overspend = transfer(3, "withdrawal", Posting(main("w1", "BTC"), asset("BTC"), 1))
    outcomes = ledger.apply_batch([first, replace(first, transfer_id=4), spend, overspend])
    assert outcomes[0] == TransferApplied(first)
    assert outcomes[1] == TransferDuplicate(first)
    assert outcomes[2] == TransferApplied(spend)
    rejected(outcomes[3], TransferRejection.INSUFFICIENT_FUNDS)
    assert ledger.apply_batch([]) == []


def test_largest_amount_is_accepted(ledger: Ledger) -> None:
    big = transfer(1, "deposit", Posting(asset("BTC"), main("w1", "BTC"), AMOUNT_MAX))
    assert isinstance(ledger.apply(big), TransferApplied)
    assert ledger.balance(main("w1", "BTC")) == 2**62


def test_expense_is_debit_normal(ledger: Ledger) -> None:
    bonus = transfer(1, "bonus", Posting(expense("USD"), main("w1", "USD"), 5))
    assert isinstance(ledger.apply(bonus), TransferApplied)
    assert ledger.balance(expense("USD")) == 5
    assert ledger.balance(main("w1", "USD")) == 5
    withdrawal = transfer(2, "withdrawal", Posting(main("w1", "USD"), asset("USD"), 5))
    assert isinstance(ledger.apply(withdrawal), TransferApplied)
    assert ledger.balance(asset("USD")) == -5  # system accounts may go negative
    assert_balanced(ledger)


W1_BTC = main("w1", "BTC")
W1_LOCKED_BTC = locked("w1", "BTC")

INVALID_POSTINGS: dict[str, tuple[Posting, ...]] = {
    "no postings": (),
    "zero amount": (Posting(asset("BTC"), W1_BTC, 0),),
    "negative amount": (Posting(asset("BTC"), W1_BTC, -5),),
    "amount over 2**62": (Posting(asset("BTC"), W1_BTC, AMOUNT_MAX + 1),),
    "float amount": (Posting(asset("BTC"), W1_BTC, 1.0),),  # type: ignore[arg-type]
    "bool amount": (Posting(asset("BTC"), W1_BTC, True),),
    "debit equals credit": (Posting(W1_BTC, W1_BTC, 5),),
    "unknown currency": (
        Posting(
            Account(AccountCode.ASSET_COIN, "DOGE"), Account(AccountCode.MAIN_COIN, "DOGE", "w1"), 5
        ),
    ),
    "mixed currencies": (Posting(asset("BTC"), main("w1", "USDT"), 5),),
    "coin code with fiat currency": (
        Posting(
            Account(AccountCode.ASSET_COIN, "USD"), Account(AccountCode.MAIN_COIN, "USD", "w1"), 5
        ),
    ),
    "fiat code with coin currency": (Posting(Account(AccountCode.ASSET_FIAT, "BTC"), W1_BTC, 5),),
    "member account without wallet": (
        Posting(asset("BTC"), Account(AccountCode.MAIN_COIN, "BTC"), 5),
    ),
    "member account with empty wallet": (Posting(asset("BTC"), main("", "BTC"), 5),),
    "system account with wallet": (
        Posting(Account(AccountCode.ASSET_COIN, "BTC", "w1"), W1_BTC, 5),
    ),
    "revenue with wallet": (Posting(W1_BTC, Account(AccountCode.REVENUE_COIN, "BTC", "w1"), 5),),
    "hold_id without a locked account": (Posting(asset("BTC"), W1_BTC, 5, 1),),
    "locked account without hold_id": (Posting(W1_BTC, W1_LOCKED_BTC, 5),),
    "locked to locked": (Posting(W1_LOCKED_BTC, locked("w2", "BTC"), 5, 1),),
    "locked to locked with a live hold": (Posting(W1_LOCKED_BTC, locked("w2", "BTC"), 5, 101),),
    "bool hold_id": (Posting(W1_BTC, W1_LOCKED_BTC, 5, True),),
    "str hold_id": (Posting(W1_BTC, W1_LOCKED_BTC, 5, "1"),),  # type: ignore[arg-type]
    "wallet_id not a str": (Posting(asset("BTC"), Account(AccountCode.MAIN_COIN, "BTC", 1), 5),),  # type: ignore[arg-type]
    "unknown account code": (Posting(asset("BTC"), Account(999, "BTC", "w1"), 5),),  # type: ignore[arg-type]
    "one bad posting among good ones": (
        Posting(asset("BTC"), W1_BTC, 5),
        Posting(W1_BTC, W1_LOCKED_BTC, 5),
    ),
    "one hold on two locked accounts": (
        Posting(asset("BTC"), W1_BTC, 10),
        Posting(asset("BTC"), main("w2", "BTC"), 10),
        Posting(W1_BTC, W1_LOCKED_BTC, 5, 1),
        Posting(main("w2", "BTC"), locked("w2", "BTC"), 5, 1),
    ),
}


@pytest.mark.parametrize("postings", INVALID_POSTINGS.values(), ids=INVALID_POSTINGS.keys())
def test_invalid_shapes_are_rejected(ledger: Ledger, postings: tuple[Posting, ...]) -> None:
    # Use every well-formed account first: the ledger remembers them as validated.
    for wallet_id, hold_id in (("w1", 101), ("w2", 102)):
        ledger.apply(deposit(hold_id, wallet_id, "BTC", 100))
        ledger.apply(hold(hold_id + 10, wallet_id, "BTC", 10, hold_id))
    ledger.apply(transfer(5, "fee", Posting(main("w1", "BTC"), revenue("BTC"), 1)))
    ledger.apply(deposit(6, "w1", "USDT", 100))
    before = state(ledger)
    invalid = Transfer(2, "invalid", postings, key="invalid")
    outcome = rejected(ledger.apply(invalid), TransferRejection.INVALID)
    assert outcome.detail
    assert state(ledger) == before
    # The key was not recorded: a valid transfer may use it now.
    valid = deposit(3, "w1", "BTC", 1)
    assert isinstance(ledger.apply(replace(valid, key="invalid")), TransferApplied)


def test_too_many_postings_are_rejected(ledger: Ledger) -> None:
    many = tuple(Posting(asset("BTC"), W1_BTC, 1) for _ in range(1_001))
    rejected(ledger.apply(Transfer(1, "many", many)), TransferRejection.INVALID)
    assert isinstance(ledger.apply(Transfer(2, "many", many[:1_000])), TransferApplied)


def test_a_live_hold_is_bound_to_its_locked_account(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.apply(deposit(2, "w2", "BTC", 100))
    ledger.apply(hold(3, "w1", "BTC", 50, hold_id=1))
    before = state(ledger)
    elsewhere = hold(4, "w2", "BTC", 50, hold_id=1)
    rejected(ledger.apply(elsewhere), TransferRejection.INVALID)
    other_currency = transfer(5, "hold", Posting(main("w1", "USDT"), locked("w1", "USDT"), 1, 1))
    rejected(ledger.apply(other_currency), TransferRejection.INVALID)
    assert state(ledger) == before
    # Adding to the hold on its own account is fine.
    assert isinstance(ledger.apply(hold(6, "w1", "BTC", 50, hold_id=1)), TransferApplied)
    assert ledger.hold_remaining(1) == 100


def test_restore_then_continue() -> None:
    original = Ledger(CURRENCIES)
    first = deposit(1, "w1", "BTC", 100)
    original.apply(first)
    original.apply(deposit(2, "w2", "USD", 500))
    original.apply(hold(3, "w1", "BTC", 70, hold_id=8))
    original.apply(hold(4, "w2", "USD", 300, hold_id=9))
    balances = list(original.accounts())
    holds = [
        (hold_id, original.hold_account(hold_id), original.hold_remaining(hold_id))
        for hold_id in (8, 9)
    ]
    restored = Ledger(CURRENCIES)
    restored.restore(
        balances,
        [(hold_id, account, remaining) for hold_id, account, remaining in holds if account],
        [("deposit-1", first)],
    )
    assert state(restored) == state(original)
    assert restored.hold_remaining(8) == 70
    assert restored.hold_account(9) == locked("w2", "USD")
    assert_balanced(restored)
    assert restored.apply(replace(first, transfer_id=10)) == TransferDuplicate(first)
    rejected(restored.apply(replace(first, kind="other")), TransferRejection.CONFLICT)
    fill = transfer(
        11,
        "fill",
        Posting(locked("w1", "BTC"), main("w2", "BTC"), 70, 8),
        Posting(locked("w2", "USD"), main("w1", "USD"), 290, 9),
        Posting(locked("w2", "USD"), revenue("USD"), 3, 9),
    )
    assert isinstance(restored.apply(fill), TransferApplied)
    assert restored.hold_remaining(8) == 0
    assert restored.release_postings(9) == (Posting(locked("w2", "USD"), main("w2", "USD"), 7, 9),)
    rejected(
        restored.apply(hold(12, "w1", "BTC", 31, hold_id=13)),
        TransferRejection.INSUFFICIENT_FUNDS,
    )
    assert_balanced(restored)


def test_restore_replaces_the_state(ledger: Ledger) -> None:
    ledger.apply(deposit(1, "w1", "BTC", 100))
    ledger.restore([], [], [])
    assert state(ledger) == {}
    assert isinstance(ledger.apply(deposit(1, "w1", "BTC", 100)), TransferApplied)


@pytest.mark.parametrize(
    ("balances", "holds"),
    [
        ([(asset("BTC"), 100)], []),
        ([(asset("BTC"), -5), (main("w1", "BTC"), -5)], []),
        ([(asset("BTC"), 10), (locked("w1", "BTC"), 10)], [(1, locked("w1", "BTC"), 9)]),
        ([(asset("BTC"), 10), (main("w1", "BTC"), 10)], [(1, locked("w1", "BTC"), 5)]),
        (
            [(asset("BTC"), 10), (locked("w1", "BTC"), 10)],
            [(1, locked("w1", "BTC"), 15), (2, locked("w1", "BTC"), -5)],
        ),
    ],
    ids=["unbalanced", "negative member", "holds short", "holds without balance", "negative hold"],
)
def test_restore_refuses_books_that_do_not_balance(
    ledger: Ledger, balances: list[tuple[Account, int]], holds: list[tuple[int, Account, int]]
) -> None:
    with pytest.raises(LedgerInvariantError):
        ledger.restore(balances, holds, [])


def test_the_balance_invariant_is_checked_on_apply(ledger: Ledger) -> None:
    ledger._totals["BTC"] = 1  # simulate a broken ledger
    with pytest.raises(LedgerInvariantError):
        ledger.apply(deposit(1, "w1", "BTC", 100))


# ------------------------------------------------------------------ stateful model check

WALLETS = ("w1", "w2", "w3")
amounts = st.integers(min_value=1, max_value=10_000)


def natural_sign(account: Account) -> int:
    """+1 when debits raise the balance (assets 1xx, expenses 4xx), -1 otherwise."""
    return 1 if int(account.code) // 100 in (1, 4) else -1


def is_member(account: Account) -> bool:
    return int(account.code) // 100 == 2


def is_main(account: Account) -> bool:
    return int(account.code) in (201, 202)


class LedgerMachine(RuleBasedStateMachine):
    """Random deposits, withdrawals, holds, fills, releases and retries against a model.

    The model keeps the applied postings' debits and credits per account and each hold's
    postings, and predicts every outcome by replaying the transfer on a copy of itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(CURRENCIES)
        self.debits: Counter[Account] = Counter()
        self.credits: Counter[Account] = Counter()
        self.holds: dict[int, tuple[Account, int]] = {}  # every hold ever, used up or not
        self.applied: dict[str, Transfer] = {}  # key -> first applied transfer
        self.rejected: dict[str, Transfer] = {}  # key -> a transfer rejected for funds
        self.next_id = 0

    # ---- the model

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def model_balances(self) -> dict[Account, int]:
        balances = {
            account: natural_sign(account) * (self.debits[account] - self.credits[account])
            for account in self.debits.keys() | self.credits.keys()
        }
        return {account: balance for account, balance in balances.items() if balance}

    def live_holds(self) -> list[int]:
        return [hold_id for hold_id, (_, remaining) in self.holds.items() if remaining]

    def predict(self, candidate: Transfer) -> str:
        if candidate.key in self.applied:
            first = self.applied[candidate.key]
            same = (first.kind, first.postings) == (candidate.kind, candidate.postings)
            return "duplicate" if same else "conflict"
        balances = self.model_balances()
        remaining = {hold_id: left for hold_id, (_, left) in self.holds.items()}
        for posting in candidate.postings:
            for account, debit in ((posting.debit, True), (posting.credit, False)):
                change = posting.amount if debit else -posting.amount
                balances[account] = balances.get(account, 0) + natural_sign(account) * change
                if posting.hold_id is not None and int(account.code) in (211, 212):
                    hold_id = posting.hold_id
                    remaining[hold_id] = remaining.get(hold_id, 0) - change
        if any(is_member(account) and balance < 0 for account, balance in balances.items()):
            return "insufficient"
        if any(left < 0 for left in remaining.values()):
            return "insufficient"
        return "applied"

    def record(self, applied: Transfer) -> None:
        for posting in applied.postings:
            self.debits[posting.debit] += posting.amount
            self.credits[posting.credit] += posting.amount
            if posting.hold_id is not None:
                if int(posting.debit.code) in (211, 212):
                    account, change = posting.debit, -posting.amount
                else:
                    account, change = posting.credit, posting.amount
                _, left = self.holds.get(posting.hold_id, (account, 0))
                self.holds[posting.hold_id] = (account, left + change)
        if applied.key is not None:
            self.applied[applied.key] = applied

    def run(self, candidate: Transfer) -> TransferOutcome:
        expected = self.predict(candidate)
        before = state(self.ledger)
        outcome = self.ledger.apply(candidate)
        if expected == "applied":
            assert outcome == TransferApplied(candidate), (expected, outcome)
            self.record(candidate)
            if candidate.key is not None:
                self.rejected.pop(candidate.key, None)
            return outcome
        assert state(self.ledger) == before, "a transfer not applied changed balances"
        if expected == "duplicate":
            assert isinstance(outcome, TransferDuplicate), outcome
            assert outcome.first is self.applied[candidate.key or ""]
        elif expected == "conflict":
            rejected(outcome, TransferRejection.CONFLICT)
        else:
            rejected(outcome, TransferRejection.INSUFFICIENT_FUNDS)
            if candidate.key is not None:
                self.rejected[candidate.key] = candidate
        return outcome

    # ---- rules

    @rule(
        wallet=st.sampled_from(WALLETS),
        currency=st.sampled_from(sorted(CURRENCIES)),
        amount=amounts,
        keyed=st.booleans(),
        source=st.sampled_from([asset, asset, expense]),
    )
    def deposit(
        self, wallet: str, currency: str, amount: int, keyed: bool, source: Callable[[str], Account]
    ) -> None:
        """A deposit (asset) or, now and then, a bonus the exchange pays (expense)."""
        transfer_id = self.new_id()
        posting = Posting(source(currency), main(wallet, currency), amount)
        self.run(Transfer(transfer_id, "deposit", (posting,), f"d{transfer_id}" if keyed else None))

    def funded(self) -> list[Account]:
        """The main accounts with money in them."""
        balances = self.model_balances()
        return sorted(
            (account for account, balance in balances.items() if balance > 0 and is_main(account)),
            key=repr,
        )

    def draw_funded(self, data: st.DataObject) -> tuple[Account, int]:
        """A funded main account and mostly what it can afford, sometimes a little more."""
        account = data.draw(st.sampled_from(self.funded()), label="account")
        available = self.model_balances()[account]
        return account, data.draw(st.integers(1, available + 2), label="amount")

    @precondition(lambda self: bool(self.funded()))
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        account, amount = self.draw_funded(data)
        transfer_id = self.new_id()
        posting = Posting(account, asset(account.currency), amount)
        self.run(Transfer(transfer_id, "withdrawal", (posting,), f"w{transfer_id}"))

    @precondition(lambda self: bool(self.funded()))
    @rule(data=st.data())
    def place_hold(self, data: st.DataObject) -> None:
        account, amount = self.draw_funded(data)
        assert account.wallet_id is not None
        hold_id = self.new_id()
        self.run(hold(hold_id, account.wallet_id, account.currency, amount, hold_id))

    @precondition(lambda self: bool(self.live_holds()))
    @rule(data=st.data(), fee=st.integers(min_value=0, max_value=3))
    def settle(self, data: st.DataObject, fee: int) -> None:
        hold_id = data.draw(st.sampled_from(self.live_holds()), label="hold")
        account, left = self.holds[hold_id]
        assert account.wallet_id is not None
        counterparty = data.draw(st.sampled_from([w for w in WALLETS if w != account.wallet_id]))
        amount = data.draw(st.integers(min_value=1, max_value=left + 2), label="amount")
        postings = [Posting(account, main(counterparty, account.currency), amount, hold_id)]
        if fee:
            postings.append(Posting(account, revenue(account.currency), fee, hold_id))
        transfer_id = self.new_id()
        self.run(Transfer(transfer_id, "fill", tuple(postings), f"f{transfer_id}"))

    @precondition(lambda self: len({self.holds[h][0].currency for h in self.live_holds()}) > 1)
    @rule(data=st.data())
    def trade(self, data: st.DataObject) -> None:
        """Two holds in two currencies pay each other's owner, with fees, in one transfer."""
        live = self.live_holds()
        first = data.draw(st.sampled_from(live), label="first hold")
        first_account, first_left = self.holds[first]
        second = data.draw(
            st.sampled_from(
                [h for h in live if self.holds[h][0].currency != first_account.currency]
            ),
            label="second hold",
        )
        second_account, second_left = self.holds[second]
        assert first_account.wallet_id is not None and second_account.wallet_id is not None
        postings = []
        for hold_id, account, left, payee in (
            (first, first_account, first_left, second_account.wallet_id),
            (second, second_account, second_left, first_account.wallet_id),
        ):
            # Now and then one more than the hold has: the whole trade is rejected.
            amount = data.draw(st.integers(min_value=1, max_value=left + 1), label="amount")
            postings.append(Posting(account, main(payee, account.currency), amount, hold_id))
            if amount < left:
                postings.append(Posting(account, revenue(account.currency), 1, hold_id))
        transfer_id = self.new_id()
        self.run(Transfer(transfer_id, "trade", tuple(postings), f"t{transfer_id}"))

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)), label="hold")
        account, left = self.holds[hold_id]
        postings = self.ledger.release_postings(hold_id)
        if not left:
            assert postings == ()
            return
        assert account.wallet_id is not None
        main_account = main(account.wallet_id, account.currency)
        assert postings == (Posting(account, main_account, left, hold_id),)
        outcome = self.run(Transfer(self.new_id(), "release", postings, f"r{hold_id}"))
        assert isinstance(outcome, TransferApplied)

    @precondition(lambda self: bool(self.applied))
    @rule(data=st.data())
    def retry_same(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.applied)), label="key")
        first = self.applied[key]
        outcome = self.run(replace(first, transfer_id=self.new_id()))
        assert outcome == TransferDuplicate(first)

    @precondition(lambda self: bool(self.applied))
    @rule(data=st.data(), alter_kind=st.booleans())
    def retry_altered(self, data: st.DataObject, alter_kind: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.applied)), label="key")
        first = self.applied[key]
        if alter_kind:
            altered = replace(first, transfer_id=self.new_id(), kind=first.kind + "!")
        else:
            postings = (replace(first.postings[0], amount=first.postings[0].amount + 1),)
            altered = replace(first, transfer_id=self.new_id(), postings=postings)
        rejected(self.run(altered), TransferRejection.CONFLICT)

    @precondition(lambda self: bool(self.rejected))
    @rule(data=st.data())
    def retry_rejected(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.rejected)), label="rejected key")
        candidate = self.rejected[key]
        self.run(replace(candidate, transfer_id=self.new_id()))

    @rule()
    def restart(self) -> None:
        """Recovery: a fresh ledger restored from the committed state carries on."""
        restored = Ledger(CURRENCIES)
        restored.restore(
            self.model_balances().items(),
            [(hold_id, account, left) for hold_id, (account, left) in self.holds.items()],
            self.applied.items(),
        )
        self.ledger = restored

    # ---- invariants

    @invariant()
    def books_balance(self) -> None:
        assert_balanced(self.ledger)

    @invariant()
    def balances_equal_the_model(self) -> None:
        balances = state(self.ledger)
        assert balances == self.model_balances()
        assert all(balance >= 0 for account, balance in balances.items() if is_member(account))

    @invariant()
    def holds_equal_the_model(self) -> None:
        locked_sums: Counter[Account] = Counter()
        for hold_id, (account, left) in self.holds.items():
            assert left >= 0
            assert self.ledger.hold_remaining(hold_id) == left
            assert self.ledger.hold_account(hold_id) == (account if left else None)
            locked_sums[account] += left
        for account, balance in state(self.ledger).items():
            if int(account.code) in (211, 212):
                assert balance == locked_sums[account]


LedgerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_machine = LedgerMachine.TestCase
