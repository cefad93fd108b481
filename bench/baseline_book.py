"""A plain pure-Python price-time book, the baseline that `matching.py` measures beside ours.

Limit orders (GTC / IOC), cancel and replace (as cancel + new), per-level deques, sorted
price lists with bisect, events as plain tuples. No stops, icebergs, FOK, post-only,
self-trade prevention, market collars, invariant checks or typed events: the cost of
those features is what the ratio between the two books shows.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from typing import Any

from strongroom.actors.messages import CancelOrder, PlaceOrder, ReplaceOrder, Side, TimeInForce

BUY = Side.BUY


class PlainBook:
    def __init__(self) -> None:
        self.levels: tuple[dict[int, deque[list[Any]]], dict[int, deque[list[Any]]]] = ({}, {})
        self.prices: tuple[list[int], list[int]] = ([], [])  # ascending, both sides
        self.orders: dict[int, list[Any]] = {}  # id → [id, side, price, remaining, filled]
        self.trade_id = 0

    def handle_batch(self, commands: Iterable[Any]) -> list[tuple[Any, ...]]:
        events: list[tuple[Any, ...]] = []
        for command in commands:
            if type(command) is PlaceOrder:
                order = command.order
                self.place(order.order_id, order.side, order.price, order.quantity, 0,
                           order.time_in_force == TimeInForce.IOC, events)  # fmt: skip
            elif type(command) is CancelOrder:
                entry = self.remove(command.order_id)
                events.append(("canceled", command.order_id) if entry else ("rejected",))
            elif type(command) is ReplaceOrder:
                entry = self.remove(command.order_id)
                if entry is None:
                    events.append(("rejected",))
                    continue
                events.append(("replaced", command.order_id))
                remaining = command.quantity - entry[4]
                self.place(command.order_id, entry[1], command.price, remaining, entry[4], False,
                           events)  # fmt: skip
        return events

    def place(
        self, order_id: int, side: Side, price: int, remaining: int, filled: int, ioc: bool,
        events: list[tuple[Any, ...]],
    ) -> None:  # fmt: skip
        opposite = 1 - side
        levels, prices = self.levels[opposite], self.prices[opposite]
        while remaining and prices:
            best = prices[0] if side == BUY else prices[-1]
            if (side == BUY and best > price) or (side != BUY and best < price):
                break
            level = levels[best]
            while remaining and level:
                maker = level[0]
                quantity = min(remaining, maker[3])
                remaining -= quantity
                filled += quantity
                maker[3] -= quantity
                maker[4] += quantity
                self.trade_id += 1
                events.append(("trade", self.trade_id, best, quantity, maker[0], order_id))
                if not maker[3]:
                    level.popleft()
                    del self.orders[maker[0]]
            if not level:
                del levels[best]
                prices.pop(0 if side == BUY else -1)
        if remaining and not ioc:
            entry = [order_id, side, price, remaining, filled]
            self.orders[order_id] = entry
            level = self.levels[side].get(price)
            if level is None:
                self.levels[side][price] = deque([entry])
                insort(self.prices[side], price)
            else:
                level.append(entry)
            events.append(("rested", order_id))
        elif remaining:
            events.append(("canceled", order_id))

    def remove(self, order_id: int) -> list[Any] | None:
        entry = self.orders.pop(order_id, None)
        if entry is None:
            return None
        side, price = entry[1], entry[2]
        level = self.levels[side][price]
        level.remove(entry)
        if not level:
            del self.levels[side][price]
            prices = self.prices[side]
            del prices[bisect_left(prices, price)]
        return entry
