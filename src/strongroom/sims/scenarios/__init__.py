"""Load scenarios: TOML files shipped in this package (or any path), checked on load.

A scenario is data: how long, how many arrivals a second, which markets (each a mid
that walks at random), shocks to those walks, and populations of agents, each of one
kind on one edge:

| kind | what an arrival makes it do | edges |
|---|---|---|
| `market_maker` | a GTC limit around the mid (or cancel its oldest) | inproc, rest, mtf |
| `taker` | a market or IOC order across the spread | inproc, rest, mtf |
| `iceberg` | a GTC limit near the mid with a display quantity | inproc, rest, mtf |
| `stop` | a stop-market (or stop-limit) order beyond the mid | inproc, rest, mtf |
| `depositor` | an accepted deposit (sometimes a retry of one) | inproc, rest |
| `withdrawer` | `POST /withdrawal/` (sometimes a retry) | rest |
| `subscriber` | none: it holds a websocket on the feed all along | ws |

Every field is described on `Population`; unknown fields are refused.
"""

from __future__ import annotations

import importlib.resources
from decimal import Decimal, InvalidOperation
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import msgspec

from strongroom.config import TradingConfig

Kind = Literal["market_maker", "taker", "iceberg", "stop", "depositor", "withdrawer", "subscriber"]
Edge = Literal["inproc", "rest", "mtf", "ws"]
ORDER_KINDS = frozenset({"market_maker", "taker", "iceberg", "stop"})
EDGES_OF: dict[str, frozenset[str]] = {
    **dict.fromkeys(ORDER_KINDS, frozenset({"inproc", "rest", "mtf"})),
    "depositor": frozenset({"inproc", "rest"}),
    "withdrawer": frozenset({"rest"}),
    "subscriber": frozenset({"ws"}),
}
SUFFIX = ".toml"


class ScenarioError(ValueError):
    pass


class MarketSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A market the scenario trades, and the random walk of its fair price (the mid)."""

    symbol: str
    mid: str  # the walk's start, a decimal string in the quote currency
    volatility_bps: float = 5.0  # standard deviation of the walk over one second, bps
    drift_bps_per_s: float = 0.0


class Shock(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A window of the run (fractions of the duration, so that --duration scales it) in
    which a market's mid drifts hard and its takers lean to one side."""

    market: str
    start: float  # fraction of the duration, 0..1
    length: float  # fraction of the duration
    drift_bps_per_s: float
    sell_probability: float | None = None  # takers' during the shock (None: unchanged)
    volatility_bps: float | None = None


class Population(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    kind: Kind
    edge: Edge
    count: int = 1
    weight: float = 1.0  # arrivals per agent, relative to other populations' agents
    market: str = ""  # order kinds: the market they trade
    funds: dict[str, str] = {}  # deposited (accepted) into each agent's wallet at the start
    # orders
    quantity: tuple[str, str] = ("0", "0")  # base quantity range; rounded to the lot
    open_max: int = 40  # live orders an agent keeps; at the limit it cancels its oldest
    levels: int = 5  # market_maker: quote 1..levels steps away from the mid
    spacing_bps: float = 5.0  # market_maker: one step, bps of the mid
    post_only: bool = False  # market_maker
    order: Literal["market", "ioc"] = "market"  # taker
    slippage_bps: float = 20.0  # taker, ioc: how far across the mid its limit goes
    sell_probability: float = 0.5  # taker, stop (side "both")
    offset_bps: tuple[float, float] = (0.0, 20.0)  # iceberg: distance from the mid
    display_fraction: float = 0.2  # iceberg: displayed part of the quantity
    stop_offset_bps: tuple[float, float] = (100.0, 500.0)  # stop: stop price from the mid
    side: Literal["buy", "sell", "both"] = "both"  # stop
    stop_kind: Literal["stop_market", "stop_limit"] = "stop_market"
    limit_offset_bps: float = 50.0  # stop_limit: the limit beyond its stop price
    # deposits and withdrawals
    currency: str = ""  # depositor: a ledger currency; withdrawer: a withdrawal code
    amount: tuple[str, str] = ("0", "0")  # range, decimal strings; rounded to minor units
    retry_probability: float = 0.0  # send an earlier request again (same key, same content)
    address: str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"  # withdrawer: a TRON mainnet address
    # subscriber
    channels: list[str] = []
    encoding: Literal["json", "cbor"] = "json"


class Scenario(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    description: str
    duration_s: float
    rate_per_s: float
    markets: list[MarketSpec]
    agents: list[Population]
    arrivals: Literal["poisson", "fixed"] = "poisson"
    shocks: list[Shock] = []
    sample_interval_s: float = 0.5  # book depth and price samples
    drain_timeout_s: float = 20.0  # after the last arrival, for the answers still due
    in_flight_max: int = 20_000  # arrivals beyond this many unanswered are shed (counted)
    request_timeout_s: float = 30.0

    def population(self, name: str) -> Population:
        for population in self.agents:
            if population.name == name:
                return population
        raise KeyError(name)


def _directory() -> Traversable:
    return importlib.resources.files(__name__)


def names() -> list[str]:
    """The bundled scenarios, sorted."""
    return sorted(
        entry.name.removesuffix(SUFFIX)
        for entry in _directory().iterdir()
        if entry.name.endswith(SUFFIX)
    )


def load(name_or_path: str, config: TradingConfig | None = None) -> Scenario:
    """A bundled scenario by name, or a TOML file by path; checked against `config`."""
    entry = _directory().joinpath(name_or_path + SUFFIX)
    if entry.is_file():
        data = entry.read_bytes()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(
                f"no scenario {name_or_path!r}: bundled are {', '.join(names())}, "
                "or give a path to a TOML file"
            )
        data = path.read_bytes()
    try:
        scenario = msgspec.toml.decode(data, type=Scenario)
    except msgspec.ValidationError as error:
        raise ScenarioError(f"scenario {name_or_path}: {error}") from None
    if config is None:
        from strongroom.config import DEFAULT

        config = DEFAULT
    check(scenario, config)
    return scenario


def _decimal(where: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ScenarioError(f"{where}: {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ScenarioError(f"{where}: {text!r} must be a finite number >= 0")
    return value


def _range(where: str, bounds: tuple[str, str]) -> tuple[Decimal, Decimal]:
    low, high = _decimal(where, bounds[0]), _decimal(where, bounds[1])
    if not 0 < low <= high:
        raise ScenarioError(f"{where}: needs 0 < low <= high, got {bounds}")
    return low, high


def check(scenario: Scenario, config: TradingConfig) -> None:
    """Refuse what cannot run: unknown markets, edges a kind has not, empty ranges…"""
    if scenario.duration_s <= 0 or scenario.rate_per_s <= 0:
        raise ScenarioError("duration_s and rate_per_s must be positive")
    symbols = {market.symbol for market in scenario.markets}
    for market in scenario.markets:
        if market.symbol not in config.markets:
            raise ScenarioError(f"unknown market {market.symbol}")
        if _decimal(f"{market.symbol}.mid", market.mid) <= 0:
            raise ScenarioError(f"{market.symbol}: the mid must be positive")
    for shock in scenario.shocks:
        if shock.market not in symbols:
            raise ScenarioError(f"shock on {shock.market}, which the scenario does not trade")
        if not (0 <= shock.start <= 1 and 0 < shock.length <= 1):
            raise ScenarioError("a shock's start and length are fractions of the duration")
    seen: set[str] = set()
    arrivals = 0.0
    for population in scenario.agents:
        where = f"population {population.name}"
        if population.name in seen:
            raise ScenarioError(f"{where}: the name is used twice")
        seen.add(population.name)
        if population.edge not in EDGES_OF[population.kind]:
            raise ScenarioError(
                f"{where}: a {population.kind} uses {', '.join(sorted(EDGES_OF[population.kind]))}"
                f", not {population.edge}"
            )
        if population.count < 1 or population.weight < 0:
            raise ScenarioError(f"{where}: count >= 1 and weight >= 0")
        for currency, amount in population.funds.items():
            if currency not in config.currencies:
                raise ScenarioError(f"{where}: unknown currency {currency} in funds")
            _decimal(f"{where}.funds", amount)
        if population.kind in ORDER_KINDS:
            if population.market not in symbols:
                raise ScenarioError(f"{where}: market {population.market!r} is not traded")
            _range(f"{where}.quantity", population.quantity)
            if population.open_max < 1:
                raise ScenarioError(f"{where}: open_max >= 1")
            arrivals += population.count * population.weight
        elif population.kind == "depositor":
            if population.currency not in config.currencies:
                raise ScenarioError(f"{where}: unknown currency {population.currency!r}")
            _range(f"{where}.amount", population.amount)
            arrivals += population.count * population.weight
        elif population.kind == "withdrawer":
            if not population.currency:
                raise ScenarioError(f"{where}: give a withdrawal currency code (USDTTRC20)")
            _range(f"{where}.amount", population.amount)
            arrivals += population.count * population.weight
        elif not population.channels:
            raise ScenarioError(f"{where}: a subscriber needs channels")
        if not 0 <= population.retry_probability < 1:
            raise ScenarioError(f"{where}: retry_probability is in [0, 1)")
    if arrivals <= 0:
        raise ScenarioError("no population takes arrivals (all weights zero?)")
