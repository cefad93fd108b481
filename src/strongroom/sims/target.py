"""What a run drives: the whole system started in this process, or a running server.

`--target inproc` starts `strongroom serve` on this event loop (REST, feed and MTF on
free ports of 127.0.0.1) over an embedded PostgreSQL of its own in a temporary data
directory, so that the in-process edge can call the very `Trading` the listeners use,
and the database is known for the checks at the end. The server's log goes to
`OUT/server.log` (warnings also to stderr), not over the progress bar.

`--target http://HOST:PORT` drives a running server: the MTF and feed ports come from
`--mtf-port` / `--ws-port` or else from its `GET /status/` (`ports`); the admin's
credentials from `STRONGROOM_ADMIN_CLIENT_ID` / `_SECRET` or `DATA_DIR/admin-credentials.json`
(`--data-dir`); the database from `--database-url` or the embedded PostgreSQL of
`--data-dir`. Without a database the invariants are reported as not checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from loguru import logger

from strongroom.config import TradingConfig
from strongroom.http.context import Services
from strongroom.service import Trading

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


class TargetError(RuntimeError):
    pass


@dataclass(slots=True)
class Target:
    name: str  # "inproc" or the URL
    base_url: str
    ws_url: str | None
    mtf_address: tuple[str, int] | None
    admin_client_id: str
    admin_client_secret: str
    database_url: str | None
    database_missing: str = ""  # why there is no database URL
    trading: Trading | None = None  # in-process only
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class InprocSystem:
    """`serve` on this loop, over an embedded PostgreSQL in a temporary directory."""

    def __init__(self, out_dir: Path, log_level: str, keep_data: bool = False) -> None:
        self.out_dir = out_dir
        self.log_level = log_level
        self.keep_data = keep_data
        self.data_dir = Path(tempfile.mkdtemp(prefix="strongroom-sim-"))
        self._embedded: object | None = None
        self._task: asyncio.Task[int] | None = None
        self._stop: Callable[[], None] | None = None
        self.services: Services | None = None

    def _log_to_file(self) -> None:
        # The CLI logs to stderr; in-process, the server's lines would cut through the
        # progress bar, so they go to a file, and only warnings to stderr.
        logger.remove()
        logger.add(self.out_dir / "server.log", level=self.log_level.upper(), diagnose=False)
        logger.add(sys.stderr, level="WARNING", diagnose=False)

    async def start(self) -> Target:
        from strongroom.persistence.database import EmbeddedPostgres
        from strongroom.server import Settings, serve

        self._log_to_file()
        embedded = EmbeddedPostgres(self.data_dir)
        self._embedded = embedded
        database_url = await asyncio.to_thread(embedded.start)
        admin_id, admin_secret = "sim-admin", secrets.token_hex(16)
        settings = Settings(
            data_dir=self.data_dir,
            database_url=database_url,
            host="127.0.0.1",
            http_port=free_port(),
            ws_port=free_port(),
            mtf_port=free_port(),
            config_path=None,
            admin_client_id=admin_id,
            admin_client_secret=admin_secret,
        )
        ready = asyncio.Event()

        def on_ready(services: Services, stop: Callable[[], None]) -> None:
            self.services, self._stop = services, stop
            ready.set()

        self._task = asyncio.create_task(serve(settings, on_ready), name="sim-serve")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiting}, timeout=START_TIMEOUT_S,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if not ready.is_set():
            waiting.cancel()
            if self._task.done():
                self._task.result()  # raises why it could not start
            raise TargetError(f"the in-process system was not ready in {START_TIMEOUT_S} s")
        assert self.services is not None
        ports = self.services.readiness.ports
        return Target(
            name="inproc",
            base_url=f"http://127.0.0.1:{ports['http']}",
            ws_url=f"ws://127.0.0.1:{ports['feed']}/",
            mtf_address=("127.0.0.1", ports["mtf"]),
            admin_client_id=admin_id,
            admin_client_secret=admin_secret,
            database_url=database_url,
            trading=self.services.trading,
        )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop_server(self) -> int | None:
        """Stop as SIGTERM would: what was accepted is committed. PostgreSQL stays up."""
        if self._task is None:
            return None
        if self._stop is not None and not self._task.done():
            self._stop()
        try:
            return await asyncio.wait_for(self._task, STOP_TIMEOUT_S)
        except TimeoutError:
            logger.error("the in-process server did not stop in time")
            return None

    async def close(self) -> None:
        await self.stop_server()
        if self._embedded is not None:
            from strongroom.persistence.database import EmbeddedPostgres

            assert isinstance(self._embedded, EmbeddedPostgres)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._embedded.stop)
        if not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _admin_credentials(data_dir: Path | None) -> tuple[str, str]:
    client_id = os.environ.get("STRONGROOM_ADMIN_CLIENT_ID")
    secret = os.environ.get("STRONGROOM_ADMIN_CLIENT_SECRET")
    if client_id and secret:
        return client_id, secret
    if data_dir is not None:
        path = data_dir / "admin-credentials.json"
        if path.is_file():
            document = json.loads(path.read_text())
            return str(document["client_id"]), str(document["client_secret"])
    raise TargetError(
        "admin credentials: set STRONGROOM_ADMIN_CLIENT_ID and STRONGROOM_ADMIN_CLIENT_SECRET,"
        " or give --data-dir of the server (its admin-credentials.json)"
    )


def embedded_database_url(data_dir: Path) -> str | None:
    """The URL of the embedded PostgreSQL a server runs in `data_dir`, if it is up."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    if info is None:
        return None
    url: str = info.get_uri()
    return url


async def remote(
    url: str,
    *,
    mtf_port: int | None,
    ws_port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    config: TradingConfig,
) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"--target is inproc or http://HOST:PORT, not {url!r}")
    base_url = f"{parts.scheme}://{parts.netloc}"
    host = parts.hostname
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        try:
            status = (await client.get("/status/")).json()
            markets = (await client.get("/markets/")).json()
        except (httpx.HTTPError, ValueError) as error:
            raise TargetError(f"{base_url}/status/ did not answer: {error}") from None
    if status.get("status") != "ok":
        raise TargetError(f"{base_url} is not ready: {status}")
    ports = status.get("ports") or {}
    notes = []
    if mtf_port is None and "mtf" not in ports:
        notes.append("the server does not report its MTF port: MTF agents are not run")
    if ws_port is None and "feed" not in ports:
        notes.append("the server does not report its feed port: subscribers are not run")
    mtf = mtf_port or ports.get("mtf")
    feed = ws_port or ports.get("feed")
    served = {market["id"]: market for market in markets}
    for symbol, market in config.markets.items():
        other = served.get(symbol)
        if other is not None and (
            Decimal(other["tick_size"]) != market.tick_size
            or Decimal(other["lot_size"]) != market.lot_size
            or other["market_id"] != market.market_id
        ):
            raise TargetError(f"{symbol} on the server is not the built-in market: {other}")
    client_id, secret = _admin_credentials(data_dir)
    missing = ""
    if database_url is None and data_dir is not None:
        database_url = embedded_database_url(data_dir)
        if database_url is None:
            missing = f"no embedded PostgreSQL running in {data_dir}"
    elif database_url is None:
        missing = "no --database-url or --data-dir: the database is not reachable"
    return Target(
        name=base_url,
        base_url=base_url,
        ws_url=f"ws://{host}:{feed}/" if feed else None,
        mtf_address=(host, int(mtf)) if mtf else None,
        admin_client_id=client_id,
        admin_client_secret=secret,
        database_url=database_url,
        database_missing=missing,
        notes=notes,
    )
