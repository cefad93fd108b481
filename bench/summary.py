"""One machine-readable line at the end of a benchmark, read by `python -m bench`.

A benchmark ends with

    summary.emit("matching", [summary.figure("throughput", 842_343, "ops/s",
                                              baseline=769_606, baseline_name="plain book")])

which prints one line, `BENCH-SUMMARY {"bench": ..., "figures": [...]}`, after everything
the benchmark prints for people. A figure is `{figure, value, unit, better}` and, when a
baseline was measured in the same run, `baseline`, `baseline_name` and `ratio` (value /
baseline, whichever way is better: `better` says "higher" or "lower"). `value` may be
None for a figure that could not be measured (then `note` says why).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

PREFIX = "BENCH-SUMMARY "


def figure(
    name: str,
    value: float | None,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str | None = None,
    better: str = "higher",
    note: str | None = None,
) -> dict[str, Any]:
    """One figure; the ratio is value / baseline when both are there."""
    entry: dict[str, Any] = {"figure": name, "value": clean(value), "unit": unit, "better": better}
    baseline = clean(baseline)
    if baseline is not None:
        entry["baseline"] = baseline
        entry["baseline_name"] = baseline_name or "baseline"
        if entry["value"] is not None and baseline != 0:
            entry["ratio"] = entry["value"] / baseline
    if note:
        entry["note"] = note
    return entry


def clean(value: float | None) -> float | None:
    """A JSON-safe number: None for missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def emit(bench: str, figures: Iterable[dict[str, Any]], **extra: Any) -> None:
    """Print the summary line (last, flushed) for the runner to parse."""
    line = json.dumps({"bench": bench, "figures": list(figures), **extra}, default=str)
    print(PREFIX + line, flush=True)


def parse(lines: Iterable[str], bench: str | None = None) -> dict[str, Any] | None:
    """The last summary line in `lines` (of `bench`, when given), or None."""
    found = None
    for line in lines:
        text = line.strip()
        if not text.startswith(PREFIX):
            continue
        try:
            message = json.loads(text[len(PREFIX) :])
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and (bench is None or message.get("bench") == bench):
            found = message
    return found
