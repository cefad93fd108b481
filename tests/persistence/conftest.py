from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from strongroom.persistence.database import EmbeddedPostgres, create_pool, migrate


@pytest.fixture(scope="session")
def database_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL (embedded) for the persistence tests; each test gets its own database."""
    embedded = EmbeddedPostgres(Path(tmp_path_factory.mktemp("postgres")))
    url = embedded.start()
    yield url
    embedded.stop()


@pytest_asyncio.fixture(loop_scope="function")
async def pool(database_server: str, request: pytest.FixtureRequest) -> AsyncIterator[asyncpg.Pool]:
    name = "test_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    admin = await asyncpg.connect(database_server)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = database_server.replace("/postgres?", f"/{name}?")
    pool = await create_pool(url)
    await migrate(pool)
    yield pool
    await pool.close()
