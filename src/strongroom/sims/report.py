"""The end of a run: `report.json`, PNG plots (matplotlib, Agg), `report.html` beside
them, and a summary on the terminal.

Agents' PnL is marked to market from the run's trades as the database has them (both
sides' wallets, fees as SPEC §2 takes them: from what a side receives, rounded down),
at the last trade price of each moment; deposits and withdrawals are not PnL.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from strongroom.actors.messages import Side
from strongroom.config import TradingConfig
from strongroom.sims.invariants import TradeRow
from strongroom.sims.metrics import FeedFigures, Recorder

BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class DepthSample:
    at_s: float
    market: str
    best_bid: float | None
    best_ask: float | None
    bid_quantity: float  # base currency, visible, over the levels fetched
    ask_quantity: float
    bid_levels: int
    ask_levels: int
    last_price: float | None


@dataclass(slots=True)
class PnL:
    times_s: list[float] = field(default_factory=list)
    by_agent: dict[str, list[float]] = field(default_factory=dict)
    by_population: dict[str, list[float]] = field(default_factory=dict)
    currency_of: dict[str, str] = field(default_factory=dict)  # population → quote
    market_of: dict[str, str] = field(default_factory=dict)  # population → market


def pnl(
    trades: list[TradeRow],
    wallets: dict[str, tuple[str, str]],  # wallet → (agent, population)
    config: TradingConfig,
    started_wall: datetime,
    end_s: float,
    step_s: float,
) -> PnL:
    """Each agent's cash + position × last price, in its market's quote currency."""
    result = PnL()
    steps = max(1, math.ceil(end_s / step_s))
    result.times_s = [index * step_s for index in range(steps + 1)]
    base: dict[str, int] = defaultdict(int)  # wallet → base minor units
    quote: dict[str, int] = defaultdict(int)
    market_of: dict[str, str] = {}
    last: dict[str, float] = {}
    for agent, _ in wallets.values():
        result.by_agent[agent] = []
    fees = config.fees
    index = 0

    def value(wallet: str) -> float:
        symbol = market_of.get(wallet)
        if symbol is None:
            return 0.0
        market = config.markets[symbol]
        quote_decimals = config.currencies[market.quote].decimals
        base_decimals = config.currencies[market.base].decimals
        price = last.get(symbol, 0.0)
        return quote[wallet] / 10.0**quote_decimals + base[wallet] / 10.0**base_decimals * price

    for at_s in result.times_s:
        while index < len(trades):
            trade = trades[index]
            if (trade.at - started_wall).total_seconds() > at_s:
                break
            index += 1
            market = config.markets[trade.market]
            base_minor = market.base_minor(trade.quantity)
            quote_minor = market.quote_minor(trade.price, trade.quantity)
            if trade.taker_side == Side.BUY:
                buyer, buyer_bps = trade.taker_wallet, fees.taker_bps
                seller, seller_bps = trade.maker_wallet, fees.maker_bps
            else:
                buyer, buyer_bps = trade.maker_wallet, fees.maker_bps
                seller, seller_bps = trade.taker_wallet, fees.taker_bps
            base[buyer] += base_minor - base_minor * buyer_bps // BASIS_POINTS
            quote[buyer] -= quote_minor
            base[seller] -= base_minor
            quote[seller] += quote_minor - quote_minor * seller_bps // BASIS_POINTS
            market_of.setdefault(buyer, trade.market)
            market_of.setdefault(seller, trade.market)
            last[trade.market] = float(trade.price * market.tick_size)
        for wallet, (agent, _) in wallets.items():
            result.by_agent[agent].append(value(wallet))
    for wallet, (agent, population) in wallets.items():
        series = result.by_population.setdefault(population, [0.0] * len(result.times_s))
        for position, amount in enumerate(result.by_agent[agent]):
            series[position] += amount
        symbol = market_of.get(wallet)
        if symbol is not None:
            result.currency_of[population] = config.markets[symbol].quote
            result.market_of[population] = symbol
    return result


# ------------------------------------------------------------------ series and plots


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bins_of(end_s: float, bin_s: float) -> list[tuple[int, float, float]]:
    """(index, centre, width) of each bin up to `end_s`; a last bin less than half full
    is left out (its rate would be noise)."""
    result = []
    for index in range(max(1, math.ceil(end_s / bin_s))):
        width = min(bin_s, end_s - index * bin_s)
        if width >= bin_s / 2 or index == 0:
            result.append((index, index * bin_s + max(width, 1e-9) / 2, max(width, 1e-9)))
    return result


def series(recorder: Recorder, end_s: float, edges: list[str]) -> dict[str, Any]:
    layout = bins_of(end_s, recorder.bin_s)
    bins = [recorder.bins.get(index) for index, _, _ in layout]
    rates = [1 / width for _, _, width in layout]
    return {
        "bin_s": recorder.bin_s,
        "t_s": [centre for _, centre, _ in layout],
        "sent_per_s": [(b.sent if b else 0) * r for b, r in zip(bins, rates, strict=True)],
        "acked_per_s": [
            (sum(b.acked.values()) if b else 0) * r for b, r in zip(bins, rates, strict=True)
        ],
        "acked_per_s_by_edge": {
            edge: [(b.acked[edge] if b else 0) * r for b, r in zip(bins, rates, strict=True)]
            for edge in edges
        },
        "rejected_per_s": [(b.rejected if b else 0) * r for b, r in zip(bins, rates, strict=True)],
        "errors_per_s": [(b.errors if b else 0) * r for b, r in zip(bins, rates, strict=True)],
        "latency_p50_ms": [
            _percentile(b.latencies_ms, 0.5) if b and b.latencies_ms else None for b in bins
        ],
        "latency_p99_ms": [
            _percentile(b.latencies_ms, 0.99) if b and b.latencies_ms else None for b in bins
        ],
        "latency_max_ms": [max(b.latencies_ms) if b and b.latencies_ms else None for b in bins],
    }


def _figure(width: float = 10.0, height: float = 4.0, rows: int = 1) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(rows, 1, figsize=(width, height * rows), squeeze=False)
    return figure, [row[0] for row in axes]


def _save(figure: Any, path: Path) -> str:
    from matplotlib import pyplot

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path.name


def plot_throughput(data: dict[str, Any], duration_s: float, path: Path, title: str) -> str:
    figure, (axes,) = _figure()
    t = data["t_s"]
    axes.plot(t, data["sent_per_s"], label="sent (intended)", color="0.5", linewidth=2.5,
              alpha=0.6)  # fmt: skip
    axes.plot(t, data["acked_per_s"], label="acked (all edges)", color="black", linewidth=1.5)
    for edge, values in data["acked_per_s_by_edge"].items():
        if any(values):
            axes.plot(t, values, label=f"acked {edge}", linewidth=1)
    if any(data["rejected_per_s"]):
        axes.plot(t, data["rejected_per_s"], label="rejected", color="tab:olive", linestyle="--")
    if any(data["errors_per_s"]):
        axes.plot(t, data["errors_per_s"], label="errors", color="tab:red", linestyle=":")
    axes.set_ylim(bottom=0)
    axes.axvline(duration_s, color="0.7", linestyle="--", linewidth=0.8)
    axes.set_xlabel("seconds into the run (dashed line: the last arrival)")
    axes.set_ylabel(f"per second (bins of {data['bin_s']:g} s)")
    axes.set_title(f"{title}: throughput")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower center", fontsize=8, ncols=4)
    return _save(figure, path)


def plot_latency(data: dict[str, Any], duration_s: float, path: Path, title: str) -> str:
    figure, (axes,) = _figure()
    t = data["t_s"]
    for key, label, style in (
        ("latency_p50_ms", "p50", "-"),
        ("latency_p99_ms", "p99", "-"),
        ("latency_max_ms", "max", ":"),
    ):
        values = [math.nan if value is None else value for value in data[key]]
        axes.plot(t, values, style, label=label, marker=".", markersize=3)
    axes.set_yscale("log")
    axes.axvline(duration_s, color="0.7", linestyle="--", linewidth=0.8)
    axes.set_xlabel("intended send time, seconds into the run")
    axes.set_ylabel("latency from intended send, ms")
    axes.set_title(
        f"{title}: latency of answered requests (acked or rejected), per {data['bin_s']:g} s"
    )
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="best", fontsize=8)
    return _save(figure, path)


def plot_book(
    samples: list[DepthSample],
    mids: dict[str, list[tuple[float, float]]],
    path: Path,
    title: str,
    config: TradingConfig,
) -> str:
    markets = sorted({sample.market for sample in samples} | set(mids))
    figure, axes = _figure(height=3.2, rows=2 * max(1, len(markets)))
    for position, symbol in enumerate(markets):
        price_axes, depth_axes = axes[2 * position], axes[2 * position + 1]
        own = [sample for sample in samples if sample.market == symbol]
        t = [sample.at_s for sample in own]
        if symbol in mids:
            price_axes.plot(*zip(*mids[symbol], strict=True), color="0.6", linewidth=1,
                            label="mid (random walk)")  # fmt: skip
        for attribute, label, color in (
            ("best_bid", "best bid", "tab:green"),
            ("best_ask", "best ask", "tab:red"),
            ("last_price", "last trade", "black"),
        ):
            values = [getattr(s, attribute) for s in own]
            price_axes.plot(t, [math.nan if v is None else v for v in values], label=label,
                            color=color, linewidth=1)  # fmt: skip
        quote = config.markets[symbol].quote
        price_axes.set_ylabel(f"price ({quote})")
        price_axes.set_title(f"{title}: {symbol} prices")
        price_axes.grid(alpha=0.3)
        price_axes.legend(loc="best", fontsize=8)
        base = config.markets[symbol].base
        depth_axes.fill_between(t, [s.bid_quantity for s in own], step="post", alpha=0.5,
                                color="tab:green", label="bids")  # fmt: skip
        depth_axes.fill_between(t, [-s.ask_quantity for s in own], step="post", alpha=0.5,
                                color="tab:red", label="asks (below zero)")  # fmt: skip
        depth_axes.set_ylabel(f"visible depth ({base})")
        levels = depth_axes.twinx()
        levels.plot(t, [s.bid_levels + s.ask_levels for s in own], color="0.3", linewidth=0.8,
                    linestyle=":", label="price levels")  # fmt: skip
        levels.set_ylabel("levels")
        depth_axes.set_title(f"{symbol} book depth (committed, as GET /markets/…/depth shows)")
        depth_axes.set_xlabel("seconds into the run")
        depth_axes.grid(alpha=0.3)
        depth_axes.legend(loc="upper left", fontsize=8)
        levels.legend(loc="upper right", fontsize=8)
    return _save(figure, path)


def plot_pnl(result: PnL | None, note: str, path: Path, title: str) -> str:
    figure, (axes,) = _figure()
    if result is None or not result.currency_of:
        axes.text(0.5, 0.5, note or "no trades", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return _save(figure, path)
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    # Every other colour first: tab20 pairs a dark and a light shade of each hue.
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    markets = sorted(set(result.market_of.values()))
    styles = ("-", "--", ":", "-.")
    plotted = 0
    for population, values in sorted(result.by_population.items()):
        currency = result.currency_of.get(population)
        if currency is None:  # it never traded (depositors, withdrawers, untriggered stops)
            continue
        market = result.market_of[population]
        axes.plot(result.times_s, values, label=f"{population} ({market})",
                  linewidth=1.5, color=palette(order[plotted % 20]),
                  linestyle=styles[markets.index(market) % len(styles)])  # fmt: skip
        plotted += 1
    axes.axhline(0, color="0.5", linewidth=0.8)
    axes.set_xlabel("seconds into the run")
    axes.set_ylabel("PnL in the quote currency (USDT here)")
    axes.set_title(f"{title}: agents' PnL by population (fees included)")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _save(figure, path)


def plot_feed(feed: FeedFigures, end_s: float, bin_s: float, path: Path, title: str) -> str:
    figure, (axes,) = _figure()
    layout = bins_of(end_s, bin_s)
    t = [centre for _, centre, _ in layout]
    axes.plot(t, [feed.per_bin.get(index, 0) / width for index, _, width in layout],
              color="tab:blue", label="messages received / s (all subscribers)")  # fmt: skip
    axes.set_ylim(bottom=0)
    axes.set_ylabel("messages / s")
    axes.set_xlabel("seconds into the run")
    lag = axes.twinx()
    values = [feed.lag_bins.get(index) for index, _, _ in layout]
    lag.plot(t, [_percentile(v, 0.99) if v else math.nan for v in values], color="tab:purple",
             marker=".", markersize=3, label="trade lag p99, ms")  # fmt: skip
    lag.set_ylabel("trade ts → arrival, ms")
    axes.set_title(f"{title}: feed")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    lag.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


# ------------------------------------------------------------------ HTML and terminal


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape("" if value is None else str(value))


def write_html(report: dict[str, Any], images: list[str], path: Path) -> None:
    latency = report["latency_ms"]
    rows = "".join(
        f"<tr><th>{html.escape(edge)}</th>"
        + "".join(
            f"<td>{_cell(figures.get(key))}</td>"
            for key in ("sent", "acked", "rejected", "errors", "shed", "throughput_per_s")
        )
        + "".join(
            f"<td>{_cell((figures.get('latency_ms') or {}).get(key))}</td>"
            for key in ("p50", "p99", "p999", "max")
        )
        + "</tr>"
        for edge, figures in report["per_edge"].items()
        if edge != "ws"
    )
    invariants = "".join(
        f"<li class='{ {True: 'ok', False: 'bad', None: 'skip'}[held] }'>"
        f"{html.escape(name)}: {({True: 'held', False: 'BROKEN', None: 'not checked'})[held]}"
        + "".join(
            f"<br><small>{html.escape(line)}</small>"
            for line in report.get("invariant_details", {}).get(name, [])
        )
        + "</li>"
        for name, held in report["invariants"].items()
    )
    warnings = "".join(f"<li>{html.escape(line)}</li>" for line in report.get("warnings", []))
    feed = report["per_edge"].get("ws")
    feed_html = f"<h2>Feed</h2><pre>{html.escape(json.dumps(feed, indent=2))}</pre>" if feed else ""
    counts = report["counts"]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>strongroom sim: {html.escape(report["scenario"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px;
text-align: right; }} th {{ background: #f4f4f4; }}
.ok {{ color: #176d17; }} .bad {{ color: #b00; font-weight: bold; }} .skip {{ color: #777; }}
.warn {{ color: #b00; }} img {{ max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }}
</style></head><body>
<h1>{html.escape(report["scenario"])} <small>seed {report["seed"]}</small></h1>
<p>{html.escape(report.get("description", ""))}</p>
<p>Target <b>{html.escape(report["target"])}</b>, {report["duration_s"]} s of arrivals at
{report["rate_per_s"]}/s ({html.escape(report["arrivals"])}),
started {html.escape(report["started_at"])}.
Sent {counts["sent"]:,}, acked {counts["acked"]:,}, rejected {counts["rejected"]:,},
errors {counts["errors"]:,}, shed {counts["shed"]:,};
{report["throughput_per_s"]:,.1f} acked/s; latency p50 {_cell(latency["p50"])} ms,
p99 {_cell(latency["p99"])} ms, p99.9 {_cell(latency["p999"])} ms, max {_cell(latency["max"])} ms
(from the intended send time).</p>
{f'<h2 class="warn">Warnings</h2><ul class="warn">{warnings}</ul>' if warnings else ""}
<h2>Invariants (over the database)</h2><ul>{invariants}</ul>
<h2>Edges</h2>
<table><tr><th>edge</th><th>sent</th><th>acked</th><th>rejected</th><th>errors</th>
<th>shed</th><th>acked/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>
{rows}</table>
{feed_html}
<h2>Plots</h2>
{"".join(f'<p><img src="{html.escape(name)}" alt="{html.escape(name)}"></p>' for name in images)}
<h2>report.json</h2><pre>{html.escape(json.dumps(report, indent=2))}</pre>
</body></html>
"""
    path.write_text(page)


def print_summary(report: dict[str, Any], out_dir: Path, console: Console) -> None:
    table = Table(title=f"{report['scenario']} (seed {report['seed']}) on {report['target']}")
    for column in ("edge", "sent", "acked", "rejected", "errors", "shed", "acked/s",
                   "p50 ms", "p99 ms", "p99.9 ms", "max ms"):  # fmt: skip
        table.add_column(column, justify="right")

    def number(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"

    everything = {"all": {**report["counts"], "throughput_per_s": report["throughput_per_s"],
                          "latency_ms": report["latency_ms"]}}  # fmt: skip
    for edge, figures in {**report["per_edge"], **everything}.items():
        if edge == "ws":
            continue
        latency = figures.get("latency_ms") or {}
        table.add_row(
            edge,
            *(number(figures.get(key)) for key in ("sent", "acked", "rejected", "errors", "shed")),
            number(figures.get("throughput_per_s")),
            *(number(latency.get(key)) for key in ("p50", "p99", "p999", "max")),
        )
    console.print(table)
    feed = report["per_edge"].get("ws")
    if feed:
        lag = feed["trade_lag_ms"]
        console.print(
            f"feed: {feed['connected']}/{feed['connections']} subscribers, "
            f"{feed['messages']:,} messages ({feed['messages_per_s']:,}/s), "
            f"book seq gaps {feed['book_seq_gaps']}, closed early {feed['closed_early']}, "
            f"trade lag p50 {number(lag['p50'])} ms p99 {number(lag['p99'])} ms"
        )
    for edge, figures in report["per_edge"].items():
        if figures.get("rejections"):
            console.print(f"{edge} rejections: {figures['rejections']}")
        if figures.get("error_kinds"):
            console.print(f"[red]{edge} errors: {figures['error_kinds']}[/red]")
    for name, held in report["invariants"].items():
        mark = {True: "[green]held[/green]", False: "[bold red]BROKEN[/bold red]",
                None: "[yellow]not checked[/yellow]"}[held]  # fmt: skip
        console.print(f"invariant {name}: {mark}")
        for line in report.get("invariant_details", {}).get(name, []):
            console.print(f"    {line}", markup=False)
    for warning in report.get("warnings", []):
        console.print(f"[bold red]warning:[/bold red] {warning}")
    console.print(f"report: {out_dir / 'report.json'}, {out_dir / 'report.html'}")
