"""Withdrawals: the transition table exhaustively, money legs, fees and limits, then a
stateful check of the money against a real Ledger."""

from __future__ import annotations

import dataclasses
from collections import Counter
from itertools import product

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as record_event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from msgspec.structs import replace

from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Account,
    AccountCode,
    Posting,
    Transfer,
    TransferApplied,
    TransferRejected,
    TransferRejection,
)
from strongroom.config import BASIS_POINTS, Currency
from strongroom.custody.errors import (
    AboveMaximum,
    BelowMinimum,
    CustodyError,
    IllegalTransition,
    InvalidAddress,
    InvalidAmount,
    InvalidEventDetails,
    InvalidWithdrawal,
    UnsupportedCurrency,
)
from strongroom.custody.withdrawals import (
    DEFAULT_RULES,
    FINAL_STATES,
    HOLDING_STATES,
    TRANSITIONS,
    Estimate,
    Leg,
    MoneyEffect,
    Withdrawal,
    WithdrawalEvent,
    WithdrawalRule,
    WithdrawalRules,
    WithdrawalState,
    apply,
    default_rules,
    estimate,
    events_allowed,
    legs,
    observe_confirmations,
    postings,
    prepare,
    step,
    transition,
    withdrawal_postings,
)
from strongroom.errors import ConfigurationError, StrongroomError

S = WithdrawalState
E = WithdrawalEvent
M = MoneyEffect

CURRENCIES = {
    "USD": Currency("USD", "fiat", 2),
    "BTC": Currency("BTC", "coin", 8),
    "ETH": Currency("ETH", "coin", 8),
    "USDT": Currency("USDT", "coin", 6),
}
ADDRESSES = {
    "BTC": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    "ETH": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "TRON": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
}
CODE_CHAIN = {"BTC": "BTC", "ETH": "ETH", "USDTERC20": "ETH", "USDTTRC20": "TRON"}

# The table restated independently of the implementation (see the module docstring and
# Peatio's Withdraw AASM): a change to either must be deliberate.
EXPECTED = {
    (S.PREPARED, E.ACCEPT): (S.ACCEPTED, M.HOLD),
    (S.PREPARED, E.CANCEL): (S.CANCELED, M.NONE),
    (S.ACCEPTED, E.CANCEL): (S.CANCELED, M.RELEASE),
    (S.ACCEPTED, E.REJECT): (S.REJECTED, M.RELEASE),
    (S.ACCEPTED, E.PROCESS): (S.PROCESSING, M.NONE),
    (S.ACCEPTED, E.LOAD): (S.CONFIRMING, M.NONE),
    (S.PROCESSING, E.DISPATCH): (S.CONFIRMING, M.NONE),
    (S.PROCESSING, E.FAIL): (S.FAILED, M.RELEASE),
    (S.PROCESSING, E.ERROR): (S.ERRORED, M.NONE),
    (S.CONFIRMING, E.SUCCESS): (S.SUCCEED, M.SEND),
    (S.CONFIRMING, E.FAIL): (S.FAILED, M.RELEASE),
    (S.ERRORED, E.PROCESS): (S.PROCESSING, M.NONE),
    (S.ERRORED, E.SUCCESS): (S.SUCCEED, M.SEND),
    (S.ERRORED, E.FAIL): (S.FAILED, M.RELEASE),
}
NEEDS_TXID = {E.LOAD, E.DISPATCH, E.SUCCESS}


def withdrawal(state: WithdrawalState = S.PREPARED, **changes: object) -> Withdrawal:
    base = Withdrawal(
        withdrawal_id=7,
        wallet_id="w1",
        currency="USDT",
        chain="TRON",
        address=ADDRESSES["TRON"],
        amount=50_000_000,
        fee=1_000_000,
        state=state,
        created_ns=1_000,
        updated_ns=1_000,
        custom_id="order-7",
    )
    return replace(base, **changes)


def txid_for(event: WithdrawalEvent, txid: str = "ab" * 32) -> str | None:
    """The txid an event needs, None for the others (which take none)."""
    return txid if event in NEEDS_TXID else None


# --------------------------------------------------------------------------- the table


def test_table_is_the_expected_one() -> None:
    assert {key: tuple(value) for key, value in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("state", "event"), list(product(S, E)))
def test_every_state_and_event(state: WithdrawalState, event: WithdrawalEvent) -> None:
    before = withdrawal(state)
    if (state, event) in EXPECTED:
        target, effect = EXPECTED[(state, event)]
        assert transition(state, event) is target
        assert step(state, event) == (target, effect)
        after, applied_effect = apply(before, event, 2_000, txid=txid_for(event))
        assert (after.state, applied_effect) == (target, effect)
        assert after.updated_ns == 2_000
        assert msgspec.structs.replace(after, state=state, updated_ns=1_000, txid=None) == before
    else:
        with pytest.raises(IllegalTransition) as raised:
            transition(state, event)
        assert (raised.value.state, raised.value.event) == (state.value, event.value)
        assert state.value in str(raised.value)
        assert event.value in str(raised.value)
        with pytest.raises(IllegalTransition):
            apply(before, event, 2_000, txid=txid_for(event))
        assert before == withdrawal(state)


def test_final_states_allow_nothing_and_the_others_something() -> None:
    assert {S.SUCCEED, S.CANCELED, S.REJECTED, S.FAILED} == FINAL_STATES
    for state in S:
        assert (not events_allowed(state)) is (state in FINAL_STATES)


def test_every_state_is_reachable_from_prepared() -> None:
    reached, frontier = {S.PREPARED}, [S.PREPARED]
    while frontier:
        state = frontier.pop()
        for event in events_allowed(state):
            target = transition(state, event)
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(S)


def test_effects_agree_with_where_funds_are_held() -> None:
    """HOLD only into a holding state from one that holds nothing; RELEASE and SEND only
    out of one; NONE never changes whether funds are held."""
    assert frozenset({S.ACCEPTED, S.PROCESSING, S.CONFIRMING, S.ERRORED}) == HOLDING_STATES
    for (source, _), (target, effect) in TRANSITIONS.items():
        held_before, held_after = source in HOLDING_STATES, target in HOLDING_STATES
        if effect is M.HOLD:
            assert (held_before, held_after) == (False, True)
        elif effect in (M.RELEASE, M.SEND):
            assert (held_before, held_after) == (True, False)
        else:
            assert held_before == held_after
        assert (effect is M.SEND) is (target is S.SUCCEED)


def test_errors_belong_to_the_hierarchy() -> None:
    assert issubclass(CustodyError, StrongroomError)
    assert IllegalTransition("accepted", "success").code == "illegal_transition"


# --------------------------------------------------------------------------- details


def test_dispatch_needs_a_txid_and_keeps_it() -> None:
    processing = withdrawal(S.PROCESSING)
    with pytest.raises(InvalidEventDetails, match="txid"):
        apply(processing, E.DISPATCH, 2)
    confirming, effect = apply(processing, E.DISPATCH, 2, txid="f" * 64, confirmations=0)
    assert (confirming.txid, confirming.state, effect) == ("f" * 64, S.CONFIRMING, M.NONE)
    # success needs no txid again, but may not name another one
    with pytest.raises(InvalidEventDetails, match="already has txid"):
        apply(confirming, E.SUCCESS, 3, txid="e" * 64)
    succeed, effect = apply(confirming, E.SUCCESS, 3, confirmations=19)
    assert (succeed.state, succeed.confirmations, effect) == (S.SUCCEED, 19, M.SEND)


@pytest.mark.parametrize("bad", ["", " ab", "x" * 129])
def test_malformed_txid(bad: str) -> None:
    with pytest.raises(InvalidEventDetails):
        apply(withdrawal(S.PROCESSING), E.DISPATCH, 2, txid=bad)


def test_details_must_suit_the_event() -> None:
    with pytest.raises(InvalidEventDetails, match="takes no txid"):
        apply(withdrawal(S.ACCEPTED), E.CANCEL, 2, txid="a" * 64)
    with pytest.raises(InvalidEventDetails, match="takes no confirmations"):
        apply(withdrawal(S.ACCEPTED), E.PROCESS, 2, confirmations=1)
    with pytest.raises(InvalidEventDetails, match="takes no reason"):
        apply(withdrawal(S.PREPARED), E.ACCEPT, 2, reason="why")
    with pytest.raises(InvalidEventDetails, match="confirmations"):
        apply(withdrawal(S.PROCESSING), E.DISPATCH, 2, txid="a" * 64, confirmations=-1)
    with pytest.raises(InvalidEventDetails, match="reason longer"):
        apply(withdrawal(S.ACCEPTED), E.REJECT, 2, reason="x" * 501)
    rejected, effect = apply(withdrawal(S.ACCEPTED), E.REJECT, 2, reason="address on a list")
    assert (rejected.reason, effect) == ("address on a list", M.RELEASE)


def test_illegal_event_is_reported_before_its_details() -> None:
    with pytest.raises(IllegalTransition):
        apply(withdrawal(S.SUCCEED), E.DISPATCH, 2)


def test_errored_withdrawal_can_succeed_once_its_txid_is_known() -> None:
    errored, effect = apply(withdrawal(S.PROCESSING), E.ERROR, 2, reason="node timeout")
    assert (errored.state, errored.reason, effect) == (S.ERRORED, "node timeout", M.NONE)
    with pytest.raises(InvalidEventDetails):
        apply(errored, E.SUCCESS, 3)
    succeed, effect = apply(errored, E.SUCCESS, 3, txid="c" * 64)
    assert (succeed.state, succeed.txid, effect) == (S.SUCCEED, "c" * 64, M.SEND)


def test_observe_confirmations() -> None:
    confirming = withdrawal(S.CONFIRMING, txid="d" * 64, confirmations=1)
    seen = observe_confirmations(confirming, 4, 9)
    assert (seen.state, seen.confirmations, seen.updated_ns) == (S.CONFIRMING, 4, 9)
    assert observe_confirmations(seen, 4, 10) is seen
    with pytest.raises(InvalidEventDetails):
        observe_confirmations(withdrawal(S.PROCESSING), 1, 9)
    with pytest.raises(InvalidEventDetails):
        observe_confirmations(confirming, -1, 9)


def test_withdrawal_is_immutable_and_encodes() -> None:
    value = withdrawal(S.ACCEPTED)
    with pytest.raises(AttributeError):
        value.state = S.SUCCEED  # type: ignore[misc]
    assert value.total == 51_000_000
    assert value.holding and not value.final
    encoded = msgspec.json.encode(value)
    assert b'"state":"accepted"' in encoded
    assert msgspec.json.decode(encoded, type=Withdrawal) == value


# --------------------------------------------------------------------------- legs


def natural_change(leg: Leg) -> int:
    """The leg's change to assets + expenses − liabilities − revenues."""
    return leg.debit - leg.credit


def assert_balanced(built: tuple[Leg, ...]) -> None:
    per_currency: Counter[str] = Counter()
    debits: Counter[str] = Counter()
    credits: Counter[str] = Counter()
    for leg in built:
        per_currency[leg.currency] += natural_change(leg)
        debits[leg.currency] += leg.debit
        credits[leg.currency] += leg.credit
        assert (leg.wallet_id is None) is (int(leg.account_code) // 100 != 2)
        assert (leg.debit == 0) is not (leg.credit == 0)
    assert all(change == 0 for change in per_currency.values())
    assert debits == credits


def test_legs_of_each_effect() -> None:
    usdt = CURRENCIES["USDT"]
    terms = {"currency": usdt, "wallet_id": "w1", "amount": 50, "fee": 2}
    assert legs(M.NONE, **terms) == ()  # type: ignore[arg-type]
    assert legs(M.HOLD, **terms) == (  # type: ignore[arg-type]
        Leg(AccountCode.MAIN_COIN, "w1", "USDT", 52, 0),
        Leg(AccountCode.LOCKED_COIN, "w1", "USDT", 0, 52),
    )
    assert legs(M.RELEASE, **terms) == (  # type: ignore[arg-type]
        Leg(AccountCode.LOCKED_COIN, "w1", "USDT", 52, 0),
        Leg(AccountCode.MAIN_COIN, "w1", "USDT", 0, 52),
    )
    assert legs(M.SEND, **terms) == (  # type: ignore[arg-type]
        Leg(AccountCode.LOCKED_COIN, "w1", "USDT", 52, 0),
        Leg(AccountCode.ASSET_COIN, None, "USDT", 0, 50),
        Leg(AccountCode.REVENUE_COIN, None, "USDT", 0, 2),
    )
    for effect in M:
        assert_balanced(legs(effect, **terms))  # type: ignore[arg-type]


def test_legs_without_fee_and_of_fiat() -> None:
    sent = legs(M.SEND, currency=CURRENCIES["BTC"], wallet_id="w", amount=9, fee=0)
    assert [leg.account_code for leg in sent] == [AccountCode.LOCKED_COIN, AccountCode.ASSET_COIN]
    fiat = legs(M.SEND, currency=CURRENCIES["USD"], wallet_id="w", amount=9, fee=1)
    assert [int(leg.account_code) for leg in fiat] == [211, 101, 301]
    assert_balanced(fiat)


@pytest.mark.parametrize(("amount", "fee"), [(0, 1), (-1, 1), (1, -1), (2**62, 1), (True, 0)])
def test_legs_refuse_bad_money(amount: int, fee: int) -> None:
    with pytest.raises(InvalidAmount):
        legs(M.HOLD, currency=CURRENCIES["BTC"], wallet_id="w", amount=amount, fee=fee)
    with pytest.raises(InvalidAmount):
        postings(
            M.HOLD, currency=CURRENCIES["BTC"], wallet_id="w", amount=amount, fee=fee, hold_id=1
        )


@given(
    amount=st.integers(1, 2**61),
    fee=st.integers(0, 2**61),
    effect=st.sampled_from(list(M)),
    currency=st.sampled_from(sorted(CURRENCIES)),
)
def test_legs_and_postings_agree_and_balance(
    amount: int, fee: int, effect: MoneyEffect, currency: str
) -> None:
    terms = {"currency": CURRENCIES[currency], "wallet_id": "w9", "amount": amount, "fee": fee}
    built = legs(effect, **terms)  # type: ignore[arg-type]
    assert_balanced(built)
    moved = postings(effect, hold_id=5, **terms)  # type: ignore[arg-type]
    from_postings: Counter[tuple[AccountCode, str | None]] = Counter()
    for posting in moved:
        assert posting.hold_id == 5
        from_postings[(posting.debit.code, posting.debit.wallet_id)] += posting.amount
        from_postings[(posting.credit.code, posting.credit.wallet_id)] -= posting.amount
    from_legs: Counter[tuple[AccountCode, str | None]] = Counter()
    for leg in built:
        from_legs[(leg.account_code, leg.wallet_id)] += leg.debit - leg.credit
    assert +from_postings == +from_legs and -from_postings == -from_legs


def test_postings_apply_on_a_ledger() -> None:
    usdt = CURRENCIES["USDT"]
    ledger = Ledger(CURRENCIES)
    main = Account(AccountCode.MAIN_COIN, "USDT", "w1")
    deposit = Posting(Account(AccountCode.ASSET_COIN, "USDT"), main, 100_000_000)
    assert isinstance(ledger.apply(Transfer(1, "deposit", (deposit,))), TransferApplied)
    value = withdrawal(S.PREPARED)
    accepted, effect = apply(value, E.ACCEPT, 2)
    hold = Transfer(2, "withdrawal_hold", withdrawal_postings(accepted, effect, usdt))
    assert isinstance(ledger.apply(hold), TransferApplied)
    assert ledger.hold_remaining(7) == 51_000_000
    assert ledger.balance(main) == 49_000_000
    processing, _ = apply(accepted, E.PROCESS, 3)
    confirming, _ = apply(processing, E.DISPATCH, 4, txid="a" * 64)
    succeed, effect = apply(confirming, E.SUCCESS, 5)
    send = Transfer(3, "withdrawal", withdrawal_postings(succeed, effect, usdt))
    assert isinstance(ledger.apply(send), TransferApplied)
    assert ledger.hold_remaining(7) == 0
    assert ledger.balance(main) == 49_000_000
    assert ledger.balance(Account(AccountCode.ASSET_COIN, "USDT")) == 50_000_000
    assert ledger.balance(Account(AccountCode.REVENUE_COIN, "USDT")) == 1_000_000
    assert ledger.totals("USDT") == 0
    with pytest.raises(InvalidWithdrawal):
        withdrawal_postings(succeed, effect, CURRENCIES["BTC"])


# --------------------------------------------------------------------------- rules


def test_default_rules() -> None:
    assert DEFAULT_RULES.codes() == ("BTC", "ETH", "USDTERC20", "USDTTRC20")
    btc = DEFAULT_RULES.rule("BTC")
    assert (btc.currency, btc.chain, btc.amount_min, btc.fee_flat, btc.fee_bps) == (
        "BTC", "BTC", 50_000, 10_000, 0,
    )  # fmt: skip
    assert btc.amount_max == 100 * 10**8
    eth = DEFAULT_RULES.rule("ETH")
    assert (eth.amount_min, eth.amount_max, eth.fee_flat) == (500_000, 1_000 * 10**8, 100_000)
    erc20 = DEFAULT_RULES.rule("USDTERC20")
    assert (erc20.currency, erc20.chain, erc20.amount_min, erc20.fee_flat) == (
        "USDT", "ETH", 20_000_000, 5_000_000,
    )  # fmt: skip
    trc20 = DEFAULT_RULES.rule_for("USDT", "TRON")
    assert (trc20.code, trc20.amount_min, trc20.amount_max, trc20.fee_flat) == (
        "USDTTRC20", 10_000_000, 100_000 * 10**6, 1_000_000,
    )  # fmt: skip
    assert len(DEFAULT_RULES) == len(list(DEFAULT_RULES)) == 4
    DEFAULT_RULES.check_currencies(CURRENCIES)
    # Scaled by the configured decimals.
    ten_decimals = {**CURRENCIES, "BTC": Currency("BTC", "coin", 10)}
    assert default_rules(ten_decimals).rule("BTC").amount_min == 5_000_000


@pytest.mark.parametrize("code", ["USDT", "usdttrc20", "XRP", ""])
def test_unknown_code(code: str) -> None:
    with pytest.raises(UnsupportedCurrency):
        DEFAULT_RULES.rule(code)
    with pytest.raises(UnsupportedCurrency):
        estimate(DEFAULT_RULES, code, 10**9)
    with pytest.raises(UnsupportedCurrency):
        DEFAULT_RULES.rule_for(code, "DOGE")


def test_estimate_flat_fee() -> None:
    assert estimate(DEFAULT_RULES, "USDTTRC20", 100_000_000) == Estimate(
        fee=1_000_000, total=101_000_000, receive=100_000_000
    )
    fee, total, receive = estimate(DEFAULT_RULES, "USDTTRC20", 100_000_000, includes_fee=True)
    assert (fee, total, receive) == (1_000_000, 100_000_000, 99_000_000)


def test_estimate_percentage_is_rounded_up() -> None:
    rules = WithdrawalRules(
        [WithdrawalRule("USDTTRC20", "USDT", "TRON", 1, 10**12, fee_flat=500_000, fee_bps=100)]
    )
    # Seed 001's example: 100 requested, 1 % platform fee and 0.5 network fee. Seed 001
    # takes the 1 % of the 100 requested (98.5 received); here it is of what is sent,
    # so that the same withdrawal costs the same asked either way.
    assert estimate(rules, "USDTTRC20", 100_000_000, includes_fee=True) == Estimate(
        fee=1_485_149, total=100_000_000, receive=98_514_851
    )
    assert estimate(rules, "USDTTRC20", 98_514_851).total == 100_000_000
    # 1 % of 101 minor units is 1.01: rounded up to 2
    assert estimate(rules, "USDTTRC20", 101).fee == 500_002
    assert estimate(rules, "USDTTRC20", 100).fee == 500_001


@given(
    fee_flat=st.integers(0, 10**6),
    fee_bps=st.integers(0, BASIS_POINTS),
    amount=st.integers(1, 10**15),
)
def test_estimate_including_the_fee_sends_the_most_that_fits(
    fee_flat: int, fee_bps: int, amount: int
) -> None:
    rule = WithdrawalRule("X", "BTC", "BTC", 1, 10**16, fee_flat=fee_flat, fee_bps=fee_bps)
    rules = WithdrawalRules([rule])
    try:
        found = estimate(rules, "X", amount, includes_fee=True)
    except BelowMinimum:
        assert 1 + rule.fee_for(1) > amount
        return
    assert found.total == found.receive + found.fee <= amount
    assert found.fee == rule.fee_for(found.receive)
    assert found.receive + 1 + rule.fee_for(found.receive + 1) > amount
    # what is received, asked for as such, costs the same
    assert estimate(rules, "X", found.receive) == found


def test_limits() -> None:
    with pytest.raises(BelowMinimum) as below:
        estimate(DEFAULT_RULES, "BTC", 49_999)
    assert (below.value.amount, below.value.minimum, below.value.code) == (
        49_999, 50_000, "below_minimum",
    )  # fmt: skip
    assert estimate(DEFAULT_RULES, "BTC", 50_000).total == 60_000
    with pytest.raises(BelowMinimum):
        estimate(DEFAULT_RULES, "BTC", 59_999, includes_fee=True)
    assert estimate(DEFAULT_RULES, "BTC", 60_000, includes_fee=True).receive == 50_000
    with pytest.raises(BelowMinimum) as eaten:
        estimate(DEFAULT_RULES, "BTC", 5_000, includes_fee=True)
    assert eaten.value.amount == 0
    assert estimate(DEFAULT_RULES, "BTC", 100 * 10**8).receive == 100 * 10**8
    with pytest.raises(AboveMaximum) as above:
        estimate(DEFAULT_RULES, "BTC", 100 * 10**8 + 1)
    assert above.value.maximum == 100 * 10**8


@pytest.mark.parametrize("amount", [0, -5, 2**62 + 1, True, 1.5, "100"])
def test_invalid_amount(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        estimate(DEFAULT_RULES, "BTC", amount)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "terms",
    [
        {"amount_min": 0},
        {"amount_min": 10, "amount_max": 9},
        {"fee_flat": -1},
        {"fee_bps": -1},
        {"fee_bps": BASIS_POINTS + 1},
        {"chain": "XRP"},
        {"code": ""},
        {"amount_max": 2**62, "fee_flat": 1},
        {"fee_flat": 1.5},
    ],
)
def test_rule_validation(terms: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "code": "BTC",
        "currency": "BTC",
        "chain": "BTC",
        "amount_min": 1,
        "amount_max": 10**10,
        "fee_flat": 0,
        "fee_bps": 0,
    }
    with pytest.raises(ConfigurationError):
        WithdrawalRule(**{**fields, **terms})  # type: ignore[arg-type]


def test_rules_are_unique_and_must_be_configured_coins() -> None:
    btc = DEFAULT_RULES.rule("BTC")
    with pytest.raises(ConfigurationError):
        WithdrawalRules([btc, btc])
    with pytest.raises(ConfigurationError):
        WithdrawalRules([btc, replace_rule(btc, code="BTC2")])  # same currency and chain
    with pytest.raises(ConfigurationError):
        WithdrawalRules([replace_rule(btc, currency="USD")]).check_currencies(CURRENCIES)
    with pytest.raises(ConfigurationError):
        WithdrawalRules([replace_rule(btc, currency="DOGE")]).check_currencies(CURRENCIES)
    with pytest.raises(ConfigurationError):
        default_rules({"BTC": CURRENCIES["BTC"]})
    with pytest.raises(ConfigurationError):  # 0.0005 BTC is no whole number of 2-decimal units
        default_rules({**CURRENCIES, "BTC": Currency("BTC", "coin", 2)})


def replace_rule(rule: WithdrawalRule, **changes: object) -> WithdrawalRule:
    return dataclasses.replace(rule, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- prepare


@pytest.mark.parametrize("code", ["BTC", "ETH", "USDTERC20", "USDTTRC20"])
def test_prepare(code: str) -> None:
    rule = DEFAULT_RULES.rule(code)
    prepared = prepare(
        DEFAULT_RULES,
        withdrawal_id=11,
        wallet_id="w1",
        code=code,
        address=ADDRESSES[CODE_CHAIN[code]],
        amount=rule.amount_min,
        at_ns=5,
        custom_id="c-11",
    )
    assert prepared == Withdrawal(
        withdrawal_id=11,
        wallet_id="w1",
        currency=rule.currency,
        chain=rule.chain,
        address=ADDRESSES[rule.chain],
        amount=rule.amount_min,
        fee=rule.fee_flat,
        state=S.PREPARED,
        created_ns=5,
        updated_ns=5,
        custom_id="c-11",
    )


def test_prepare_with_the_fee_included() -> None:
    prepared = prepare(
        DEFAULT_RULES,
        withdrawal_id=1,
        wallet_id="w1",
        code="USDTTRC20",
        address=ADDRESSES["TRON"],
        amount=100_000_000,
        at_ns=5,
        includes_fee=True,
    )
    assert (prepared.amount, prepared.fee, prepared.total) == (99_000_000, 1_000_000, 100_000_000)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"address": ADDRESSES["ETH"]}, InvalidAddress),  # an ETH address for TRON
        ({"address": ADDRESSES["TRON"] + " "}, InvalidAddress),
        ({"code": "USDTERC20", "amount": 20_000_000, "address": ADDRESSES["TRON"]}, InvalidAddress),
        ({"code": "BTC", "address": ADDRESSES["ETH"]}, InvalidAddress),
        ({"amount": 9_999_999}, BelowMinimum),
        ({"amount": 0}, InvalidAmount),
        ({"code": "DOGE"}, UnsupportedCurrency),
        ({"custom_id": "x" * 65}, InvalidWithdrawal),
        ({"custom_id": ""}, InvalidWithdrawal),
        ({"wallet_id": ""}, InvalidWithdrawal),
        ({"withdrawal_id": 0}, InvalidWithdrawal),
    ],
)
def test_prepare_refuses(changes: dict[str, object], error: type[Exception]) -> None:
    terms: dict[str, object] = {
        "withdrawal_id": 1,
        "wallet_id": "w1",
        "code": "USDTTRC20",
        "address": ADDRESSES["TRON"],
        "amount": 10_000_000,
        "at_ns": 5,
    }
    with pytest.raises(error):
        prepare(DEFAULT_RULES, **{**terms, **changes})  # type: ignore[arg-type]


def test_invalid_address_says_why() -> None:
    with pytest.raises(InvalidAddress) as raised:
        prepare(
            DEFAULT_RULES,
            withdrawal_id=1,
            wallet_id="w1",
            code="USDTTRC20",
            address=ADDRESSES["BTC"],
            amount=10_000_000,
            at_ns=5,
        )
    assert raised.value.chain == "TRON"
    assert "starts with T" in raised.value.reason


# --------------------------------------------------------------------------- stateful


WALLETS = ("w1", "w2")
FUNDING = {"BTC": 3_000_000, "ETH": 30_000_000, "USDT": 400_000_000}  # small: some holds do not fit


class WithdrawalMachine(RuleBasedStateMachine):
    """Random withdrawals driven by random events; their money moves on a real Ledger.

    Each withdrawal's effects are counted: it must hold once at most, and once it holds,
    end by exactly one release or one send (amount out, fee to revenue), never both.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(CURRENCIES)
        self.next_transfer_id = 0
        self.withdrawals: dict[int, Withdrawal] = {}
        self.effects: dict[int, Counter[MoneyEffect]] = {}
        self.held: Counter[int] = Counter()
        self.released: Counter[int] = Counter()
        self.sent: Counter[int] = Counter()
        self.fees: Counter[int] = Counter()
        self.refused_holds = 0
        for wallet_id in WALLETS:
            for currency, amount in FUNDING.items():
                main = Account(AccountCode.MAIN_COIN, currency, wallet_id)
                asset = Account(AccountCode.ASSET_COIN, currency)
                self.transfer("deposit", (Posting(asset, main, amount),))

    def transfer(self, kind: str, moved: tuple[Posting, ...]) -> TransferApplied | TransferRejected:
        self.next_transfer_id += 1
        outcome = self.ledger.apply(Transfer(self.next_transfer_id, kind, moved))
        assert isinstance(outcome, TransferApplied | TransferRejected)
        return outcome

    @rule(
        code=st.sampled_from(DEFAULT_RULES.codes()),
        wallet_id=st.sampled_from(WALLETS),
        share=st.integers(0, 1_000),
        includes_fee=st.booleans(),
    )
    def prepare_one(self, code: str, wallet_id: str, share: int, includes_fee: bool) -> None:
        rule_ = DEFAULT_RULES.rule(code)
        funds = FUNDING[rule_.currency]
        amount = rule_.amount_min + (funds - rule_.amount_min) * share // 1_000
        if includes_fee:
            amount += rule_.fee_flat
        withdrawal_id = len(self.withdrawals) + 1
        self.withdrawals[withdrawal_id] = prepare(
            DEFAULT_RULES,
            withdrawal_id=withdrawal_id,
            wallet_id=wallet_id,
            code=code,
            address=ADDRESSES[rule_.chain],
            amount=amount,
            at_ns=withdrawal_id,
            includes_fee=includes_fee,
        )
        self.effects[withdrawal_id] = Counter()

    def drive(self, withdrawal_id: int, event: WithdrawalEvent, at_ns: int) -> None:
        before = self.withdrawals[withdrawal_id]
        txid = before.txid or f"{withdrawal_id:064x}"
        if (before.state, event) not in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                apply(before, event, at_ns, txid=txid_for(event, txid))
            assert self.withdrawals[withdrawal_id] == before
            return
        after, effect = apply(before, event, at_ns, txid=txid_for(event, txid))
        assert (after.state, effect) == EXPECTED[(before.state, event)]
        assert_balanced(
            legs(
                effect,
                currency=CURRENCIES[after.currency],
                wallet_id=after.wallet_id,
                amount=after.amount,
                fee=after.fee,
            )
        )
        moved = withdrawal_postings(after, effect, CURRENCIES[after.currency])
        if moved:
            outcome = self.transfer(f"withdrawal_{effect}", moved)
            if isinstance(outcome, TransferRejected):
                # Only a hold can be refused (the wallet lacks funds): the withdrawal
                # then stays prepared, as an integration must keep it.
                assert effect is M.HOLD
                assert outcome.reason is TransferRejection.INSUFFICIENT_FUNDS
                self.refused_holds += 1
                record_event("hold refused for funds")
                return
        self.effects[withdrawal_id][effect] += 1
        record_event(f"reached {after.state}")
        if effect is M.HOLD:
            self.held[withdrawal_id] += after.total
        elif effect is M.RELEASE:
            self.released[withdrawal_id] += after.total
        elif effect is M.SEND:
            self.sent[withdrawal_id] += after.amount
            self.fees[withdrawal_id] += after.fee
        self.withdrawals[withdrawal_id] = after

    @precondition(lambda self: self.withdrawals)
    @rule(data=st.data(), event=st.sampled_from(list(E)), at_ns=st.integers(0, 10**12))
    def any_event(self, data: st.DataObject, event: WithdrawalEvent, at_ns: int) -> None:
        withdrawal_id = data.draw(st.sampled_from(sorted(self.withdrawals)))
        self.drive(withdrawal_id, event, at_ns)

    @precondition(lambda self: any(not w.final for w in self.withdrawals.values()))
    @rule(data=st.data(), at_ns=st.integers(0, 10**12))
    def legal_event(self, data: st.DataObject, at_ns: int) -> None:
        open_ids = sorted(i for i, w in self.withdrawals.items() if not w.final)
        withdrawal_id = data.draw(st.sampled_from(open_ids))
        allowed = sorted(events_allowed(self.withdrawals[withdrawal_id].state))
        self.drive(withdrawal_id, data.draw(st.sampled_from(allowed)), at_ns)

    @precondition(lambda self: any(w.final for w in self.withdrawals.values()))
    @rule(data=st.data())
    def final_refuses_everything(self, data: st.DataObject) -> None:
        final_ids = sorted(i for i, w in self.withdrawals.items() if w.final)
        withdrawal_id = data.draw(st.sampled_from(final_ids))
        before = self.withdrawals[withdrawal_id]
        for event in E:
            with pytest.raises(IllegalTransition):
                apply(before, event, 0, txid=txid_for(event))
        assert self.withdrawals[withdrawal_id] == before

    @invariant()
    def books_balance(self) -> None:
        for currency in CURRENCIES:
            assert self.ledger.totals(currency) == 0

    @invariant()
    def each_hold_ends_once(self) -> None:
        for withdrawal_id, value in self.withdrawals.items():
            effects = self.effects[withdrawal_id]
            assert effects[M.HOLD] <= 1
            assert effects[M.RELEASE] + effects[M.SEND] <= effects[M.HOLD]
            remaining = self.ledger.hold_remaining(withdrawal_id)
            if value.holding:
                assert self.held[withdrawal_id] == value.total == remaining
                assert effects[M.RELEASE] == effects[M.SEND] == 0
            else:
                assert remaining == 0
                held = self.held[withdrawal_id]
                ended = self.released[withdrawal_id] + self.sent[withdrawal_id]
                assert held == ended + self.fees[withdrawal_id]
                assert (effects[M.RELEASE] + effects[M.SEND]) == effects[M.HOLD]
            if value.state is S.SUCCEED:
                assert self.sent[withdrawal_id] == value.amount
                assert self.fees[withdrawal_id] == value.fee
                assert self.released[withdrawal_id] == 0
            else:
                assert self.sent[withdrawal_id] == self.fees[withdrawal_id] == 0

    @invariant()
    def balances_are_what_left_and_what_is_held(self) -> None:
        for currency, funded in FUNDING.items():
            out = sum(self.sent[i] for i, w in self.withdrawals.items() if w.currency == currency)
            fees = sum(self.fees[i] for i, w in self.withdrawals.items() if w.currency == currency)
            asset = self.ledger.balance(Account(AccountCode.ASSET_COIN, currency))
            assert asset == funded * len(WALLETS) - out
            assert self.ledger.balance(Account(AccountCode.REVENUE_COIN, currency)) == fees
            for wallet_id in WALLETS:
                held = sum(
                    w.total
                    for w in self.withdrawals.values()
                    if w.holding and (w.currency, w.wallet_id) == (currency, wallet_id)
                )
                locked = Account(AccountCode.LOCKED_COIN, currency, wallet_id)
                assert self.ledger.balance(locked) == held


WithdrawalMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_withdrawal_machine = WithdrawalMachine.TestCase
