"""MarketData against the real behaviours: random order flow through the pure pipeline.

After every command, the committed units fed to MarketData give exactly the book's own
depth, and a subscriber's replica (snapshot, then every delta) equals it too, with the
sequence rising by exactly one per delta.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.actors.messages import OrderKind, OrderState, Side, TimeInForce
from strongroom.config import DEFAULT
from strongroom.http.market_data import MarketData, MarketView
from tests.actors.pipeline import Pipeline

MARKETS = ("BTC-USDT", "ETH-USDT")
WALLETS = ("alice", "bob", "carol")


def funded_pipeline() -> Pipeline:
    pipeline = Pipeline()
    for wallet in WALLETS:
        for currency in ("BTC", "ETH", "USDT"):
            pipeline.deposit(wallet, currency, 10**15)
    return pipeline


class Replica:
    """What a feed subscriber keeps: a snapshot, then deltas applied in order."""

    def __init__(self, view: MarketView) -> None:
        bids, asks = view.depth()
        self.sequence = view.sequence
        self.bids = dict(bids)
        self.asks = dict(asks)

    def apply(
        self, sequence: int, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]
    ) -> None:
        assert sequence == self.sequence + 1, "a gap or a repeat in the delta sequence"
        self.sequence = sequence
        for levels, changes in ((self.bids, bids), (self.asks, asks)):
            for price, lots in changes:
                if lots:
                    levels[price] = lots
                else:
                    assert price in levels, "a removal of a level that was not there"
                    del levels[price]

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


operation = st.one_of(
    st.tuples(
        st.just("limit"),
        st.sampled_from(WALLETS),
        st.sampled_from(MARKETS),
        st.sampled_from((Side.BUY, Side.SELL)),
        st.integers(96, 104),  # price ticks
        st.integers(1, 30),  # lots
        st.sampled_from((0, 0, 0, 3, 7)),  # display lots (iceberg)
        st.sampled_from((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)),
    ),
    st.tuples(
        st.just("market"),
        st.sampled_from(WALLETS),
        st.sampled_from(MARKETS),
        st.sampled_from((Side.BUY, Side.SELL)),
        st.integers(1, 40),
    ),
    st.tuples(
        st.just("stop"),
        st.sampled_from(WALLETS),
        st.sampled_from(MARKETS),
        st.sampled_from((Side.BUY, Side.SELL)),
        st.integers(96, 104),  # stop price ticks
        st.integers(1, 20),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 10_000)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(-3, 3), st.integers(-5, 5)),
)


def live_orders(pipeline: Pipeline) -> list[OrderState]:
    return [
        record.snapshot()
        for record in pipeline.clearing.orders.values()
        if record.status in ("open", "pending")
    ]


def run(pipeline: Pipeline, step: tuple[object, ...]) -> None:
    kind = step[0]
    if kind == "limit":
        _, wallet, market, side, price, lots, display, tif = step
        pipeline.place(
            wallet, side, lots, price, market=market, display_quantity=display,  # type: ignore[arg-type]
            time_in_force=tif,  # type: ignore[arg-type]
        )  # fmt: skip
    elif kind == "market":
        _, wallet, market, side, lots = step
        pipeline.place(wallet, side, lots, market=market, kind=OrderKind.MARKET)  # type: ignore[arg-type]
    elif kind == "stop":
        _, wallet, market, side, stop, lots = step
        pipeline.place(
            wallet, side, lots, stop, market=market, kind=OrderKind.STOP_LIMIT, stop_price=stop,  # type: ignore[arg-type]
        )  # fmt: skip
    else:
        orders = live_orders(pipeline)
        if not orders:
            return
        target = orders[int(step[1]) % len(orders)]  # type: ignore[call-overload]
        if kind == "cancel":
            pipeline.cancel(target.wallet_id, target.order_id)
        elif target.status == "open":
            price = max(1, target.price + int(step[2]))  # type: ignore[call-overload]
            quantity = max(1, target.quantity + int(step[3]))  # type: ignore[call-overload]
            pipeline.replace(target.wallet_id, target.order_id, price, quantity)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, min_size=10, max_size=120), st.integers(0, 119))
def test_committed_units_give_the_books_depth_and_deltas_rebuild_it(
    steps: list[tuple[object, ...]], restart_at: int
) -> None:
    pipeline = funded_pipeline()
    data = MarketData(DEFAULT)
    replicas = {symbol: Replica(data.markets[symbol]) for symbol in MARKETS}
    applied = len(pipeline.units)
    for index, step in enumerate(steps):
        run(pipeline, step)
        for unit in pipeline.units[applied:]:
            data.apply(unit)
        applied = len(pipeline.units)
        changes = data.take_changes(at_ns=index)
        for delta in changes.deltas:
            replicas[delta.market].apply(delta.sequence, delta.bids, delta.asks)
        if index == restart_at:
            # A restart: market data rebuilt from the recovered live orders and counters.
            rebuilt = MarketData(DEFAULT)
            rebuilt.restore(
                {s: (v.sequence, v.last_price) for s, v in data.markets.items()},
                live_orders(pipeline),
            )
            data = rebuilt
        for symbol in MARKETS:
            book = pipeline.books[symbol]
            expected = book.depth(10_000)
            assert data.markets[symbol].depth() == expected
            assert replicas[symbol].depth() == expected
            assert data.markets[symbol].last_price == book.last_price
            assert data.markets[symbol].best_bid() == book.best_bid()
            assert data.markets[symbol].best_ask() == book.best_ask()


def test_a_delta_carries_only_levels_that_changed_and_sequence_rises_by_one() -> None:
    pipeline = funded_pipeline()
    data = MarketData(DEFAULT)
    start = data.markets["BTC-USDT"].sequence

    def step() -> list[tuple[int, int]]:
        for unit in pipeline.units[step.applied :]:  # type: ignore[attr-defined]
            data.apply(unit)
        step.applied = len(pipeline.units)  # type: ignore[attr-defined]
        changes = data.take_changes(at_ns=0)
        return [(delta.sequence, len(delta.bids) + len(delta.asks)) for delta in changes.deltas]

    step.applied = 0  # type: ignore[attr-defined]
    step()
    first = pipeline.place("alice", Side.BUY, 5, 100)
    assert isinstance(first, OrderState)
    assert step() == [(start + 1, 1)]
    pipeline.place("alice", Side.BUY, 5, 99)
    pipeline.place("bob", Side.SELL, 5, 101)
    assert step() == [(start + 2, 2)]  # two commands, one delta: coalesced
    assert step() == []  # nothing changed: no delta, no sequence
    # An order placed and canceled between two deltas leaves the level as it was.
    placed = pipeline.place("carol", Side.SELL, 3, 105)
    assert isinstance(placed, OrderState)
    pipeline.cancel("carol", placed.order_id)
    assert step() == []
    # A trade: the maker's level shrinks; the trade moves the last price.
    pipeline.place("bob", Side.SELL, 2, 100)
    assert step() == [(start + 3, 1)]
    assert data.markets["BTC-USDT"].depth() == ([(100, 3), (99, 5)], [(101, 5)])
    assert data.markets["BTC-USDT"].last_price == 100


def test_volume_is_the_last_24_hours_of_trades() -> None:
    view = MarketView("BTC-USDT")
    minute_ns = 60_000_000_000
    view.add_volume(0, 5)
    view.add_volume(0, 2)
    view.add_volume(600, 3)
    assert view.volume_24h(600 * minute_ns) == 10
    assert view.volume_24h(24 * 60 * minute_ns) == 3  # the first minute has left the window
    assert view.volume_24h(10_000 * minute_ns) == 0


def test_fills_and_order_states_only_of_watched_wallets_in_commit_order() -> None:
    pipeline = funded_pipeline()
    data = MarketData(DEFAULT)
    resting = pipeline.place("alice", Side.SELL, 10, 100)
    pipeline.place("bob", Side.BUY, 4, 100)
    pipeline.place("carol", Side.BUY, 6, 101)
    for unit in pipeline.units:
        data.apply(unit, watched={"alice", "carol"})
    private = data.take_changes(at_ns=0).private
    assert isinstance(resting, OrderState)
    summary = [
        (item.wallet_id, "order", item.status, item.filled)
        if isinstance(item, OrderState)
        else (item.wallet_id, "fill", item.maker, item.quantity)
        for item in private
    ]
    assert summary == [
        ("alice", "order", "open", 0),
        ("alice", "fill", True, 4),  # bob's fill is not kept: nobody watches bob
        ("alice", "order", "open", 4),
        ("alice", "fill", True, 6),
        ("carol", "fill", False, 6),
        ("carol", "order", "filled", 6),  # a unit's fills first, then its orders' states
        ("alice", "order", "filled", 10),
    ]
    quiet = MarketData(DEFAULT)
    for unit in pipeline.units:
        quiet.apply(unit)
    assert quiet.take_changes(at_ns=0).private == []
