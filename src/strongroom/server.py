"""`strongroom serve`: database, recovery, actors, journal and listeners in one process.

Start order: PostgreSQL (embedded unless a URL is given) → migrations → recovery →
actors → journal → REST. Stop order (SIGINT/SIGTERM): stop accepting, let in-flight
requests finish (their commands complete and commit), drain the journal, stop the
actors, close the pool: exit 0. A broken invariant stops the process at once
(exit 70) so that the next start recovers from what was committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import os
import signal
import ssl
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import uvicorn
from loguru import logger

from strongroom import config as trading_config
from strongroom.actors.book import OrderBook
from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import BookOrder, JournalUnit
from strongroom.actors.runtime import pykka as pykka_runtime
from strongroom.actors.system import Bridge
from strongroom.custody.chain import (
    DEFAULT_NETWORKS,
    PER_MILLION,
    NetworkParameters,
    SimulatedChain,
)
from strongroom.custody.desk import Custody
from strongroom.custody.worker import CustodyWorker, WorkerSettings
from strongroom.http.app import create_app
from strongroom.http.auth import Authority
from strongroom.http.context import Services
from strongroom.http.feed import FeedSettings, FeedThread
from strongroom.http.market_data import MarketData
from strongroom.http.webhooks import Webhooks, WebhookSettings
from strongroom.identity.at_rest import ServerSealer
from strongroom.identity.credentials import UserTokens
from strongroom.identity.users import Users
from strongroom.persistence import repositories
from strongroom.persistence.database import EmbeddedPostgres, create_pool, migrate
from strongroom.persistence.journal import Journal
from strongroom.persistence.recovery import MarketCounters, RecoveredState, recover
from strongroom.persistence.writer import JournalClient
from strongroom.service import Trading
from strongroom.wire.credentials import CredentialStore, load_key
from strongroom.wire.gateway import GatewaySettings, MtfGateway
from strongroom.wire.mtf import Keyring, Limits

EXIT_FATAL = 70
VOLUME_WINDOW_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class CustodySettings:
    """The simulated chains withdrawals go out by, and the custody worker's pace."""

    chain_block_s: float = 1.0
    chain_confirmations: int = 3
    chain_failure_rate: float = 0.0
    chain_seed: int = 0
    interval_s: float = 0.5
    payment_confirm_s: float = 1.0

    def chain(self) -> SimulatedChain:
        network = NetworkParameters(
            block_time_ns=int(self.chain_block_s * 1e9),
            confirmations_required=self.chain_confirmations,
            failure_per_million=round(self.chain_failure_rate * PER_MILLION),
        )
        return SimulatedChain(
            seed=self.chain_seed,
            clock=time.time_ns,
            networks=dict.fromkeys(DEFAULT_NETWORKS, network),
        )


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str | None
    host: str
    http_port: int
    ws_port: int
    mtf_port: int
    config_path: Path | None
    mtf_tls_cert: Path | None = None
    mtf_tls_key: Path | None = None
    mtf_tls_client_ca: Path | None = None
    mtf_rate_per_s: float = 50_000.0
    feed: FeedSettings = field(default_factory=FeedSettings)
    admin_client_id: str | None = None
    admin_client_secret: str | None = None
    vault_shards: int = 4
    journal_process: bool = True
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    custody: CustodySettings = field(default_factory=CustodySettings)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns shutdown."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def mtf_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the MTF port when a certificate is configured; client certificates are
    required (and name the client id) when a client CA is configured too."""
    if settings.mtf_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.mtf_tls_cert, settings.mtf_tls_key)
    if settings.mtf_tls_client_ca is not None:
        context.load_verify_locations(settings.mtf_tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def fatal(error: BaseException) -> None:
    """Fail-stop: memory may be ahead of the journal; only recovery is safe now."""
    logger.opt(exception=error).critical("fatal error, stopping at once")
    os._exit(EXIT_FATAL)


def build_books(
    config: trading_config.TradingConfig, state: RecoveredState
) -> dict[str, OrderBook]:
    books: dict[str, OrderBook] = {}
    for symbol, market in config.markets.items():
        counters = state.markets.get(symbol, MarketCounters())
        book = OrderBook(
            market.market_id,
            collar_bps=config.fees.market_collar_bps,
            first_trade_id=counters.next_trade_id,
            first_priority=counters.next_priority,
        )
        book.restore_counters(
            last_price=counters.last_price,
            next_trade_id=counters.next_trade_id,
            next_priority=counters.next_priority,
            sequence=counters.sequence,
        )
        books[symbol] = book
    for order in state.live_orders:  # ascending priority within each market
        terms = BookOrder(
            order.order_id, order.wallet_id, order.side, order.kind, order.price,
            order.quantity, order.stop_price, order.display_quantity,
            order.time_in_force, order.post_only,
        )  # fmt: skip
        book = books[order.market]
        if order.status == "pending":
            book.restore_pending(terms, order.remaining, order.priority)
        else:
            book.restore_resting(terms, order.remaining, order.visible, order.priority)
    return books


async def bootstrap_admin(authority: Authority, settings: Settings) -> None:
    if settings.admin_client_id and settings.admin_client_secret:
        await authority.ensure_application(
            "admin", settings.admin_client_id, settings.admin_client_secret, "read write admin"
        )
        return
    if await authority.application_count() > 0:
        return
    client_id, secret = await authority.create_application("admin", "read write admin")
    path = settings.data_dir / "admin-credentials.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"client_id": client_id, "client_secret": secret}, file)
    os.chmod(path, 0o600)
    logger.info("admin credentials written", path=str(path))


@dataclass(slots=True)
class Core:
    """The running trading core: database pool, actors, journal and the service facade."""

    config: trading_config.TradingConfig
    pool: asyncpg.Pool
    journal: Journal | JournalClient
    runtime: pykka_runtime.PykkaRuntime
    bridge: Bridge
    trading: Trading
    recovered: RecoveredState

    async def stop(self) -> None:
        """Finish what was accepted: drain the journal, stop the actors, close the pool."""
        self.trading.accepting = False
        await self.journal.drain()
        self.runtime.stop()
        await self.journal.stop()
        self.bridge.close()
        await self.pool.close()


async def start_core(
    config: trading_config.TradingConfig,
    database_url: str,
    *,
    vault_shards: int = 4,
    journal_process: bool = True,
    payment_confirm_s: float = 1.0,
) -> Core:
    """Migrate, recover and start the actors and the journal (no listeners).

    `journal_process`: commit in a writer process of its own (`persistence/writer.py`)
    rather than on this event loop; same guarantees, less work under this GIL.
    """
    pool = await create_pool(database_url)
    await migrate(pool)
    async with pool.acquire() as connection:
        state = await recover(connection)
    loop = asyncio.get_running_loop()
    journal: Journal | JournalClient | None = None

    def commit(unit: JournalUnit) -> None:
        assert journal is not None
        journal.submit(unit)

    bridge = Bridge(loop, commit)
    if journal_process:
        journal = JournalClient(database_url, bridge.committed, fatal, currencies=config.currencies)
    else:
        journal = Journal(pool, bridge.committed, fatal, currencies=config.currencies)
    ledger = Ledger(config.currencies)
    ledger.restore(state.balances, state.holds, [])
    clearing = Clearing(config, ledger, next_transfer_id=state.next_transfer_id)
    clearing.restore(state.live_orders, state.deposits)
    custody = Custody(clearing, payment_confirm_delay_ns=int(payment_confirm_s * 1e9))
    custody.restore(state.wallet_transfers, state.withdrawals, state.payments)
    runtime, _tops = pykka_runtime.start(
        config,
        clearing,
        custody,
        build_books(config, state),
        [
            pykka_runtime.RestoreOpenOrder(o.wallet_id, o.order_id, o.market)
            for o in state.live_orders
        ],
        bridge,
        fatal,
        shards=vault_shards,
    )
    await journal.start()
    trading = Trading(
        config,
        bridge,
        runtime.directory,
        next_order_id=state.next_order_id,
        next_deposit_id=state.next_deposit_id,
    )
    return Core(config, pool, journal, runtime, bridge, trading, state)


async def serve(
    settings: Settings, on_ready: Callable[[Services, Callable[[], None]], None] | None = None
) -> int:
    """Run until SIGINT/SIGTERM. `on_ready(services, stop)` is called once every listener
    is up, for a caller in this process (the simulation harness) that drives the service
    directly; `stop()` does what a SIGTERM does."""
    started = time.monotonic()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = trading_config.load(settings.config_path)
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        url = await asyncio.to_thread(embedded.start)
    core = await start_core(
        config,
        url,
        vault_shards=settings.vault_shards,
        journal_process=settings.journal_process,
        payment_confirm_s=settings.custody.payment_confirm_s,
    )
    pool, trading, state = core.pool, core.trading, core.recovered
    loop = asyncio.get_running_loop()
    derivation_key = load_key(settings.data_dir)

    def labelled(label: bytes) -> bytes:
        """A key of its own per use, from the one key kept outside the database."""
        return hmac.new(derivation_key, label, hashlib.sha256).digest()

    authority = Authority(pool, api_key_derivation_key=labelled(b"api keys"))
    users = Users(pool, ServerSealer(labelled(b"secrets at rest")), UserTokens(labelled(b"jwt")))
    await users.resume()
    authority.users = users
    webhooks = Webhooks(pool, ServerSealer(labelled(b"webhook secrets")), settings.webhooks)
    await bootstrap_admin(authority, settings)
    credentials = CredentialStore(pool, derivation_key, Keyring())
    market_data = MarketData(config)
    market_data.restore(
        {symbol: (c.sequence, c.last_price) for symbol, c in state.markets.items()},
        state.live_orders,
        await repositories.trade_volumes(pool, time.time() - VOLUME_WINDOW_S),
    )
    feed = FeedThread(
        config,
        market_data,
        dataclasses.replace(settings.feed, host=settings.host, port=settings.ws_port),
        authority.authenticate_feed,
        lambda principal, wallet_id: services.wallet_visible(principal, wallet_id),
    )
    await feed.start()
    trading.listen(feed.on_committed)  # before any command can commit
    services = Services(
        config=config,
        pool=pool,
        trading=trading,
        authority=authority,
        wallet_owners=await repositories.all_wallet_owners(pool),
        mtf_credentials=credentials,
        feed=feed,
        users=users,
        webhooks=webhooks,
        payment_address_key=labelled(b"payment addresses"),
    )
    core.bridge.listen_events(webhooks.wake)  # events committed by the journal
    await webhooks.start()  # events left pending before a restart are delivered too
    custody_worker = CustodyWorker(
        trading, settings.custody.chain(), WorkerSettings(settings.custody.interval_s)
    )
    await custody_worker.start()  # withdrawals in flight before a restart go on
    services.readiness.database = True
    services.readiness.listeners.update(http=False, mtf=False, feed=True)
    gateway = MtfGateway(
        trading,
        credentials,
        config,
        GatewaySettings(
            host=settings.host,
            port=settings.mtf_port,
            limits=Limits(
                rate_per_s=settings.mtf_rate_per_s, burst=max(1, int(settings.mtf_rate_per_s))
            ),
            ssl_context=mtf_ssl_context(settings),
        ),
    )
    await gateway.start()
    services.readiness.listeners["mtf"] = True
    server = _Server(
        uvicorn.Config(
            create_app(services),
            host=settings.host,
            port=settings.http_port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=20,
            limit_concurrency=2_000,
        )
    )

    def request_stop(signal_number: int) -> None:
        logger.info("stopping", signal=signal.Signals(signal_number).name)
        trading.accepting = False
        server.should_exit = True

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, request_stop, signal_number)

    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if serving.done():
        await serving  # raises the reason it could not start
        return 1
    services.readiness.ports.update(http=settings.http_port, mtf=gateway.port, feed=feed.port)
    services.readiness.listeners["http"] = True
    logger.info(
        "ready",
        http=f"http://{settings.host}:{settings.http_port}",
        mtf=f"{settings.host}:{gateway.port}",
        feed=f"ws://{settings.host}:{feed.port}/",
        startup_s=round(time.monotonic() - started, 3),
        live_orders=len(state.live_orders),
    )
    if on_ready is not None:
        on_ready(services, lambda: request_stop(signal.SIGTERM))
    await serving
    await gateway.stop()
    await feed.stop()
    await users.stop()
    await custody_worker.stop()
    await webhooks.stop()  # before the pool closes
    await core.stop()
    if embedded is not None:
        await asyncio.to_thread(embedded.stop)
    logger.info("stopped")
    return 0
