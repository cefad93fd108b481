"""Agents: what each one does when an arrival picks it. Pure decisions, no I/O.

An agent owns one wallet and decides from its own seeded random stream, the market's
mid at the arrival's intended time and what it knows of its live orders. The edge it
uses carries the action out; the answer comes back through `settled`.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from strongroom.actors.messages import OrderKind, Side, TimeInForce
from strongroom.config import Market, TradingConfig
from strongroom.sims.market import BPS, Walk
from strongroom.sims.scenarios import Population


@dataclass(frozen=True, slots=True)
class Place:
    market: str
    side: Side
    kind: OrderKind
    price: int  # ticks; 0 for market orders
    quantity: int  # lots
    stop_price: int = 0
    display_quantity: int = 0
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False

    @property
    def rests(self) -> bool:
        """Whether the order may stay live after its answer (a GTC limit, or any stop)."""
        return self.kind in (OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET) or (
            self.time_in_force is TimeInForce.GTC
        )


@dataclass(frozen=True, slots=True)
class Cancel:
    market: str
    ref: int  # the order as its edge knows it: order id, or MTF client order id


@dataclass(frozen=True, slots=True)
class Deposit:
    currency: str
    amount: int  # minor units
    tid: str
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Withdraw:
    code: str  # a withdrawal currency code: USDTTRC20
    amount: str  # decimal string
    address: str
    custom_id: str
    retry: bool = False


Action = Place | Cancel | Deposit | Withdraw


def action_name(action: Action) -> str:
    if isinstance(action, Place):
        return "place"
    if isinstance(action, Cancel):
        return "cancel"
    return "deposit" if isinstance(action, Deposit) else "withdraw"


def _lots(market: Market, text: str) -> int:
    return max(1, int((Decimal(text) / market.lot_size).to_integral_value(ROUND_DOWN)))


def _minor(decimals: int, text: str) -> int:
    return max(1, int((Decimal(text).scaleb(decimals)).to_integral_value(ROUND_DOWN)))


@dataclass(slots=True)
class Agent:
    name: str
    population: Population
    config: TradingConfig
    rng: random.Random
    walk: Walk | None  # order kinds only
    run_id: str
    wallet_id: str = ""
    # refs of orders this agent believes live, oldest first
    live: deque[int] = field(default_factory=deque)
    sent_keys: list[Deposit | Withdraw] = field(default_factory=list)
    requests: int = 0

    @classmethod
    def make(
        cls,
        population: Population,
        index: int,
        config: TradingConfig,
        walks: dict[str, Walk],
        seed: int,
        run_id: str,
    ) -> Agent:
        name = f"{population.name}-{index}"
        return cls(
            name,
            population,
            config,
            random.Random(f"{seed}/agent/{name}"),
            walks.get(population.market),
            run_id,
        )

    def _quantity(self, market: Market, at_least: int = 1) -> int:
        low, high = (_lots(market, bound) for bound in self.population.quantity)
        return max(at_least, self.rng.randint(low, high))

    def _side(self, sell_probability: float) -> Side:
        return Side.SELL if self.rng.random() < sell_probability else Side.BUY

    def _cancel_oldest(self, still_live: set[int] | None) -> Cancel | None:
        """Cancel the oldest order still believed live (those known to have ended are
        forgotten first); None when there is none."""
        assert self.walk is not None
        while self.live:
            ref = self.live.popleft()
            if still_live is None or ref in still_live:
                return Cancel(self.walk.market.symbol, ref)
        return None

    def decide(self, at_s: float, still_live: set[int] | None = None) -> Action:
        """The action of an arrival at `at_s` (seconds into the run). `still_live`: the
        refs the edge knows to be live (MTF reports fills and cancels), None if unknown."""
        self.requests += 1
        kind = self.population.kind
        if kind == "depositor":
            return self._deposit()
        if kind == "withdrawer":
            return self._withdraw()
        assert self.walk is not None
        if still_live is not None:
            self.live = deque(ref for ref in self.live if ref in still_live)
        if kind != "taker" and len(self.live) >= self.population.open_max:
            cancel = self._cancel_oldest(still_live)
            if cancel is not None:
                return cancel
        if kind == "market_maker":
            return self._quote(at_s)
        if kind == "taker":
            return self._take(at_s)
        if kind == "iceberg":
            return self._iceberg(at_s)
        return self._stop(at_s)

    def _quote(self, at_s: float) -> Place:
        walk, population = self.walk, self.population
        assert walk is not None
        side = self._side(0.5)
        steps = self.rng.randint(1, population.levels)
        away = steps * population.spacing_bps * BPS
        mid = walk.mid(at_s)
        price = walk.ticks(mid * (1 - away) if side is Side.BUY else mid * (1 + away))
        return Place(
            walk.market.symbol, side, OrderKind.LIMIT, price, self._quantity(walk.market),
            post_only=population.post_only,
        )  # fmt: skip

    def _take(self, at_s: float) -> Place:
        walk, population = self.walk, self.population
        assert walk is not None
        side = self._side(walk.sell_probability(at_s, population.sell_probability))
        quantity = self._quantity(walk.market)
        if population.order == "market":
            return Place(
                walk.market.symbol, side, OrderKind.MARKET, 0, quantity,
                time_in_force=TimeInForce.IOC,
            )  # fmt: skip
        away = population.slippage_bps * BPS
        mid = walk.mid(at_s)
        price = walk.ticks(mid * (1 + away) if side is Side.BUY else mid * (1 - away))
        return Place(
            walk.market.symbol, side, OrderKind.LIMIT, price, quantity,
            time_in_force=TimeInForce.IOC,
        )  # fmt: skip

    def _iceberg(self, at_s: float) -> Place:
        walk, population = self.walk, self.population
        assert walk is not None
        side = self._side(0.5)
        away = self.rng.uniform(*population.offset_bps) * BPS
        mid = walk.mid(at_s)
        price = walk.ticks(mid * (1 - away) if side is Side.BUY else mid * (1 + away))
        quantity = self._quantity(walk.market, at_least=2)
        display = min(quantity - 1, max(1, int(quantity * population.display_fraction)))
        return Place(
            walk.market.symbol, side, OrderKind.LIMIT, price, quantity,
            display_quantity=display,
        )  # fmt: skip

    def _stop(self, at_s: float) -> Place:
        walk, population = self.walk, self.population
        assert walk is not None
        if population.side == "both":
            side = self._side(population.sell_probability)
        else:
            side = Side.SELL if population.side == "sell" else Side.BUY
        away = self.rng.uniform(*population.stop_offset_bps) * BPS
        mid = walk.mid(at_s)
        # A sell stop waits below the price (it sells when the price falls to it).
        stop = mid * (1 - away) if side is Side.SELL else mid * (1 + away)
        quantity = self._quantity(walk.market)
        if population.stop_kind == "stop_market":
            return Place(
                walk.market.symbol, side, OrderKind.STOP_MARKET, 0, quantity,
                stop_price=walk.ticks(stop), time_in_force=TimeInForce.IOC,
            )  # fmt: skip
        beyond = population.limit_offset_bps * BPS
        limit = stop * (1 - beyond) if side is Side.SELL else stop * (1 + beyond)
        return Place(
            walk.market.symbol, side, OrderKind.STOP_LIMIT, walk.ticks(limit), quantity,
            stop_price=walk.ticks(stop),
        )  # fmt: skip

    def _retry(self) -> Deposit | Withdraw | None:
        if self.sent_keys and self.rng.random() < self.population.retry_probability:
            earlier = self.rng.choice(self.sent_keys)
            if isinstance(earlier, Deposit):
                return Deposit(earlier.currency, earlier.amount, earlier.tid, retry=True)
            return Withdraw(
                earlier.code, earlier.amount, earlier.address, earlier.custom_id, retry=True
            )
        return None

    def _deposit(self) -> Deposit:
        retry = self._retry()
        if isinstance(retry, Deposit):
            return retry
        population = self.population
        decimals = self.config.currencies[population.currency].decimals
        low, high = (_minor(decimals, bound) for bound in population.amount)
        deposit = Deposit(
            population.currency,
            self.rng.randint(low, high),
            f"sim-{self.run_id}-{self.name}-{self.requests}",
        )
        self.sent_keys.append(deposit)
        return deposit

    def _withdraw(self) -> Withdraw:
        retry = self._retry()
        if isinstance(retry, Withdraw):
            return retry
        population = self.population
        low, high = (Decimal(bound) for bound in population.amount)
        # Whole cents, so that any USDT-like currency takes the amount as it is.
        cents = self.rng.randint(int(low * 100), int(high * 100))
        withdrawal = Withdraw(
            population.currency,
            str(Decimal(cents).scaleb(-2)),
            population.address,
            f"sim-{self.run_id}-{self.name}-{self.requests}",
        )
        self.sent_keys.append(withdrawal)
        return withdrawal

    def settled(self, action: Action, ref: int | None, live: bool) -> None:
        """The answer to `action`: an order now live is remembered, to be canceled later."""
        if isinstance(action, Place) and live and ref is not None:
            self.live.append(ref)
