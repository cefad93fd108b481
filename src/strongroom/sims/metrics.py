"""What a run measured: counts, latency in HDR histograms, and series over time.

Latency is measured from an arrival's INTENDED send time (its place in the open-loop
schedule), not from when the request actually left: a system that falls behind makes
the arrivals wait, and that wait is part of what a user sees (no coordinated omission).

Whole-run figures come from HDR histograms (microseconds, 3 significant digits); the
per-second series keep the raw latencies of their second, which is cheaper than a
histogram per second and exact.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

LATENCY_MAX_US = 600_000_000  # ten minutes: beyond that a value is clamped
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}


class Outcome(enum.Enum):
    ACKED = "acked"  # the edge's success answer
    REJECTED = "rejected"  # a business refusal (insufficient funds, order not open, …)
    ERROR = "error"  # no usable answer: transport failure, 5xx, timeout


def histogram() -> HdrHistogram:
    return HdrHistogram(1, LATENCY_MAX_US, 3)


def latency_summary(values: HdrHistogram) -> dict[str, float | None]:
    if values.get_total_count() == 0:
        return dict.fromkeys((*PERCENTILES, "max", "mean"))
    summary: dict[str, float | None] = {
        name: values.get_value_at_percentile(percentile) / 1_000
        for name, percentile in PERCENTILES.items()
    }
    summary["max"] = values.get_max_value() / 1_000
    summary["mean"] = round(values.get_mean_value() / 1_000, 3)
    return summary


@dataclass(slots=True)
class EdgeFigures:
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    errors: int = 0
    shed: int = 0
    latency: HdrHistogram = field(default_factory=histogram)
    actions: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)  # "action: reason"
    error_kinds: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Bin:
    sent: int = 0
    acked: Counter[str] = field(default_factory=Counter)  # per edge, by completion time
    rejected: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # by intended time


class Recorder:
    """Fed by the load loop; `bin_s` wide series, times in seconds since the run's start."""

    def __init__(self, bin_s: float = 1.0) -> None:
        self.bin_s = bin_s
        self.edges: dict[str, EdgeFigures] = defaultdict(EdgeFigures)
        self.total = histogram()
        self.bins: dict[int, Bin] = defaultdict(Bin)
        self.in_flight = 0
        self.last_done_s = 0.0

    def _bin(self, at_s: float) -> Bin:
        return self.bins[int(max(at_s, 0.0) // self.bin_s)]

    def sent(self, edge: str, action: str, intended_s: float) -> None:
        figures = self.edges[edge]
        figures.sent += 1
        figures.actions[action] += 1
        self._bin(intended_s).sent += 1
        self.in_flight += 1

    def shed(self, edge: str, action: str, intended_s: float) -> None:
        """An arrival not sent because too many were unanswered: counted, never hidden."""
        self.edges[edge].shed += 1
        self.edges[edge].actions[f"{action} (shed)"] += 1

    def done(
        self,
        edge: str,
        action: str,
        outcome: Outcome,
        reason: str,
        intended_s: float,
        done_s: float,
    ) -> None:
        self.in_flight -= 1
        self.last_done_s = max(self.last_done_s, done_s)
        figures = self.edges[edge]
        latency_us = min(max(1, round((done_s - intended_s) * 1e6)), LATENCY_MAX_US)
        finished = self._bin(done_s)
        if outcome is Outcome.ERROR:
            figures.errors += 1
            figures.error_kinds[f"{action}: {reason}"] += 1
            finished.errors += 1
            return
        figures.latency.record_value(latency_us)
        self.total.record_value(latency_us)
        self._bin(intended_s).latencies_ms.append(latency_us / 1_000)
        if outcome is Outcome.ACKED:
            figures.acked += 1
            finished.acked[edge] += 1
        else:
            figures.rejected += 1
            figures.rejections[f"{action}: {reason}"] += 1
            finished.rejected += 1

    def counts(self) -> dict[str, int]:
        return {
            "sent": sum(figures.sent for figures in self.edges.values()),
            "acked": sum(figures.acked for figures in self.edges.values()),
            "rejected": sum(figures.rejected for figures in self.edges.values()),
            "errors": sum(figures.errors for figures in self.edges.values()),
            "shed": sum(figures.shed for figures in self.edges.values()),
        }

    def edge_report(self, edge: str, elapsed_s: float) -> dict[str, Any]:
        figures = self.edges[edge]
        return {
            "sent": figures.sent,
            "acked": figures.acked,
            "rejected": figures.rejected,
            "errors": figures.errors,
            "shed": figures.shed,
            "throughput_per_s": round(figures.acked / elapsed_s, 2) if elapsed_s else 0.0,
            "latency_ms": latency_summary(figures.latency),
            "actions": dict(sorted(figures.actions.items())),
            "rejections": dict(sorted(figures.rejections.items())),
            "error_kinds": dict(sorted(figures.error_kinds.items())),
        }


@dataclass(slots=True)
class FeedFigures:
    """Everything the websocket subscribers saw, summed over them."""

    connections: int = 0
    connected: int = 0  # that completed the subscription
    failed: int = 0  # could not connect or subscribe
    closed_early: int = 0  # closed by the server before the end
    messages: Counter[str] = field(default_factory=Counter)
    gaps: int = 0  # book messages whose seq was not the previous + 1
    trade_lag: HdrHistogram = field(default_factory=histogram)  # trade ts to arrival
    per_bin: Counter[int] = field(default_factory=Counter)  # messages per second
    lag_bins: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def report(self, elapsed_s: float) -> dict[str, Any]:
        total = sum(self.messages.values())
        return {
            "connections": self.connections,
            "connected": self.connected,
            "failed": self.failed,
            "closed_early": self.closed_early,
            "messages": total,
            "messages_per_s": round(total / elapsed_s, 1) if elapsed_s else 0.0,
            "by_type": dict(sorted(self.messages.items())),
            "book_seq_gaps": self.gaps,
            "trade_lag_ms": latency_summary(self.trade_lag),
        }
