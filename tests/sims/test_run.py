"""`strongroom sim list` and `strongroom sim run` end to end, plus the harness's parts.

The end-to-end runs are real: `sim run smoke` starts the whole system in a subprocess
of its own (embedded PostgreSQL, REST, feed, MTF), drives every edge for a few seconds,
checks the invariants over the database and writes its report; then the same scenario
against the session's served instance, its ports found from `GET /status/`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from strongroom.config import DEFAULT
from strongroom.sims.agents import Agent, Cancel, Deposit, Place
from strongroom.sims.edges import route_missing
from strongroom.sims.market import walks
from strongroom.sims.metrics import Outcome, Recorder
from strongroom.sims.rest_client import Response
from strongroom.sims.run import Run, _check_routes
from strongroom.sims.scenarios import ScenarioError, load, names
from strongroom.sims.target import Target
from tests.server import ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, ServerProcess

BUNDLED = {"smoke", "market-day", "flash-crash", "withdrawal-run", "feed-storm"}
RUN_TIMEOUT_S = 120
PLOTS = ("throughput.png", "latency.png", "book.png", "pnl.png", "feed.png")


def strongroom(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env={**os.environ, **environment},
        check=False,
    )


def test_sim_list_prints_the_bundled_scenarios() -> None:
    answer = strongroom("sim", "list")
    assert answer.returncode == 0, answer.stderr
    assert set(answer.stdout.split()) == BUNDLED
    assert names() == sorted(BUNDLED)


def _check_report(out: Path, target: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    assert report["scenario"] == "smoke"
    assert report["seed"] == 7
    assert report["target"] == target
    assert report["duration_s"] == 3.0
    counts = report["counts"]
    assert counts["sent"] > 100
    assert counts["acked"] > 0.8 * counts["sent"]
    assert counts["sent"] == counts["acked"] + counts["rejected"] + counts["errors"]
    assert counts["errors"] == 0
    assert report["throughput_per_s"] > 0
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p999"] <= latency["max"]
    assert report["invariants_checked"] is True
    assert set(report["invariants"]) == {
        "ledger_balanced",
        "no_negative_member_balance",
        "holds_accounted",
        "acked_orders_once",
        "acked_transfers_once",
    }
    assert all(report["invariants"].values()), report["invariant_details"]
    per_edge = report["per_edge"]
    assert per_edge["rest"]["acked"] > 0 and per_edge["mtf"]["acked"] > 0
    assert per_edge["rest"]["actions"]["withdraw"] > 0
    feed = per_edge["ws"]
    assert feed["connected"] == feed["connections"] == 4
    assert feed["by_type"].get("trade", 0) > 0 and feed["book_seq_gaps"] == 0
    acknowledged = report["acknowledged"]
    assert acknowledged["orders"] > 0 and acknowledged["deposits"] > 0
    assert acknowledged["withdrawals"] > 0, "POST /withdrawal/ acknowledged nothing"
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "report.html").read_text()
    for name in PLOTS:
        assert f'src="{name}"' in page
    return report


def test_sim_run_smoke_in_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    answer = strongroom("sim", "run", "smoke", "--seed", "7", "--duration", "3", "--out", str(out))
    assert answer.returncode == 0, answer.stdout + answer.stderr
    report = _check_report(out, "inproc")
    assert report["per_edge"]["inproc"]["acked"] > 0
    assert "invariant acked_orders_once: held" in answer.stdout


def test_sim_run_smoke_against_a_served_instance(tmp_path: Path) -> None:
    """A server of its own: the scenario's makers leave orders on its books, which the
    session's server keeps clean for the tests that share it."""
    server = ServerProcess(tmp_path / "served")
    server.start()
    try:
        served_smoke(server, tmp_path / "out")
    finally:
        server.stop()


def served_smoke(server: ServerProcess, out: Path) -> None:
    answer = strongroom(
        "sim", "run", "smoke", "--seed", "7", "--duration", "3", "--out", str(out),
        "--target", server.base_url, "--data-dir", str(server.data_dir),
        STRONGROOM_ADMIN_CLIENT_ID=ADMIN_CLIENT_ID,
        STRONGROOM_ADMIN_CLIENT_SECRET=ADMIN_CLIENT_SECRET,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr
    report = _check_report(out, server.base_url)
    # The in-process populations cannot be in-process here: they go through REST, said so.
    assert "inproc" not in report["per_edge"]
    assert any("uses REST instead" in warning for warning in report["warnings"])


def test_scenarios_refuse_what_cannot_run(tmp_path: Path) -> None:
    smoke = (Path(__file__).parents[2] / "src/strongroom/sims/scenarios/smoke.toml").read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(smoke.replace('edge = "rest"\ncount = 2', 'edge = "mtf"\ncount = 2', 1))
    with pytest.raises(ScenarioError, match="withdrawer uses rest, not mtf"):
        load(str(wrong))
    wrong.write_text(
        smoke + '\n[[agents]]\nname = "x"\nkind = "taker"\nedge = "rest"\nflavour = 1\n'
    )
    with pytest.raises(ScenarioError, match="flavour"):
        load(str(wrong))
    with pytest.raises(ScenarioError, match="bundled are"):
        load("no-such-scenario")


def test_the_same_seed_makes_the_same_decisions() -> None:
    scenario = load("market-day")

    def decisions(seed: int) -> list[object]:
        paths = walks(scenario, DEFAULT, seed)
        made = []
        for population in scenario.agents:
            if population.kind == "subscriber":
                continue
            agent = Agent.make(population, 0, DEFAULT, paths, seed, "run")
            for step in range(30):
                action = agent.decide(step * 0.5)
                agent.settled(action, step, live=True)
                made.append(action)
        return made

    first = decisions(3)
    assert first == decisions(3)
    assert first != decisions(4)
    kinds = {type(action) for action in first}
    assert {Place, Cancel, Deposit} <= kinds


def test_latency_runs_from_the_intended_send_time() -> None:
    recorder = Recorder(bin_s=1.0)
    # Intended at 0.0 s, sent late, answered at 2.5 s: 2.5 s of latency, not the
    # round trip of the late send. It counts in the bin of its intended time.
    recorder.sent("rest", "place", 0.0)
    recorder.done("rest", "place", Outcome.ACKED, "", 0.0, 2.5)
    recorder.sent("rest", "place", 1.2)
    recorder.done("rest", "place", Outcome.REJECTED, "insufficient_funds", 1.2, 1.21)
    figures = recorder.edge_report("rest", 3.0)
    assert figures["acked"] == 1 and figures["rejected"] == 1
    assert figures["latency_ms"]["max"] == pytest.approx(2_500, rel=1e-3)
    assert recorder.bins[0].latencies_ms == [pytest.approx(2_500)]
    assert recorder.bins[2].acked["rest"] == 1  # throughput counts when it was answered
    assert figures["rejections"] == {"place: insufficient_funds": 1}


def test_a_missing_route_is_told_from_a_missing_resource() -> None:
    unrouted = Response(404, b'{"code": "not_found", "detail": "404 Not Found"}')
    unknown = Response(404, b'{"code": "not_found", "detail": "wallet w_1"}')
    assert route_missing(unrouted) and route_missing(Response(405, b""))
    assert not route_missing(unknown) and not route_missing(Response(422, b"{}"))


@pytest.mark.asyncio(loop_scope="function")
async def test_routes_the_scenario_needs_and_the_server_lacks_are_warned_of(
    tmp_path: Path,
) -> None:
    scenario = load("withdrawal-run")
    target = Target("http://sim.test", "http://sim.test", None, None, "id", "secret", None)
    run = Run(scenario, 1, target, tmp_path, Console(file=io.StringIO()), DEFAULT)
    agents = [
        Agent.make(population, 0, DEFAULT, {}, 1, "run")
        for population in scenario.agents
        if population.kind in ("withdrawer", "depositor")
    ]
    paths = {"/management/v2/deposits/new": {"post": {}}, "/orders/": {"post": {}}}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"paths": paths})

    async with httpx.AsyncClient(
        base_url="http://sim.test", transport=httpx.MockTransport(answer)
    ) as client:
        await _check_routes(run, agents, client)
    assert run.degraded
    assert run.warnings == [
        "POST /withdrawal/ is not served by http://sim.test: populations withdrawers will"
        " only count errors (/withdrawal/ missing)"
    ]
