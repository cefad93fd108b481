"""A signal to the whole process group (a terminal's Ctrl-C, `timeout`, a supervisor)
stops the service as a signal to it alone does: what was accepted is committed, exit 0.

The journal writer is a child in the same group; it must not die of the signal before
the service has drained through it (it did: the service then stopped with exit 70)."""

from __future__ import annotations

from pathlib import Path

from tests.ledger import check_ledger
from tests.server import ServerProcess
from tests.support import balances, deposit, new_wallet


def test_sigterm_to_the_process_group_drains_and_exits_0(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", new_session=True)
    server.start()
    try:
        with server.client() as admin:
            wallet_id = new_wallet(admin, "group-signal")
            deposit(admin, wallet_id, "USDT", "12.5")
        assert server.stop_group() == 0, server.log()
        assert "fatal" not in server.log()
        server.start()
        with server.client() as admin:
            assert balances(admin, wallet_id)["USDT"]["amount"] == "12.500000"
        check_ledger(server)
    finally:
        server.close()
