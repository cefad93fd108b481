"""`strongroom sim dst`: determinism, the CI seeds, and proof that the checks can fail."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Any

import pytest

from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    AccountCode,
    JournalUnit,
    Posting,
    Transfer,
    TransferApplied,
    TransferOutcome,
)
from strongroom.config import TradingConfig
from strongroom.sims import dst
from strongroom.sims.dst import FAULTS, Outcome, Settings, parse_faults, run

CI_SEEDS = range(1, 201)
CI_STEPS = 200
CHUNK = 50


def test_the_same_seed_gives_the_same_run() -> None:
    first, second = run(Settings(1, 300)), run(Settings(1, 300))
    assert first.held and second.held
    assert first.digest == second.digest and len(first.digest) == 64
    assert first.faults_injected == second.faults_injected
    assert first.counts == second.counts


def test_different_seeds_give_different_runs() -> None:
    outcomes = [run(Settings(seed, 300)) for seed in (1, 2, 3, 4, 5)]
    assert all(outcome.held for outcome in outcomes)
    assert len({outcome.digest for outcome in outcomes}) == 5
    assert run(Settings(1, 300, frozenset())).digest != outcomes[0].digest


@pytest.mark.parametrize("first", range(CI_SEEDS.start, CI_SEEDS.stop, CHUNK))
def test_ci_seeds_hold_their_invariants(first: int) -> None:
    """A few hundred seeds with every fault, a chunk per test (a few seconds each)."""
    outcomes = [run(Settings(seed, CI_STEPS)) for seed in range(first, first + CHUNK)]
    broken = [outcome for outcome in outcomes if not outcome.held]
    assert not broken, "\n".join(
        f"{outcome.violation} (reproduce: {outcome.settings.command()})" for outcome in broken
    )
    assert sum(outcome.counts.get("answered", 0) for outcome in outcomes) > CHUNK * 20


@pytest.mark.parametrize("seed", [6, 102, 192, 216])
def test_replaces_on_their_way_keep_the_hold_whole(seed: int) -> None:
    """The seeds that found it: a replace admitted while a fill at the old, dearer price
    (or another replace) was still on its way to the ledger left the hold short, and the
    fill's settlement was refused (a fail-stop in production)."""
    outcome = run(Settings(seed, 400, frozenset()))
    assert outcome.held, f"{outcome.violation} (reproduce: {outcome.settings.command()})"


def test_every_fault_kind_is_injected() -> None:
    totals = dict.fromkeys(FAULTS, 0)
    for seed in range(1, 31):
        for kind, count in run(Settings(seed, 300)).faults_injected.items():
            totals[kind] += count
    assert all(count > 0 for count in totals.values()), totals


def test_idle_vaults_are_passivated_under_simulation() -> None:
    outcomes = [run(Settings(seed, 300, vault_idle_s=0.005)) for seed in range(1, 11)]
    assert sum(outcome.counts.get("vaults passivated", 0) for outcome in outcomes) > 0
    assert all(outcome.held for outcome in outcomes)
    assert "--vault-idle-s 0.005" in outcomes[0].settings.command()


# --------------------------------------------------------------------------- the checks fail

REVENUES = (AccountCode.REVENUE_FIAT, AccountCode.REVENUE_COIN)


class FeeSkippingClearing(Clearing):
    """Broken on purpose: settles trades without their fee postings (the held fee goes
    back to the payer when the order ends, so the ledger still balances)."""

    def _apply(
        self, unit: JournalUnit, kind: str, postings: tuple[Posting, ...], key: str | None = None
    ) -> int:
        if kind == "trade":
            postings = tuple(p for p in postings if p.credit.code not in REVENUES)
        return super()._apply(unit, kind, postings, key)


def fee_skipping(config: TradingConfig, ledger: Ledger, next_transfer_id: int) -> Clearing:
    return FeeSkippingClearing(config, ledger, next_transfer_id=next_transfer_id)


class PostingDroppingLedger(Ledger):
    """Broken on purpose: applies a fill without its last posting yet answers as if whole
    (the journal gets the whole transfer)."""

    def apply(self, transfer: Transfer) -> TransferOutcome:
        if transfer.kind == "trade" and len(transfer.postings) > 2:
            outcome = super().apply(
                Transfer(transfer.transfer_id, transfer.kind, transfer.postings[:-1], transfer.key)
            )
            return TransferApplied(transfer) if isinstance(outcome, TransferApplied) else outcome
        return super().apply(transfer)


def first_broken(settings: Settings, seeds: range) -> Outcome:
    for seed in seeds:
        outcome = run(dataclasses.replace(settings, seed=seed))
        if not outcome.held:
            return outcome
    raise AssertionError(f"no seed in {seeds} broke an invariant")


def test_a_clearing_that_skips_fees_is_caught_with_its_seed() -> None:
    outcome = first_broken(Settings(0, 200, clearing_factory=fee_skipping), range(1, 20))
    assert outcome.violation is not None and outcome.violation.name == "fees collected"
    report = outcome.report()
    assert report["invariants"] == "broken" and report["at_step"] is not None
    assert report["reproduce"] == (
        f"strongroom sim dst --seed {outcome.settings.seed} --steps 200"
        " --faults delay,reorder,crash,commit,restart"
    )
    # The report reproduces: the same seed breaks the same way at the same step.
    again = run(outcome.settings)
    assert (str(again.violation), again.step) == (str(outcome.violation), outcome.step)


def test_a_ledger_that_drops_a_posting_is_caught() -> None:
    settings = Settings(0, 300, frozenset(), ledger_factory=lambda config: PostingDroppingLedger(
        config.currencies))  # fmt: skip
    outcome = first_broken(settings, range(1, 20))
    # Memory and the store part ways: caught where the committed books first go wrong.
    assert outcome.violation is not None
    assert outcome.violation.name in (
        "no negative balance", "holds released", "memory committed",
        "restart rebuilds the committed state",
    )  # fmt: skip


def namespace(**values: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {"seed": 1, "seeds": 1, "steps": 100, "faults": "all",
                                "trace": False, "vault_idle_s": None}  # fmt: skip
    return argparse.Namespace(**{**defaults, **values})


def test_a_broken_invariant_exits_1_and_prints_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = first_broken(Settings(0, 200, clearing_factory=fee_skipping), range(1, 20))

    def broken_run(settings: Settings) -> Outcome:
        return dst.Simulation(dataclasses.replace(settings, clearing_factory=fee_skipping)).run()

    monkeypatch.setattr(dst, "run", broken_run)
    out = io.StringIO()
    with redirect_stdout(out):
        code = dst.main(namespace(seed=broken.settings.seed, steps=200))
    lines = out.getvalue().splitlines()
    assert code == 1
    command = broken.settings.command()
    assert f"reproduce: {command}" in lines
    last = json.loads(lines[-1])
    assert last["invariants"] == "broken" and last["reproduce"] == command


def test_the_long_mode_reports_a_summary() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = dst.main(namespace(seed=1, seeds=4, steps=100))
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert (summary["seeds"], summary["first_seed"], summary["steps"]) == (4, 1, 100)
    assert code == (1 if summary["failed"] else 0)
    assert summary["invariants"] == ("broken" if summary["failed"] else "held")
    assert set(summary["faults_injected"]) == set(FAULTS)


def test_faults_are_named() -> None:
    assert parse_faults("all") == frozenset(FAULTS)
    assert parse_faults("none") == frozenset()
    assert parse_faults("crash, delay") == {"crash", "delay"}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("meteor")
    assert dst.main(namespace(faults="meteor")) == 2


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("hash_seed", ["1", "4242"])
def test_the_command_prints_the_digest_whatever_the_hash_seed(hash_seed: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "sim", "dst", "--seed", "3", "--steps", "300"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    last = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(last) == {"seed", "steps", "digest", "invariants", "faults_injected"}
    assert (last["seed"], last["steps"], last["invariants"]) == (3, 300, "held")
    assert last["digest"] == run(Settings(3, 300)).digest
