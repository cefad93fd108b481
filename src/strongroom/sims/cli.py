"""`strongroom sim …`: `list`, `run SCENARIO`, `dst --seed N`.

SPEC §1's short form `strongroom sim SCENARIO` is `strongroom sim run SCENARIO`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SUBCOMMANDS = frozenset({"list", "run", "dst"})


def normalize(argv: list[str]) -> list[str]:
    """`sim SCENARIO …` → `sim run SCENARIO …` (options before the command stay put)."""
    if "sim" not in argv:
        return argv
    at = argv.index("sim") + 1
    if at < len(argv) and argv[at] not in SUBCOMMANDS and not argv[at].startswith("-"):
        return [*argv[:at], "run", *argv[at:]]
    return argv


def add_parser(commands: Any) -> None:
    sim = commands.add_parser(
        "sim", help="simulate: load scenarios, deterministic simulation with faults"
    )
    actions = sim.add_subparsers(dest="sim_command", required=True)
    actions.add_parser("list", help="print the bundled scenario names, one per line")
    run = actions.add_parser("run", help="run a load scenario through the edges")
    run.add_argument("scenario", help="a bundled scenario name or a TOML file")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--duration", type=float, default=None, help="seconds (scenario's default)")
    run.add_argument("--rate", type=float, default=None, help="arrivals per second")
    run.add_argument("--target", default="inproc", help="inproc or http://HOST:PORT")
    run.add_argument("--mtf-port", type=int, default=None, help="with a URL target")
    run.add_argument("--ws-port", type=int, default=None, help="with a URL target")
    run.add_argument("--out", type=Path, default=Path("sim-out"))
    run.add_argument(
        "--arrivals", choices=("poisson", "fixed"), default=None, help="(scenario's default)"
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="with a URL target: the server's data dir (admin credentials, embedded PostgreSQL)",
    )
    run.add_argument(
        "--database-url", default=None, help="with a URL target: check the invariants there"
    )
    run.add_argument("--keep-data", action="store_true", help="inproc: keep the temporary data dir")
    dst = actions.add_parser("dst", help="deterministic simulation of the behaviours")
    dst.add_argument("--seed", type=int, default=1)
    dst.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed")
    dst.add_argument("--steps", type=int, default=1_000)
    dst.add_argument(
        "--faults",
        default="all",
        help="comma-separated of delay, reorder, crash, commit, restart; 'none' or 'all'",
    )
    dst.add_argument(
        "--vault-idle-s",
        type=float,
        default=None,
        help="simulated seconds before an idle vault is passivated (default: the service's)",
    )
    dst.add_argument("--trace", action="store_true", help="print every step to stderr")


def main(arguments: argparse.Namespace) -> int:
    if arguments.sim_command == "list":
        from strongroom.sims.scenarios import names

        for name in names():
            print(name)
        return 0
    if arguments.sim_command == "run":
        from strongroom.sims.run import main as run_main

        return run_main(arguments)
    from strongroom.sims.dst import main as dst_main

    return dst_main(arguments)
