"""Kill a real server with SIGKILL mid-stream, restart it, and audit what survived.

Acknowledged means durable: every acknowledged deposit and order must be there after
the restart. Nothing may be half-applied: balances are recomputed independently from
the committed deposits, trades and live orders (with the fee rules of SPEC §2) and
must equal what the server reports, and the rebuilt books must equal the live orders.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pgserver
import pytest

from tests.server import ServerProcess
from tests.support import deposit, new_wallet

WALLETS = 8
WORKERS = 16
KILL_AFTER_ACKS = 400
MARKET = "BTC-USDT"
SATOSHI = 10**8
MICRO = 10**6


async def stream(
    server: ServerProcess, token: str, wallets: list[str], seed: int, stop: Callable[[], object]
) -> dict[str, Any]:
    """Concurrent orders, cancels and deposits until `stop` ends the server."""
    acknowledged: dict[str, Any] = {"orders": {}, "deposits": {}, "cancels": set()}
    randomness = random.Random(seed)
    killed = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        while not killed.is_set():
            wallet_id = randomness.choice(wallets)
            choice = randomness.random()
            try:
                if choice < 0.15:
                    tid = uuid.uuid4().hex
                    currency, amount = randomness.choice([("USDT", "5000"), ("BTC", "0.5")])
                    response = await client.post(
                        "/management/v2/deposits/new",
                        json={"uid": wallet_id, "currency": currency, "amount": amount,
                              "tid": tid, "state": "accepted"},
                    )  # fmt: skip
                    if response.status_code == 201:
                        acknowledged["deposits"][tid] = response.json()
                elif choice < 0.25 and acknowledged["orders"]:
                    order_id = randomness.choice(list(acknowledged["orders"]))
                    response = await client.delete(f"/orders/{order_id}/")
                    if response.status_code == 200:
                        acknowledged["cancels"].add(order_id)
                else:
                    side = randomness.choice(["buy", "sell"])
                    price = 20_000 + randomness.randint(-40, 40) * 5
                    quantity = Decimal(randomness.randint(1, 50)) / 1000
                    kind = randomness.choice(["limit"] * 8 + ["market", "stop_limit"])
                    body: dict[str, Any] = {
                        "wallet_id": wallet_id, "market": MARKET, "side": side, "type": kind,
                        "quantity": str(quantity),
                    }  # fmt: skip
                    if kind == "limit":
                        body["price"] = f"{price}.00"
                        body["time_in_force"] = randomness.choice(["GTC"] * 5 + ["IOC"])
                        if randomness.random() < 0.2 and quantity > Decimal("0.002"):
                            body["display_quantity"] = "0.001"  # an iceberg
                    elif kind == "stop_limit":  # near stops trigger, far ones stay pending
                        body["price"] = f"{price}.00"
                        offset = randomness.choice([-20, 20, -300, 300])
                        body["stop_price"] = f"{price + offset}.00"
                    response = await client.post("/orders/", json=body)
                    if response.status_code == 201:
                        order = response.json()
                        acknowledged["orders"][order["id"]] = order
                total = len(acknowledged["orders"]) + len(acknowledged["deposits"])
                if total >= KILL_AFTER_ACKS and not killed.is_set():
                    killed.set()
                    await asyncio.to_thread(stop)
            except httpx.HTTPError:
                return

    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
        limits=httpx.Limits(max_connections=WORKERS),
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(WORKERS)))
    assert killed.is_set(), "the stream ended before the kill"
    return acknowledged


async def committed_state(data_dir: Path) -> dict[str, Any]:
    server = pgserver.get_server(data_dir / "postgres", cleanup_mode=None)
    connection = await asyncpg.connect(server.get_uri())
    try:
        return {
            "orders": {
                row["order_id"]: dict(row) for row in await connection.fetch("SELECT * FROM orders")
            },
            "trades": [dict(row) for row in await connection.fetch("SELECT * FROM trades")],
            "deposits": [dict(row) for row in await connection.fetch("SELECT * FROM deposits")],
        }
    finally:
        await connection.close()
        server.cleanup()  # forget this process as a user of the server (it keeps running)


def expected_balances(state: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    """(wallet, currency) → [available, held], from committed facts alone."""
    balances: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    orders = state["orders"]
    for row in state["deposits"]:
        if row["state"] == "accepted":
            balances[row["wallet_id"], row["currency"]][0] += row["amount"]
    spent: defaultdict[int, int] = defaultdict(int)  # quote spent by each buy order
    for trade in state["trades"]:
        notional = trade["price"] * trade["quantity"]  # BTC-USDT: 1 tick × 1 lot = 1 µUSDT
        base = trade["quantity"] * 10_000  # 1 lot = 0.0001 BTC = 10,000 sat
        maker, taker = orders[trade["maker_order_id"]], orders[trade["taker_order_id"]]
        buyer, seller = (taker, maker) if trade["taker_side"] == 0 else (maker, taker)
        buyer_bps = 20 if buyer is taker else 10
        seller_bps = 20 if seller is taker else 10
        balances[seller["wallet_id"], "USDT"][0] += notional - notional * seller_bps // 10_000
        balances[buyer["wallet_id"], "BTC"][0] += base - base * buyer_bps // 10_000
        balances[seller["wallet_id"], "BTC"][0] -= base
        balances[buyer["wallet_id"], "USDT"][0] -= notional
        spent[buyer["order_id"]] += notional
    for order in orders.values():
        if order["status"] not in ("open", "pending"):
            continue
        if order["side"] == 0:  # buy: held at its limit price, minus what its fills spent
            held = order["price"] * order["quantity"] - spent[order["order_id"]]
            key = (order["wallet_id"], "USDT")
        else:
            held = order["remaining"] * 10_000
            key = (order["wallet_id"], "BTC")
        balances[key][0] -= held
        balances[key][1] += held
    return balances


def reported_balances(client: httpx.Client, wallets: list[str]) -> dict[tuple[str, str], list[int]]:
    reported: dict[tuple[str, str], list[int]] = {}
    for wallet_id in wallets:
        for row in client.get(f"/wallets/{wallet_id}/").json()["balances"]:
            scale = {"USDT": MICRO, "BTC": SATOSHI}.get(row["currency"])
            if scale is None:
                continue
            available = int(Decimal(row["available_balance"]) * scale)
            held = int(Decimal(row["pending_amount"]) * scale)
            if available or held:
                reported[wallet_id, row["currency"]] = [available, held]
    return reported


def expected_depth(state: dict[str, Any]) -> tuple[dict[int, int], dict[int, int]]:
    bids: defaultdict[int, int] = defaultdict(int)
    asks: defaultdict[int, int] = defaultdict(int)
    for order in state["orders"].values():
        if order["status"] == "open" and order["market"] == MARKET:
            (bids if order["side"] == 0 else asks)[order["price"]] += order["visible"]
    return dict(bids), dict(asks)


def reported_depth(client: httpx.Client) -> tuple[dict[int, int], dict[int, int]]:
    depth = client.get(f"/markets/{MARKET}/depth", params={"limit": 1000}).json()

    def levels(rows: list[list[str]]) -> dict[int, int]:
        return {int(Decimal(p) * 100): int(Decimal(q) * 10_000) for p, q in rows}

    return levels(depth["bids"]), levels(depth["asks"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data")
    yield process
    process.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_stop_mid_stream_loses_nothing_acknowledged_and_half_applies_nothing(
    server: ServerProcess, how: str
) -> None:
    """SIGKILL: a crash. SIGTERM: a graceful stop that must finish what it accepted, exit 0."""
    exit_codes: list[int] = []

    def stop() -> None:
        if how == "sigkill":
            server.kill()
        else:
            exit_codes.append(server.stop())

    server.start()
    with server.client() as client:
        wallets = [new_wallet(client, f"member-{index}") for index in range(WALLETS)]
        for wallet_id in wallets:
            deposit(client, wallet_id, "USDT", "100000")
            deposit(client, wallet_id, "BTC", "5")
        token = client.headers["Authorization"].split()[1]
    acknowledged = asyncio.run(stream(server, token, wallets, seed=20261122, stop=stop))
    assert exit_codes == ([] if how == "sigkill" else [0])

    server.start()  # recovery from what was committed before the kill
    state = asyncio.run(committed_state(server.data_dir))
    with server.client() as client:
        # Every acknowledged deposit is there, credited once.
        committed_tids = {row["tid"]: row for row in state["deposits"]}
        for tid, body in acknowledged["deposits"].items():
            assert committed_tids[tid]["state"] == "accepted"
            assert committed_tids[tid]["deposit_id"] == body["id"]
        # Every acknowledged order is there, at least as far along as its acknowledgement said.
        for order_id, body in acknowledged["orders"].items():
            row = state["orders"][order_id]
            assert row["wallet_id"] == body["wallet_id"]
            assert row["filled"] >= int(Decimal(body["filled_quantity"]) * 10_000)
            answer = client.get(f"/orders/{order_id}/")
            assert answer.status_code == 200
        statuses = {(row["kind"], row["status"]) for row in state["orders"].values()}
        assert (2, "pending") in statuses, "the stream should leave pending stops to recover"
        for order_id in acknowledged["cancels"]:
            assert state["orders"][order_id]["status"] == "canceled"
        # Nothing half-applied: balances and books follow from the committed facts alone.
        assert reported_balances(client, wallets) == {
            key: value for key, value in expected_balances(state).items() if value != [0, 0]
        }
        assert reported_depth(client) == expected_depth(state)
        before = (reported_balances(client, wallets), reported_depth(client))
        # The recovered service keeps trading.
        response = client.post(
            "/orders/",
            json={"wallet_id": wallets[0], "market": "ETH-BTC", "side": "buy", "type": "limit",
                  "price": "0.05000", "quantity": "1.000"},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        client.delete(f"/orders/{response.json()['id']}/").raise_for_status()
    # A clean stop and a second start rebuild exactly the same state.
    assert server.stop() == 0
    server.start()
    with server.client() as client:
        assert (reported_balances(client, wallets), reported_depth(client)) == before
    assert server.stop() == 0
    assert len(acknowledged["orders"]) > 100
