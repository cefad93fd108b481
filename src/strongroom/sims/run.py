"""`strongroom sim run SCENARIO`: load through every edge, then the invariants and a report.

1. The target: the whole system in this process (`--target inproc`) or a running server
   (`--target http://HOST:PORT`); see `strongroom.sims.target`.
2. Provisioning through REST (`strongroom.sims.provision`): a partner, a wallet per
   agent, its funds, MTF credentials; then MTF sessions log in and feed subscribers
   subscribe.
3. Open-loop arrivals for `--duration` seconds at `--rate` a second (Poisson, or a fixed
   schedule), computed from the seed: an arrival picks an agent (weight × count of its
   population), the agent decides from the mid at the arrival's intended time, and the
   action goes out as its own task whatever the earlier ones are doing. Latency runs
   from the intended send time. Beyond `in_flight_max` unanswered arrivals, an arrival
   is shed and counted as such. Book depth and prices are sampled meanwhile.
4. Drain (answers still due, up to `drain_timeout_s`), stop the subscribers and sessions;
   in-process, stop the server as a SIGTERM would (what was accepted is committed).
5. The invariants over the database (`strongroom.sims.invariants`), PnL from the trades,
   `OUT/report.json`, PNG plots and `OUT/report.html`, and a summary on stdout.

Exit status: 0; 1 if an invariant is broken; 2 if the scenario could not run as written
(an endpoint missing, a population without its edge: said in the warnings).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
from loguru import logger
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from strongroom import config as trading_config
from strongroom.errors import StrongroomError
from strongroom.sims import invariants, report
from strongroom.sims.agents import Action, Agent, Cancel, Deposit, Place, Withdraw, action_name
from strongroom.sims.edges import (
    Acked,
    Edge,
    InprocEdge,
    MtfMember,
    RestEdge,
    Result,
    Subscriber,
    Unsupported,
)
from strongroom.sims.market import Walk, walks
from strongroom.sims.metrics import FeedFigures, Outcome, Recorder, latency_summary
from strongroom.sims.provision import ProvisioningError, provision
from strongroom.sims.rest_client import RestClient, RestClientError
from strongroom.sims.scenarios import ORDER_KINDS, Scenario, ScenarioError, load
from strongroom.sims.target import InprocSystem, Target, TargetError, remote
from strongroom.wire.client import MtfClient, MtfError
from strongroom.wire.mtf import Code

EXIT_BROKEN = 1
EXIT_DEGRADED = 2
PROGRESS_INTERVAL_S = 0.25
SUBSCRIBE_TIMEOUT_S = 30.0
DEPTH_LEVELS = 1_000
HTTP_CONNECTIONS_MAX = 256


@dataclass(slots=True)
class Run:
    scenario: Scenario
    seed: int
    target: Target
    out_dir: Path
    console: Console
    config: trading_config.TradingConfig
    warnings: list[str] = field(default_factory=list)
    degraded: bool = False
    recorder: Recorder = field(default_factory=Recorder)
    feed: FeedFigures = field(default_factory=FeedFigures)
    acked: Acked = field(default_factory=Acked)
    samples: list[report.DepthSample] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    started: float = 0.0  # loop.time() of the first arrival's intended time 0
    started_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_average_start: tuple[float, ...] = ()

    def warn(self, message: str, *, degraded: bool = True) -> None:
        self.warnings.append(message)
        self.degraded = self.degraded or degraded
        self.console.print(f"[bold red]warning:[/bold red] {message}", markup=True)

    def now_s(self) -> float:
        return asyncio.get_running_loop().time() - self.started


def _scenario(arguments: argparse.Namespace, config: trading_config.TradingConfig) -> Scenario:
    scenario = load(arguments.scenario, config)
    changes: dict[str, Any] = {}
    if arguments.duration is not None:
        changes["duration_s"] = float(arguments.duration)
    if arguments.rate is not None:
        changes["rate_per_s"] = float(arguments.rate)
    if getattr(arguments, "arrivals", None):
        changes["arrivals"] = arguments.arrivals
    return msgspec.structs.replace(scenario, **changes) if changes else scenario


def main(arguments: argparse.Namespace) -> int:
    console = Console(stderr=True)
    config = trading_config.load(None)
    try:
        scenario = _scenario(arguments, config)
    except ScenarioError as error:
        console.print(f"[red]strongroom sim run: {error}[/red]")
        return 64
    try:
        return asyncio.run(_main(arguments, scenario, config, console))
    except (TargetError, ProvisioningError) as error:
        console.print(f"[red]strongroom sim run: {error}[/red]")
        return 69


async def _main(
    arguments: argparse.Namespace,
    scenario: Scenario,
    config: trading_config.TradingConfig,
    console: Console,
) -> int:
    out_dir: Path = arguments.out
    out_dir.mkdir(parents=True, exist_ok=True)
    system: InprocSystem | None = None
    if arguments.target == "inproc":
        console.print("starting the system in-process (embedded PostgreSQL)…")
        system = InprocSystem(out_dir, arguments.log_level, getattr(arguments, "keep_data", False))
        try:
            target = await system.start()
        except BaseException:
            await system.close()
            raise
    else:
        target = await remote(
            arguments.target,
            mtf_port=arguments.mtf_port,
            ws_port=arguments.ws_port,
            data_dir=getattr(arguments, "data_dir", None),
            database_url=getattr(arguments, "database_url", None),
            config=config,
        )
    run = Run(scenario, arguments.seed, target, out_dir, console, config,
              recorder=Recorder(bin_width(scenario.duration_s)))  # fmt: skip
    for note in target.notes:
        run.warn(note)
    try:
        return await _drive(run, system)
    finally:
        if system is not None:
            await system.close()


# ------------------------------------------------------------------ setting up

BIN_WIDTHS_S = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


def bin_width(duration_s: float) -> float:
    """The series' resolution: about 40 or more points over the run."""
    for width in BIN_WIDTHS_S:
        if width >= duration_s / 40:
            return width
    return BIN_WIDTHS_S[-1]


def _agents(run: Run, paths: dict[str, Walk], run_id: str) -> tuple[list[Agent], list[Agent]]:
    """(agents that take arrivals, subscribers), with edges the target cannot give
    replaced or dropped — loudly."""
    scenario, target = run.scenario, run.target
    acting: list[Agent] = []
    subscribers: list[Agent] = []
    for population in scenario.agents:
        if population.edge == "inproc" and target.trading is None:
            run.warn(
                f"population {population.name}: the in-process edge needs --target inproc;"
                " it uses REST instead",
                degraded=False,
            )
            population = msgspec.structs.replace(population, edge="rest")
        if population.edge == "mtf" and target.mtf_address is None:
            run.warn(f"population {population.name}: no MTF port known; it does not run")
            continue
        if population.edge == "ws" and target.ws_url is None:
            run.warn(f"population {population.name}: no feed port known; it does not run")
            continue
        made = [
            Agent.make(population, index, run.config, paths, run.seed, run_id)
            for index in range(population.count)
        ]
        (subscribers if population.kind == "subscriber" else acting).extend(made)
    return acting, subscribers


# What each kind of agent needs from the REST API (method, path as OpenAPI names it).
ROUTES_OF: dict[str, tuple[tuple[str, str], ...]] = {
    "order": (("post", "/orders/"), ("delete", "/orders/{order_id}/")),
    "depositor": (("post", "/management/v2/deposits/new"),),
    "withdrawer": (("post", "/withdrawal/"),),
}


async def _check_routes(run: Run, agents: list[Agent], client: httpx.AsyncClient) -> None:
    """Say loudly, before the load, which routes the scenario needs and the server lacks
    (the answers would otherwise only show up as errors)."""
    try:
        served = (await client.get("/openapi.json")).json()["paths"]
    except (httpx.HTTPError, ValueError, KeyError) as error:
        run.warn(f"cannot read {run.target.base_url}/openapi.json to check routes: {error!r}")
        return
    needed: dict[tuple[str, str], set[str]] = {}
    for agent in agents:
        population = agent.population
        if population.edge != "rest":
            continue
        kind = "order" if population.kind in ORDER_KINDS else population.kind
        for route in ROUTES_OF.get(kind, ()):
            needed.setdefault(route, set()).add(population.name)
    for (method, path), populations in sorted(needed.items()):
        if method not in served.get(path, {}):
            run.warn(
                f"{method.upper()} {path} is not served by {run.target.base_url}: populations"
                f" {', '.join(sorted(populations))} will only count errors ({path} missing)"
            )


async def _mtf_member(run: Run, agent: Agent, credentials: tuple[int, str]) -> MtfMember:
    assert run.target.mtf_address is not None
    host, port = run.target.mtf_address
    client = await MtfClient.connect(host, port, *credentials)
    answer = await client.login()
    if answer.code != Code.LOGIN_ACCEPTED:
        await client.close()
        raise ProvisioningError(f"MTF login of {agent.name} rejected: {answer}")
    return MtfMember(client, run.config, agent.wallet_id, run.acked, run.scenario.request_timeout_s)


# ------------------------------------------------------------------ the load


async def _perform(run: Run, agent: Agent, edge: Edge, action: Action, intended_s: float) -> None:
    result: Result
    name = action_name(action)
    try:
        if isinstance(action, Place):
            result = await edge.place(agent.wallet_id, action)
        elif isinstance(action, Cancel):
            result = await edge.cancel(agent.wallet_id, action)
        elif isinstance(action, Deposit):
            result = await edge.deposit(agent.wallet_id, action)
        else:
            assert isinstance(action, Withdraw)
            result = await edge.withdraw(agent.wallet_id, action)
    except asyncio.CancelledError:
        run.recorder.done(edge.name, name, Outcome.ERROR, "drain_timeout", intended_s, run.now_s())
        raise
    except TimeoutError:
        result = Result(Outcome.ERROR, "timeout")
    except StrongroomError as error:
        result = Result(Outcome.ERROR, error.code)
    except (RestClientError, MtfError, OSError) as error:
        result = Result(Outcome.ERROR, type(error).__name__)
    except Unsupported as error:
        result = Result(Outcome.ERROR, "unsupported")
        logger.error("unsupported action", error=str(error))
    run.recorder.done(edge.name, name, result.outcome, result.reason, intended_s, run.now_s())
    agent.settled(action, result.ref, result.live)


async def _sample(run: Run, client: httpx.AsyncClient) -> None:
    at_s = run.now_s()
    for spec in run.scenario.markets:
        market = run.config.markets[spec.symbol]
        try:
            depth = (await client.get(f"/markets/{spec.symbol}/depth",
                                      params={"limit": DEPTH_LEVELS})).json()  # fmt: skip
            trades = (await client.get(f"/markets/{spec.symbol}/trades",
                                       params={"limit": 1})).json()  # fmt: skip
        except (httpx.HTTPError, ValueError):
            continue
        bids, asks = depth.get("bids") or [], depth.get("asks") or []
        run.samples.append(
            report.DepthSample(
                at_s=at_s,
                market=market.symbol,
                best_bid=float(bids[0][0]) if bids else None,
                best_ask=float(asks[0][0]) if asks else None,
                bid_quantity=float(sum(Decimal(level[1]) for level in bids)),
                ask_quantity=float(sum(Decimal(level[1]) for level in asks)),
                bid_levels=len(bids),
                ask_levels=len(asks),
                last_price=float(trades[0]["price"]) if trades else None,
            )
        )


async def _sampler(run: Run, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await _sample(run, client)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), run.scenario.sample_interval_s)
    await _sample(run, client)


def _status(run: Run) -> str:
    counts = run.recorder.counts()
    p99 = run.recorder.total.get_value_at_percentile(99) / 1_000
    return (
        f"sent {counts['sent']:,} acked {counts['acked']:,} rejected {counts['rejected']:,}"
        f" errors {counts['errors']:,} shed {counts['shed']:,}"
        f" in flight {run.recorder.in_flight:,} p99 {p99:,.1f} ms"
    )


async def _progress(run: Run, progress: Progress, task: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        progress.update(task, completed=min(run.now_s(), run.scenario.duration_s),
                        status=_status(run))  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_INTERVAL_S)
    progress.update(task, completed=run.scenario.duration_s, status=_status(run))


async def _arrivals(
    run: Run, agents: list[Agent], edges: dict[str, Edge], system: InprocSystem | None
) -> None:
    """The open loop: each arrival at its intended time, whatever came of earlier ones."""
    scenario = run.scenario
    rng = random.Random(f"{run.seed}/arrivals")
    cumulative: list[float] = []
    total = 0.0
    for agent in agents:
        total += agent.population.weight
        cumulative.append(total)
    loop = asyncio.get_running_loop()
    at_s = 0.0
    gap_s = 1 / scenario.rate_per_s
    while True:
        at_s += rng.expovariate(scenario.rate_per_s) if scenario.arrivals == "poisson" else gap_s
        if at_s >= scenario.duration_s:
            return
        agent = agents[min(bisect.bisect_right(cumulative, rng.random() * total), len(agents) - 1)]
        delay = run.started + at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if system is not None and not system.running:
            run.warn(f"the in-process server stopped {at_s:.1f} s into the run")
            return
        edge = edges[agent.name]
        action = agent.decide(at_s, edge.still_live())
        name = action_name(action)
        if run.recorder.in_flight >= scenario.in_flight_max:
            run.recorder.shed(edge.name, name, at_s)
            continue
        run.recorder.sent(edge.name, name, at_s)
        task = asyncio.create_task(_perform(run, agent, edge, action, at_s))
        run.tasks.add(task)
        task.add_done_callback(run.tasks.discard)


async def _drain(run: Run) -> None:
    if not run.tasks:
        return
    _, pending = await asyncio.wait(set(run.tasks), timeout=run.scenario.drain_timeout_s)
    if pending:
        run.warn(f"{len(pending)} requests unanswered {run.scenario.drain_timeout_s} s after"
                 " the last arrival: counted as errors")  # fmt: skip
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# ------------------------------------------------------------------ the whole run


async def _drive(run: Run, system: InprocSystem | None) -> int:
    scenario, target, console = run.scenario, run.target, run.console
    paths = walks(scenario, run.config, run.seed)
    run_id = f"{run.seed}-{secrets.token_hex(3)}"
    agents, subscriber_agents = _agents(run, paths, run_id)
    if not agents:
        run.warn("no agent can take arrivals on this target")
        return EXIT_DEGRADED
    provisioning_started = time.monotonic()
    console.print(f"provisioning {len(agents)} agents through REST…")
    provisioned = await provision(target, agents, run_id, run.config, run.acked,
                                  HTTP_CONNECTIONS_MAX)  # fmt: skip
    members: list[MtfMember] = []
    rest_clients: list[RestClient] = []
    subscribers: list[Subscriber] = []
    subscriber_tasks: list[asyncio.Task[None]] = []
    public = httpx.AsyncClient(base_url=target.base_url, timeout=10.0)
    try:
        await _check_routes(run, agents, public)
        edges: dict[str, Edge] = {}
        partner_rest = RestClient(
            target.base_url,
            headers={"Authorization": f"Bearer {provisioned.partner_token}"},
            connections_max=HTTP_CONNECTIONS_MAX,
            timeout_s=scenario.request_timeout_s,
        )
        admin_rest = RestClient(
            target.base_url,
            headers={"Authorization": f"Bearer {provisioned.admin_token}"},
            connections_max=HTTP_CONNECTIONS_MAX // 4,
            timeout_s=scenario.request_timeout_s,
        )
        rest_clients.extend((partner_rest, admin_rest))
        rest = RestEdge(partner_rest, admin_rest, run.config, run.acked, run.warn)
        inproc = (
            InprocEdge(target.trading, run.acked, scenario.request_timeout_s)
            if target.trading is not None
            else None
        )
        for agent in agents:
            edge_name = agent.population.edge
            if edge_name == "mtf":
                member = await _mtf_member(run, agent, provisioned.mtf_credentials[agent.name])
                members.append(member)
                edges[agent.name] = member
            elif edge_name == "inproc":
                assert inproc is not None
                edges[agent.name] = inproc
            else:
                edges[agent.name] = rest
        assert target.ws_url is not None or not subscriber_agents
        for agent in subscriber_agents:
            assert target.ws_url is not None
            subscriber = Subscriber(target.ws_url, agent.population.channels,
                                    agent.population.encoding, run.feed, time.monotonic(),
                                    run.recorder.bin_s)  # fmt: skip
            subscribers.append(subscriber)
            subscriber_tasks.append(asyncio.create_task(subscriber.run()))
        if subscribers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(s.subscribed.wait() for s in subscribers)),
                    SUBSCRIBE_TIMEOUT_S,
                )
            if run.feed.connected < len(subscribers):
                run.warn(f"only {run.feed.connected} of {len(subscribers)} subscribers subscribed")
        provisioning_s = time.monotonic() - provisioning_started
        console.print(
            f"provisioned in {provisioning_s:.1f} s; {len(members)} MTF sessions,"
            f" {len(subscribers)} subscribers; {scenario.duration_s:g} s at"
            f" {scenario.rate_per_s:g}/s ({scenario.arrivals})"
        )
        loop = asyncio.get_running_loop()
        run.started = loop.time() + 0.05
        run.started_wall = datetime.now(UTC)
        run.load_average_start = os.getloadavg()
        started_monotonic = time.monotonic() + 0.05
        for subscriber in subscribers:
            subscriber.started_at = started_monotonic
        run.feed.per_bin.clear()
        run.feed.lag_bins.clear()
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sampler(run, public, stop))
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task(scenario.name, total=scenario.duration_s, status="")
            ticker = asyncio.create_task(_progress(run, progress, task, stop))
            await _arrivals(run, agents, edges, system)
            await _drain(run)
            stop.set()
            await asyncio.gather(ticker, sampler)
        end_s = run.now_s()
        await asyncio.gather(*(subscriber.stop() for subscriber in subscribers),
                             return_exceptions=True)  # fmt: skip
        await asyncio.gather(*subscriber_tasks, return_exceptions=True)
    finally:
        for member in members:
            await member.close()
        for client in rest_clients:
            await client.aclose()
        await public.aclose()
        await provisioned.close()
    if system is not None:
        code = await system.stop_server()
        if code != 0:
            run.warn(f"the in-process server stopped with {code}")
    return await _finish(run, agents, paths, end_s, provisioning_s, members)


async def _finish(
    run: Run,
    agents: list[Agent],
    paths: dict[str, Walk],
    end_s: float,
    provisioning_s: float,
    members: list[MtfMember],
) -> int:
    scenario, target = run.scenario, run.target
    verdict: invariants.Verdict | None = None
    trade_rows: list[invariants.TradeRow] = []
    statuses: dict[str, dict[str, int]] = {}
    withdrawals: dict[str, int] = {}
    database_note = ""
    if target.database_url is not None:
        verdict = await invariants.check(target.database_url, run.acked)
        wallets = {agent.wallet_id for agent in agents}
        trade_rows = await invariants.trades(target.database_url, wallets, run.started_wall)
        statuses = await invariants.order_statuses(target.database_url, wallets)
        withdrawals = await invariants.withdrawal_states(target.database_url, wallets)
    else:
        database_note = target.database_missing
        run.warn(f"invariants not checked: {database_note}", degraded=False)
    wallets_of = {agent.wallet_id: (agent.name, agent.population.name) for agent in agents}
    pnl = (
        report.pnl(
            trade_rows, wallets_of, run.config, run.started_wall, end_s, scenario.sample_interval_s
        )
        if verdict is not None
        else None
    )
    elapsed_s = max(scenario.duration_s, run.recorder.last_done_s)
    edges = sorted(run.recorder.edges)
    per_edge: dict[str, Any] = {edge: run.recorder.edge_report(edge, elapsed_s) for edge in edges}
    if run.feed.connections:
        per_edge["ws"] = run.feed.report(elapsed_s)
    if members:
        per_edge["mtf"]["fills_received"] = sum(member.fills for member in members)
    counts = run.recorder.counts()
    held: dict[str, bool | None] = (
        dict(verdict.held) if verdict is not None else dict.fromkeys(invariants.NAMES)
    )
    populations: dict[str, Any] = {}
    for population in scenario.agents:
        own = [agent for agent in agents if agent.population.name == population.name]
        populations[population.name] = {
            "kind": population.kind,
            "edge": own[0].population.edge if own else population.edge,
            "agents": len(own) if population.kind != "subscriber" else population.count,
            "arrivals": sum(agent.requests for agent in own),
            "pnl_final": (
                round(pnl.by_population[population.name][-1], 2)
                if pnl is not None and population.name in pnl.by_population
                else None
            ),
            "pnl_currency": pnl.currency_of.get(population.name) if pnl is not None else None,
        }
    markets: dict[str, Any] = {}
    for symbol, path in paths.items():
        own_trades = [row for row in trade_rows if row.market == symbol]
        market = run.config.markets[symbol]
        markets[symbol] = {
            "mid_start": round(path.mid(0.0), 8),
            "mid_end": round(path.mid(scenario.duration_s), 8),
            "trades": len(own_trades),
            "last_price": (str(own_trades[-1].price * market.tick_size) if own_trades else None),
            "low": str(min(r.price for r in own_trades) * market.tick_size) if own_trades else None,
            "high": str(max(r.price for r in own_trades) * market.tick_size)
            if own_trades
            else None,
        }
    document: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": run.seed,
        "target": target.name,
        "duration_s": scenario.duration_s,
        "rate_per_s": scenario.rate_per_s,
        "arrivals": scenario.arrivals,
        "started_at": run.started_wall.isoformat(),
        "elapsed_s": round(end_s, 3),
        "provisioning_s": round(provisioning_s, 3),
        "counts": counts,
        "throughput_per_s": round(counts["acked"] / elapsed_s, 2),
        "latency_ms": latency_summary(run.recorder.total),
        "per_edge": per_edge,
        "invariants": held,
        "invariants_checked": verdict is not None,
        "invariant_details": verdict.details if verdict is not None else {},
        "database": "checked" if verdict is not None else f"not checked: {database_note}",
        "acknowledged": {
            "orders": len(run.acked.order_ids) + len(run.acked.mtf_orders),
            "deposits": len(run.acked.deposits),
            "withdrawals": len(run.acked.withdrawals),
        },
        "orders_by_type": statuses,
        "withdrawals_by_state": withdrawals,
        "populations": populations,
        "markets": markets,
        "warnings": run.warnings,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine shares its cores with the run: see how busy it was.
            "load_average_at_start": [round(value, 2) for value in run.load_average_start],
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
    }
    out_dir = run.out_dir
    data = report.series(run.recorder, end_s, edges)
    mids = {
        symbol: [(at_s, path.mid(at_s)) for at_s in _times(end_s, scenario.sample_interval_s)]
        for symbol, path in paths.items()
    }
    images = [
        report.plot_throughput(
            data, scenario.duration_s, out_dir / "throughput.png", scenario.name
        ),
        report.plot_latency(data, scenario.duration_s, out_dir / "latency.png", scenario.name),
        report.plot_book(run.samples, mids, out_dir / "book.png", scenario.name, run.config),
        report.plot_pnl(pnl, database_note, out_dir / "pnl.png", scenario.name),
    ]
    if run.feed.connections:
        images.append(report.plot_feed(run.feed, end_s, run.recorder.bin_s,
                                       out_dir / "feed.png", scenario.name))  # fmt: skip
    document["files"] = ["report.html", "series.json", *images]
    (out_dir / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    plotted = {
        "throughput_latency": data,
        "depth": [dataclasses.asdict(sample) for sample in run.samples],
        "pnl": _pnl_json(pnl),
    }
    (out_dir / "series.json").write_text(json.dumps(plotted) + "\n")
    report.write_html(document, images, out_dir / "report.html")
    terminal = Console()
    if not terminal.is_terminal:
        terminal = Console(width=140)
    report.print_summary(document, out_dir, terminal)
    if verdict is not None and not all(verdict.held.values()):
        return EXIT_BROKEN
    return EXIT_DEGRADED if run.degraded else 0


def _times(end_s: float, step_s: float) -> list[float]:
    return [index * step_s for index in range(math.ceil(end_s / step_s) + 1)]


def _pnl_json(pnl: report.PnL | None) -> dict[str, Any] | None:
    if pnl is None:
        return None
    return {"t_s": pnl.times_s, "by_population": pnl.by_population, "by_agent": pnl.by_agent}
