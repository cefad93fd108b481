"""Fuzzing the MTF port of a real server: over 100,000 random and mutated frames from
several connections at once, while well-behaved members keep trading.

Afterwards the server is up, the well-behaved members still trade, the ledger balances
per currency with no negative member balance, and a restart (whose recovery checks the
balances against the postings) succeeds.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pgserver
import pytest

from strongroom.actors.messages import Side, TimeInForce
from strongroom.wire.client import MtfClient
from strongroom.wire.mtf import FRAME, FRAME_SIZE, Code
from tests.server import ServerProcess
from tests.support import deposit, new_wallet
from tests.wire.conftest import connect, issue_credentials

pytestmark = pytest.mark.asyncio(loop_scope="function")

SEED = 20261122
FUZZERS = 4
ETH_BTC = 3
FRAMES_PER_FUZZER = 26_000
BATCH = 500
CODES = [code.value for code in Code]
FLOATS = [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e308, 5e-324, 2.0**53, 1e-9,
          0.0001, 0.00015, 0.5, 1.0, 25.0, 30000.0, 30000.005, 29999.99, 123456789.0]  # fmt: skip
INTEGERS = [0, 1, 2, 3, 7, 255, 65535, 2**32 - 1, 2**63, 2**64 - 1]


@pytest.fixture
def fuzz_server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "serve")
    process.start()
    yield process
    process.close()


def random_frame(rng: random.Random, client_id: int, sequence: int) -> bytes:
    """A frame from a palette of hostile values, or plain random bytes."""
    roll = rng.random()
    if roll < 0.15:
        noise = bytearray(rng.randbytes(FRAME_SIZE))
        if noise[14] == Code.LOGOUT:
            noise[14] = Code.HEARTBEAT
        return bytes(noise)

    def number(limit: int) -> int:
        return rng.choice(INTEGERS) % (limit + 1) if rng.random() < 0.5 else rng.randrange(limit)

    def real() -> float:
        if rng.random() < 0.4:
            return rng.choice(FLOATS)
        return round(rng.uniform(29_000, 31_000), rng.choice([2, 2, 3]))

    code = rng.choice(CODES) if rng.random() < 0.9 else rng.randrange(256)
    if code == Code.LOGOUT and rng.random() < 0.99:
        code = Code.BUY  # keep most sessions alive long enough to matter
    frame = FRAME.pack(
        rng.choice([1, 1, 1, 2, 0, 4, 65535]),  # never 3: the well-behaved members' market
        number(2**64 - 1) if rng.random() < 0.3 else rng.randrange(1, 5_000),
        client_id if rng.random() < 0.9 else number(2**32 - 1),
        code,
        real(), real(), 0.0 if rng.random() < 0.8 else real(),
        number(2**64 - 1),
        rng.choice([0, 0, 1, 2, 0x10, 3, 0x20, 255]),
        0.0 if rng.random() < 0.8 else real(),
        rng.choice([0.0001, 0.001, 0.01, 0.00015]) if rng.random() < 0.7 else real(),
        real(), real(),
        sequence if rng.random() < 0.9 else number(2**64 - 1),
    )  # fmt: skip
    if rng.random() < 0.1:  # flip some bytes of an otherwise plausible frame
        mutable = bytearray(frame)
        for _ in range(rng.randrange(1, 6)):
            mutable[rng.randrange(FRAME_SIZE)] = rng.randrange(256)
        frame = bytes(mutable)
    return frame


async def fuzz(
    server: ServerProcess, admin: httpx.Client, rng: random.Random, logged_in: bool
) -> tuple[int, int]:
    """Send FRAMES_PER_FUZZER frames in random chunks, reconnecting whenever dropped;
    the frames sent and the frames answered."""
    wallet_id = new_wallet(admin, "fuzzer")
    deposit(admin, wallet_id, "BTC", "5")
    deposit(admin, wallet_id, "USDT", "200000")
    client_id, secret = issue_credentials(admin, wallet_id)
    sent = answered = 0
    while sent < FRAMES_PER_FUZZER:
        client = await connect(server, client_id, secret)
        try:
            if logged_in:
                assert (await client.login()).code == Code.LOGIN_ACCEPTED
            sequence = 1
            while sent < FRAMES_PER_FUZZER and not client.writer.is_closing():
                frames = b"".join(
                    random_frame(rng, client_id, sequence + index) for index in range(BATCH)
                )
                sequence += BATCH
                cut = 0
                while cut < len(frames):  # chunks that split frames anywhere
                    size = rng.randrange(1, 4 * FRAME_SIZE)
                    client.writer.write(frames[cut : cut + size])
                    cut += size
                await client.writer.drain()
                sent += BATCH
                await asyncio.sleep(0.005)  # let the answers in
                answered += len(client.pending())
                if client.closed_by_peer:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            await client.close()
    return sent, answered


async def trade_round(maker: MtfClient, taker: MtfClient, round_number: int) -> None:
    """One maker sell and one crossing taker buy on ETH-BTC, a market fuzzers leave alone."""
    price = 0.05 + round_number / 100_000
    maker.session.new_order(Side.SELL, ETH_BTC, 10_000 + round_number, 0.01, price)
    maker.flush()
    # The taker goes only once the maker rests: orders of two wallets race to the book.
    accepted = await maker.next_frame(20)
    assert (accepted.letter, accepted.order_id) == ("A", 10_000 + round_number), accepted
    taker.session.new_order(Side.BUY, ETH_BTC, 10_000 + round_number, 0.01, price,
                            time_in_force=TimeInForce.IOC)  # fmt: skip
    taker.flush()

    async def until_fill(client: MtfClient) -> None:
        while True:
            frame = await client.next_frame(20)
            if frame.code == Code.EXECUTED and frame.order_id == 10_000 + round_number:
                return

    await asyncio.gather(until_fill(maker), until_fill(taker))


async def ledger_invariants(data_dir: Path) -> None:
    server = pgserver.get_server(data_dir / "postgres", cleanup_mode=None)
    connection = await asyncpg.connect(server.get_uri())
    try:
        unbalanced = await connection.fetch(
            "SELECT currency, sum(CASE WHEN code < 200 OR code >= 400 THEN amount"
            " ELSE -amount END) AS total FROM balances GROUP BY currency"
            " HAVING sum(CASE WHEN code < 200 OR code >= 400 THEN amount ELSE -amount END) <> 0"
        )
        assert unbalanced == [], unbalanced
        negative = await connection.fetch(
            "SELECT * FROM balances WHERE code BETWEEN 200 AND 299 AND amount < 0"
        )
        assert negative == [], negative
        assert await connection.fetchval("SELECT count(*) FROM trades") > 0
    finally:
        await connection.close()
        server.cleanup()


async def test_fuzzed_frames_leave_the_server_up_and_the_ledger_balanced(
    fuzz_server: ServerProcess,
) -> None:
    with fuzz_server.client() as admin:
        wallets = []
        for name in ("maker", "taker"):
            wallet_id = new_wallet(admin, name)
            deposit(admin, wallet_id, "BTC", "10")
            deposit(admin, wallet_id, "ETH", "100")
            wallets.append(wallet_id)
        maker = await connect(fuzz_server, *issue_credentials(admin, wallets[0]))
        taker = await connect(fuzz_server, *issue_credentials(admin, wallets[1]))
        assert (await maker.login()).code == Code.LOGIN_ACCEPTED
        assert (await taker.login()).code == Code.LOGIN_ACCEPTED

        async def keep_trading() -> int:
            rounds = 0
            while not fuzzing.done():
                await trade_round(maker, taker, rounds)
                rounds += 1
            return rounds

        rngs = [random.Random(SEED + index) for index in range(FUZZERS + 1)]
        fuzzing = asyncio.gather(
            *(fuzz(fuzz_server, admin, rngs[index], True) for index in range(FUZZERS)),
            fuzz(fuzz_server, admin, rngs[FUZZERS], False),  # never logs in
        )
        rounds = await keep_trading()
        counts = await fuzzing
        assert sum(sent for sent, _ in counts) >= 100_000
        # Most hostile frames are answered (a `J` each, or an `A`...): they were processed.
        assert sum(answered for _, answered in counts) >= 60_000, counts
        assert rounds >= 1
        await trade_round(maker, taker, rounds)  # still trading after the storm
        assert fuzz_server.running
        assert httpx.get(f"{fuzz_server.base_url}/status/").json()["status"] == "ok"
        await maker.close()
        await taker.close()
    await ledger_invariants(fuzz_server.data_dir)
    assert fuzz_server.stop() == 0
    fuzz_server.start()  # recovery re-checks every balance against the postings
    await ledger_invariants(fuzz_server.data_dir)
