"""`strongroom mtf`, the operators' member console, against the session's real server."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from strongroom.config import DEFAULT
from strongroom.wire.console import CommandError, queue
from strongroom.wire.mtf import FRAME, Code, MemberSession
from tests.server import ServerProcess
from tests.support import assert_quiet, deposit, new_wallet
from tests.wire.conftest import issue_credentials


def run_console(server: ServerProcess, client_id: int, secret: str, *words: str,
                stdin: str = "") -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "mtf", "--port", str(server.mtf_port),
         "--client-id", str(client_id), "--secret", secret, "--wait", "1", *words],
        input=stdin, capture_output=True, text=True, timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_commands_are_queued_as_frames() -> None:
    session = MemberSession(5, "s", wall_ns=lambda: 1, monotonic=lambda: 0.0)
    assert queue(session, ["sell", "BTC-USDT", "0.5", "30000", "--id", "9", "--tif", "IOC"],
                 DEFAULT) == 9  # fmt: skip
    assert queue(session, ["cancel", "ETH-USDT", "9"], DEFAULT) is None
    frames = list(FRAME.iter_unpack(session.data_to_send()))
    assert [(f[0], f[1], f[3], f[8], f[10], f[13]) for f in frames] == [
        (1, 9, Code.SELL, 1, 0.5, 1),
        (2, 9, Code.CANCEL, 0, 0.0, 2),
    ]
    with pytest.raises(CommandError):
        queue(session, ["buy", "NOPE", "1"], DEFAULT)
    with pytest.raises(CommandError):
        queue(session, ["hold", "BTC-USDT"], DEFAULT)


def test_console_sends_orders_and_prints_the_answers(
    server: ServerProcess, admin: httpx.Client
) -> None:
    assert_quiet(admin, "BTC-USDT", "80000.00", "80000.00")
    wallet_id = new_wallet(admin, "console")
    deposit(admin, wallet_id, "BTC", "1")
    client_id, secret = issue_credentials(admin, wallet_id)
    placed = run_console(server, client_id, secret, "sell", "BTC-USDT", "0.01", "80000",
                         "--id", "31")  # fmt: skip
    assert placed.returncode == 0, placed.stderr
    assert "l login accepted" in placed.stdout and "A accepted" in placed.stdout
    script = "cancel BTC-USDT 31\ncancel BTC-USDT 31\n"
    canceled = run_console(server, client_id, secret, stdin=script)
    assert canceled.returncode == 0, canceled.stderr
    assert "C canceled" in canceled.stdout and "6 unknown_order" in canceled.stdout
    refused = run_console(server, client_id, "f" * 64, "watch")
    assert refused.returncode == 1 and "login rejected" in refused.stdout
