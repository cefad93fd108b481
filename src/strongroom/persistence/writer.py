"""The journal writer in a process of its own, so that building rows, encoding them and
waiting on PostgreSQL no longer compete with matching and settlement for one GIL.

`JournalClient` (in the service) offers the same `submit`/`drain`/`stop` as `Journal`.
It keeps each unit (for its replies and book results) and sends its rows to the child;
the child runs a `Journal` on its own event loop and connection pool and, after every
group commit, answers how many units are committed so far. Replies leave only for units
the child has reported committed, so "acknowledged means durable" holds across the process boundary.

Wire, both ways over a socketpair: parent → child frames of a 4-byte big-endian length
and the msgpack of the unit's rows (`Payload`); child → parent
8-byte big-endian counts. A child that exits is fatal for the parent (it cannot know
what was committed); a parent that exits makes the child exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping

import msgspec
from loguru import logger

from strongroom.actors.messages import (
    DepositState,
    JournalUnit,
    OrderState,
    OutboxEvent,
    TradeRecord,
    Transfer,
)
from strongroom.config import DEFAULT, Currency
from strongroom.custody.payments import Payment
from strongroom.custody.transfers import WalletTransfer
from strongroom.custody.withdrawals import TrackedWithdrawal
from strongroom.persistence.database import create_pool
from strongroom.persistence.errors import CommitFailed
from strongroom.persistence.journal import Journal

FRAME = struct.Struct(">I")
COUNT = struct.Struct(">Q")
FRAME_SIZE_MAX = 256 * 1024 * 1024
EXIT_FATAL = 70
Payload = tuple[
    list[Transfer],
    list[OrderState],
    list[TradeRecord],
    list[DepositState],
    dict[str, int],
    list[WalletTransfer],
    list[TrackedWithdrawal],
    list[Payment],
    list[OutboxEvent],
]


class JournalClient:
    """The service's side: same interface as `Journal`, commits done by a child process."""

    def __init__(
        self,
        database_url: str,
        on_commit: Callable[[JournalUnit], None],
        on_fatal: Callable[[BaseException], None],
        *,
        currencies: Mapping[str, Currency] = DEFAULT.currencies,
    ) -> None:
        self._url = database_url
        self._currencies = msgspec.json.encode(
            {code: (currency.kind, currency.decimals) for code, currency in currencies.items()}
        ).decode()
        self._on_commit = on_commit
        self._on_fatal = on_fatal
        self._encoder = msgspec.msgpack.Encoder()
        self._waiting: deque[JournalUnit] = deque()
        self._submitted = 0
        self._committed = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.groups_committed = 0

    @property
    def units_committed(self) -> int:
        return self._committed

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "strongroom.persistence.writer",
             "--fd", str(theirs.fileno()), "--database-url", self._url,
             "--currencies", self._currencies],
            pass_fds=[theirs.fileno()],
        )  # fmt: skip
        theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=ours)
        self._reader_task = asyncio.create_task(self._read_counts(reader), name="journal-acks")

    def submit(self, unit: JournalUnit) -> None:
        assert self._writer is not None
        payload = self._encoder.encode(
            (
                unit.transfers, unit.orders, unit.trades, unit.deposits, unit.sequences,
                unit.wallet_transfers, unit.withdrawals, unit.payments, unit.events,
            )
        )  # fmt: skip
        self._writer.write(FRAME.pack(len(payload)) + payload)
        self._waiting.append(unit)
        self._submitted += 1
        self._idle.clear()

    async def _read_counts(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                committed = COUNT.unpack(await reader.readexactly(COUNT.size))[0]
                self.groups_committed += 1
                while self._committed < committed:
                    self._on_commit(self._waiting.popleft())
                    self._committed += 1
                if self._committed == self._submitted:
                    self._idle.set()
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            if not self._stopping:
                self._on_fatal(CommitFailed(f"the journal writer process exited: {error!r}"))

    async def drain(self, timeout_s: float = 30.0) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def stop(self) -> None:
        await self.drain()
        self._stopping = True
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self._process is not None:
            await asyncio.to_thread(self._process.wait, 30)


async def serve_parent(
    descriptor: int, database_url: str, currencies: Mapping[str, Currency]
) -> None:
    """The child's life: read units, commit them in groups, report the count."""
    pool = await create_pool(database_url)
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=descriptor))
    decoder = msgspec.msgpack.Decoder(Payload)
    committed = 0
    report_scheduled = False

    def report() -> None:
        nonlocal report_scheduled
        report_scheduled = False
        writer.write(COUNT.pack(committed))

    def counted(unit: JournalUnit) -> None:
        nonlocal committed, report_scheduled
        committed += 1
        if not report_scheduled:  # one count per group, after all of its units
            report_scheduled = True
            asyncio.get_running_loop().call_soon(report)

    def fatal(error: BaseException) -> None:
        logger.opt(exception=error).critical("journal writer: commit failed, exiting")
        os._exit(EXIT_FATAL)

    journal = Journal(pool, counted, fatal, currencies=currencies)
    await journal.start()
    while True:
        try:
            size = FRAME.unpack(await reader.readexactly(FRAME.size))[0]
            if size > FRAME_SIZE_MAX:
                fatal(CommitFailed(f"frame of {size} bytes"))
            (
                transfers, orders, trades, deposits, sequences,
                wallet_transfers, withdrawals, payments, events,
            ) = decoder.decode(await reader.readexactly(size))  # fmt: skip
        except (asyncio.IncompleteReadError, ConnectionError):
            os._exit(0)  # the service is gone: nothing more will be acknowledged
        unit = JournalUnit(
            transfers, orders, trades, deposits, sequences, [], [],
            wallet_transfers, withdrawals, payments, events,
        )  # fmt: skip
        journal.submit(unit)


def main() -> None:
    parser = argparse.ArgumentParser(description="strongroom journal writer (internal)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--currencies", required=True, help="JSON {code: [kind, decimals]}")
    arguments = parser.parse_args()
    # A terminal's Ctrl-C (or `timeout`, or a supervisor) signals the whole process group:
    # the service then drains what it accepted through this process, which must live on
    # until the service closes the socket (then it exits, see `serve_parent`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    currencies = {
        code: Currency(code, kind, decimals)
        for code, (kind, decimals) in msgspec.json.decode(arguments.currencies).items()
    }
    asyncio.run(serve_parent(arguments.fd, arguments.database_url, currencies))


if __name__ == "__main__":
    main()
