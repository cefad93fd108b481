"""The OrderBook behaviour: one per market, price-time matching, no I/O, no clock.

`OrderBook.handle(command) -> list[event]` is the whole interface; SPEC §3 is the contract.
Prices are integer ticks, quantities integer lots.

Where SPEC §3 is silent, this book decides:

- post-only is for limit orders only (any other kind: NOT_ALLOWED); it is rejected
  (WOULD_TRADE) when its price reaches the best opposite price, even if the orders there
  are the member's own, and a post-only order cannot be replaced to a crossing price;
- a market buy whose cap (`price`) is 0 is accepted and canceled UNFILLED; NO_LIQUIDITY
  means the opposite side is empty; a negative price is INVALID_PRICE for every kind;
- stops due on both sides at once trigger in arrival order (priority) of the two heads;
- only resting orders can be replaced (a resting, triggered stop-limit included).

Layout, chosen for speed (this class is the throughput ceiling of a market):

- each side is a dict price → list of resting orders (time priority = list order) plus the
  sorted list of its prices (bisect), so the best price is one index away. A level that
  empties stays for the next order at its price unless it is the best one (see
  `_level_emptied`): a busy book moves orders among the same prices;
- `_orders` maps order id → order for O(1) lookup on cancel and replace (taking an order
  out of its level compares identities from the front, in C);
- pending stops live in two sorted lists of `(key, priority, order_id)`, in trigger order;
- events are built on unfrozen twins of their classes (see `_unfrozen_twin`), four to
  five times cheaper than the frozen dataclass constructor, and are genuine instances.

Invariant asserted after every command that changed the book: never crossed;
`check_invariants()` verifies everything else, for tests and after a recovery.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, insort
from collections.abc import Iterable

import msgspec

from strongroom.actors.messages import (
    BookCommand,
    BookEvent,
    BookOrder,
    CancelOrder,
    CancelReason,
    OrderAccepted,
    OrderCanceled,
    OrderKind,
    OrderPending,
    OrderRejected,
    OrderReplaced,
    OrderRested,
    OrderTriggered,
    PlaceOrder,
    RejectReason,
    ReplaceOrder,
    Side,
    TimeInForce,
    Trade,
)
from strongroom.errors import StrongroomError

__all__ = ["BookInvariantError", "OpenOrder", "OrderBook"]

BASIS_POINTS = 10_000
# Emptied levels kept for reuse are dropped once there are more than this many and more
# than there are live levels: bounded memory, amortized O(1).
_EMPTY_LEVELS_KEPT = 1024

_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderKind.LIMIT
_MARKET = OrderKind.MARKET
_STOP_LIMIT = OrderKind.STOP_LIMIT
_STOP_MARKET = OrderKind.STOP_MARKET
_GTC = TimeInForce.GTC
_FOK = TimeInForce.FOK
_REQUESTED = CancelReason.REQUESTED
_UNFILLED = CancelReason.UNFILLED
_FILL_OR_KILL = CancelReason.FILL_OR_KILL
_NO_LIQUIDITY = CancelReason.NO_LIQUIDITY
_SELF_TRADE = CancelReason.SELF_TRADE
_INVALID_QUANTITY = RejectReason.INVALID_QUANTITY
_INVALID_PRICE = RejectReason.INVALID_PRICE
_DUPLICATE_ORDER = RejectReason.DUPLICATE_ORDER
_UNKNOWN_ORDER = RejectReason.UNKNOWN_ORDER
_WOULD_TRADE = RejectReason.WOULD_TRADE
_NOT_ALLOWED = RejectReason.NOT_ALLOWED


class BookInvariantError(StrongroomError):
    """The book broke one of its own invariants (crossed): a bug, never user input."""

    code = "book_invariant"


# --------------------------------------------------------------------------- events
# Events are msgspec Structs (see messages.py): built by their own constructors, cheaply.

_accepted = OrderAccepted
_rejected = OrderRejected
_pending = OrderPending
_triggered = OrderTriggered
_rested = OrderRested
_trade = Trade
_canceled = OrderCanceled
_replaced = OrderReplaced


# --------------------------------------------------------------------------- orders


class _Order:
    """A live order inside the book (resting or pending); mutable, never leaves the book.

    `price` and `quantity` are the current terms (a replace changes them); `quantity` is the
    total, so the filled part is `quantity - remaining`. `visible` is the displayed part
    (0 while pending); `display` is the iceberg's display size, 0 = fully displayed. What
    never changes and is not read while matching stays on `terms`.
    """

    __slots__ = (
        "display",
        "order_id",
        "pending",
        "post_only",
        "price",
        "priority",
        "quantity",
        "remaining",
        "side",
        "terms",
        "visible",
        "wallet_id",
    )

    def __init__(self, terms: BookOrder, remaining: int) -> None:
        self.terms = terms
        self.order_id = terms.order_id
        self.wallet_id = terms.wallet_id
        self.side = terms.side
        self.price = terms.price
        self.quantity = terms.quantity
        self.remaining = remaining
        self.visible = 0
        self.display = terms.display_quantity
        self.priority = 0
        self.post_only = terms.post_only
        self.pending = False


@dataclasses.dataclass(frozen=True, slots=True)
class OpenOrder:
    """A live order as the book holds it, for checks and recovery.

    `order` carries the current terms (price and total quantity after any replace), so
    `restore_resting(o.order, o.remaining, o.visible, o.priority)` (or `restore_pending`)
    rebuilds the same book. `visible` is 0 for a pending stop.
    """

    order: BookOrder
    remaining: int
    visible: int
    priority: int
    pending: bool


# --------------------------------------------------------------------------- the book


class OrderBook:
    """One market's book: price-time priority, stops, icebergs, STP (SPEC §3)."""

    __slots__ = (
        "_ask_levels",
        "_ask_prices",
        "_bid_levels",
        "_bid_prices",
        "_buy_stops",
        "_collar_down",
        "_collar_up",
        "_empty_levels",
        "_last_price",
        "_next_priority",
        "_next_trade_id",
        "_orders",
        "_sell_stops",
        "_sequence",
        "market_id",
    )

    def __init__(
        self,
        market_id: int,
        *,
        collar_bps: int = 500,
        first_trade_id: int = 1,
        first_priority: int = 1,
    ) -> None:
        if not 0 <= collar_bps <= BASIS_POINTS:
            raise ValueError(f"collar_bps must be within 0..{BASIS_POINTS}, not {collar_bps}")
        self.market_id = market_id
        self._collar_up = BASIS_POINTS + collar_bps
        self._collar_down = BASIS_POINTS - collar_bps
        self._orders: dict[int, _Order] = {}
        self._bid_levels: dict[int, list[_Order]] = {}
        self._bid_prices: list[int] = []  # ascending: the best bid is the last
        self._ask_levels: dict[int, list[_Order]] = {}
        self._ask_prices: list[int] = []  # ascending: the best ask is the first
        # A level that empties is kept (in its dict and price list) for the next order at
        # that price, unless it is the best of its side: a busy book moves orders between
        # the same prices, and reusing a level spares a sorted insert and delete.
        self._empty_levels = 0
        # Pending stops in trigger order: buys by (stop, priority), sells by (-stop, priority).
        self._buy_stops: list[tuple[int, int, int]] = []
        self._sell_stops: list[tuple[int, int, int]] = []
        self._next_trade_id = first_trade_id
        self._next_priority = first_priority
        self._sequence = 0
        self._last_price = 0

    # ------------------------------------------------------------------ reading

    @property
    def sequence(self) -> int:
        """Commands that changed the resting state (levels, pending stops, last price)."""
        return self._sequence

    @property
    def last_price(self) -> int:
        """Ticks of the last trade, 0 = none yet."""
        return self._last_price

    @property
    def collar_bps(self) -> int:
        """A market order's limit: this many basis points beyond the best opposite price."""
        return self._collar_up - BASIS_POINTS

    @property
    def next_trade_id(self) -> int:
        return self._next_trade_id

    @property
    def next_priority(self) -> int:
        return self._next_priority

    def best_bid(self) -> int | None:
        return self._bid_prices[-1] if self._bid_prices else None

    def best_ask(self) -> int | None:
        return self._ask_prices[0] if self._ask_prices else None

    def depth(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Up to `limit` levels a side, best first: (price ticks, visible lots of the level)."""
        if limit <= 0:
            return [], []
        bids: list[tuple[int, int]] = []
        for price in reversed(self._bid_prices):
            level = self._bid_levels[price]
            if level:
                bids.append((price, sum(order.visible for order in level)))
                if len(bids) == limit:
                    break
        asks: list[tuple[int, int]] = []
        for price in self._ask_prices:
            level = self._ask_levels[price]
            if level:
                asks.append((price, sum(order.visible for order in level)))
                if len(asks) == limit:
                    break
        return bids, asks

    def open_orders(self) -> list[OpenOrder]:
        """Every resting and pending order, by ascending priority."""
        result = [
            OpenOrder(
                self._current_terms(order),
                order.remaining,
                order.visible,
                order.priority,
                order.pending,
            )
            for order in self._orders.values()
        ]
        result.sort(key=lambda open_order: open_order.priority)
        return result

    def __len__(self) -> int:
        """Live orders: resting and pending."""
        return len(self._orders)

    def check_invariants(self) -> None:
        """Verify the whole internal state, O(book): for tests and after a recovery.

        Raises BookInvariantError naming every problem found.
        """
        problems: list[str] = []
        resting = 0
        empty = 0
        for side, levels, prices in (
            (_BUY, self._bid_levels, self._bid_prices),
            (_SELL, self._ask_levels, self._ask_prices),
        ):
            if prices != sorted(levels) or len(prices) != len(levels):
                problems.append(f"{side.name} prices {prices} are not the sorted levels")
                continue
            best = (prices[-1] if side == _BUY else prices[0]) if prices else None
            if best is not None and not levels[best]:
                problems.append(f"{side.name} best level {best} is empty")
            for price, level in levels.items():
                empty += not level
                resting += len(level)
                previous = 0
                for order in level:
                    if self._orders.get(order.order_id) is not order or order.pending:
                        problems.append(f"order {order.order_id} at {price} is not live")
                    if order.side != side or order.price != price:
                        problems.append(f"order {order.order_id} is in the wrong level")
                    if order.priority <= previous or order.priority >= self._next_priority:
                        problems.append(f"order {order.order_id}: priority out of order")
                    previous = order.priority
                    # An iceberg's tip may be part consumed; anything else shows all it has.
                    shown = min(order.display, order.remaining) if order.display else 0
                    if not (
                        0 < order.remaining <= order.quantity
                        and 0 < order.visible <= order.remaining
                        and (order.visible <= shown if shown else order.visible == order.remaining)
                    ):
                        problems.append(f"order {order.order_id}: bad remaining or visible")
        if empty != self._empty_levels:
            problems.append(f"{empty} empty levels, {self._empty_levels} counted")
        for stops, sign in ((self._buy_stops, 1), (self._sell_stops, -1)):
            if stops != sorted(stops):
                problems.append("pending stops out of order")
            for key, priority, order_id in stops:
                stop_order = self._orders.get(order_id)
                if (
                    stop_order is None
                    or not stop_order.pending
                    or sign * stop_order.terms.stop_price != key
                    or stop_order.priority != priority
                ):
                    problems.append(f"pending stop {order_id} does not match its order")
        if resting + len(self._buy_stops) + len(self._sell_stops) != len(self._orders):
            problems.append("orders and levels disagree")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            problems.append(f"crossed: bid {bid} >= ask {ask}")
        if problems:
            raise BookInvariantError(f"book {self.market_id}: " + "; ".join(problems))

    @staticmethod
    def _current_terms(order: _Order) -> BookOrder:
        terms = order.terms
        if terms.price == order.price and terms.quantity == order.quantity:
            return terms
        return msgspec.structs.replace(terms, price=order.price, quantity=order.quantity)

    # ------------------------------------------------------------------ commands

    def handle(self, command: BookCommand) -> list[BookEvent]:
        """Apply one command; its events in order."""
        return self.handle_batch((command,))

    def handle_batch(self, commands: Iterable[BookCommand]) -> list[BookEvent]:
        """Apply commands in order; their events concatenated in order."""
        events: list[BookEvent] = []
        bid_prices = self._bid_prices
        ask_prices = self._ask_prices
        for command in commands:
            trade_id = self._next_trade_id
            if type(command) is ReplaceOrder:
                changed = self._replace(command, events)
            elif type(command) is PlaceOrder:
                changed = self._place(command.order, events)
            elif type(command) is CancelOrder:
                changed = self._cancel(command, events)
            else:
                raise TypeError(f"not a book command: {command!r}")
            if changed:
                # Triggering follows every trade-producing command, before the next one.
                if trade_id != self._next_trade_id and (self._buy_stops or self._sell_stops):
                    self._trigger_stops(events)
                self._sequence += 1
                # A book no command changed cannot have become crossed: checking here is enough.
                if bid_prices and ask_prices and bid_prices[-1] >= ask_prices[0]:
                    raise BookInvariantError(
                        f"book {self.market_id} crossed after {command!r}:"
                        f" bid {bid_prices[-1]} >= ask {ask_prices[0]}"
                    )
        return events

    def _place(self, terms: BookOrder, events: list[BookEvent]) -> bool:
        order_id = terms.order_id
        quantity = terms.quantity
        kind = terms.kind
        price = terms.price
        if quantity <= 0 or terms.display_quantity < 0:
            events.append(_rejected(order_id, _INVALID_QUANTITY))
            return False
        if price < 0 or (price == 0 and kind in (_LIMIT, _STOP_LIMIT)):
            events.append(_rejected(order_id, _INVALID_PRICE))
            return False
        if kind in (_STOP_LIMIT, _STOP_MARKET) and terms.stop_price <= 0:
            events.append(_rejected(order_id, _INVALID_PRICE))
            return False
        if order_id in self._orders:
            events.append(_rejected(order_id, _DUPLICATE_ORDER))
            return False
        if terms.post_only:
            # Only a limit order can wait to be a maker. Reaching the best opposite price
            # counts as trading even when those orders are the member's own: cancelling
            # them as a side effect of a maker-only order would surprise more than a reject.
            if kind != _LIMIT:
                events.append(_rejected(order_id, _NOT_ALLOWED))
                return False
            if self._crosses(terms.side, price):
                events.append(_rejected(order_id, _WOULD_TRADE))
                return False
        order = _Order(terms, quantity)
        events.append(_accepted(order_id))
        if kind in (_STOP_LIMIT, _STOP_MARKET):
            stop = terms.stop_price
            last = self._last_price
            if last and (last >= stop if terms.side == _BUY else last <= stop):
                events.append(_triggered(order_id))
                return self._execute(order, events)
            self._add_pending(order, events)
            return True
        return self._execute(order, events)

    def _cancel(self, command: CancelOrder, events: list[BookEvent]) -> bool:
        order_id = command.order_id
        order = self._orders.get(order_id)
        if order is None or order.wallet_id != command.wallet_id:
            events.append(_rejected(order_id, _UNKNOWN_ORDER))
            return False
        del self._orders[order_id]
        if order.pending:
            self._remove_pending(order)
        else:
            self._unlink(order)
        events.append(_canceled(order_id, order.remaining, _REQUESTED))
        return True

    def _replace(self, command: ReplaceOrder, events: list[BookEvent]) -> bool:
        order_id = command.order_id
        order = self._orders.get(order_id)
        if order is None or order.wallet_id != command.wallet_id:
            events.append(_rejected(order_id, _UNKNOWN_ORDER))
            return False
        if order.pending:
            events.append(_rejected(order_id, _NOT_ALLOWED))
            return False
        price = command.price
        quantity = command.quantity
        if price <= 0:
            events.append(_rejected(order_id, _INVALID_PRICE))
            return False
        old_price = order.price
        old_remaining = order.remaining
        remaining = quantity - order.quantity + old_remaining  # the new total less what filled
        if remaining <= 0:
            events.append(_rejected(order_id, _INVALID_QUANTITY))
            return False
        if price == old_price and remaining <= old_remaining:
            events.append(_replaced(order_id, price, quantity, remaining, True))
            if remaining == old_remaining:
                return False
            order.quantity = quantity
            order.remaining = remaining
            if order.visible > remaining:
                order.visible = remaining
            return True
        # Priority is lost: out of its level, then in again as an incoming GTC limit order.
        # This is most of a busy book's traffic, hence written out rather than shared.
        crosses = False
        if order.side == _BUY:
            levels = self._bid_levels
            prices = self._bid_prices
            best = -1  # index of the best price in `prices`
            opposite = self._ask_prices
            if opposite and opposite[0] <= price:
                crosses = True
        else:
            levels = self._ask_levels
            prices = self._ask_prices
            best = 0
            opposite = self._bid_prices
            if opposite and opposite[-1] >= price:
                crosses = True
        if crosses and order.post_only:
            events.append(_rejected(order_id, _WOULD_TRADE))
            return False
        level = levels[old_price]
        level.remove(order)
        if not level:
            if old_price == prices[best] or self._empty_levels >= _EMPTY_LEVELS_KEPT:
                self._level_emptied(order.side, old_price)
            else:
                self._empty_levels += 1  # kept for reuse: see _level_emptied
        order.price = price
        order.quantity = quantity
        events.append(_replaced(order_id, price, quantity, remaining, False))
        if crosses:
            take = self._take_asks if order.side == _BUY else self._take_bids
            remaining = take(order_id, order.wallet_id, remaining, price, events)
            if not remaining:
                order.remaining = order.visible = 0
                del self._orders[order_id]
                return True
        order.remaining = remaining
        display = order.display
        visible = display if display and display < remaining else remaining
        order.visible = visible
        new_level = levels.get(price)
        if new_level is None:
            levels[price] = [order]
            insort(prices, price)
        else:
            if not new_level:
                self._empty_levels -= 1
            new_level.append(order)
        priority = self._next_priority
        self._next_priority = priority + 1
        order.priority = priority
        events.append(_rested(order_id, price, remaining, visible, priority))
        return True

    # ------------------------------------------------------------------ matching

    def _execute(self, order: _Order, events: list[BookEvent]) -> bool:
        """Match an accepted (or just triggered) order, then rest or cancel what is left.

        Returns whether the book changed. The order is not in `_orders` yet.
        """
        terms = order.terms
        side = order.side
        kind = terms.kind
        remaining = order.remaining
        if kind in (_MARKET, _STOP_MARKET):
            collar_limit = self._market_limit(side, order.price)
            if collar_limit is None:
                events.append(_canceled(order.order_id, remaining, _NO_LIQUIDITY))
                return False
            limit = collar_limit
            rests = False
        else:
            limit = order.price
            rests = terms.time_in_force == _GTC
        if terms.time_in_force == _FOK and not self._can_fill(
            side, order.wallet_id, limit, remaining
        ):
            events.append(_canceled(order.order_id, remaining, _FILL_OR_KILL))
            return False
        events_before = len(events)
        if side == _BUY:
            ask_prices = self._ask_prices
            if ask_prices and ask_prices[0] <= limit:
                remaining = self._take_asks(
                    order.order_id, order.wallet_id, remaining, limit, events
                )
        else:
            bid_prices = self._bid_prices
            if bid_prices and bid_prices[-1] >= limit:
                remaining = self._take_bids(
                    order.order_id, order.wallet_id, remaining, limit, events
                )
        order.remaining = remaining
        if not remaining:
            return True
        if rests:
            self._orders[order.order_id] = order
            self._rest(order, events)
            return True
        events.append(_canceled(order.order_id, remaining, _UNFILLED))
        return len(events) - 1 != events_before

    # The two taking loops mirror each other (best price first, `prices[0]` for asks,
    # `prices[-1]` for bids); they are the inner loop of every trade, hence not shared.
    # A level is walked by index; what was filled or canceled leaves it in one `del`.

    def _take_asks(
        self,
        order_id: int,
        wallet_id: str,
        remaining: int,
        limit: int,
        events: list[BookEvent],
    ) -> int:
        """A buy takes from the asks up to `limit`; returns its remaining quantity."""
        prices = self._ask_prices
        levels = self._ask_levels
        orders = self._orders
        append = events.append
        first_trade_id = trade_id = self._next_trade_id
        last_price = 0
        while prices:
            price = prices[0]
            level = levels[price]
            if not level:  # left behind the best level, now the best: drop it
                del levels[price]
                del prices[0]
                self._empty_levels -= 1
                continue
            if not remaining or price > limit:
                break
            index = 0
            while index < len(level):
                maker = level[index]
                maker_id = maker.order_id
                maker_wallet_id = maker.wallet_id
                index += 1
                if maker_wallet_id == wallet_id:
                    del orders[maker_id]
                    append(_canceled(maker_id, maker.remaining, _SELF_TRADE))
                    continue
                visible = maker.visible
                last_price = price
                if remaining < visible:
                    index -= 1  # the maker stays first in its level
                    maker.visible = visible - remaining
                    maker_remaining = maker.remaining - remaining
                    maker.remaining = maker_remaining
                    append(
                        _trade(
                            trade_id,
                            price,
                            remaining,
                            _BUY,
                            maker_id,
                            maker_wallet_id,
                            maker_remaining,
                            order_id,
                            wallet_id,
                            0,
                        )
                    )
                    trade_id += 1
                    remaining = 0
                    break
                remaining -= visible
                maker_remaining = maker.remaining - visible
                maker.remaining = maker_remaining
                append(
                    _trade(
                        trade_id,
                        price,
                        visible,
                        _BUY,
                        maker_id,
                        maker_wallet_id,
                        maker_remaining,
                        order_id,
                        wallet_id,
                        remaining,
                    )
                )
                trade_id += 1
                if maker_remaining:
                    self._refill(maker, maker_remaining, level, events)
                else:
                    maker.visible = 0
                    del orders[maker_id]
                if not remaining:
                    break
            if index == len(level):
                del levels[price]
                del prices[0]
            elif index:
                del level[:index]
        if trade_id != first_trade_id:
            self._next_trade_id = trade_id
            self._last_price = last_price
        return remaining

    def _take_bids(
        self,
        order_id: int,
        wallet_id: str,
        remaining: int,
        limit: int,
        events: list[BookEvent],
    ) -> int:
        """A sell takes from the bids down to `limit`; returns its remaining quantity.

        The mirror of `_take_asks`, written out rather than shared: the matching loop is
        the hottest code of the book, and one copy per side keeps side tests out of it.
        """
        prices = self._bid_prices
        levels = self._bid_levels
        orders = self._orders
        append = events.append
        first_trade_id = trade_id = self._next_trade_id
        last_price = 0
        while prices:
            price = prices[-1]
            level = levels[price]
            if not level:  # left behind the best level, now the best: drop it
                del levels[price]
                prices.pop()
                self._empty_levels -= 1
                continue
            if not remaining or price < limit:
                break
            index = 0
            while index < len(level):
                maker = level[index]
                maker_id = maker.order_id
                maker_wallet_id = maker.wallet_id
                index += 1
                if maker_wallet_id == wallet_id:
                    del orders[maker_id]
                    append(_canceled(maker_id, maker.remaining, _SELF_TRADE))
                    continue
                visible = maker.visible
                last_price = price
                if remaining < visible:
                    index -= 1  # the maker stays first in its level
                    maker.visible = visible - remaining
                    maker_remaining = maker.remaining - remaining
                    maker.remaining = maker_remaining
                    append(
                        _trade(
                            trade_id,
                            price,
                            remaining,
                            _SELL,
                            maker_id,
                            maker_wallet_id,
                            maker_remaining,
                            order_id,
                            wallet_id,
                            0,
                        )
                    )
                    trade_id += 1
                    remaining = 0
                    break
                remaining -= visible
                maker_remaining = maker.remaining - visible
                maker.remaining = maker_remaining
                append(
                    _trade(
                        trade_id,
                        price,
                        visible,
                        _SELL,
                        maker_id,
                        maker_wallet_id,
                        maker_remaining,
                        order_id,
                        wallet_id,
                        remaining,
                    )
                )
                trade_id += 1
                if maker_remaining:
                    self._refill(maker, maker_remaining, level, events)
                else:
                    maker.visible = 0
                    del orders[maker_id]
                if not remaining:
                    break
            if index == len(level):
                del levels[price]
                prices.pop()
            elif index:
                del level[:index]
        if trade_id != first_trade_id:
            self._next_trade_id = trade_id
            self._last_price = last_price
        return remaining

    def _refill(
        self, maker: _Order, remaining: int, level: list[_Order], events: list[BookEvent]
    ) -> None:
        """An iceberg's tip was consumed: show the next one, at the back of its level."""
        display = maker.display
        visible = display if display < remaining else remaining
        maker.visible = visible
        priority = self._next_priority
        self._next_priority = priority + 1
        maker.priority = priority
        level.append(maker)
        events.append(_rested(maker.order_id, maker.price, remaining, visible, priority))

    def _crosses(self, side: Side, price: int) -> bool:
        if side == _BUY:
            return bool(self._ask_prices) and self._ask_prices[0] <= price
        return bool(self._bid_prices) and self._bid_prices[-1] >= price

    def _market_limit(self, side: Side, cap: int) -> int | None:
        """A market order's limit: best opposite ± collar (a buy also ≤ `cap`), None = none."""
        if side == _BUY:
            if not self._ask_prices:
                return None
            limit = self._ask_prices[0] * self._collar_up // BASIS_POINTS
            return cap if cap < limit else limit
        if not self._bid_prices:
            return None
        return -(-self._bid_prices[-1] * self._collar_down // BASIS_POINTS)

    def _can_fill(self, side: Side, wallet_id: str, limit: int, quantity: int) -> bool:
        """Whether other members' orders within `limit` hold `quantity`.

        Hidden parts count: a refilled tip queues again and the taker meets it again.
        """
        available = 0
        if side == _BUY:
            for price in self._ask_prices:
                if price > limit:
                    break
                for order in self._ask_levels[price]:
                    if order.wallet_id != wallet_id:
                        available += order.remaining
                        if available >= quantity:
                            return True
        else:
            for price in reversed(self._bid_prices):
                if price < limit:
                    break
                for order in self._bid_levels[price]:
                    if order.wallet_id != wallet_id:
                        available += order.remaining
                        if available >= quantity:
                            return True
        return False

    # ------------------------------------------------------------------ resting state

    def _rest(self, order: _Order, events: list[BookEvent]) -> None:
        """Put `order` (already in `_orders`) at the back of its level with a new priority."""
        price = order.price
        remaining = order.remaining
        display = order.display
        visible = display if display and display < remaining else remaining
        order.visible = visible
        if order.side == _BUY:
            levels = self._bid_levels
            prices = self._bid_prices
        else:
            levels = self._ask_levels
            prices = self._ask_prices
        level = levels.get(price)
        if level is None:
            levels[price] = [order]
            insort(prices, price)
        else:
            if not level:
                self._empty_levels -= 1
            level.append(order)
        priority = self._next_priority
        self._next_priority = priority + 1
        order.priority = priority
        events.append(_rested(order.order_id, price, remaining, visible, priority))

    def _unlink(self, order: _Order) -> None:
        """Take a resting order out of its level (not out of `_orders`)."""
        price = order.price
        level = (self._bid_levels if order.side == _BUY else self._ask_levels)[price]
        # Compares identity first: cheap near the front, O(level) at worst, in C.
        level.remove(order)
        if not level:
            self._level_emptied(order.side, price)

    def _level_emptied(self, side: Side, price: int) -> None:
        """The level at `price` just emptied: keep it for reuse unless it is the best one."""
        self._empty_levels += 1
        if side == _BUY:
            prices = self._bid_prices
            levels = self._bid_levels
            if price == prices[-1]:
                while prices and not levels[prices[-1]]:
                    del levels[prices.pop()]
                    self._empty_levels -= 1
                return
        else:
            prices = self._ask_prices
            levels = self._ask_levels
            if price == prices[0]:
                while prices and not levels[prices[0]]:
                    del levels[prices[0]]
                    del prices[0]
                    self._empty_levels -= 1
                return
        if self._empty_levels > _EMPTY_LEVELS_KEPT:
            live = len(self._bid_levels) + len(self._ask_levels) - self._empty_levels
            if self._empty_levels > live:
                self._drop_empty_levels()

    def _drop_empty_levels(self) -> None:
        """Forget every kept empty level (amortized: at most once per many emptied levels)."""
        for levels, prices in (
            (self._bid_levels, self._bid_prices),
            (self._ask_levels, self._ask_prices),
        ):
            for price in [price for price, level in levels.items() if not level]:
                del levels[price]
            prices[:] = [price for price in prices if price in levels]
        self._empty_levels = 0

    def _add_pending(self, order: _Order, events: list[BookEvent]) -> None:
        terms = order.terms
        priority = self._next_priority
        self._next_priority = priority + 1
        order.priority = priority
        order.pending = True
        self._orders[order.order_id] = order
        if order.side == _BUY:
            insort(self._buy_stops, (terms.stop_price, priority, order.order_id))
        else:
            insort(self._sell_stops, (-terms.stop_price, priority, order.order_id))
        events.append(_pending(order.order_id, priority))

    def _remove_pending(self, order: _Order) -> None:
        stop_price = order.terms.stop_price
        if order.side == _BUY:
            stops = self._buy_stops
            key = (stop_price, order.priority, order.order_id)
        else:
            stops = self._sell_stops
            key = (-stop_price, order.priority, order.order_id)
        del stops[bisect_left(stops, key)]
        order.pending = False

    def _trigger_stops(self, events: list[BookEvent]) -> None:
        """Trigger every stop the last price reached, one at a time, until none is left.

        Each triggered order may trade and move the last price, so the heads are looked at
        again after each. Buys go lowest stop first, sells highest stop first; when both
        sides have one due, the earlier arrival (lower priority number) goes first.
        """
        buy_stops = self._buy_stops
        sell_stops = self._sell_stops
        while True:
            last = self._last_price
            buy_due = bool(buy_stops) and buy_stops[0][0] <= last
            sell_due = bool(sell_stops) and -sell_stops[0][0] >= last
            if buy_due and sell_due:
                stops = buy_stops if buy_stops[0][1] < sell_stops[0][1] else sell_stops
            elif buy_due:
                stops = buy_stops
            elif sell_due:
                stops = sell_stops
            else:
                return
            order_id = stops.pop(0)[2]
            order = self._orders.pop(order_id)
            order.pending = False
            events.append(_triggered(order_id))
            self._execute(order, events)

    # ------------------------------------------------------------------ recovery

    def restore_resting(
        self, order: BookOrder, remaining: int, visible: int, priority: int
    ) -> None:
        """Put back a resting order without matching; call in ascending priority.

        `order` carries the current terms (price, total quantity): filled = quantity - remaining.
        """
        if order.order_id in self._orders:
            raise ValueError(f"order {order.order_id} is already in the book")
        if order.kind in (_MARKET, _STOP_MARKET):
            raise ValueError(f"order {order.order_id}: a market order never rests")
        if order.price <= 0 or not 0 < remaining <= order.quantity:
            raise ValueError(f"order {order.order_id}: invalid price or remaining")
        display = order.display_quantity
        if not 0 < visible <= remaining or (visible != remaining and not 0 < visible <= display):
            raise ValueError(f"order {order.order_id}: invalid visible quantity {visible}")
        if order.side == _BUY:
            levels = self._bid_levels
            prices = self._bid_prices
            crossed = bool(self._ask_prices) and order.price >= self._ask_prices[0]
        else:
            levels = self._ask_levels
            prices = self._ask_prices
            crossed = bool(self._bid_prices) and order.price <= self._bid_prices[-1]
        if crossed:
            raise ValueError(f"order {order.order_id} would cross the book")
        level = levels.get(order.price)
        if level and level[-1].priority >= priority:
            raise ValueError(f"order {order.order_id}: priorities must ascend within a level")
        entry = _Order(order, remaining)
        entry.visible = visible
        entry.priority = priority
        self._orders[order.order_id] = entry
        if level is None:
            level = levels[order.price] = []
            insort(prices, order.price)
        elif not level:
            self._empty_levels -= 1
        level.append(entry)

    def restore_pending(self, order: BookOrder, remaining: int, priority: int) -> None:
        """Put back a pending stop without triggering it."""
        if order.order_id in self._orders:
            raise ValueError(f"order {order.order_id} is already in the book")
        if order.kind not in (_STOP_LIMIT, _STOP_MARKET) or order.stop_price <= 0:
            raise ValueError(f"order {order.order_id} is not a stop order")
        if not 0 < remaining <= order.quantity:
            raise ValueError(f"order {order.order_id}: invalid remaining {remaining}")
        entry = _Order(order, remaining)
        entry.priority = priority
        entry.pending = True
        self._orders[order.order_id] = entry
        if order.side == _BUY:
            insort(self._buy_stops, (order.stop_price, priority, order.order_id))
        else:
            insort(self._sell_stops, (-order.stop_price, priority, order.order_id))

    def restore_counters(
        self, *, last_price: int, next_trade_id: int, next_priority: int, sequence: int
    ) -> None:
        """Set the counters after the orders are back (`next_priority` beyond all of them)."""
        highest = max((order.priority for order in self._orders.values()), default=0)
        if next_priority <= highest:
            raise ValueError(f"next_priority {next_priority} is not above {highest}")
        if last_price < 0 or sequence < 0:
            raise ValueError("last_price and sequence cannot be negative")
        self._last_price = last_price
        self._next_trade_id = next_trade_id
        self._next_priority = next_priority
        self._sequence = sequence
