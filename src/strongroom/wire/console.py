"""`strongroom mtf`: an operator's MTF member console on `MtfClient`.

    strongroom mtf --client-id 123 --secret HEX buy BTC-USDT 0.5 30000 --tif IOC
    strongroom mtf ... cancel BTC-USDT 1700000000000000
    strongroom mtf ... replace BTC-USDT 1700000000000000 0.4 30000
    strongroom mtf ... watch
    strongroom mtf ... < commands.txt      (one command per line, same grammar)

It logs in, sends the commands in order, collects what the MTF answers for `--wait`
seconds after the last one, logs out, and prints every frame received as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from strongroom.actors.messages import Side, TimeInForce
from strongroom.config import TradingConfig
from strongroom.wire.client import MtfClient, MtfError
from strongroom.wire.mtf import Code, Frame, MemberSession, Reject

REASONS = {reason.value: reason.name.lower() for reason in Reject}
NAMES: dict[int, str] = {
    Code.LOGIN_ACCEPTED: "login accepted",
    Code.LOGIN_REJECTED: "login rejected",
    Code.ACCEPTED: "accepted",
    Code.REJECTED: "rejected",
    Code.EXECUTED: "executed",
    Code.CANCELED: "canceled",
    Code.REPLACED: "replaced",
    Code.HEARTBEAT: "heartbeat",
}


class CommandError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(message)


def command_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="command", add_help=False)
    commands = parser.add_subparsers(dest="verb", required=True)
    for verb in ("buy", "sell"):
        order = commands.add_parser(verb, add_help=False)
        order.add_argument("market")
        order.add_argument("quantity", type=float)
        order.add_argument("price", type=float, nargs="?", default=0.0, help="omit for market")
        order.add_argument("--id", type=int, help="client order id; default: time-based")
        order.add_argument("--stop", type=float, default=0.0)
        order.add_argument("--tip", type=float, default=0.0, help="iceberg display quantity")
        order.add_argument("--tif", choices=[tif.name for tif in TimeInForce], default="GTC")
        order.add_argument("--post-only", action="store_true")
    cancel = commands.add_parser("cancel", add_help=False)
    cancel.add_argument("market")
    cancel.add_argument("id", type=int)
    replace = commands.add_parser("replace", add_help=False)
    replace.add_argument("market")
    replace.add_argument("id", type=int)
    replace.add_argument("quantity", type=float)
    replace.add_argument("price", type=float)
    commands.add_parser("watch", add_help=False)
    return parser


def queue(session: MemberSession, words: Sequence[str], config: TradingConfig) -> int | None:
    """Queue one command on the session; the client order id of a new order."""
    arguments = command_parser().parse_args(list(words))
    if arguments.verb == "watch":
        return None
    market = config.markets.get(arguments.market)
    if market is None:
        raise CommandError(f"unknown market {arguments.market}")
    if arguments.verb in ("buy", "sell"):
        client_order_id = arguments.id or time.time_ns() // 1_000
        session.new_order(
            Side.BUY if arguments.verb == "buy" else Side.SELL,
            market.market_id,
            client_order_id,
            arguments.quantity,
            arguments.price,
            stop_price=arguments.stop,
            tip_quantity=arguments.tip,
            time_in_force=TimeInForce[arguments.tif],
            post_only=arguments.post_only,
        )
        return int(client_order_id)
    if arguments.verb == "cancel":
        session.cancel(market.market_id, arguments.id)
    else:
        session.replace(market.market_id, arguments.id, arguments.quantity, arguments.price)
    return None


def frames_table(frames: Sequence[Frame], config: TradingConfig) -> Table:
    symbols = {market.market_id: market.symbol for market in config.markets.values()}
    table = Table(title="frames received", show_lines=False)
    for column in ("seq", "code", "market", "order id", "open", "price", "matched",
                   "notional", "total", "condition", "time"):  # fmt: skip
        table.add_column(column, justify="right" if column not in ("code", "market") else "left")
    for frame in frames:
        condition = str(frame.order_condition)
        if frame.code in (Code.REJECTED, Code.LOGIN_REJECTED) and frame.order_condition in REASONS:
            condition += f" {REASONS[frame.order_condition]}"
        table.add_row(
            str(frame.message_id),
            f"{frame.letter} {NAMES.get(frame.code, '?')}",
            symbols.get(frame.market_id, str(frame.market_id or "")),
            str(frame.order_id or ""),
            f"{frame.open_quantity:g}",
            f"{frame.price:g}",
            f"{frame.matched_quantity:g}",
            f"{frame.notional:g}",
            f"{frame.total_quantity:g}",
            condition,
            time.strftime("%H:%M:%S", time.gmtime(frame.timestamp / 1e9))
            + f".{frame.timestamp % 1_000_000_000 // 1_000_000:03d}",
        )
    return table


def client_ssl(arguments: argparse.Namespace) -> ssl.SSLContext | None:
    if not arguments.tls:
        return None
    context = ssl.create_default_context(cafile=arguments.ca)
    if arguments.cert is not None:
        context.load_cert_chain(arguments.cert, arguments.key)
    return context


async def run(arguments: argparse.Namespace, config: TradingConfig) -> int:
    console = Console()
    words = list(arguments.words)
    lines = [words] if words else [shlex.split(line) for line in sys.stdin if line.strip()]
    client = await MtfClient.connect(
        arguments.host,
        arguments.port,
        arguments.client_id,
        arguments.secret,
        ssl_context=client_ssl(arguments),
    )
    try:
        answer = await client.login()
        received = [answer]
        if answer.code != Code.LOGIN_ACCEPTED:
            console.print(frames_table(received, config))
            console.print("[red]login rejected[/red]")
            return 1
        for line in lines:
            client_order_id = queue(client.session, line, config)
            if client_order_id is not None:
                console.print(f"client order id {client_order_id}")
        client.flush()
        watch = bool(lines) and lines[-1][:1] == ["watch"]
        deadline = asyncio.get_running_loop().time() + (
            arguments.wait if not watch else float("inf")
        )
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                frame = await client.next_frame(min(remaining, 3600.0))
            except TimeoutError:
                break
            received.append(frame)
            if watch:
                console.print(frames_table([frame], config))
        client.session.logout()
        client.flush()
    except MtfError as error:
        console.print(f"[red]{error}[/red]")
        return 1
    finally:
        await client.close()
    console.print(frames_table(received, config))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               environment: dict[str, str]) -> None:  # fmt: skip
    mtf = commands.add_parser(
        "mtf",
        help="an MTF member console: log in, send orders, print the frames received",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mtf.add_argument("--host", default=environment.get("STRONGROOM_HOST", "127.0.0.1"))
    mtf.add_argument(
        "--port", type=int, default=int(environment.get("STRONGROOM_MTF_PORT", "9100"))
    )
    mtf.add_argument(
        "--client-id",
        type=int,
        default=int(environment.get("STRONGROOM_MTF_CLIENT_ID", "0")),
        help="env STRONGROOM_MTF_CLIENT_ID",
    )
    mtf.add_argument(
        "--secret",
        default=environment.get("STRONGROOM_MTF_SECRET", ""),
        help="env STRONGROOM_MTF_SECRET",
    )
    mtf.add_argument("--wait", type=float, default=1.0, help="seconds to collect answers")
    mtf.add_argument("--tls", action="store_true", help="connect with TLS")
    mtf.add_argument("--ca", type=Path, help="CA bundle that signed the server certificate")
    mtf.add_argument("--cert", type=Path, help="client certificate (CN = client id)")
    mtf.add_argument("--key", type=Path, help="client certificate key")
    mtf.add_argument("--config", type=Path, help="TOML with extra markets (as for serve)")
    mtf.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        help="buy|sell MARKET QUANTITY [PRICE] [--id N] [--stop P] [--tip Q] [--tif T]"
        " [--post-only] | cancel MARKET ID | replace MARKET ID QUANTITY PRICE | watch;"
        " none: read commands from stdin",
    )
