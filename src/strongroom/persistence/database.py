"""Connections: an embedded PostgreSQL (pgserver) or any PostgreSQL 14+, and migrations."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from loguru import logger

Pool = asyncpg.Pool


class EmbeddedPostgres:
    """A private PostgreSQL server living in `data_dir/postgres`.

    pgserver keeps the server running across our restarts (a `kill -9` of strongroom
    leaves it up, and the next start reuses it), and stops it when the last
    process using it exits cleanly.
    """

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "postgres"
        self._server: Any = None

    def start(self) -> str:
        from pgserver import get_server  # type: ignore[attr-defined]

        self.directory.mkdir(parents=True, exist_ok=True)
        self._forget_dead_users()
        self._server = get_server(self.directory, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def _forget_dead_users(self) -> None:
        """pgserver stops the server when its last user exits; a process killed with
        SIGKILL never says goodbye, so drop the ids of processes that no longer exist."""
        users = self.directory / ".handle_pids.json"
        if users.exists():
            alive = [pid for pid in json.loads(users.read_text()) if psutil.pid_exists(pid)]
            users.write_text(json.dumps(alive))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


async def create_pool(url: str, *, size_max: int = 8) -> Pool:
    pool = await asyncpg.create_pool(
        url, min_size=2, max_size=size_max, command_timeout=30, timeout=10
    )
    assert pool is not None
    return pool


async def migrate(pool: Pool) -> list[str]:
    """Apply the packaged `NNNN_name.sql` files not applied yet, each in its transaction."""
    applied_now: list[str] = []
    async with pool.acquire() as connection:
        # One migrator at a time, even with several processes on one database.
        await connection.execute("SELECT pg_advisory_lock(727272)")
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row["version"]
                for row in await connection.fetch("SELECT version FROM schema_migrations")
            }
            folder = resources.files("strongroom.persistence") / "migrations"
            for entry in sorted(folder.iterdir(), key=lambda item: item.name):
                if not entry.name.endswith(".sql") or entry.name in done:
                    continue
                async with connection.transaction():
                    await connection.execute(entry.read_text())
                    await connection.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", entry.name
                    )
                applied_now.append(entry.name)
                logger.info("migration applied", version=entry.name)
        finally:
            await connection.execute("SELECT pg_advisory_unlock(727272)")
    return applied_now


async def wait_until_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            connection = await asyncpg.connect(url, timeout=5)
            await connection.close()
            return
        except (OSError, asyncpg.PostgresError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
