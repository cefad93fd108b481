"""The `strongroom` command line; the only place that configures logging sinks."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from loguru import logger


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError("a port is 0..65535")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError("must be more than 0 and less than 86400 seconds")
    return value


WEBHOOK_FLAGS: tuple[tuple[str, Callable[[str], float], str, str], ...] = (
    ("webhook-retry-base-s", _positive_seconds, "1", "the first webhook retry's delay"),
    ("webhook-retry-cap-s", _positive_seconds, "600", "webhook retry delays double up to this"),
    ("webhook-attempts-max", _positive, "20", "webhook attempts before an event is given up"),
    ("webhook-timeout-s", _positive_seconds, "5", "a webhook attempt's answer must come within"),
)


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a rate is 0 to 1")
    return value


CUSTODY_FLAGS: tuple[tuple[str, Callable[[str], float], str, str], ...] = (
    ("chain-block-s", _positive_seconds, "1", "the simulated chains' block time"),
    ("chain-confirmations", _positive, "3", "confirmations a simulated withdrawal needs"),
    ("chain-failure-rate", _rate, "0", "share of simulated withdrawal transactions that fail"),
    ("chain-seed", int, "0", "the simulated chains' seed (txids, failures)"),
    ("custody-interval-s", _positive_seconds, "0.5", "how often the custody worker runs"),
    ("payment-confirm-s", _positive_seconds, "1", "a fully paid payment finishes after"),
)


FEED_FLAGS: tuple[tuple[str, Callable[[str], int], str, str], ...] = (
    ("ws-max-connections", _positive, "10000", "feed connections (beyond: closed, 1013)"),
    ("ws-max-subscriptions", _positive, "100", "channels per feed connection"),
    ("ws-max-message-rate", _positive, "50", "feed messages in per second (then rate_limited)"),
    ("ws-max-message-bytes", _positive, "4096", "a feed message in (larger: closed, 1009)"),
    (
        "ws-backlog-bytes",
        int,
        "262144",
        "unsent bytes past which a feed client's book is"
        " conflated to a fresh snapshot (16x that: closed with 1008)",
    ),
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="strongroom", description=__doc__)
    root.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    root.add_argument("--log-level", default=_env("STRONGROOM_LOG_LEVEL", "INFO"))
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the service",
        description="Run REST, actors and journal on PostgreSQL (embedded unless a URL is given).",
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("STRONGROOM_DATA_DIR", "./.strongroom") or ""),
        help="env STRONGROOM_DATA_DIR; default ./.strongroom",
    )
    serve.add_argument(
        "--database-url",
        default=_env("STRONGROOM_DATABASE_URL"),
        help="env STRONGROOM_DATABASE_URL; default an embedded PostgreSQL in the data dir",
    )
    serve.add_argument(
        "--host", default=_env("STRONGROOM_HOST", "127.0.0.1"), help="env STRONGROOM_HOST"
    )
    for name, default in (("http", "8080"), ("ws", "8765"), ("mtf", "9100")):
        variable = f"STRONGROOM_{name.upper()}_PORT"
        serve.add_argument(
            f"--{name}-port",
            type=_port,
            default=_port(_env(variable, default) or ""),
            help=f"env {variable}; default {default}",
        )
    for name, what in (
        ("cert", "PEM certificate chain: serve MTF over TLS"),
        ("key", "PEM private key of the certificate"),
        ("client-ca", "PEM CA bundle: require client certificates (CN = client id)"),
    ):
        variable = f"STRONGROOM_MTF_TLS_{name.upper().replace('-', '_')}"
        serve.add_argument(
            f"--mtf-tls-{name}",
            type=Path,
            default=Path(value) if (value := _env(variable)) else None,
            help=f"env {variable}; {what}",
        )
    serve.add_argument(
        "--mtf-rate",
        type=float,
        default=float(_env("STRONGROOM_MTF_RATE", "50000") or 0),
        help="env STRONGROOM_MTF_RATE; order-entry frames per second per MTF session"
        " (beyond it: J 8); default 50000",
    )
    for flag, kind, default, what in FEED_FLAGS:
        variable = "STRONGROOM_" + flag.upper().replace("-", "_")
        serve.add_argument(
            f"--{flag}",
            type=kind,
            default=kind(_env(variable, default) or default),
            help=f"env {variable}; {what}; default {default}",
        )
    serve.add_argument(
        "--ws-compression",
        action="store_true",
        default=_env("STRONGROOM_WS_COMPRESSION") == "1",
        help="env STRONGROOM_WS_COMPRESSION=1; permessage-deflate on the feed (off by default)",
    )
    for flag, parse, default, what in WEBHOOK_FLAGS + CUSTODY_FLAGS:
        variable = "STRONGROOM_" + flag.upper().replace("-", "_")
        serve.add_argument(
            f"--{flag}",
            type=parse,
            default=parse(_env(variable, default) or default),
            help=f"env {variable}; {what}; default {default}",
        )
    serve.add_argument(
        "--config",
        type=Path,
        default=Path(value) if (value := _env("STRONGROOM_CONFIG")) else None,
        help="env STRONGROOM_CONFIG; a TOML file adding currencies and markets",
    )
    from strongroom.sims.cli import add_parser as add_sim_parser
    from strongroom.wire.console import add_parser

    add_parser(commands, dict(os.environ))
    add_sim_parser(commands)
    return root


HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan> | {message} | {extra}"
)


def configure_logging(level: str, json_logs: bool) -> None:
    """`diagnose=False`: loguru would otherwise print the values of a traceback's local
    variables, which may be passwords, OTPs or secrets."""
    logger.remove()
    if json_logs:
        logger.add(sys.stderr, level=level.upper(), serialize=True, diagnose=False)
    else:
        logger.add(sys.stderr, level=level.upper(), format=HUMAN_FORMAT, diagnose=False)


def main(argv: list[str] | None = None) -> int:
    from strongroom.sims.cli import normalize

    arguments = parser().parse_args(normalize(sys.argv[1:] if argv is None else argv))
    configure_logging(arguments.log_level, arguments.log_json or _env("STRONGROOM_LOG_JSON") == "1")
    if arguments.command == "serve":
        from strongroom.http.feed import FeedSettings
        from strongroom.http.webhooks import RetryPolicy, WebhookSettings
        from strongroom.server import CustodySettings, Settings, serve

        try:
            retry = RetryPolicy(
                arguments.webhook_retry_base_s,
                arguments.webhook_retry_cap_s,
                arguments.webhook_attempts_max,
            )
        except ValueError as error:
            print(f"strongroom serve: {error}", file=sys.stderr)
            return 2
        settings = Settings(
            data_dir=arguments.data_dir.resolve(),
            database_url=arguments.database_url,
            host=arguments.host,
            http_port=arguments.http_port,
            ws_port=arguments.ws_port,
            mtf_port=arguments.mtf_port,
            config_path=arguments.config,
            mtf_tls_cert=arguments.mtf_tls_cert,
            mtf_tls_key=arguments.mtf_tls_key,
            mtf_tls_client_ca=arguments.mtf_tls_client_ca,
            mtf_rate_per_s=arguments.mtf_rate,
            feed=FeedSettings(
                max_connections=arguments.ws_max_connections,
                max_subscriptions=arguments.ws_max_subscriptions,
                max_message_bytes=arguments.ws_max_message_bytes,
                message_rate_per_s=arguments.ws_max_message_rate,
                message_burst=2 * arguments.ws_max_message_rate,
                backlog_bytes=arguments.ws_backlog_bytes,
                backlog_close_bytes=16 * arguments.ws_backlog_bytes,
                compression=arguments.ws_compression,
            ),
            admin_client_id=_env("STRONGROOM_ADMIN_CLIENT_ID"),
            admin_client_secret=_env("STRONGROOM_ADMIN_CLIENT_SECRET"),
            webhooks=WebhookSettings(retry, timeout_s=arguments.webhook_timeout_s),
            custody=CustodySettings(
                chain_block_s=arguments.chain_block_s,
                chain_confirmations=int(arguments.chain_confirmations),
                chain_failure_rate=arguments.chain_failure_rate,
                chain_seed=int(arguments.chain_seed),
                interval_s=arguments.custody_interval_s,
                payment_confirm_s=arguments.payment_confirm_s,
            ),
        )
        return asyncio.run(serve(settings))
    if arguments.command == "sim":
        from strongroom.sims.cli import main as sim_main

        return sim_main(arguments)
    if arguments.command == "mtf":
        from strongroom import config as trading_config
        from strongroom.wire.console import CommandError, run

        if not arguments.client_id or not arguments.secret:
            print("strongroom mtf: --client-id and --secret are required", file=sys.stderr)
            return 2
        try:
            return asyncio.run(run(arguments, trading_config.load(arguments.config)))
        except CommandError as error:
            print(f"strongroom mtf: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            print(f"strongroom mtf: cannot connect: {error}", file=sys.stderr)
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
