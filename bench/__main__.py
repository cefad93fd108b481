"""Run every benchmark, then rewrite the summary table at the top of docs/BENCHMARKS.md.

    python -m bench [--quick] [--only matching,spine,...] [--no-write] [--timeout S]
                    [--logs DIR]

Each benchmark runs as a script of its own (this interpreter, the repository root as the
working directory, a timeout each), its output streamed here line by line and kept in
`--logs` (a temporary folder by default). Its figures come from the `BENCH-SUMMARY` line
it prints last (`bench/summary.py`); `bench/ledger.py` prints a JSON summary instead, read
and mapped here. A benchmark that fails, times out, prints no summary or is missing is
reported as such in the table, and the others still run.

Only the block between `<!-- bench:summary:start -->` and `<!-- bench:summary:end -->`
is rewritten (inserted after the introduction the first time); the hand-written
sections below it are left as they are. `--quick` gives every benchmark a reduced size.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import summary

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
START = "<!-- bench:summary:start -->"
END = "<!-- bench:summary:end -->"
GRACE_S = 30.0  # after SIGINT on a timeout, before SIGKILL
MARK = "STRONGROOM_BENCH_RUN"  # in each benchmark's environment, inherited by all it starts


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    quick: tuple[str, ...]
    timeout_s: float
    quick_timeout_s: float
    full: tuple[str, ...] = ()
    parse: str = "summary"  # or "ledger": its own JSON summary line


BENCHES = (
    Bench("matching", "bench/matching.py", ("--orders", "200000", "--repeat", "2"), 1800, 600),
    Bench(
        "matching-mypyc",
        "bench/matching_mypyc.py",
        ("--orders", "200000", "--repeat", "2"),
        2400,
        900,
    ),
    Bench("spine", "bench/spine.py", ("--orders", "20000"), 1800, 600),
    Bench(
        "mtf",
        "bench/mtf.py",
        ("--duration", "4", "--warmup", "1", "--codec-frames", "50000", "--repeat", "3"),
        1800,
        600,
    ),
    Bench("feed", "bench/feed.py", ("--duration", "5", "--warmup", "1"), 900, 600),
    Bench("ledger", "bench/ledger.py", ("--quick",), 2400, 900, parse="ledger"),
    Bench("peers", "bench/peers.py", ("--quick",), 2400, 900),
)
NAMES = tuple(bench.name for bench in BENCHES)


@dataclass
class Outcome:
    bench: Bench
    command: list[str]
    status: str = "not run"  # "ok", or what went wrong
    seconds: float = 0.0
    figures: list[dict[str, Any]] = field(default_factory=list)
    log: Path | None = None


# ------------------------------------------------------------------ running


def run_one(bench: Bench, quick: bool, timeout_s: float | None, logs: Path) -> Outcome:
    arguments = bench.quick if quick else bench.full
    command = [sys.executable, bench.script, *arguments]
    outcome = Outcome(bench, command)
    if not (ROOT / bench.script).exists():
        outcome.status = f"missing: {bench.script} not found"
        return outcome
    limit = timeout_s or (bench.quick_timeout_s if quick else bench.timeout_s)
    outcome.log = logs / f"{bench.name}.log"
    lines: list[str] = []
    token = uuid.uuid4().hex
    environment = dict(os.environ, PYTHONUNBUFFERED="1", **{MARK: token})
    print(f"\n=== {bench.name}: {display(command)} (timeout {limit:g} s)", flush=True)
    started = time.monotonic()
    with open(outcome.log, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its servers and workers form a group we can stop
        )

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                log.write(line)
                print(f"[{bench.name}] {line}", end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop(process)
        except BaseException:
            stop(process)
            raise
        # A grandchild that outlives its parent may hold the pipe open: do not wait for it.
        reader.join(timeout=10.0)
    outcome.seconds = time.monotonic() - started
    left = stop_leftovers(token)
    if left:
        print(f"=== {bench.name}: stopped {left} process(es) it left running", flush=True)
    code = process.returncode
    found = read_figures(bench, lines)
    if found is not None:
        outcome.figures = found
    tail = next((line.strip() for line in reversed(lines) if line.strip()), "")
    if timed_out:
        outcome.status = f"timed out after {limit:g} s"
    elif code != 0:
        outcome.status = f"failed: exit {code}" + (f" ({shorten(tail)})" if tail else "")
    elif found is None:
        outcome.status = "failed: no summary line in its output"
    else:
        outcome.status = "ok"
    print(f"=== {bench.name}: {outcome.status}, {outcome.seconds:.0f} s", flush=True)
    return outcome


def stop(process: subprocess.Popen[str]) -> None:
    """SIGINT to the benchmark (its `finally` blocks stop its servers), then SIGKILL all."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def marked(token: str) -> list[int]:
    """Live processes whose environment carries this run's mark (Linux /proc)."""
    needle = f"{MARK}={token}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def stop_leftovers(token: str) -> int:
    """Stop what a benchmark started and left running (a daemonized PostgreSQL, say).

    Only processes with this run's mark in their environment: nothing anyone else started.
    SIGINT first (PostgreSQL's fast shutdown), SIGKILL for what is still there after 15 s.
    """
    pids = marked(token)
    count = len(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 15.0
    while pids and time.monotonic() < deadline:
        time.sleep(0.25)
        pids = marked(token)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return count


def read_figures(bench: Bench, lines: list[str]) -> list[dict[str, Any]] | None:
    found = summary.parse(lines, bench.name)
    if found is not None:
        return list(found.get("figures") or [])
    if bench.parse == "ledger":
        message = last_json_object("".join(lines))
        if message is not None:
            return ledger_figures(message)
    return None


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object in `text` that starts a line (on one line or indented)."""
    decoder = json.JSONDecoder()
    starts = [0] if text.startswith("{") else []
    starts += [index + 1 for index in range(len(text)) if text.startswith("\n{", index)]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def ledger_figures(message: dict[str, Any]) -> list[dict[str, Any]]:
    """bench/ledger.py's JSON summary as figures: ours against raw COPY, and latency."""
    figures = []
    for key, where in (("process", "journal in a writer process"), ("in_loop", "in-loop journal")):
        mode = message.get(key)
        if not isinstance(mode, dict):
            continue
        ours = mode.get("ours_transfers_per_s")
        batch = mode.get("raw_batch")
        raw_name = "raw copy_records_to_table" + (f", batches of {batch:,}" if batch else "")
        figures.append(
            summary.figure(
                f"durable transfers/s, {where}",
                ours,
                "transfers/s",
                baseline=mode.get("raw_transfers_per_s"),
                baseline_name=raw_name,
            )
        )
        if mode.get("raw_one_batch_transfers_per_s"):
            figures.append(
                summary.figure(
                    f"durable transfers/s, {where}, vs one batch",
                    ours,
                    "transfers/s",
                    baseline=mode["raw_one_batch_transfers_per_s"],
                    baseline_name="raw copy_records_to_table, one transaction",
                )
            )
        if mode.get("journal_alone_transfers_per_s"):
            figures.append(
                summary.figure(
                    "journal alone (no actors), transfers/s",
                    mode["journal_alone_transfers_per_s"],
                    "transfers/s",
                    baseline=mode.get("raw_transfers_per_s"),
                    baseline_name=raw_name,
                )
            )
        latency = mode.get("latency_ms") or {}
        for name in ("p50", "p99", "p99.9"):
            if name in latency:
                figures.append(
                    summary.figure(
                        f"latency {name} (call → reply after commit), {where}",
                        latency[name],
                        "ms",
                        better="lower",
                    )
                )
    return figures


# ------------------------------------------------------------------ the block


def display(command: list[str]) -> str:
    """The command as typed from the repository root (`python` for this interpreter)."""
    interpreter = Path(command[0])
    with contextlib.suppress(ValueError):
        interpreter = interpreter.relative_to(ROOT)
    shown = "python" if interpreter.is_absolute() else str(interpreter)
    return shlex.join([shown, *command[1:]])


def shorten(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: float) -> str:
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10 or value == int(value):
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(outcome: Outcome) -> list[list[str]]:
    name = outcome.bench.name
    if not outcome.figures:
        return [[name, "—", outcome.status, "", ""]]
    result = []
    if outcome.status != "ok":
        result.append([name, "—", outcome.status, "", ""])
    for entry in outcome.figures:
        unit = entry.get("unit", "")
        value = entry.get("value")
        shown = "—" if value is None else f"{number(value)} {unit}".strip()
        if value is None and entry.get("note"):
            shown += f" ({shorten(str(entry['note']), 100)})"
        baseline = entry.get("baseline")
        base = (
            ""
            if baseline is None
            else f"{number(baseline)} {unit}, {entry.get('baseline_name', 'baseline')}"
        )
        ratio = entry.get("ratio")
        ratio_text = "" if ratio is None else f"{ratio:.2f}"
        if ratio is not None and entry.get("better") == "lower":
            ratio_text += " (lower is better)"
        result.append([name, str(entry.get("figure", "?")), shown, base, ratio_text])
    return result


def machine(load: tuple[float, float, float]) -> str:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.platform()},"
        f" Python {platform.python_version()} ({platform.python_implementation()});"
        f" load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)"
    )


def block(
    outcomes: list[Outcome],
    command: str,
    quick: bool,
    started: datetime.datetime,
    seconds: float,
    load: tuple[float, float, float],
) -> str:
    minutes, rest = divmod(round(seconds), 60)
    size = (
        "quick sizes (`--quick`): smaller and shorter than the runs described below, so the"
        " figures differ from theirs"
        if quick
        else "full sizes (each benchmark's defaults)"
    )
    lines = [
        START,
        "## Summary (generated by `python -m bench`; do not edit between the markers)",
        "",
        f"`{command}`, started {started:%Y-%m-%d %H:%M} UTC, {minutes} min {rest} s in all;"
        f" {size}. One run of each on a shared, noisy machine. A baseline is measured in the"
        " same run as its figure (same process or same moment, same machine); ratio ="
        " value / baseline.",
        "",
        f"Machine: {machine(load)}.",
        "",
        "| bench | figure | value | baseline (same run) | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for outcome in outcomes:
        lines += ["| " + " | ".join(cell(text) for text in row) + " |" for row in rows(outcome)]
    lines += ["", "Each benchmark as it ran (from the repository root):", ""]
    for outcome in outcomes:
        lines.append(
            f"- {outcome.bench.name}: `{display(outcome.command)}` — {outcome.status},"
            f" {outcome.seconds:.0f} s"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


def rewrite(text: str, generated: str) -> str:
    """`text` with the generated block replaced, or inserted after the introduction."""
    start, end = text.find(START), text.find(END)
    if start != -1 and end > start:
        after = end + len(END)
        if text.startswith("\n", after):
            after += 1
        return text[:start] + generated + text[after:]
    lines = text.splitlines(keepends=True)
    fenced = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            return "".join(lines[:index]) + generated + "\n" + "".join(lines[index:])
    return text + ("" if text.endswith("\n") else "\n") + "\n" + generated


def write(path: Path, generated: str) -> None:
    """Replace the block in the file as it is now (others may edit the rest), atomically."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    updated = rewrite(text, generated)
    temporary = path.with_name(path.name + ".bench-tmp")
    temporary.write_text(updated)
    os.replace(temporary, path)


# ------------------------------------------------------------------ main


def names(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; known: {', '.join(NAMES)}")
    return chosen


def main(argv: list[str] | None = None, runner: Callable[..., Outcome] = run_one) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a few minutes")
    parser.add_argument(
        "--only", type=names, default=list(NAMES), help=f"comma-separated: {','.join(NAMES)}"
    )
    parser.add_argument("--no-write", action="store_true", help="print the block, leave the doc")
    parser.add_argument("--timeout", type=float, help="seconds per benchmark (default: its own)")
    parser.add_argument("--logs", type=Path, help="keep each output here (default: a temp dir)")
    parser.add_argument("--doc", type=Path, default=DOC, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = display([sys.executable, "-m", "bench", *given])

    logs = arguments.logs or Path(tempfile.mkdtemp(prefix="strongroom-bench-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    print(f"{command}\nmachine: {machine(load)}\nlogs: {logs}", flush=True)
    outcomes = [
        runner(bench, arguments.quick, arguments.timeout, logs)
        for bench in BENCHES
        if bench.name in arguments.only
    ]
    generated = block(
        outcomes, command, arguments.quick, started_at, time.monotonic() - started, load
    )
    print("\n" + generated, flush=True)
    if arguments.no_write:
        print("(--no-write: docs left as they are)")
    else:
        write(arguments.doc, generated)
        print(f"rewrote the summary block of {arguments.doc}")
    print(f"logs: {logs}")
    failed = [outcome.bench.name for outcome in outcomes if outcome.status != "ok"]
    if failed:
        print(f"not ok: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
