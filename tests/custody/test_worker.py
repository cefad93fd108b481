"""The custody worker against the SimulatedChain, with the real core in this process: the
ledger actor (custody desk inside) and the service on pykka threads and this event loop.
The journal is stood in by a function that commits at once and keeps the units, and
time is a manual clock shared by the service, the actors and the chain, so every round
of the worker is called by the test and sees exactly the blocks it was given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.actors.book import OrderBook
from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Account,
    AccountCode,
    DepositState,
    JournalUnit,
    Refused,
)
from strongroom.actors.runtime import pykka as runtime
from strongroom.actors.system import Bridge
from strongroom.config import DEFAULT
from strongroom.custody.chain import (
    FAILED_ON_CHAIN,
    ChainTransaction,
    NetworkParameters,
    SimulatedChain,
)
from strongroom.custody.desk import Custody
from strongroom.custody.errors import ChainError
from strongroom.custody.withdrawals import (
    DEFAULT_RULES,
    TrackedWithdrawal,
    Withdrawal,
    WithdrawalEvent,
    WithdrawalState,
    prepare,
)
from strongroom.custody.worker import CustodyWorker, WorkerSettings
from strongroom.service import Trading

SECOND_NS = 1_000_000_000
BLOCK_S = 1
CONFIRMATIONS = 3
WALLET = "w-worker"
PARTNER = "p-worker"
ADDRESSES = {
    "BTC": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    "ETH": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "TRON": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
}
FUNDED = {"BTC": 10**10, "ETH": 10**11, "USDT": 10**12}  # minor units


class ManualClock:
    def __init__(self, now_ns: int = 1_000 * SECOND_NS) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * SECOND_NS)


def simulated_chain(clock: ManualClock, *, failure_per_million: int = 0, seed: int = 5) -> Any:
    network = NetworkParameters(
        block_time_ns=BLOCK_S * SECOND_NS,
        confirmations_required=CONFIRMATIONS,
        failure_per_million=failure_per_million,
    )
    return SimulatedChain(seed=seed, clock=clock, networks=dict.fromkeys(ADDRESSES, network))


class Core:
    """The ledger actor with its desk, the service, and the committed units."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.units: list[JournalUnit] = []
        self.fatal: list[BaseException] = []

    async def start(self) -> Trading:
        loop = asyncio.get_running_loop()

        def commit(unit: JournalUnit) -> None:
            self.units.append(unit)
            self.bridge.committed(unit)

        self.bridge = Bridge(loop, commit, reply_timeout_s=10.0)
        books = {
            symbol: OrderBook(market.market_id, collar_bps=DEFAULT.fees.market_collar_bps)
            for symbol, market in DEFAULT.markets.items()
        }
        clearing = Clearing(DEFAULT, Ledger(DEFAULT.currencies))
        self.runtime, _ = runtime.start(
            DEFAULT, clearing, Custody(clearing), books, [], self.bridge, self.fatal.append,
            shards=1, clock_ns=self.clock,
        )  # fmt: skip
        self.trading = Trading(DEFAULT, self.bridge, self.runtime.directory, next_order_id=1,
                               next_deposit_id=1, clock_ns=self.clock)  # fmt: skip
        for currency, amount in FUNDED.items():
            funded = await self.trading.deposit(
                tid=f"fund-{currency}", wallet_id=WALLET, currency=currency, amount=amount,
                accept=True, fingerprint="f",
            )  # fmt: skip
            assert isinstance(funded, DepositState)
        return self.trading

    def stop(self) -> None:
        self.runtime.stop()
        self.bridge.close()

    async def withdraw(self, code: str = "USDTTRC20", amount: int = 0) -> TrackedWithdrawal:
        rule = DEFAULT_RULES.rule(code)
        prepared = prepare(
            DEFAULT_RULES,
            withdrawal_id=self.trading.new_order_id(),
            wallet_id=WALLET,
            code=code,
            address=ADDRESSES[rule.chain],
            amount=amount or rule.amount_min,
            at_ns=self.clock(),
        )
        accepted = await self.trading.withdraw(TrackedWithdrawal(prepared, PARTNER, code))
        assert isinstance(accepted, TrackedWithdrawal), accepted
        assert accepted.withdrawal.state is WithdrawalState.ACCEPTED
        return accepted

    async def balance(self, code: AccountCode, currency: str, wallet: str | None = None) -> int:
        account = Account(code, currency, wallet)
        found: int = await self.trading.inspect_custody(lambda desk: desk.ledger.balance(account))
        return found

    async def hold(self, withdrawal_id: int) -> int:
        found: int = await self.trading.inspect_custody(
            lambda desk: desk.ledger.hold_remaining(withdrawal_id)
        )
        return found

    async def state(self, withdrawal_id: int) -> Withdrawal | None:
        """The live withdrawal, or None once it is final (the desk forgets it)."""
        # A reply of None means "no answer in time" to the service: wrap it.
        (tracked,) = await self.trading.inspect_custody(
            lambda desk: (desk.withdrawals.get(withdrawal_id),)
        )
        return None if tracked is None else tracked.withdrawal

    def committed(self, withdrawal_id: int) -> list[Withdrawal]:
        """Every committed value of the withdrawal, in order."""
        return [
            tracked.withdrawal
            for unit in self.units
            for tracked in unit.withdrawals
            if tracked.withdrawal.withdrawal_id == withdrawal_id
        ]

    def events(self, withdrawal_id: int) -> list[tuple[str, dict[str, Any]]]:
        public = f"wd_{withdrawal_id}"
        found = []
        for unit in self.units:
            for event in unit.events:
                payload = msgspec.json.decode(event.payload)
                if payload.get("withdrawal_id") == public:
                    found.append((event.event_type, payload))
        return found

    def transfer_kinds(self, withdrawal_id: int) -> list[str]:
        return [
            transfer.kind
            for unit in self.units
            for transfer in unit.transfers
            if any(posting.hold_id == withdrawal_id for posting in transfer.postings)
        ]


@pytest_asyncio.fixture(loop_scope="function")
async def core() -> AsyncIterator[Core]:
    started = Core(ManualClock())
    await started.start()
    yield started
    started.stop()
    assert not started.fatal


async def rounds_until(
    worker: CustodyWorker, clock: ManualClock, done: Callable[[], Any], rounds_max: int = 50
) -> int:
    """Rounds, a block apart, until `done()` is truthy (awaited if it is a coroutine)."""
    for count in range(1, rounds_max + 1):
        await worker.round()
        result = done()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return count
        clock.advance(BLOCK_S)
    raise AssertionError(f"not done after {rounds_max} rounds")


# --------------------------------------------------------------------------- the path


@pytest.mark.asyncio(loop_scope="function")
async def test_accepted_processing_confirming_succeed_and_the_money_leaves(core: Core) -> None:
    chain = simulated_chain(core.clock)
    worker = CustodyWorker(core.trading, chain, WorkerSettings(interval_s=0.01))
    tracked = await core.withdraw("USDTTRC20", 25_000_000)
    withdrawal_id = tracked.withdrawal.withdrawal_id
    amount, fee = tracked.withdrawal.amount, tracked.withdrawal.fee
    assert (amount, fee) == (25_000_000, 1_000_000)
    main = await core.balance(AccountCode.MAIN_COIN, "USDT", WALLET)
    assert main == FUNDED["USDT"] - amount - fee
    assert await core.balance(AccountCode.LOCKED_COIN, "USDT", WALLET) == amount + fee
    assert await core.hold(withdrawal_id) == amount + fee

    await worker.round()  # process, submit and dispatch in one round
    confirming = await core.state(withdrawal_id)
    assert confirming is not None and confirming.state is WithdrawalState.CONFIRMING
    assert confirming.txid == chain.txid_of("TRON", withdrawal_id) and confirming.txid
    assert await core.hold(withdrawal_id) == amount + fee  # still held while confirming

    seen = [confirming.confirmations]
    for _ in range(CONFIRMATIONS + 2):
        core.clock.advance(BLOCK_S)
        await worker.round()
        now = await core.state(withdrawal_id)
        if now is None:
            break
        seen.append(now.confirmations)
    assert await core.state(withdrawal_id) is None, "final withdrawals leave the desk"
    assert seen == sorted(seen) and seen[-1] < CONFIRMATIONS
    final = core.committed(withdrawal_id)[-1]
    assert (final.state, final.confirmations) == (WithdrawalState.SUCCEED, CONFIRMATIONS)
    assert final.txid == confirming.txid

    # The amount left custody (the asset account), the fee went to revenue, nothing held.
    assert await core.balance(AccountCode.MAIN_COIN, "USDT", WALLET) == main
    assert await core.balance(AccountCode.LOCKED_COIN, "USDT", WALLET) == 0
    assert await core.balance(AccountCode.REVENUE_COIN, "USDT") == fee
    assert await core.balance(AccountCode.ASSET_COIN, "USDT") == FUNDED["USDT"] - amount
    assert await core.hold(withdrawal_id) == 0
    assert core.transfer_kinds(withdrawal_id) == ["withdrawal_hold", "withdrawal_send"]
    types = [event_type for event_type, _ in core.events(withdrawal_id)]
    assert types == [
        "withdrawal.accepted",
        "withdrawal.processing",
        "withdrawal.confirming",
        "withdrawal.succeed",
    ]
    assert [payload["status"] for _, payload in core.events(withdrawal_id)] == [
        "accepted", "processing", "confirming", "succeed",
    ]  # fmt: skip
    # More rounds change nothing.
    committed = len(core.units)
    core.clock.advance(60)
    await worker.round()
    assert core.transfer_kinds(withdrawal_id) == ["withdrawal_hold", "withdrawal_send"]
    assert all(not unit.withdrawals for unit in core.units[committed:])


@pytest.mark.asyncio(loop_scope="function")
async def test_a_transaction_that_fails_on_chain_releases_the_funds(core: Core) -> None:
    chain = simulated_chain(core.clock, failure_per_million=1_000_000)
    worker = CustodyWorker(core.trading, chain, WorkerSettings())
    tracked = await core.withdraw("BTC", 200_000)
    withdrawal_id = tracked.withdrawal.withdrawal_id
    await rounds_until(worker, core.clock, _final(core, withdrawal_id))
    final = core.committed(withdrawal_id)[-1]
    assert (final.state, final.reason) == (WithdrawalState.FAILED, FAILED_ON_CHAIN)
    assert await core.balance(AccountCode.MAIN_COIN, "BTC", WALLET) == FUNDED["BTC"]
    assert await core.balance(AccountCode.LOCKED_COIN, "BTC", WALLET) == 0
    assert await core.balance(AccountCode.REVENUE_COIN, "BTC") == 0
    assert await core.balance(AccountCode.ASSET_COIN, "BTC") == FUNDED["BTC"]
    assert core.transfer_kinds(withdrawal_id) == ["withdrawal_hold", "withdrawal_release"]
    assert [t for t, _ in core.events(withdrawal_id)][-1] == "withdrawal.failed"


def _final(core: Core, withdrawal_id: int) -> Callable[[], Any]:
    async def check() -> bool:
        return await core.state(withdrawal_id) is None

    return check


# --------------------------------------------------------------------------- chains that misbehave


class RefusingChain:
    """Refuses every submission; knows no transaction."""

    def __init__(self) -> None:
        self.submitted: list[int] = []

    def submit(self, withdrawal: Withdrawal) -> str:
        self.submitted.append(withdrawal.withdrawal_id)
        raise ChainError("the node refused the transaction")

    def poll(self, txid: str) -> ChainTransaction:
        raise ChainError("no node")

    def resume(self, withdrawal: Withdrawal) -> str:
        raise ChainError("no node")


@pytest.mark.asyncio(loop_scope="function")
async def test_a_refused_submission_errs_and_keeps_the_hold(core: Core) -> None:
    chain = RefusingChain()
    worker = CustodyWorker(core.trading, chain, WorkerSettings())
    tracked = await core.withdraw("ETH", 10_000_000)
    withdrawal_id, total = tracked.withdrawal.withdrawal_id, tracked.withdrawal.total
    await worker.round()
    errored = await core.state(withdrawal_id)
    assert errored is not None and errored.state is WithdrawalState.ERRORED
    assert "refused" in errored.reason
    assert await core.hold(withdrawal_id) == total  # an operator decides; nothing released
    await worker.round()  # an errored withdrawal is not the worker's to retry
    assert chain.submitted == [withdrawal_id]
    assert core.transfer_kinds(withdrawal_id) == ["withdrawal_hold"]


class BlindChain:
    """A simulated chain whose polls fail: the node cannot be reached."""

    def __init__(self, inner: SimulatedChain) -> None:
        self.inner = inner
        self.polls = 0

    def submit(self, withdrawal: Withdrawal) -> str:
        txid: str = self.inner.submit(withdrawal)
        return txid

    def poll(self, txid: str) -> ChainTransaction:
        self.polls += 1
        raise ChainError("timeout")

    def resume(self, withdrawal: Withdrawal) -> str:
        raise ChainError("timeout")


@pytest.mark.asyncio(loop_scope="function")
async def test_a_chain_that_cannot_be_polled_changes_nothing(core: Core) -> None:
    chain = BlindChain(simulated_chain(core.clock))
    worker = CustodyWorker(core.trading, chain, WorkerSettings())
    tracked = await core.withdraw()
    withdrawal_id = tracked.withdrawal.withdrawal_id
    for _ in range(CONFIRMATIONS + 3):
        await worker.round()
        core.clock.advance(BLOCK_S)
    still = await core.state(withdrawal_id)
    assert still is not None and still.state is WithdrawalState.CONFIRMING
    assert still.confirmations == 0 and chain.polls >= CONFIRMATIONS
    assert await core.hold(withdrawal_id) == tracked.withdrawal.total


class CrashingChain:
    """Broadcasts (into the simulated chain), then dies before answering: a process killed
    between the submission and the commit of `dispatch`."""

    def __init__(self, inner: SimulatedChain) -> None:
        self.inner = inner

    def submit(self, withdrawal: Withdrawal) -> str:
        self.inner.submit(withdrawal)
        raise RuntimeError("killed")

    def poll(self, txid: str) -> ChainTransaction:
        raise RuntimeError("killed")

    def resume(self, withdrawal: Withdrawal) -> str:
        raise RuntimeError("killed")


@pytest.mark.asyncio(loop_scope="function")
async def test_after_a_crash_the_same_transaction_is_found_again_and_sent_once(
    core: Core,
) -> None:
    """Killed after the broadcast and before `dispatch` was committed: the next worker, with
    a chain that lost its memory too (the simulation lives in the killed process), submits
    again and gets the same txid; one killed while confirming resumes the transaction."""
    first = simulated_chain(core.clock)
    crashing = CustodyWorker(core.trading, CrashingChain(first), WorkerSettings())
    in_processing = await core.withdraw("USDTERC20", 30_000_000)
    processing_id = in_processing.withdrawal.withdrawal_id
    with pytest.raises(RuntimeError, match="killed"):
        await crashing.round()
    stuck = await core.state(processing_id)
    assert stuck is not None and stuck.state is WithdrawalState.PROCESSING
    broadcast = first.txid_of("ETH", processing_id)

    second = simulated_chain(core.clock)  # a new process: the chain knows nothing
    worker = CustodyWorker(core.trading, second, WorkerSettings())
    await worker.round()
    dispatched = await core.state(processing_id)
    assert dispatched is not None and dispatched.state is WithdrawalState.CONFIRMING
    assert dispatched.txid == broadcast

    core.clock.advance(BLOCK_S)
    await worker.round()
    third = simulated_chain(core.clock)  # killed again, while confirming
    restarted = CustodyWorker(core.trading, third, WorkerSettings())
    await rounds_until(restarted, core.clock, _final(core, processing_id))
    final = core.committed(processing_id)[-1]
    assert (final.state, final.txid) == (WithdrawalState.SUCCEED, broadcast)
    assert third.txid_of("ETH", processing_id) == broadcast
    assert core.transfer_kinds(processing_id) == ["withdrawal_hold", "withdrawal_send"]
    states = [w.state for w in core.committed(processing_id)]
    assert states.count(WithdrawalState.SUCCEED) == 1


@pytest.mark.asyncio(loop_scope="function")
async def test_a_withdrawal_canceled_after_the_workers_look_is_left_alone(core: Core) -> None:
    chain = simulated_chain(core.clock)
    worker = CustodyWorker(core.trading, chain, WorkerSettings())
    tracked = await core.withdraw()
    withdrawal_id = tracked.withdrawal.withdrawal_id
    seen = await core.trading.inspect_custody(
        lambda desk: desk.live_withdrawals(frozenset({WithdrawalState.ACCEPTED}))
    )
    canceled = await core.trading.withdrawal_change(withdrawal_id, WithdrawalEvent.CANCEL)
    assert isinstance(canceled, TrackedWithdrawal)
    assert canceled.withdrawal.state is WithdrawalState.CANCELED
    for stale in seen:  # what the worker had read before the cancel
        await worker._advance(stale)
    assert chain.txid_of("TRON", withdrawal_id) is None
    assert await core.balance(AccountCode.MAIN_COIN, "USDT", WALLET) == FUNDED["USDT"]
    assert core.transfer_kinds(withdrawal_id) == ["withdrawal_hold", "withdrawal_release"]
    again = await core.trading.withdrawal_change(withdrawal_id, WithdrawalEvent.CANCEL)
    assert isinstance(again, Refused) and again.code == "not_found"


# --------------------------------------------------------------------------- many, any seed


CODES = DEFAULT_RULES.codes()


async def _many(seed: int, failure_per_million: int, orders: list[tuple[int, int, int]]) -> None:
    """Withdrawals created between rounds, a block or less apart, until all are final."""
    clock = ManualClock()
    core = Core(clock)
    await core.start()
    try:
        chain = simulated_chain(clock, failure_per_million=failure_per_million, seed=seed)
        worker = CustodyWorker(core.trading, chain, WorkerSettings())
        made: list[TrackedWithdrawal] = []
        for code_index, multiple, pause_tenths in orders:
            code = CODES[code_index % len(CODES)]
            made.append(await core.withdraw(code, DEFAULT_RULES.rule(code).amount_min * multiple))
            await worker.round()
            clock.advance(pause_tenths / 10)
        ids = [tracked.withdrawal.withdrawal_id for tracked in made]

        async def all_final() -> bool:
            live = await core.trading.inspect_custody(lambda desk: set(desk.withdrawals))
            return not live & set(ids)

        await rounds_until(worker, clock, all_final, rounds_max=CONFIRMATIONS + 5)
        finals = {i: core.committed(i)[-1] for i in ids}
        assert {w.state for w in finals.values()} <= {
            WithdrawalState.SUCCEED,
            WithdrawalState.FAILED,
        }
        for withdrawal_id, final in finals.items():
            kinds = core.transfer_kinds(withdrawal_id)
            ending = (
                "withdrawal_send"
                if final.state is WithdrawalState.SUCCEED
                else ("withdrawal_release")
            )
            assert kinds == ["withdrawal_hold", ending], (withdrawal_id, kinds)
            assert await core.hold(withdrawal_id) == 0
            finals_announced = [
                t for t, _ in core.events(withdrawal_id) if t.endswith(("succeed", "failed"))
            ]
            assert finals_announced == [f"withdrawal.{final.state}"]
        for currency, funded in FUNDED.items():
            mine = [w for w in finals.values() if w.currency == currency]
            sent = [w for w in mine if w.state is WithdrawalState.SUCCEED]
            main = await core.balance(AccountCode.MAIN_COIN, currency, WALLET)
            assert main == funded - sum(w.total for w in sent)
            assert await core.balance(AccountCode.LOCKED_COIN, currency, WALLET) == 0
            revenue = await core.balance(AccountCode.REVENUE_COIN, currency)
            assert revenue == sum(w.fee for w in sent)
            asset = await core.balance(AccountCode.ASSET_COIN, currency)
            assert asset == funded - sum(w.amount for w in sent)
        assert not core.fatal
    finally:
        core.stop()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**32),
    failure_per_million=st.sampled_from([0, 300_000, 1_000_000]),
    orders=st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 5), st.integers(0, 10)),
        min_size=1,
        max_size=12,
    ),
)
def test_any_mix_ends_each_withdrawal_once_and_the_books_balance(
    seed: int, failure_per_million: int, orders: list[tuple[int, int, int]]
) -> None:
    asyncio.run(_many(seed, failure_per_million, orders))
