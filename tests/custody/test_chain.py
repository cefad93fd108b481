"""The simulated chain: determinism, confirmations, failure rate, and reconciling
withdrawals with what it reports, end to end on a real Ledger."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Account,
    AccountCode,
    Posting,
    Transfer,
    TransferApplied,
)
from strongroom.config import Currency
from strongroom.custody.chain import (
    DEFAULT_NETWORKS,
    FAILED_ON_CHAIN,
    Chain,
    ChainTransaction,
    NetworkParameters,
    SimulatedChain,
    TransactionStatus,
    reconcile,
)
from strongroom.custody.errors import ChainError, InvalidEventDetails, UnknownTransaction
from strongroom.custody.withdrawals import (
    DEFAULT_RULES,
    MoneyEffect,
    Withdrawal,
    WithdrawalEvent,
    WithdrawalState,
    apply,
    prepare,
    withdrawal_postings,
)
from strongroom.errors import ConfigurationError

SECOND_NS = 1_000_000_000
ADDRESSES = {
    "BTC": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    "ETH": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "TRON": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
}
CURRENCIES = {
    "BTC": Currency("BTC", "coin", 8),
    "ETH": Currency("ETH", "coin", 8),
    "USDT": Currency("USDT", "coin", 6),
}


class ManualClock:
    def __init__(self, now_ns: int = 0) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * SECOND_NS)


def processing(withdrawal_id: int, code: str = "USDTTRC20", amount: int = 0) -> Withdrawal:
    rule = DEFAULT_RULES.rule(code)
    prepared = prepare(
        DEFAULT_RULES,
        withdrawal_id=withdrawal_id,
        wallet_id="w1",
        code=code,
        address=ADDRESSES[rule.chain],
        amount=amount or rule.amount_min,
        at_ns=0,
    )
    accepted, _ = apply(prepared, WithdrawalEvent.ACCEPT, 0)
    return apply(accepted, WithdrawalEvent.PROCESS, 0)[0]


def networks(
    failure_per_million: int = 0, **overrides: NetworkParameters
) -> dict[str, NetworkParameters]:
    return {
        "BTC": NetworkParameters(600 * SECOND_NS, 3, failure_per_million),
        "ETH": NetworkParameters(12 * SECOND_NS, 12, failure_per_million),
        "TRON": NetworkParameters(3 * SECOND_NS, 19, failure_per_million),
        **overrides,
    }


def outcomes(chain: SimulatedChain, txids: list[str]) -> list[tuple[str, TransactionStatus]]:
    return [(txid, chain.poll(txid).status) for txid in txids]


def test_simulated_chain_is_a_chain() -> None:
    chain: Chain = SimulatedChain(seed=1, clock=ManualClock())
    assert isinstance(chain.submit(processing(1)), str)


def test_same_seed_same_outcomes_whatever_the_order() -> None:
    ids = list(range(1, 201))
    clock_a, clock_b = ManualClock(), ManualClock()
    first = SimulatedChain(seed=42, clock=clock_a, networks=networks(300_000))
    second = SimulatedChain(seed=42, clock=clock_b, networks=networks(300_000))
    txids_a = [first.submit(processing(i)) for i in ids]
    txids_b = {i: second.submit(processing(i)) for i in reversed(ids)}
    assert txids_a == [txids_b[i] for i in ids]
    clock_a.advance(600)
    clock_b.advance(600)
    assert outcomes(first, txids_a) == outcomes(second, txids_a)
    assert {status for _, status in outcomes(first, txids_a)} == {
        TransactionStatus.CONFIRMED,
        TransactionStatus.FAILED,
    }
    other = SimulatedChain(seed=43, clock=ManualClock(), networks=networks(300_000))
    txids_c = [other.submit(processing(i)) for i in ids]
    assert not set(txids_c) & set(txids_a)


def test_txid_formats() -> None:
    chain = SimulatedChain(seed=1, clock=ManualClock())
    tron = chain.submit(processing(1, "USDTTRC20"))
    ether = chain.submit(processing(2, "USDTERC20"))
    bitcoin = chain.submit(processing(3, "BTC"))
    assert len(tron) == len(bitcoin) == 64 and int(tron, 16) >= 0
    assert ether.startswith("0x") and len(ether) == 66


def test_confirmations_one_per_block() -> None:
    clock = ManualClock(10 * SECOND_NS + 1)  # TRON height 3, mid-block
    chain = SimulatedChain(seed=7, clock=clock)
    assert chain.height("TRON") == 3
    txid = chain.submit(processing(1))
    seen = chain.poll(txid)
    assert (seen.status, seen.confirmations, seen.block_height) == (
        TransactionStatus.PENDING,
        0,
        None,
    )
    assert seen.confirmations_required == 19
    clock.now_ns = 12 * SECOND_NS - 1  # still height 3
    assert chain.poll(txid).status is TransactionStatus.PENDING
    clock.now_ns = 12 * SECOND_NS  # block 4 holds it
    seen = chain.poll(txid)
    assert (seen.status, seen.confirmations, seen.block_height) == (
        TransactionStatus.CONFIRMING,
        1,
        4,
    )
    clock.advance(3 * 17)  # 17 blocks later: 18 confirmations
    assert chain.poll(txid).confirmations == 18
    assert chain.poll(txid).status is TransactionStatus.CONFIRMING
    clock.advance(3)
    seen = chain.poll(txid)
    assert (seen.status, seen.confirmations) == (TransactionStatus.CONFIRMED, 19)
    assert seen.observed_ns == clock.now_ns
    clock.advance(3000)
    assert chain.poll(txid).confirmations == 1019


def test_confirmations_required_per_currency() -> None:
    clock = ManualClock()
    chain = SimulatedChain(seed=7, clock=clock, confirmations_required={"USDT": 20})
    ether = chain.submit(processing(1, "ETH"))
    tether = chain.submit(processing(2, "USDTERC20"))
    clock.advance(12 * 12)
    assert chain.poll(ether).status is TransactionStatus.CONFIRMED
    assert chain.poll(tether).status is TransactionStatus.CONFIRMING
    assert chain.poll(tether).confirmations_required == 20
    clock.advance(12 * 8)
    assert chain.poll(tether).status is TransactionStatus.CONFIRMED


def test_block_time_and_genesis_are_configurable() -> None:
    clock = ManualClock(100 * SECOND_NS)
    fast = NetworkParameters(
        block_time_ns=SECOND_NS, confirmations_required=2, genesis_ns=90 * SECOND_NS
    )
    chain = SimulatedChain(seed=1, clock=clock, networks=networks(TRON=fast))
    assert chain.height("TRON") == 10
    txid = chain.submit(processing(1))
    clock.advance(2)
    assert chain.poll(txid).status is TransactionStatus.CONFIRMED
    assert chain.height("BTC") == 0


def test_clock_going_back_takes_no_confirmation_back() -> None:
    clock = ManualClock()
    chain = SimulatedChain(seed=1, clock=clock)
    txid = chain.submit(processing(1))
    clock.advance(30)
    assert chain.poll(txid).confirmations == 10
    clock.advance(-20)
    assert chain.poll(txid).confirmations == 10


@pytest.mark.parametrize(
    ("per_million", "low", "high"), [(100_000, 900, 1_100), (20_000, 140, 260)]
)
def test_failure_rate_is_as_configured(per_million: int, low: int, high: int) -> None:
    """10 000 transactions, seed fixed: the count is deterministic (it cannot flake), and
    the bounds lie more than 3 standard deviations either side of the expected count."""
    clock = ManualClock()
    chain = SimulatedChain(seed=2024, clock=clock, networks=networks(per_million))
    txids = [chain.submit(processing(i)) for i in range(1, 10_001)]
    clock.advance(3 * 19)
    statuses = [chain.poll(txid).status for txid in txids]
    failed = statuses.count(TransactionStatus.FAILED)
    assert low <= failed <= high
    assert statuses.count(TransactionStatus.CONFIRMED) == 10_000 - failed
    # a failed transaction shows so once mined, with no confirmations
    seen = chain.poll(txids[statuses.index(TransactionStatus.FAILED)])
    assert (seen.confirmations, seen.block_height) == (0, 1)


def test_never_and_always_fail() -> None:
    clock = ManualClock()
    never = SimulatedChain(seed=3, clock=clock, networks=networks(0))
    always = SimulatedChain(seed=3, clock=clock, networks=networks(1_000_000))
    never_ids = [never.submit(processing(i)) for i in range(1, 501)]
    always_ids = [always.submit(processing(i)) for i in range(1, 501)]
    clock.advance(3 * 19)
    assert {never.poll(txid).status for txid in never_ids} == {TransactionStatus.CONFIRMED}
    assert {always.poll(txid).status for txid in always_ids} == {TransactionStatus.FAILED}


def test_submit_is_idempotent_per_withdrawal() -> None:
    chain = SimulatedChain(seed=1, clock=ManualClock())
    withdrawal = processing(1)
    txid = chain.submit(withdrawal)
    assert chain.submit(withdrawal) == txid
    assert chain.txid_of("TRON", 1) == txid
    assert chain.txid_of("TRON", 2) is None
    assert len(chain.poll_all()) == 1
    with pytest.raises(ChainError, match="other terms"):
        chain.submit(replace(withdrawal, amount=withdrawal.amount + 1))


def test_submit_refusals() -> None:
    chain = SimulatedChain(seed=1, clock=ManualClock(), transactions_max=2)
    accepted = replace(processing(1), state=WithdrawalState.ACCEPTED)
    with pytest.raises(ChainError, match="not processing"):
        chain.submit(accepted)
    with pytest.raises(ChainError, match="no simulated network"):
        chain.submit(replace(processing(1), chain="DOGE"))
    chain.submit(processing(1))
    chain.submit(processing(2))
    with pytest.raises(ChainError, match="more than 2"):
        chain.submit(processing(3))
    with pytest.raises(UnknownTransaction):
        chain.poll("00" * 32)


@pytest.mark.parametrize(
    "terms",
    [
        {"block_time_ns": 0, "confirmations_required": 1},
        {"block_time_ns": 1, "confirmations_required": 0},
        {"block_time_ns": 1, "confirmations_required": 1, "failure_per_million": -1},
        {"block_time_ns": 1, "confirmations_required": 1, "failure_per_million": 1_000_001},
        {"block_time_ns": 1.5, "confirmations_required": 1},
    ],
)
def test_network_validation(terms: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        NetworkParameters(**terms)  # type: ignore[arg-type]


def test_confirmations_override_validation() -> None:
    with pytest.raises(ConfigurationError):
        SimulatedChain(seed=1, clock=ManualClock(), confirmations_required={"USDT": 0})


def test_default_networks() -> None:
    assert DEFAULT_NETWORKS["BTC"].block_time_ns == 600 * SECOND_NS
    assert DEFAULT_NETWORKS["ETH"].confirmations_required == 12
    assert DEFAULT_NETWORKS["TRON"].failure_per_million == 0


# --------------------------------------------------------------------------- reconcile


def observed(
    withdrawal: Withdrawal, status: TransactionStatus, confirmations: int
) -> ChainTransaction:
    assert withdrawal.txid is not None
    return ChainTransaction(
        txid=withdrawal.txid,
        withdrawal_id=withdrawal.withdrawal_id,
        chain=withdrawal.chain,
        status=status,
        confirmations=confirmations,
        confirmations_required=19,
        block_height=None if status is TransactionStatus.PENDING else 10,
        observed_ns=5,
    )


def test_reconcile() -> None:
    confirming, _ = apply(processing(1), WithdrawalEvent.DISPATCH, 1, txid="ab" * 32)
    same, effect = reconcile(confirming, observed(confirming, TransactionStatus.PENDING, 0), 2)
    assert (same, effect) == (confirming, MoneyEffect.NONE)
    assert same is confirming
    more, effect = reconcile(confirming, observed(confirming, TransactionStatus.CONFIRMING, 4), 3)
    assert (more.state, more.confirmations, more.updated_ns, effect) == (
        WithdrawalState.CONFIRMING,
        4,
        3,
        MoneyEffect.NONE,
    )
    done, effect = reconcile(more, observed(more, TransactionStatus.CONFIRMED, 19), 4)
    assert (done.state, done.confirmations, effect) == (
        WithdrawalState.SUCCEED,
        19,
        MoneyEffect.SEND,
    )
    failed, effect = reconcile(more, observed(more, TransactionStatus.FAILED, 0), 4)
    assert (failed.state, failed.reason, effect) == (
        WithdrawalState.FAILED,
        FAILED_ON_CHAIN,
        MoneyEffect.RELEASE,
    )
    with pytest.raises(InvalidEventDetails, match="not confirming"):
        reconcile(done, observed(more, TransactionStatus.CONFIRMED, 19), 5)
    with pytest.raises(InvalidEventDetails, match="is not withdrawal"):
        reconcile(more, replace(observed(more, TransactionStatus.CONFIRMED, 19), txid="cd" * 32), 5)


def test_end_to_end_many_withdrawals_through_the_chain_and_the_ledger() -> None:
    """A worker's loop: process, submit, dispatch, poll and reconcile until every
    withdrawal is final; the books balance and each total went out or came back once."""
    clock = ManualClock()
    chain = SimulatedChain(seed=99, clock=clock, networks=networks(150_000))
    ledger = Ledger(CURRENCIES)
    transfer_ids = iter(range(1, 10_000))

    def move(withdrawal: Withdrawal, effect: MoneyEffect) -> None:
        moved = withdrawal_postings(withdrawal, effect, CURRENCIES[withdrawal.currency])
        if moved:
            transfer = Transfer(next(transfer_ids), f"withdrawal_{effect}", moved)
            assert isinstance(ledger.apply(transfer), TransferApplied)

    funded = {"BTC": 10**10, "ETH": 10**10, "USDT": 10**12}
    for currency, amount in funded.items():
        deposit = Posting(
            Account(AccountCode.ASSET_COIN, currency),
            Account(AccountCode.MAIN_COIN, currency, "w1"),
            amount,
        )
        assert isinstance(
            ledger.apply(Transfer(next(transfer_ids), "deposit", (deposit,))), TransferApplied
        )

    codes = DEFAULT_RULES.codes()
    live: list[Withdrawal] = []
    for withdrawal_id in range(1, 121):
        code = codes[withdrawal_id % len(codes)]
        rule = DEFAULT_RULES.rule(code)
        prepared = prepare(
            DEFAULT_RULES,
            withdrawal_id=withdrawal_id,
            wallet_id="w1",
            code=code,
            address=ADDRESSES[rule.chain],
            amount=rule.amount_min * (1 + withdrawal_id % 3),
            at_ns=clock(),
        )
        accepted, effect = apply(prepared, WithdrawalEvent.ACCEPT, clock())
        move(accepted, effect)
        working, _ = apply(accepted, WithdrawalEvent.PROCESS, clock())
        txid = chain.submit(working)
        assert chain.submit(working) == txid  # a retry sends nothing twice
        confirming, _ = apply(working, WithdrawalEvent.DISPATCH, clock(), txid=txid)
        live.append(confirming)
        clock.advance(1)

    done: list[Withdrawal] = []
    for _ in range(200):
        clock.advance(60)
        still: list[Withdrawal] = []
        for withdrawal in live:
            assert withdrawal.txid is not None
            after, effect = reconcile(withdrawal, chain.poll(withdrawal.txid), clock())
            move(after, effect)
            (done if after.final else still).append(after)
        live = still
        if not live:
            break
    assert not live
    states = {w.state for w in done}
    assert states == {WithdrawalState.SUCCEED, WithdrawalState.FAILED}
    for currency in CURRENCIES:
        assert ledger.totals(currency) == 0
        mine = [w for w in done if w.currency == currency]
        sent = sum(w.amount for w in mine if w.state is WithdrawalState.SUCCEED)
        fees = sum(w.fee for w in mine if w.state is WithdrawalState.SUCCEED)
        assert ledger.balance(Account(AccountCode.ASSET_COIN, currency)) == funded[currency] - sent
        assert ledger.balance(Account(AccountCode.REVENUE_COIN, currency)) == fees
        main = Account(AccountCode.MAIN_COIN, currency, "w1")
        assert ledger.balance(main) == funded[currency] - sent - fees
        assert ledger.balance(Account(AccountCode.LOCKED_COIN, currency, "w1")) == 0
    for withdrawal in done:
        assert ledger.hold_remaining(withdrawal.withdrawal_id) == 0
        if withdrawal.state is WithdrawalState.SUCCEED:
            assert withdrawal.confirmations >= 3
