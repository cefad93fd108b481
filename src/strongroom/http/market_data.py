"""Market data from committed units: depth per market, trades, ticker figures, order updates.

Sans-I/O and pure: `MarketData.apply(unit)` is called with every committed journal unit
(in commit order) and `take_changes()` hands out what the feed publishes. Depth is read
from the order states a unit carries (an order contributes its visible lots at its price
while it is open), so it is exactly the committed book: the same figures recovery
rebuilds, and the same view the REST depth answers from.

Sequence: each market's book messages carry `sequence`, which rises by exactly 1 per
published delta. It starts where the book's own counter was at the last commit, so it
never goes back across restarts (a book changes at least once for every delta).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from strongroom.actors.messages import (
    BookResults,
    JournalUnit,
    OrderState,
    Side,
    Trade,
    TradeRecord,
)
from strongroom.config import TradingConfig

NS_PER_MINUTE = 60_000_000_000
VOLUME_WINDOW_MINUTES = 24 * 60

Level = tuple[int, int]  # (price ticks, visible lots)


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed levels of one market since its previous delta; a quantity of 0 removes."""

    market: str
    sequence: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    at_ns: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One side of a trade, as the wallet that owns the order sees it."""

    wallet_id: str
    market: str
    order_id: int
    trade_id: int
    side: Side
    price: int
    quantity: int
    maker: bool
    at_ns: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What one `take_changes` hands out, each list in commit order."""

    deltas: list[BookDelta]
    trades: list[TradeRecord]
    private: list[Fill | OrderState]  # per wallet: its fills, then its orders' new states
    tickers: set[str]  # markets whose ticker figures moved


@dataclass(slots=True)
class Ticker:
    market: str
    last: int  # ticks, 0 = no trade yet
    bid: int | None
    ask: int | None
    volume_24h: int  # lots


@dataclass(slots=True)
class MarketView:
    """One market's committed depth and trade figures."""

    symbol: str
    sequence: int = 0
    last_price: int = 0
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    # order id -> (side, price, visible) for every order showing lots in the book
    resting: dict[int, tuple[Side, int, int]] = field(default_factory=dict)
    # level -> its quantity when last published, for levels touched since
    changed: dict[tuple[Side, int], int] = field(default_factory=dict)
    # (minute, lots) of the last 24 hours, oldest first
    volume: deque[tuple[int, int]] = field(default_factory=deque)
    volume_total: int = 0

    def levels(self, side: Side) -> dict[int, int]:
        return self.bids if side == Side.BUY else self.asks

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None

    def depth(self, limit: int | None = None) -> tuple[list[Level], list[Level]]:
        """Levels best first, as `OrderBook.depth` orders them."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if limit is not None:
            return bids[:limit], asks[:limit]
        return bids, asks

    def _add(self, side: Side, price: int, lots: int) -> None:
        levels = self.levels(side)
        before = levels.get(price, 0)
        self.changed.setdefault((side, price), before)
        after = before + lots
        if after:
            levels[price] = after
        else:
            del levels[price]

    def apply_order(self, state: OrderState) -> None:
        old = self.resting.pop(state.order_id, None)
        if old is not None:
            self._add(old[0], old[1], -old[2])
        if state.status == "open" and state.visible > 0:
            self.resting[state.order_id] = (state.side, state.price, state.visible)
            self._add(state.side, state.price, state.visible)

    def apply_trade(self, trade: TradeRecord) -> None:
        self.last_price = trade.price
        self.add_volume(trade.at_ns // NS_PER_MINUTE, trade.quantity)

    def add_volume(self, minute: int, lots: int) -> None:
        volume = self.volume
        if volume and volume[-1][0] == minute:
            volume[-1] = (minute, volume[-1][1] + lots)
        else:
            volume.append((minute, lots))
        self.volume_total += lots

    def volume_24h(self, now_ns: int) -> int:
        oldest = now_ns // NS_PER_MINUTE - VOLUME_WINDOW_MINUTES
        volume = self.volume
        while volume and volume[0][0] <= oldest:
            self.volume_total -= volume.popleft()[1]
        return self.volume_total

    def take_delta(self, at_ns: int) -> BookDelta | None:
        """The levels that differ from the last delta; None (and no sequence) if none do."""
        if not self.changed:
            return None
        bids: list[Level] = []
        asks: list[Level] = []
        for (side, price), before in self.changed.items():
            after = self.levels(side).get(price, 0)
            if after != before:
                (bids if side == Side.BUY else asks).append((price, after))
        self.changed.clear()
        if not bids and not asks:
            return None
        bids.sort(reverse=True)
        asks.sort()
        self.sequence += 1
        return BookDelta(self.symbol, self.sequence, tuple(bids), tuple(asks), at_ns)


class MarketData:
    """Every market's view, kept from committed units in commit order."""

    def __init__(self, config: TradingConfig) -> None:
        self.config = config
        self.markets = {symbol: MarketView(symbol) for symbol in config.markets}
        self._trades: list[TradeRecord] = []
        self._private: list[Fill | OrderState] = []
        self._tickers: set[str] = set()

    def restore(
        self,
        counters: dict[str, tuple[int, int]],
        live_orders: Iterable[OrderState],
        volumes: Iterable[tuple[str, int, int]] = (),
    ) -> None:
        """Start from recovered state: (sequence, last price) per market, the live orders,
        and (market, minute, lots) traded in the last 24 hours."""
        for symbol, (sequence, last_price) in counters.items():
            if symbol in self.markets:
                view = self.markets[symbol]
                view.sequence, view.last_price = sequence, last_price
        for state in live_orders:
            view = self.markets[state.market]
            view.apply_order(state)
        for symbol, minute, lots in sorted(volumes, key=lambda row: row[1]):
            if symbol in self.markets:
                self.markets[symbol].add_volume(minute, lots)
        for view in self.markets.values():
            view.changed.clear()

    def apply(self, unit: JournalUnit, watched: Container[str] = ()) -> None:
        """Take in a committed unit; fills and order states are kept for `watched` wallets
        only (those someone follows), the rest costs nothing."""
        if watched:
            for results in unit.results:
                self._fills(results, watched)
        private = self._private
        for trade in unit.trades:
            self.markets[trade.market].apply_trade(trade)
            self._trades.append(trade)
            self._tickers.add(trade.market)
        for state in unit.orders:
            view = self.markets[state.market]
            view.apply_order(state)
            if watched and state.wallet_id in watched:
                private.append(state)
            if view.changed:
                self._tickers.add(state.market)

    def _fills(self, results: BookResults, watched: Container[str]) -> None:
        private = self._private
        for _token, _command, events in results.results:
            for event in events:
                if type(event) is not Trade:
                    continue
                if event.maker_wallet_id in watched:
                    maker_side = Side.SELL if event.taker_side == Side.BUY else Side.BUY
                    private.append(
                        Fill(
                            event.maker_wallet_id, results.market, event.maker_order_id,
                            event.trade_id, maker_side, event.price, event.quantity, True,
                            results.at_ns,
                        )
                    )  # fmt: skip
                if event.taker_wallet_id in watched:
                    private.append(
                        Fill(
                            event.taker_wallet_id, results.market, event.taker_order_id,
                            event.trade_id, event.taker_side, event.price, event.quantity,
                            False, results.at_ns,
                        )
                    )  # fmt: skip

    def take_changes(self, at_ns: int) -> Changes:
        """Every market's delta and everything else applied since the last call."""
        deltas = []
        for view in self.markets.values():
            delta = view.take_delta(at_ns)
            if delta is not None:
                deltas.append(delta)
        changes = Changes(deltas, self._trades, self._private, self._tickers)
        self._trades, self._private, self._tickers = [], [], set()
        return changes

    def ticker(self, symbol: str, now_ns: int) -> Ticker:
        view = self.markets[symbol]
        return Ticker(
            symbol, view.last_price, view.best_bid(), view.best_ask(), view.volume_24h(now_ns)
        )
