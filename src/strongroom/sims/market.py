"""The world the agents see: each market's fair price, a seeded random walk with shocks.

The walk is computed once for the whole run from the seed (geometric, in steps of
`STEP_S`), so the same seed gives the same path whatever the system answers; agents
quote and take around it, and the book's own prices follow it only as far as trading
makes them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

from strongroom.config import Market, TradingConfig
from strongroom.sims.scenarios import MarketSpec, Scenario, Shock

STEP_S = 0.05
BPS = 1e-4


@dataclass(frozen=True, slots=True)
class Walk:
    market: Market
    prices: tuple[float, ...]  # the mid at every step, in the quote currency
    shocks: tuple[Shock, ...]
    duration_s: float

    def mid(self, at_s: float) -> float:
        index = min(max(int(at_s / STEP_S), 0), len(self.prices) - 1)
        return self.prices[index]

    def ticks(self, price: float) -> int:
        """The nearest tick of `price`, at least one tick."""
        return max(1, round(price / float(self.market.tick_size)))

    def mid_ticks(self, at_s: float) -> int:
        return self.ticks(self.mid(at_s))

    def shock_at(self, at_s: float) -> Shock | None:
        for shock in self.shocks:
            start = shock.start * self.duration_s
            if start <= at_s < start + shock.length * self.duration_s:
                return shock
        return None

    def sell_probability(self, at_s: float, usual: float) -> float:
        shock = self.shock_at(at_s)
        if shock is None or shock.sell_probability is None:
            return usual
        return shock.sell_probability


def walk(spec: MarketSpec, scenario: Scenario, market: Market, seed: int) -> Walk:
    rng = random.Random(f"{seed}/mid/{spec.symbol}")
    shocks = tuple(shock for shock in scenario.shocks if shock.market == spec.symbol)
    duration_s = scenario.duration_s
    # Past the end too: answers are still being drained and samples still taken.
    steps = int((duration_s + scenario.drain_timeout_s) / STEP_S) + 2
    log_price = math.log(float(Decimal(spec.mid)))
    prices = [math.exp(log_price)]
    partial = Walk(market, (), shocks, duration_s)
    for step in range(1, steps):
        at_s = step * STEP_S
        shock = partial.shock_at(at_s)
        drift = spec.drift_bps_per_s if shock is None else shock.drift_bps_per_s
        volatility = (
            spec.volatility_bps
            if shock is None or shock.volatility_bps is None
            else shock.volatility_bps
        )
        log_price += drift * BPS * STEP_S + volatility * BPS * math.sqrt(STEP_S) * rng.gauss()
        prices.append(math.exp(log_price))
    return Walk(market, tuple(prices), shocks, duration_s)


def walks(scenario: Scenario, config: TradingConfig, seed: int) -> dict[str, Walk]:
    return {
        spec.symbol: walk(spec, scenario, config.markets[spec.symbol], seed)
        for spec in scenario.markets
    }
