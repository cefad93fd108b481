from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ledger import check_ledger
from tests.server import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the contract tests of the whole session."""
    process = ServerProcess(Path(tmp_path_factory.mktemp("serve")))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(autouse=True)
def ledger_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the session's server: its ledger still balances."""
    used = request.getfixturevalue("server") if "server" in request.fixturenames else None
    yield
    if isinstance(used, ServerProcess) and used.running:
        check_ledger(used)
