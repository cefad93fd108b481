"""The OrderBook behaviour: unit tests per rule of SPEC §3, then a stateful model check."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from strongroom.actors.book import BookInvariantError, OrderBook
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

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderKind.LIMIT, OrderKind.MARKET
STOP_LIMIT, STOP_MARKET = OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def place(
    order_id: int,
    wallet_id: str,
    side: Side,
    price: int,
    quantity: int,
    *,
    kind: OrderKind = LIMIT,
    stop: int = 0,
    display: int = 0,
    tif: TimeInForce = GTC,
    post_only: bool = False,
) -> PlaceOrder:
    return PlaceOrder(
        BookOrder(order_id, wallet_id, side, kind, price, quantity, stop, display, tif, post_only)
    )


def buy(order_id: int, price: int, quantity: int, wallet_id: str = "b", **terms: Any) -> PlaceOrder:
    return place(order_id, wallet_id, BUY, price, quantity, **terms)


def sell(
    order_id: int, price: int, quantity: int, wallet_id: str = "s", **terms: Any
) -> PlaceOrder:
    return place(order_id, wallet_id, SELL, price, quantity, **terms)


def trade(
    trade_id: int,
    price: int,
    quantity: int,
    taker_side: Side,
    maker: tuple[int, str, int],
    taker: tuple[int, str, int],
) -> Trade:
    """`maker` and `taker` are (order id, wallet id, remaining after the fill)."""
    return Trade(trade_id, price, quantity, taker_side, *maker, *taker)


def book_with(*commands: BookCommand, **options: int) -> OrderBook:
    book = OrderBook(1, **options)
    book.handle_batch(commands)
    book.check_invariants()
    return book


def snapshot(book: OrderBook) -> tuple[object, ...]:
    return (book.open_orders(), book.depth(1000), book.last_price, book.sequence)


# --------------------------------------------------------------------------- limit orders


def test_a_limit_order_that_does_not_cross_rests_with_a_rising_priority() -> None:
    book = OrderBook(1)
    assert book.handle(sell(1, 100, 5)) == [OrderAccepted(1), OrderRested(1, 100, 5, 5, 1)]
    assert book.handle(buy(2, 99, 3)) == [OrderAccepted(2), OrderRested(2, 99, 3, 3, 2)]
    assert (book.best_bid(), book.best_ask()) == (99, 100)
    assert book.depth(10) == ([(99, 3)], [(100, 5)])
    assert book.sequence == 2
    assert book.last_price == 0


def test_a_crossing_order_trades_at_the_resting_price() -> None:
    book = book_with(sell(1, 100, 5))
    assert book.handle(buy(2, 105, 3)) == [
        OrderAccepted(2),
        trade(1, 100, 3, BUY, (1, "s", 2), (2, "b", 0)),
    ]
    assert book.last_price == 100
    assert book.depth(10) == ([], [(100, 2)])


def test_a_partly_filled_order_rests_its_remainder() -> None:
    book = book_with(sell(1, 100, 5))
    assert book.handle(buy(2, 101, 8)) == [
        OrderAccepted(2),
        trade(1, 100, 5, BUY, (1, "s", 0), (2, "b", 3)),
        OrderRested(2, 101, 3, 3, 2),
    ]
    assert book.depth(10) == ([(101, 3)], [])


def test_better_prices_trade_first_then_earlier_orders() -> None:
    book = book_with(sell(1, 101, 2, "x"), sell(2, 100, 2, "y"), sell(3, 100, 2, "z"))
    assert book.handle(buy(4, 101, 5)) == [
        OrderAccepted(4),
        trade(1, 100, 2, BUY, (2, "y", 0), (4, "b", 3)),
        trade(2, 100, 2, BUY, (3, "z", 0), (4, "b", 1)),
        trade(3, 101, 1, BUY, (1, "x", 1), (4, "b", 0)),
    ]
    book = book_with(buy(1, 99, 2, "x"), buy(2, 100, 2, "y"), buy(3, 100, 2, "z"))
    assert [e.maker_order_id for e in book.handle(sell(4, 99, 5)) if isinstance(e, Trade)] == [
        2,
        3,
        1,
    ]


def test_trade_ids_and_priorities_start_where_told() -> None:
    book = book_with(sell(1, 100, 5), first_trade_id=70, first_priority=500)
    assert book.handle(buy(2, 100, 1)) == [
        OrderAccepted(2),
        trade(70, 100, 1, BUY, (1, "s", 4), (2, "b", 0)),
    ]
    assert book.open_orders()[0].priority == 500
    assert (book.next_trade_id, book.next_priority) == (71, 501)


# --------------------------------------------------------------------------- market orders


def test_a_market_buy_trades_up_to_the_collar_and_cancels_the_rest() -> None:
    book = book_with(sell(1, 100, 1), sell(2, 105, 1), sell(3, 106, 1))
    assert book.handle(buy(4, 1_000, 5, kind=MARKET)) == [
        OrderAccepted(4),
        trade(1, 100, 1, BUY, (1, "s", 0), (4, "b", 4)),
        trade(2, 105, 1, BUY, (2, "s", 0), (4, "b", 3)),
        OrderCanceled(4, 3, CancelReason.UNFILLED),
    ]


def test_a_market_buy_is_capped_by_what_its_funds_cover() -> None:
    book = book_with(sell(1, 100, 1), sell(2, 104, 1))
    events = book.handle(buy(3, 103, 5, kind=MARKET))
    assert [e.price for e in events if isinstance(e, Trade)] == [100]
    assert events[-1] == OrderCanceled(3, 4, CancelReason.UNFILLED)
    nothing_held = book.handle(buy(4, 0, 5, kind=MARKET))
    assert nothing_held == [OrderAccepted(4), OrderCanceled(4, 5, CancelReason.UNFILLED)]


def test_a_market_sell_trades_down_to_the_collar() -> None:
    book = book_with(buy(1, 100, 1), buy(2, 95, 1), buy(3, 94, 1))
    events = book.handle(sell(4, 0, 5, kind=MARKET))
    assert [e.price for e in events if isinstance(e, Trade)] == [100, 95]
    assert events[-1] == OrderCanceled(4, 3, CancelReason.UNFILLED)


def test_the_collar_rounds_towards_the_best_price() -> None:
    # 33 × 1.05 = 34.65 → 34; 33 × 0.95 = 31.35 → 32.
    book = book_with(sell(1, 33, 1), sell(2, 34, 1), sell(3, 35, 1))
    events = book.handle(buy(4, 1_000, 5, kind=MARKET))
    assert [e.price for e in events if isinstance(e, Trade)] == [33, 34]
    book = book_with(buy(1, 33, 1), buy(2, 32, 1), buy(3, 31, 1))
    events = book.handle(sell(4, 0, 5, kind=MARKET))
    assert [e.price for e in events if isinstance(e, Trade)] == [33, 32]
    book = book_with(sell(1, 100, 1), sell(2, 101, 1), collar_bps=100)
    assert len(book.handle(buy(3, 1_000, 2, kind=MARKET))) == 3  # 101 is within 1 %


def test_a_market_order_without_an_opposite_side_is_canceled_unfilled() -> None:
    book = book_with(buy(1, 100, 5))
    before = snapshot(book)
    assert book.handle(buy(2, 1_000, 5, kind=MARKET)) == [
        OrderAccepted(2),
        OrderCanceled(2, 5, CancelReason.NO_LIQUIDITY),
    ]
    assert snapshot(book) == before


def test_a_market_fill_or_kill_counts_only_what_is_within_the_collar() -> None:
    book = book_with(sell(1, 100, 2), sell(2, 106, 5))
    before = snapshot(book)
    assert book.handle(buy(3, 1_000, 3, kind=MARKET, tif=FOK)) == [
        OrderAccepted(3),
        OrderCanceled(3, 3, CancelReason.FILL_OR_KILL),
    ]
    assert snapshot(book) == before
    assert book.handle(buy(4, 1_000, 2, kind=MARKET, tif=FOK))[-1] == trade(
        1, 100, 2, BUY, (1, "s", 0), (4, "b", 0)
    )


# --------------------------------------------------------------------------- stops


def test_a_stop_waits_outside_the_depth_until_the_last_price_reaches_it() -> None:
    book = book_with(sell(1, 101, 1), sell(2, 102, 5))
    assert book.handle(buy(3, 102, 2, "c", kind=STOP_LIMIT, stop=101)) == [
        OrderAccepted(3),
        OrderPending(3, 3),
    ]
    assert book.depth(10) == ([], [(101, 1), (102, 5)])
    assert book.open_orders()[-1].pending
    assert book.handle(buy(4, 101, 1)) == [
        OrderAccepted(4),
        trade(1, 101, 1, BUY, (1, "s", 0), (4, "b", 0)),
        OrderTriggered(3),
        trade(2, 102, 2, BUY, (2, "s", 3), (3, "c", 0)),
    ]
    assert book.last_price == 102


def test_a_stop_already_reached_triggers_on_arrival() -> None:
    book = book_with(sell(1, 100, 1), sell(2, 103, 5), buy(3, 100, 1))
    assert book.last_price == 100
    assert book.handle(buy(4, 103, 1, kind=STOP_LIMIT, stop=99)) == [
        OrderAccepted(4),
        OrderTriggered(4),
        trade(2, 103, 1, BUY, (2, "s", 4), (4, "b", 0)),
    ]
    # A sell stop is due when the last price is at or below it.
    assert book.handle(sell(5, 0, 1, kind=STOP_MARKET, stop=103)) == [
        OrderAccepted(5),
        OrderTriggered(5),
        OrderCanceled(5, 1, CancelReason.NO_LIQUIDITY),
    ]


def test_without_any_trade_yet_a_sell_stop_waits() -> None:
    book = book_with(buy(1, 100, 1))
    assert book.handle(sell(2, 0, 1, kind=STOP_MARKET, stop=100)) == [
        OrderAccepted(2),
        OrderPending(2, 2),
    ]


def test_buy_stops_cascade_lowest_stop_first_then_by_arrival() -> None:
    book = book_with(
        sell(1, 100, 1),
        sell(2, 101, 1),
        sell(3, 102, 1),
        sell(4, 103, 10),
        buy(10, 1_000, 1, "t", kind=STOP_MARKET, stop=101),
        buy(11, 103, 1, "t", kind=STOP_LIMIT, stop=100),
        buy(12, 103, 1, "t", kind=STOP_LIMIT, stop=100),
        buy(13, 103, 1, "t", kind=STOP_LIMIT, stop=102),
    )
    events = book.handle(buy(20, 100, 1))
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [11, 12, 10, 13]
    # Each triggered order trades at the then best ask: 101, 102, then the collar of the
    # stop-market (103 × 1.05) lets it take 103.
    assert [(e.taker_order_id, e.price) for e in events if isinstance(e, Trade)] == [
        (20, 100),
        (11, 101),
        (12, 102),
        (10, 103),
        (13, 103),
    ]
    assert book.open_orders()[0].remaining == 8


def test_sell_stops_trigger_highest_stop_first_then_by_arrival() -> None:
    book = book_with(
        buy(1, 100, 1),
        buy(2, 99, 5),
        sell(10, 99, 1, "t", kind=STOP_LIMIT, stop=99),
        sell(11, 99, 1, "t", kind=STOP_LIMIT, stop=100),
        sell(12, 99, 1, "t", kind=STOP_LIMIT, stop=99),
        sell(13, 99, 1, "t", kind=STOP_LIMIT, stop=98),
    )
    events = book.handle(sell(20, 100, 1))
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [11, 10, 12]
    assert [o.order.order_id for o in book.open_orders() if o.pending] == [13]


def test_when_both_sides_are_due_the_earlier_stop_goes_first() -> None:
    book = book_with(
        sell(1, 100, 1, "x"),
        sell(2, 101, 5, "x"),
        buy(3, 99, 5, "y"),
        sell(10, 99, 1, "t", kind=STOP_LIMIT, stop=100),
        buy(11, 101, 1, "u", kind=STOP_LIMIT, stop=100),
    )
    events = book.handle(buy(20, 100, 1))
    # The sell trades at 99, after which the buy stop (100) is no longer due.
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [10]
    assert book.last_price == 99


def test_a_pending_stop_can_be_canceled_but_not_replaced() -> None:
    book = book_with(buy(1, 100, 3, kind=STOP_LIMIT, stop=105))
    assert book.handle(ReplaceOrder(1, "b", 101, 3)) == [OrderRejected(1, RejectReason.NOT_ALLOWED)]
    assert book.handle(CancelOrder(1, "b")) == [OrderCanceled(1, 3, CancelReason.REQUESTED)]
    assert book.open_orders() == []


# --------------------------------------------------------------------------- icebergs


def test_an_iceberg_shows_its_tip_and_refills_at_the_back_of_its_level() -> None:
    book = book_with(sell(1, 100, 10, "x", display=3), sell(2, 100, 2, "y"))
    assert book.depth(1) == ([], [(100, 5)])
    assert book.handle(buy(3, 100, 6)) == [
        OrderAccepted(3),
        trade(1, 100, 3, BUY, (1, "x", 7), (3, "b", 3)),
        OrderRested(1, 100, 7, 3, 3),
        trade(2, 100, 2, BUY, (2, "y", 0), (3, "b", 1)),
        trade(3, 100, 1, BUY, (1, "x", 6), (3, "b", 0)),
    ]
    assert book.depth(1) == ([], [(100, 2)])
    resting = book.open_orders()[0]
    assert (resting.remaining, resting.visible, resting.priority) == (6, 2, 3)


def test_an_incoming_order_meets_a_lone_iceberg_again_and_again() -> None:
    book = book_with(sell(1, 100, 7, display=2))
    events = book.handle(buy(2, 100, 7, tif=FOK))
    assert [e.quantity for e in events if isinstance(e, Trade)] == [2, 2, 2, 1]
    assert [e.priority for e in events if isinstance(e, OrderRested)] == [2, 3, 4]
    assert book.depth(5) == ([], [])


def test_a_resting_iceberg_remainder_shows_its_display_size() -> None:
    book = book_with(sell(1, 100, 2))
    assert book.handle(buy(2, 100, 12, display=4))[-1] == OrderRested(2, 100, 10, 4, 2)


# --------------------------------------------------------------------------- time in force


def test_an_immediate_or_cancel_remainder_is_canceled() -> None:
    book = book_with(sell(1, 100, 2))
    assert book.handle(buy(2, 100, 5, tif=IOC)) == [
        OrderAccepted(2),
        trade(1, 100, 2, BUY, (1, "s", 0), (2, "b", 3)),
        OrderCanceled(2, 3, CancelReason.UNFILLED),
    ]
    sequence = book.sequence
    assert book.handle(buy(3, 100, 5, tif=IOC)) == [
        OrderAccepted(3),
        OrderCanceled(3, 5, CancelReason.UNFILLED),
    ]
    assert book.sequence == sequence


def test_fill_or_kill_changes_nothing_when_it_cannot_fill() -> None:
    book = book_with(sell(1, 100, 3, "a"), sell(2, 100, 2, "z"), sell(3, 102, 5, "z"))
    before = snapshot(book)
    # Own orders do not count, and are not canceled by a killed order.
    assert book.handle(buy(4, 101, 4, "a", tif=FOK)) == [
        OrderAccepted(4),
        OrderCanceled(4, 4, CancelReason.FILL_OR_KILL),
    ]
    assert snapshot(book) == before
    assert book.handle(buy(5, 101, 2, "a", tif=FOK)) == [
        OrderAccepted(5),
        OrderCanceled(1, 3, CancelReason.SELF_TRADE),
        trade(1, 100, 2, BUY, (2, "z", 0), (5, "a", 0)),
    ]


def test_post_only_is_rejected_when_it_would_trade_and_rests_otherwise() -> None:
    book = book_with(sell(1, 100, 2, "a"))
    before = snapshot(book)
    assert book.handle(buy(2, 100, 1, post_only=True)) == [
        OrderRejected(2, RejectReason.WOULD_TRADE)
    ]
    assert book.handle(buy(3, 100, 1, "a", post_only=True)) == [
        OrderRejected(3, RejectReason.WOULD_TRADE)
    ]
    assert snapshot(book) == before
    assert book.handle(buy(4, 99, 1, post_only=True)) == [
        OrderAccepted(4),
        OrderRested(4, 99, 1, 1, 2),
    ]
    assert book.handle(ReplaceOrder(4, "b", 100, 1)) == [OrderRejected(4, RejectReason.WOULD_TRADE)]
    assert book.handle(buy(5, 100, 1, kind=MARKET, post_only=True)) == [
        OrderRejected(5, RejectReason.NOT_ALLOWED)
    ]


# --------------------------------------------------------------------------- self-trade


def test_self_trade_prevention_cancels_the_resting_order_and_matching_goes_on() -> None:
    book = book_with(sell(1, 100, 4, "a", display=2), sell(2, 101, 2, "z"))
    assert book.handle(buy(3, 101, 3, "a")) == [
        OrderAccepted(3),
        OrderCanceled(1, 4, CancelReason.SELF_TRADE),
        trade(1, 101, 2, BUY, (2, "z", 0), (3, "a", 1)),
        OrderRested(3, 101, 1, 1, 3),
    ]
    assert book.handle(buy(4, 100, 1, "a", tif=IOC)) == [
        OrderAccepted(4),
        OrderCanceled(4, 1, CancelReason.UNFILLED),
    ]


# --------------------------------------------------------------------------- cancel


def test_cancel_needs_a_live_order_of_the_same_wallet() -> None:
    book = book_with(sell(1, 100, 5), buy(2, 100, 2))
    assert book.handle(CancelOrder(9, "s")) == [OrderRejected(9, RejectReason.UNKNOWN_ORDER)]
    assert book.handle(CancelOrder(1, "b")) == [OrderRejected(1, RejectReason.UNKNOWN_ORDER)]
    assert book.handle(CancelOrder(2, "b")) == [OrderRejected(2, RejectReason.UNKNOWN_ORDER)]
    assert book.handle(CancelOrder(1, "s")) == [OrderCanceled(1, 3, CancelReason.REQUESTED)]
    assert book.depth(5) == ([], [])
    assert book.handle(CancelOrder(1, "s")) == [OrderRejected(1, RejectReason.UNKNOWN_ORDER)]


def test_canceling_the_best_level_moves_the_best_price() -> None:
    book = book_with(buy(1, 100, 1), buy(2, 98, 1), buy(3, 99, 1), buy(4, 99, 1))
    book.handle(CancelOrder(1, "b"))
    assert book.best_bid() == 99
    book.handle(CancelOrder(3, "b"))
    book.handle(CancelOrder(4, "b"))
    assert book.best_bid() == 98
    book.check_invariants()


# --------------------------------------------------------------------------- replace


def test_a_smaller_quantity_at_the_same_price_keeps_priority() -> None:
    book = book_with(buy(1, 99, 5, "x"), buy(2, 99, 5, "y"))
    assert book.handle(ReplaceOrder(1, "x", 99, 3)) == [OrderReplaced(1, 99, 3, 3, True)]
    assert book.depth(1) == ([(99, 8)], [])
    events = book.handle(sell(3, 99, 4))
    assert [(e.maker_order_id, e.quantity) for e in events if isinstance(e, Trade)] == [
        (1, 3),
        (2, 1),
    ]


def test_an_unchanged_replace_changes_nothing() -> None:
    book = book_with(buy(1, 99, 5))
    before = snapshot(book)
    assert book.handle(ReplaceOrder(1, "b", 99, 5)) == [OrderReplaced(1, 99, 5, 5, True)]
    assert snapshot(book) == before


def test_a_larger_quantity_or_another_price_loses_priority() -> None:
    book = book_with(buy(1, 99, 5, "x"), buy(2, 99, 5, "y"))
    assert book.handle(ReplaceOrder(1, "x", 99, 6)) == [
        OrderReplaced(1, 99, 6, 6, False),
        OrderRested(1, 99, 6, 6, 3),
    ]
    assert book.handle(ReplaceOrder(2, "y", 98, 5)) == [
        OrderReplaced(2, 98, 5, 5, False),
        OrderRested(2, 98, 5, 5, 4),
    ]
    assert book.depth(5) == ([(99, 6), (98, 5)], [])


def test_replace_quantity_is_the_new_total_filled_part_included() -> None:
    book = book_with(buy(1, 99, 10), sell(2, 99, 4))
    assert book.handle(ReplaceOrder(1, "b", 99, 4)) == [
        OrderRejected(1, RejectReason.INVALID_QUANTITY)
    ]
    assert book.handle(ReplaceOrder(1, "b", 99, 6)) == [OrderReplaced(1, 99, 6, 2, True)]
    assert book.handle(ReplaceOrder(1, "b", 0, 6)) == [OrderRejected(1, RejectReason.INVALID_PRICE)]
    assert book.handle(ReplaceOrder(1, "x", 99, 6)) == [
        OrderRejected(1, RejectReason.UNKNOWN_ORDER)
    ]
    assert book.open_orders()[0].order.quantity == 6


def test_a_replace_that_crosses_trades_as_an_incoming_order() -> None:
    book = book_with(buy(1, 99, 5), sell(2, 101, 3, "x"), sell(3, 101, 1, "b"))
    assert book.handle(ReplaceOrder(1, "b", 101, 5)) == [
        OrderReplaced(1, 101, 5, 5, False),
        trade(1, 101, 3, BUY, (2, "x", 0), (1, "b", 2)),
        OrderCanceled(3, 1, CancelReason.SELF_TRADE),
        OrderRested(1, 101, 2, 2, 4),
    ]
    book = book_with(buy(1, 99, 5), sell(2, 101, 8, "x"))
    assert book.handle(ReplaceOrder(1, "b", 101, 5))[-1] == trade(
        1, 101, 5, BUY, (2, "x", 3), (1, "b", 0)
    )
    assert book.handle(CancelOrder(1, "b")) == [OrderRejected(1, RejectReason.UNKNOWN_ORDER)]


def test_an_iceberg_keeps_its_display_size_when_replaced() -> None:
    book = book_with(sell(1, 105, 20, display=4))
    assert book.handle(ReplaceOrder(1, "s", 104, 30)) == [
        OrderReplaced(1, 104, 30, 30, False),
        OrderRested(1, 104, 30, 4, 2),
    ]
    assert book.handle(ReplaceOrder(1, "s", 104, 3)) == [OrderReplaced(1, 104, 3, 3, True)]
    assert book.depth(1) == ([], [(104, 3)])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (buy(1, 100, 0), RejectReason.INVALID_QUANTITY),
        (buy(1, 100, -3), RejectReason.INVALID_QUANTITY),
        (buy(1, 100, 3, display=-1), RejectReason.INVALID_QUANTITY),
        (buy(1, 0, 3), RejectReason.INVALID_PRICE),
        (buy(1, -5, 3, kind=MARKET), RejectReason.INVALID_PRICE),
        (buy(1, 0, 3, kind=STOP_LIMIT, stop=100), RejectReason.INVALID_PRICE),
        (buy(1, 100, 3, kind=STOP_LIMIT, stop=0), RejectReason.INVALID_PRICE),
        (sell(1, 0, 3, kind=STOP_MARKET, stop=-1), RejectReason.INVALID_PRICE),
        (sell(1, 0, 3, kind=STOP_MARKET, stop=90, post_only=True), RejectReason.NOT_ALLOWED),
    ],
)
def test_invalid_orders_are_rejected_and_change_nothing(
    command: PlaceOrder, reason: RejectReason
) -> None:
    book = book_with(sell(9, 101, 1))
    before = snapshot(book)
    assert book.handle(command) == [OrderRejected(1, reason)]
    assert snapshot(book) == before


def test_an_order_id_cannot_be_reused_while_live() -> None:
    book = book_with(sell(1, 100, 2), buy(2, 90, 1, kind=STOP_LIMIT, stop=120))
    assert book.handle(sell(1, 101, 2)) == [OrderRejected(1, RejectReason.DUPLICATE_ORDER)]
    assert book.handle(sell(2, 101, 2)) == [OrderRejected(2, RejectReason.DUPLICATE_ORDER)]
    book.handle(buy(3, 100, 2))
    assert book.handle(sell(1, 101, 2))[0] == OrderAccepted(1)


def test_a_market_buy_without_funds_is_accepted() -> None:
    assert book_with().handle(buy(1, 0, 3, kind=MARKET))[0] == OrderAccepted(1)


def test_anything_but_a_book_command_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        OrderBook(1).handle(OrderAccepted(1))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the book


def test_sequence_counts_the_commands_that_changed_the_book() -> None:
    book = OrderBook(1)
    steps: list[tuple[BookCommand, int]] = [
        (sell(1, 100, 5), 1),
        (buy(2, 0, 1), 0),  # rejected
        (buy(3, 99, 1, tif=IOC), 0),  # nothing to trade with
        (buy(4, 100, 1, tif=IOC), 1),
        (ReplaceOrder(1, "s", 100, 5), 0),  # same terms
        (ReplaceOrder(1, "s", 100, 3), 1),
        (buy(5, 99, 1, kind=STOP_LIMIT, stop=101), 1),
        (CancelOrder(5, "b"), 1),
        (CancelOrder(5, "b"), 0),
    ]
    for command, increment in steps:
        sequence = book.sequence
        book.handle(command)
        assert book.sequence == sequence + increment, command


def test_a_batch_gives_the_events_of_its_commands_in_order() -> None:
    commands: list[BookCommand] = [
        sell(1, 100, 5),
        buy(2, 101, 2),
        ReplaceOrder(1, "s", 99, 5),
        CancelOrder(7, "x"),
        buy(3, 99, 1, kind=MARKET),
    ]
    one_by_one = OrderBook(1)
    expected = [event for command in commands for event in one_by_one.handle(command)]
    batched = OrderBook(1)
    assert batched.handle_batch(commands) == expected
    assert snapshot(batched) == snapshot(one_by_one)


def test_emptied_levels_are_reused_and_forgotten_in_time() -> None:
    book = book_with(*(buy(order_id, 1_000 + order_id, 1) for order_id in range(1, 3001)))
    for order_id in range(1, 3001, 2):
        book.handle(CancelOrder(order_id, "b"))
    book.check_invariants()
    for order_id in range(2, 3001, 2):
        book.handle(ReplaceOrder(order_id, "b", 1_000 + order_id - 1, 1))
        if order_id % 500 == 0:
            book.check_invariants()
    book.check_invariants()
    bids, _ = book.depth(10_000)
    assert bids == [(1_000 + price, 1) for price in range(2999, 0, -2)]
    assert book.handle(sell(5_000, 1, 1500)).count(OrderAccepted(5_000)) == 1
    assert book.depth(10_000) == ([], [])
    book.check_invariants()


def test_check_invariants_reports_a_corrupted_book() -> None:
    book = book_with(buy(1, 99, 5), sell(2, 101, 5))
    book._bid_prices.append(102)  # deliberately corrupt
    with pytest.raises(BookInvariantError):
        book.check_invariants()


def test_a_crossed_book_is_never_left_behind() -> None:
    book = book_with(buy(1, 99, 5))
    book._ask_prices.append(98)  # deliberately corrupt
    book._ask_levels[98] = []
    with pytest.raises(BookInvariantError, match="crossed"):
        book.handle(buy(2, 90, 1))


# --------------------------------------------------------------------------- recovery


def restored(book: OrderBook) -> OrderBook:
    copy = OrderBook(book.market_id, collar_bps=book.collar_bps)
    for open_order in book.open_orders():
        if open_order.pending:
            copy.restore_pending(open_order.order, open_order.remaining, open_order.priority)
        else:
            copy.restore_resting(
                open_order.order, open_order.remaining, open_order.visible, open_order.priority
            )
    copy.restore_counters(
        last_price=book.last_price,
        next_trade_id=book.next_trade_id,
        next_priority=book.next_priority,
        sequence=book.sequence,
    )
    copy.check_invariants()
    return copy


def test_a_restored_book_is_the_same_book() -> None:
    commands: list[BookCommand] = [
        sell(1, 100, 10, "x", display=3),
        sell(2, 100, 2, "y"),
        buy(3, 100, 4),
        buy(4, 98, 5, "z"),
        ReplaceOrder(4, "z", 99, 7),
        buy(5, 101, 2, "q", kind=STOP_LIMIT, stop=101),
        sell(6, 0, 2, "q", kind=STOP_MARKET, stop=90),
        sell(7, 100, 8, "w"),
        ReplaceOrder(1, "x", 100, 8),
    ]
    original = book_with(*commands)
    copy = restored(original)
    assert snapshot(copy) == snapshot(original)
    more: list[BookCommand] = [
        buy(8, 100, 9, "r"),
        sell(9, 99, 20, "r"),
        ReplaceOrder(4, "z", 101, 7),
        buy(10, 1_000, 4, "r", kind=MARKET),
    ]
    assert copy.handle_batch(more) == original.handle_batch(more)
    assert snapshot(copy) == snapshot(original)


def test_restoring_checks_what_it_is_given() -> None:
    book = OrderBook(1)
    order = BookOrder(1, "b", BUY, LIMIT, 100, 5)
    book.restore_resting(order, 5, 5, 3)
    with pytest.raises(ValueError, match="already"):
        book.restore_resting(order, 5, 5, 4)
    with pytest.raises(ValueError, match="ascend"):
        book.restore_resting(msgspec.structs.replace(order, order_id=2), 5, 5, 2)
    with pytest.raises(ValueError, match="cross"):
        book.restore_resting(BookOrder(3, "s", SELL, LIMIT, 100, 5), 5, 5, 6)
    with pytest.raises(ValueError, match="visible"):
        book.restore_resting(BookOrder(4, "s", SELL, LIMIT, 101, 5), 5, 4, 6)
    with pytest.raises(ValueError, match="stop"):
        book.restore_pending(BookOrder(5, "s", SELL, LIMIT, 101, 5), 5, 7)
    with pytest.raises(ValueError, match="next_priority"):
        book.restore_counters(last_price=0, next_trade_id=1, next_priority=3, sequence=0)


# --------------------------------------------------------------------------- the model

COLLAR_BPS = 250  # narrow enough to bind within the machine's price range
WALLETS = ("a", "b", "c")


@dataclasses.dataclass
class ModelOrder:
    """An order as the reference model sees it, rebuilt from commands and events only."""

    terms: BookOrder
    price: int  # current limit price (a replace changes it)
    total: int  # current total quantity (a replace changes it)
    remaining: int
    visible: int = 0
    priority: int = 0
    limit: int | None = None  # while taking: the worst price it may trade at


def market_limit(side: Side, best_opposite: int | None, cap: int) -> int | None:
    if best_opposite is None:
        return None
    if side == BUY:
        return min(cap, best_opposite * (10_000 + COLLAR_BPS) // 10_000)
    return -(-best_opposite * (10_000 - COLLAR_BPS) // 10_000)


class BookModel:
    """A slow, obvious book that checks each event of the real one as it replays them."""

    def __init__(self) -> None:
        self.resting: dict[int, ModelOrder] = {}
        self.pending: dict[int, ModelOrder] = {}
        self.last_price = 0
        self.top_priority = 0
        self.totals: dict[int, int] = {}  # every order ever accepted: its current total
        self.filled: dict[int, int] = {}
        self.canceled: dict[int, int] = {}

    # ------------------------------------------------------------ queries

    def best(self, side: Side) -> int | None:
        prices = [o.price for o in self.resting.values() if o.terms.side == side]
        if not prices:
            return None
        return max(prices) if side == BUY else min(prices)

    def head(self, side: Side) -> ModelOrder | None:
        """The resting order of `side` that must trade next: best price, then priority."""
        best = self.best(side)
        at_best = [o for o in self.resting.values() if o.terms.side == side and o.price == best]
        return min(at_best, key=lambda o: o.priority, default=None)

    def crosses(self, side: Side, price: int) -> bool:
        best = self.best(SELL if side == BUY else BUY)
        return best is not None and (price >= best if side == BUY else price <= best)

    def fillable(self, taker: ModelOrder, limit: int) -> int:
        side = taker.terms.side
        return sum(
            o.remaining
            for o in self.resting.values()
            if o.terms.side != side
            and o.terms.wallet_id != taker.terms.wallet_id
            and (o.price <= limit if side == BUY else o.price >= limit)
        )

    def due(self) -> ModelOrder | None:
        """The pending stop that must trigger next, if any."""
        last = self.last_price
        if not last:
            return None
        buys = [
            o for o in self.pending.values() if o.terms.side == BUY and o.terms.stop_price <= last
        ]
        sells = [
            o for o in self.pending.values() if o.terms.side == SELL and o.terms.stop_price >= last
        ]
        first_buy = min(buys, key=lambda o: (o.terms.stop_price, o.priority), default=None)
        first_sell = min(sells, key=lambda o: (-o.terms.stop_price, o.priority), default=None)
        candidates = [o for o in (first_buy, first_sell) if o is not None]
        return min(candidates, key=lambda o: o.priority, default=None)

    def limit_of(self, order: ModelOrder) -> int | None:
        if order.terms.kind in (MARKET, STOP_MARKET):
            opposite = self.best(SELL if order.terms.side == BUY else BUY)
            return market_limit(order.terms.side, opposite, order.terms.price)
        return order.price

    def new_priority(self, priority: int) -> None:
        assert priority > self.top_priority, "priorities must rise strictly"
        self.top_priority = priority

    # ------------------------------------------------------------ replay

    def replay(self, command: BookCommand, events: list[BookEvent]) -> None:
        """Apply `events` (the real book's answer to `command`), checking each one."""
        taker: ModelOrder | None = None
        killed_or_rejected = False
        refill: int | None = None  # a maker whose tip was consumed: its refill comes next
        for event in events:
            assert refill is None or (
                isinstance(event, OrderRested) and event.order_id == refill
            ), f"the refill of {refill} must follow its trade, not {event}"
            refill = None
            assert not killed_or_rejected, "nothing follows a reject or a kill"
            if isinstance(event, OrderRejected):
                assert len(events) == 1
                killed_or_rejected = True
                self.check_reject(command, event)
            elif isinstance(event, OrderAccepted):
                assert isinstance(command, PlaceOrder) and event.order_id == command.order.order_id
                assert events.index(event) == 0
                terms = command.order
                taker = ModelOrder(terms, terms.price, terms.quantity, terms.quantity)
                self.totals[terms.order_id] = terms.quantity  # an id may live again once ended
                self.filled.pop(terms.order_id, None)
                self.canceled.pop(terms.order_id, None)
                if terms.post_only:
                    assert not self.crosses(terms.side, terms.price)
                if terms.kind not in (STOP_LIMIT, STOP_MARKET):
                    taker.limit = self.limit_of(taker)
                    self.check_fill_or_kill(taker, events)
            elif isinstance(event, OrderPending):
                assert taker is not None and taker.terms.order_id == event.order_id
                assert taker.terms.kind in (STOP_LIMIT, STOP_MARKET)
                self.new_priority(event.priority)
                taker.priority = event.priority
                self.pending[event.order_id] = taker
                taker = None
            elif isinstance(event, OrderTriggered):
                if taker is not None and taker.terms.order_id == event.order_id:
                    stop = taker.terms.stop_price  # on arrival: already due
                    last = self.last_price
                    assert last and (last >= stop if taker.terms.side == BUY else last <= stop)
                else:
                    assert taker is None, "the previous taker ended first"
                    expected = self.due()
                    assert expected is not None and expected.terms.order_id == event.order_id
                    taker = self.pending.pop(event.order_id)
                taker.limit = self.limit_of(taker)
                self.check_fill_or_kill(taker, events)
            elif isinstance(event, Trade):
                assert taker is not None
                refill = self.check_trade(taker, event)
                if not taker.remaining:
                    taker = None
            elif isinstance(event, OrderRested):
                if event.order_id in self.resting:  # a refilled iceberg tip
                    maker = self.resting[event.order_id]
                    assert maker.visible == 0 and maker.remaining == event.remaining
                    assert event.visible == min(maker.terms.display_quantity, maker.remaining)
                    self.new_priority(event.priority)
                    maker.visible, maker.priority = event.visible, event.priority
                    continue
                assert taker is not None and taker.terms.order_id == event.order_id
                assert taker.terms.kind in (LIMIT, STOP_LIMIT)
                assert isinstance(command, ReplaceOrder) or taker.terms.time_in_force == GTC
                display = taker.terms.display_quantity
                shown = min(display, taker.remaining) if display else taker.remaining
                assert (event.price, event.remaining, event.visible) == (
                    taker.price,
                    taker.remaining,
                    shown,
                )
                self.new_priority(event.priority)
                taker.visible, taker.priority = event.visible, event.priority
                self.resting[event.order_id] = taker
                taker = None
            elif isinstance(event, OrderCanceled):
                taker = self.check_cancel(command, taker, event)
            elif isinstance(event, OrderReplaced):
                assert isinstance(command, ReplaceOrder) and events.index(event) == 0
                order = self.resting[event.order_id]
                filled = order.total - order.remaining
                assert event.remaining == command.quantity - filled
                self.totals[event.order_id] = order.total = event.quantity
                if event.priority_kept:
                    assert order.price == command.price and event.remaining <= order.remaining
                    order.remaining = event.remaining
                    order.visible = min(order.visible, order.remaining)
                else:
                    assert order.price != command.price or event.remaining > order.remaining
                    del self.resting[event.order_id]
                    order.price = order.limit = command.price
                    order.remaining = event.remaining
                    taker = order
            else:  # pragma: no cover
                raise AssertionError(f"unexpected event {event}")
        assert refill is None, "a consumed tip was not refilled"
        assert taker is None, f"order {taker} neither rested nor ended"
        assert self.due() is None, "a due stop was left pending"

    def check_reject(self, command: BookCommand, event: OrderRejected) -> None:
        reason = event.reason
        if isinstance(command, PlaceOrder):
            terms = command.order
            live = {**self.resting, **self.pending}
            if reason == RejectReason.DUPLICATE_ORDER:
                assert terms.order_id in live
            elif reason == RejectReason.WOULD_TRADE:
                assert terms.post_only and self.crosses(terms.side, terms.price)
            elif reason == RejectReason.NOT_ALLOWED:
                assert terms.post_only and terms.kind != LIMIT
            elif reason == RejectReason.INVALID_QUANTITY:
                assert terms.quantity <= 0 or terms.display_quantity < 0
            else:
                assert reason == RejectReason.INVALID_PRICE
            return
        order = self.resting.get(command.order_id) or self.pending.get(command.order_id)
        if reason == RejectReason.UNKNOWN_ORDER:
            assert order is None or order.terms.wallet_id != command.wallet_id
        elif reason == RejectReason.NOT_ALLOWED:
            assert isinstance(command, ReplaceOrder) and command.order_id in self.pending
        elif reason == RejectReason.WOULD_TRADE:
            assert isinstance(command, ReplaceOrder) and order is not None
            assert order.terms.post_only and self.crosses(order.terms.side, command.price)
        else:
            assert isinstance(command, ReplaceOrder) and order is not None
            assert reason in (RejectReason.INVALID_QUANTITY, RejectReason.INVALID_PRICE)

    def check_fill_or_kill(self, taker: ModelOrder, events: list[BookEvent]) -> None:
        if taker.terms.time_in_force != FOK or taker.limit is None:
            return
        killed = OrderCanceled(taker.terms.order_id, taker.remaining, CancelReason.FILL_OR_KILL)
        enough = self.fillable(taker, taker.limit) >= taker.remaining
        assert (killed not in events) == enough

    def check_trade(self, taker: ModelOrder, event: Trade) -> int | None:
        side = taker.terms.side
        maker = self.resting.get(event.maker_order_id)
        assert maker is not None and maker.terms.side != side
        assert event.taker_order_id == taker.terms.order_id and event.taker_side == side
        assert event.maker_wallet_id == maker.terms.wallet_id != taker.terms.wallet_id
        assert event.taker_wallet_id == taker.terms.wallet_id
        # Price-time priority: the maker is the head of the other side (self-trade
        # cancels of better orders were emitted before this trade).
        assert self.head(maker.terms.side) is maker
        assert event.price == maker.price
        assert taker.limit is not None
        assert event.price <= taker.limit if side == BUY else event.price >= taker.limit
        assert 0 < event.quantity <= maker.visible and event.quantity <= taker.remaining
        assert event.quantity == min(maker.visible, taker.remaining)
        maker.remaining -= event.quantity
        maker.visible -= event.quantity
        taker.remaining -= event.quantity
        assert (event.maker_remaining, event.taker_remaining) == (maker.remaining, taker.remaining)
        for order_id in (event.maker_order_id, event.taker_order_id):
            self.filled[order_id] = self.filled.get(order_id, 0) + event.quantity
        self.last_price = event.price
        if not maker.remaining:
            del self.resting[maker.terms.order_id]
            return None
        return maker.terms.order_id if not maker.visible else None

    def check_cancel(
        self, command: BookCommand, taker: ModelOrder | None, event: OrderCanceled
    ) -> ModelOrder | None:
        order_id = event.order_id
        self.canceled[order_id] = self.canceled.get(order_id, 0) + event.quantity
        reason = event.reason
        if reason == CancelReason.REQUESTED:
            assert isinstance(command, CancelOrder) and command.order_id == order_id
            order = self.resting.pop(order_id, None) or self.pending.pop(order_id)
            assert order.terms.wallet_id == command.wallet_id
            assert event.quantity == order.remaining
            return taker
        if reason == CancelReason.SELF_TRADE:
            # The taker reached one of its own wallet's orders: that one goes, the taker goes on.
            assert taker is not None and taker.limit is not None
            order = self.resting[order_id]
            assert self.head(order.terms.side) is order
            assert order.terms.wallet_id == taker.terms.wallet_id
            assert order.terms.side != taker.terms.side and event.quantity == order.remaining
            within = (
                order.price <= taker.limit
                if taker.terms.side == BUY
                else order.price >= taker.limit
            )
            assert within
            del self.resting[order_id]
            return taker
        assert taker is not None and taker.terms.order_id == order_id
        assert event.quantity == taker.remaining
        if reason == CancelReason.UNFILLED:
            assert taker.terms.kind in (MARKET, STOP_MARKET) or taker.terms.time_in_force == IOC
        elif reason == CancelReason.FILL_OR_KILL:
            assert taker.terms.time_in_force == FOK and taker.remaining == taker.total
        else:
            assert reason == CancelReason.NO_LIQUIDITY and taker.terms.kind in (
                MARKET,
                STOP_MARKET,
            )
            assert self.best(SELL if taker.terms.side == BUY else BUY) is None
        return None

    # ------------------------------------------------------------ comparisons

    def check_against(self, book: OrderBook) -> None:
        book.check_invariants()
        live = {**self.resting, **self.pending}
        actual = {o.order.order_id: o for o in book.open_orders()}
        assert actual.keys() == live.keys()
        for order_id, open_order in actual.items():
            order = live[order_id]
            assert open_order.pending == (order_id in self.pending)
            assert (open_order.remaining, open_order.visible, open_order.priority) == (
                order.remaining,
                order.visible,
                order.priority,
            )
            assert (open_order.order.price, open_order.order.quantity) == (order.price, order.total)
        for side, levels in zip((BUY, SELL), book.depth(1_000), strict=True):
            expected: dict[int, int] = {}
            for o in self.resting.values():
                if o.terms.side == side:
                    expected[o.price] = expected.get(o.price, 0) + o.visible
            ordered = sorted(expected.items(), reverse=side == BUY)
            assert levels == ordered
        assert book.last_price == self.last_price
        for order_id, total in self.totals.items():
            live_order = live.get(order_id)
            open_quantity = live_order.remaining if live_order else 0
            accounted = self.filled.get(order_id, 0) + self.canceled.get(order_id, 0)
            assert total == accounted + open_quantity, f"order {order_id} lost quantity"


prices = st.integers(min_value=96, max_value=104)
quantities = st.integers(min_value=1, max_value=8)
displays = st.sampled_from((0, 0, 0, 1, 2, 3))


@settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
class BookMachine(RuleBasedStateMachine):
    """Few wallets and a narrow price range, so that orders cross, meet their own and stop."""

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook(1, collar_bps=COLLAR_BPS)
        self.model = BookModel()
        self.next_order_id = 1
        self.steps = 0

    def run(self, command: BookCommand) -> None:
        self.steps += 1
        before = (self.book.open_orders(), self.book.last_price)
        sequence = self.book.sequence
        events = self.book.handle(command)
        self.model.replay(command, events)
        self.model.check_against(self.book)
        changed = (self.book.open_orders(), self.book.last_price) != before
        assert self.book.sequence == sequence + changed

    def new_order_id(self, data: st.DataObject) -> int:
        if data.draw(st.integers(min_value=0, max_value=20)) == 0:
            return self.some_order_id(data)  # maybe a duplicate, maybe an ended order's id
        self.next_order_id += 1
        return self.next_order_id - 1

    def some_order_id(self, data: st.DataObject) -> int:
        """Mostly a live order, sometimes any id ever used (or not yet)."""
        live = sorted({*self.model.resting, *self.model.pending})
        if data.draw(st.integers(min_value=0, max_value=5)) > 0 and live:
            return data.draw(st.sampled_from(live))
        return data.draw(st.integers(min_value=1, max_value=self.next_order_id))

    def wallet_of(self, order_id: int, data: st.DataObject) -> str:
        order = self.model.resting.get(order_id) or self.model.pending.get(order_id)
        if order is not None and data.draw(st.integers(min_value=0, max_value=7)):
            return order.terms.wallet_id
        return data.draw(st.sampled_from(WALLETS))

    def quantity(self, quantity: int, data: st.DataObject) -> int:
        if data.draw(st.integers(min_value=0, max_value=30)) == 0:
            return data.draw(st.sampled_from((0, -1)))  # invalid now and then
        return quantity

    @rule(
        side=st.sampled_from(Side),
        tif=st.sampled_from((GTC, GTC, GTC, IOC, FOK)),
        wallet_id=st.sampled_from(WALLETS),
        price=prices,
        quantity=quantities,
        display=displays,
        post_only=st.sampled_from((False, False, False, True)),
        data=st.data(),
    )
    def place_limit(
        self,
        side: Side,
        tif: TimeInForce,
        wallet_id: str,
        price: int,
        quantity: int,
        display: int,
        post_only: bool,
        data: st.DataObject,
    ) -> None:
        order_id = self.new_order_id(data)
        quantity = self.quantity(quantity, data)
        terms = BookOrder(
            order_id, wallet_id, side, LIMIT, price, quantity, 0, display, tif, post_only
        )
        self.run(PlaceOrder(terms))

    @rule(
        side=st.sampled_from(Side),
        kind=st.sampled_from((MARKET, STOP_LIMIT, STOP_MARKET)),
        tif=st.sampled_from(TimeInForce),
        wallet_id=st.sampled_from(WALLETS),
        price=prices,
        quantity=quantities,
        display=displays,
        stop=prices,
        data=st.data(),
    )
    def place_other(
        self,
        side: Side,
        kind: OrderKind,
        tif: TimeInForce,
        wallet_id: str,
        price: int,
        quantity: int,
        display: int,
        stop: int,
        data: st.DataObject,
    ) -> None:
        if kind != STOP_LIMIT:
            # A buy's cap is what its funds cover (0: nothing); a sell has no price.
            price = data.draw(st.sampled_from((0, 98, 103, 1_000))) if side == BUY else 0
        if kind == MARKET:
            stop = 0
        post_only = data.draw(st.integers(min_value=0, max_value=20)) == 0
        order_id = self.new_order_id(data)
        quantity = self.quantity(quantity, data)
        terms = BookOrder(
            order_id, wallet_id, side, kind, price, quantity, stop, display, tif, post_only
        )
        self.run(PlaceOrder(terms))

    def has_orders(self) -> bool:
        return bool(self.model.resting or self.model.pending)

    @precondition(has_orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = self.some_order_id(data)
        self.run(CancelOrder(order_id, self.wallet_of(order_id, data)))

    @precondition(has_orders)
    @rule(data=st.data(), price=prices, quantity=quantities)
    def replace(self, data: st.DataObject, price: int, quantity: int) -> None:
        resting = sorted(self.model.resting)
        if data.draw(st.integers(min_value=0, max_value=5)) > 0 and resting:
            order_id = data.draw(st.sampled_from(resting))
        else:
            order_id = self.some_order_id(data)
        order = self.model.resting.get(order_id)
        if order is not None:
            filled = order.total - order.remaining
            if data.draw(st.booleans()):
                price = order.price  # often a change that keeps priority, or none at all
                quantity = filled + data.draw(st.integers(0, order.remaining))
            elif data.draw(st.integers(min_value=0, max_value=5)):
                quantity += filled
        self.run(ReplaceOrder(order_id, self.wallet_of(order_id, data), price, quantity))

    @precondition(lambda self: self.steps % 8 == 7)
    @rule()
    def recover(self) -> None:
        """Carry on with a book rebuilt from its open orders, as after a restart."""
        self.steps += 1
        copy = restored(self.book)
        assert snapshot(copy) == snapshot(self.book)
        self.book = copy

    @invariant()
    def never_crossed(self) -> None:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        assert bid is None or ask is None or bid < ask


TestBookMachine = BookMachine.TestCase
