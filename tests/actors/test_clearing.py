"""Vault, Ledger, OrderBook and Clearing together: money is conserved to the minor unit."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from strongroom.actors.messages import (
    Account,
    AccountCode,
    OrderKind,
    OrderState,
    Refused,
    Side,
    TimeInForce,
)
from strongroom.persistence.recovery import MarketCounters, RecoveredState
from strongroom.server import build_books
from tests.actors.pipeline import Pipeline

USDT = 10**6
SAT = 10**8


def main(wallet: str, currency: str) -> Account:
    return Account(AccountCode.MAIN_COIN, currency, wallet)


def locked(wallet: str, currency: str) -> Account:
    return Account(AccountCode.LOCKED_COIN, currency, wallet)


def funded() -> Pipeline:
    pipeline = Pipeline()
    for wallet in ("a", "b"):
        pipeline.deposit(wallet, "USDT", 100_000 * USDT)
        pipeline.deposit(wallet, "BTC", 10 * SAT)
    return pipeline


def test_a_fill_settles_both_sides_and_keeps_the_price_improvement_held() -> None:
    pipeline = funded()
    maker = pipeline.place("b", Side.SELL, 5_000, 2_000_000)  # 0.5 BTC at 20,000.00
    assert isinstance(maker, OrderState) and maker.status == "open"
    taker = pipeline.place("a", Side.BUY, 6_000, 2_100_000)  # 0.6 BTC at 21,000.00
    assert isinstance(taker, OrderState)
    assert (taker.status, taker.filled, taker.remaining) == ("open", 5_000, 1_000)
    ledger = pipeline.ledger
    notional = 10_000 * USDT
    assert ledger.balance(main("a", "USDT")) == 100_000 * USDT - 12_600 * USDT
    assert ledger.balance(locked("a", "USDT")) == 12_600 * USDT - notional
    assert ledger.balance(main("a", "BTC")) == 10 * SAT + SAT // 2 - (SAT // 2) * 20 // 10_000
    assert ledger.balance(main("b", "USDT")) == 100_000 * USDT + notional - notional // 1_000
    assert ledger.balance(locked("b", "BTC")) == 0
    # Canceling the rest releases exactly what is still held.
    canceled = pipeline.cancel("a", taker.order_id)
    assert isinstance(canceled, OrderState) and canceled.status == "canceled"
    assert ledger.balance(locked("a", "USDT")) == 0
    assert ledger.balance(main("a", "USDT")) == 100_000 * USDT - notional
    assert ledger.hold_remaining(taker.order_id) == 0


def test_insufficient_funds_changes_nothing() -> None:
    pipeline = funded()
    before = dict(pipeline.ledger.accounts())
    refused = pipeline.place("a", Side.BUY, 1_000_000, 2_000_000)  # 100 BTC × 20,000
    assert isinstance(refused, Refused) and refused.code == "insufficient_funds"
    assert dict(pipeline.ledger.accounts()) == before
    assert pipeline.vault("a").idle


def test_rejected_post_only_releases_its_hold_in_the_same_unit() -> None:
    pipeline = funded()
    pipeline.place("b", Side.SELL, 100, 2_000_000)
    rejected = pipeline.place("a", Side.BUY, 100, 2_000_000, post_only=True)
    assert isinstance(rejected, OrderState) and rejected.status == "rejected"
    unit = pipeline.units[-1]
    assert [transfer.kind for transfer in unit.transfers] == ["hold", "release"]
    assert pipeline.ledger.balance(locked("a", "USDT")) == 0


def test_self_trade_cancels_the_resting_order_and_releases_it() -> None:
    pipeline = funded()
    resting = pipeline.place("a", Side.SELL, 100, 2_000_000)
    assert isinstance(resting, OrderState)
    taker = pipeline.place("a", Side.BUY, 100, 2_000_000)
    assert isinstance(taker, OrderState) and taker.filled == 0
    assert resting.order_id not in pipeline.clearing.orders
    assert pipeline.ledger.balance(locked("a", "BTC")) == 0
    assert [o.status for o in pipeline.units[-1].orders if o.order_id == resting.order_id] == [
        "canceled"
    ]


def test_replace_holds_exactly_what_the_new_terms_need() -> None:
    pipeline = funded()
    order = pipeline.place("a", Side.BUY, 100, 2_000_000)
    assert isinstance(order, OrderState)
    ledger = pipeline.ledger
    bigger = pipeline.replace("a", order.order_id, 2_100_000, 150)
    assert isinstance(bigger, OrderState) and (bigger.price, bigger.remaining) == (2_100_000, 150)
    assert ledger.hold_remaining(order.order_id) == 2_100_000 * 150
    smaller = pipeline.replace("a", order.order_id, 1_900_000, 50)
    assert isinstance(smaller, OrderState)
    assert ledger.hold_remaining(order.order_id) == 1_900_000 * 50
    assert ledger.balance(main("a", "USDT")) == 100_000 * USDT - 1_900_000 * 50


def test_a_replace_beyond_the_funds_changes_nothing() -> None:
    pipeline = funded()
    order = pipeline.place("a", Side.BUY, 100, 2_000_000)
    assert isinstance(order, OrderState)
    before = dict(pipeline.ledger.accounts())
    refused = pipeline.replace("a", order.order_id, 2_000_000, 10**7)
    assert isinstance(refused, Refused) and refused.code == "insufficient_funds"
    assert dict(pipeline.ledger.accounts()) == before


def test_a_replace_the_book_refuses_gives_back_its_top_up() -> None:
    pipeline = funded()
    pipeline.place("b", Side.SELL, 100, 2_100_000)
    order = pipeline.place("a", Side.BUY, 100, 2_000_000, post_only=True)
    assert isinstance(order, OrderState)
    refused = pipeline.replace("a", order.order_id, 2_100_000, 100)  # would trade
    assert isinstance(refused, Refused) and refused.code == "would_trade"
    assert pipeline.ledger.hold_remaining(order.order_id) == 2_000_000 * 100
    # The top-up is journaled on its own, ahead of the book's answer that releases it.
    assert [[t.kind for t in unit.transfers] for unit in pipeline.units[-2:]] == [
        ["hold"],
        ["release"],
    ]


class PipelineMachine(RuleBasedStateMachine):
    """Random flow through the whole pure pipeline; money is never created or lost."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline = Pipeline()
        self.wallets = ["w1", "w2", "w3"]
        for wallet in self.wallets:
            self.pipeline.deposit(wallet, "USDT", 50_000 * USDT)
            self.pipeline.deposit(wallet, "BTC", 2 * SAT)
        self.live: dict[int, str] = {}

    @rule(
        wallet=st.sampled_from(["w1", "w2", "w3"]),
        side=st.sampled_from(Side),
        kind=st.sampled_from([OrderKind.LIMIT] * 4 + list(OrderKind)),
        price=st.integers(1_999_990, 2_000_010),
        quantity=st.integers(1, 3_000),
        time_in_force=st.sampled_from(TimeInForce),
        display=st.integers(0, 5),
        post_only=st.booleans(),
    )
    def place(
        self,
        wallet: str,
        side: Side,
        kind: OrderKind,
        price: int,
        quantity: int,
        time_in_force: TimeInForce,
        display: int,
        post_only: bool,
    ) -> None:
        is_market = kind in (OrderKind.MARKET, OrderKind.STOP_MARKET)
        reply = self.pipeline.place(
            wallet,
            side,
            quantity,
            0 if is_market else price,
            kind=kind,
            stop_price=price if kind in (OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET) else 0,
            display_quantity=display if kind is OrderKind.LIMIT and display < quantity else 0,
            time_in_force=TimeInForce.IOC if is_market else time_in_force,
            post_only=post_only and kind is OrderKind.LIMIT and time_in_force is TimeInForce.GTC,
        )
        if isinstance(reply, OrderState) and reply.live:
            self.live[reply.order_id] = wallet

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if self.live:
            order_id = data.draw(st.sampled_from(sorted(self.live)))
            self.pipeline.cancel(self.live.pop(order_id), order_id)

    @rule(data=st.data(), price=st.integers(1_999_990, 2_000_010), quantity=st.integers(1, 3_000))
    def replace(self, data: st.DataObject, price: int, quantity: int) -> None:
        if self.live:
            order_id = data.draw(st.sampled_from(sorted(self.live)))
            reply = self.pipeline.replace(self.live[order_id], order_id, price, quantity)
            if isinstance(reply, OrderState) and not reply.live:
                del self.live[order_id]

    @invariant()
    def money_is_conserved(self) -> None:
        totals: defaultdict[str, int] = defaultdict(int)
        for account, amount in self.pipeline.ledger.accounts():
            if account.code in (AccountCode.MAIN_COIN, AccountCode.LOCKED_COIN):
                assert amount >= 0, account
            if account.code != AccountCode.ASSET_COIN:
                totals[account.currency] += amount
        for currency in ("USDT", "BTC"):
            assert totals[currency] == self.pipeline.deposited[currency]
            assert self.pipeline.ledger.totals(currency) == 0

    @invariant()
    def holds_belong_to_live_orders(self) -> None:
        clearing = self.pipeline.clearing
        held: defaultdict[Account, int] = defaultdict(int)
        for order_id, state in clearing.orders.items():
            remaining = self.pipeline.ledger.hold_remaining(order_id)
            assert state.live
            if state.side is Side.SELL:
                assert remaining == state.remaining * 10_000
            account = self.pipeline.ledger.hold_account(order_id)
            if account is not None:
                held[account] += remaining
        for account, amount in self.pipeline.ledger.accounts():
            if account.code == AccountCode.LOCKED_COIN:
                assert held[account] == amount, account
        for vault in self.pipeline.vaults.values():
            assert set(vault.open_orders) <= set(clearing.orders)


TestPipeline = PipelineMachine.TestCase
TestPipeline.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


class RecoverableMachine(PipelineMachine):
    """What recovery reads (the clearing's order records, as journaled) mirrors each book."""

    @invariant()
    def order_records_mirror_the_books(self) -> None:
        records = self.pipeline.clearing.orders
        in_books = {}
        for book in self.pipeline.books.values():
            for live in book.open_orders():
                in_books[live.order.order_id] = live
        assert set(in_books) == set(records)
        for order_id, live in in_books.items():
            record = records[order_id]
            assert record.status == ("pending" if live.pending else "open")
            assert (record.price, record.remaining, record.priority) == (
                live.order.price,
                live.remaining,
                live.priority,
            )
            if not live.pending:
                assert record.visible == live.visible

    @invariant()
    def a_book_rebuilt_from_the_records_is_the_same_book(self) -> None:
        """What `serve` does at start, from the clearing's records instead of the database."""
        records = self.pipeline.clearing.orders.values()
        state = RecoveredState(
            live_orders=sorted(
                (record.snapshot() for record in records),
                key=lambda order: (order.market, order.priority, order.order_id),
            ),
            markets={
                symbol: MarketCounters(book.next_trade_id, book.next_priority, book.last_price,
                                       book.sequence)
                for symbol, book in self.pipeline.books.items()
            },
        )  # fmt: skip
        rebuilt = build_books(self.pipeline.config, state)
        for symbol, book in self.pipeline.books.items():
            assert rebuilt[symbol].depth(1000) == book.depth(1000)
            assert rebuilt[symbol].open_orders() == book.open_orders()


TestRecoverable = RecoverableMachine.TestCase
TestRecoverable.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
