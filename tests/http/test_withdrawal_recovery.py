"""A kill -9 in the middle of withdrawals, twice, on a server of its own: after the
restarts nothing is lost or doubled.

Withdrawals are made until some are on their way (processing or confirming, read from
the database once the server is dead, so the kill provably cut through them), then the
server is killed with SIGKILL and started again on the same data; a second batch is cut
the same way. Then every withdrawal must end `succeed` exactly once: one hold and one
send in the ledger each, no release, the wallet's balance exactly funded − Σ(amount +
fee), nothing left held, the revenue exactly Σ fee, the ledger's invariants whole. The
partner's webhook endpoint refuses its first requests, so retries are pending when the
server dies: every state of every withdrawal is delivered at least once, signed, and
each state has exactly one event id (a delivery may repeat, an event never doubles).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.http.partners import Receiver, eventually, partner_accepts
from tests.http.test_withdrawals import FINAL, create, fees, holder, listed, money
from tests.http.test_withdrawals import body as withdrawal_body
from tests.ledger import check_ledger, database_url
from tests.server import ServerProcess

ARGUMENTS = (
    "--chain-block-s", "0.3", "--chain-confirmations", "3", "--custody-interval-s", "0.05",
    "--webhook-retry-base-s", "0.2", "--webhook-retry-cap-s", "0.5",
    "--webhook-timeout-s", "1",
)  # fmt: skip
FUNDED = {"USDT": Decimal("10000"), "BTC": Decimal("1"), "ETH": Decimal("10")}
REQUESTS = [("USDTTRC20", "10"), ("USDTERC20", "20.5"), ("BTC", "0.001"), ("ETH", "0.01")]
STATES = ("accepted", "processing", "confirming", "succeed")
IN_FLIGHT = {"processing", "confirming"}


async def _query(server: ServerProcess, sql: str, *arguments: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url(server))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql, *arguments)
        return rows
    finally:
        await connection.close()


def query(server: ServerProcess, sql: str, *arguments: Any) -> list[asyncpg.Record]:
    """Read the server's database directly: the embedded PostgreSQL outlives a kill -9."""
    return asyncio.run(_query(server, sql, *arguments))


def committed_states(server: ServerProcess, partner_id: str) -> dict[str, str]:
    rows = query(
        server, "SELECT withdrawal_id, state FROM withdrawals WHERE partner_id = $1", partner_id
    )
    return {f"wd_{row['withdrawal_id']}": row["state"] for row in rows}


def batch(client: httpx.Client, count: int, start: int) -> list[dict[str, Any]]:
    made = []
    for index in range(start, start + count):
        code, amount = REQUESTS[index % len(REQUESTS)]
        made.append(create(client, withdrawal_body(code, amount, custom_id=f"crash-{index}")))
    return made


def kill_once_on_the_way(
    server: ServerProcess, client: httpx.Client, partner_id: str, ids: list[str]
) -> dict[str, str]:
    """Kill the server as soon as one of `ids` is confirming; what was committed then."""

    def one_confirming() -> bool:
        statuses = {item["withdrawal_id"]: item["status"] for item in listed(
            client, limit=100)["withdrawals"]}  # fmt: skip
        return any(statuses.get(withdrawal_id) == "confirming" for withdrawal_id in ids)

    eventually(one_confirming, "a withdrawal on its way", timeout_s=20)
    server.kill()
    states = committed_states(server, partner_id)
    assert set(ids) <= set(states), "every acknowledged withdrawal is committed"
    assert IN_FLIGHT & {states[withdrawal_id] for withdrawal_id in ids}, states
    return states


def test_kill_9_in_the_middle_of_withdrawals_loses_and_doubles_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "serve", ARGUMENTS)
    receiver = Receiver(failures=8).start()  # retries are pending at each kill
    server.start()
    try:
        operator = server.client()
        mine = holder(server, operator, receiver.url,
                      **{code: str(amount) for code, amount in FUNDED.items()})  # fmt: skip
        partner_id = mine.partner.partner_id

        first = batch(mine.client, 8, 0)
        cut = kill_once_on_the_way(server, mine.client, partner_id,
                                   [item["withdrawal_id"] for item in first])  # fmt: skip
        server.start()  # recovery from what was committed before the kill
        second = batch(mine.client, 6, 8)
        cut_again = kill_once_on_the_way(server, mine.client, partner_id,
                                         [item["withdrawal_id"] for item in second])  # fmt: skip
        assert any(state in IN_FLIGHT for state in cut.values())
        assert any(state in IN_FLIGHT for state in cut_again.values())
        server.start()

        made = first + second
        ids = [item["withdrawal_id"] for item in made]

        def all_final() -> bool:
            statuses = {item["withdrawal_id"]: item["status"]
                        for item in listed(mine.client, limit=100)["withdrawals"]}  # fmt: skip
            return all(statuses.get(withdrawal_id) in FINAL for withdrawal_id in ids)

        eventually(all_final, "every withdrawal at its end", timeout_s=60)
        everything = listed(mine.client, limit=100)
        assert everything["total"] == len(made)  # nothing lost, nothing made twice
        finals = {item["withdrawal_id"]: item for item in everything["withdrawals"]}
        assert set(finals) == set(ids)
        assert {item["status"] for item in finals.values()} == {"succeed"}
        assert len({item["txid"] for item in finals.values()}) == len(made)
        for item in made:  # the amounts are the ones acknowledged
            final = finals[item["withdrawal_id"]]
            assert (final["amount"], final["fee"], final["custom_id"]) == (
                item["amount"], item["fee"], item["custom_id"],
            )  # fmt: skip

        # The ledger: one hold and one send per withdrawal, never a release.
        numbers = [int(withdrawal_id.removeprefix("wd_")) for withdrawal_id in ids]
        rows = query(
            server,
            "SELECT p.hold_id, t.kind, count(DISTINCT t.transfer_id) AS transfers"
            " FROM postings p JOIN transfers t USING (transfer_id)"
            " WHERE p.hold_id = ANY($1::bigint[]) GROUP BY p.hold_id, t.kind",
            numbers,
        )
        kinds: defaultdict[int, Counter[str]] = defaultdict(Counter)
        for row in rows:
            kinds[row["hold_id"]][row["kind"]] = row["transfers"]
        for number in numbers:
            assert kinds[number] == Counter(withdrawal_hold=1, withdrawal_send=1), number
        revenue = fees(operator)
        for currency, funded in FUNDED.items():
            mine_in = [item for item in finals.values() if item["ledger_currency"] == currency]
            spent = sum((Decimal(item["total"]) for item in mine_in), Decimal(0))
            fee = sum((Decimal(item["fee"]) for item in mine_in), Decimal(0))
            assert money(mine.client, mine.wallet_id, currency) == (funded - spent, Decimal(0))
            assert revenue[currency] == fee, currency
        check_ledger(server)

        # Webhooks: every state of every withdrawal, at least once, one event id each.
        def delivered() -> dict[tuple[str, str], set[str]]:
            found: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
            for received in receiver.snapshot()[receiver.failures :]:
                event = received.event
                if event["type"].startswith("withdrawal."):
                    found[(event["data"]["withdrawal_id"], event["type"])].add(event["id"])
            return found

        wanted = {(withdrawal_id, f"withdrawal.{state}") for withdrawal_id in ids
                  for state in STATES}  # fmt: skip
        eventually(lambda: wanted <= set(delivered()), "every state delivered", timeout_s=60)
        found = delivered()
        assert all(len(found[key]) == 1 for key in wanted), {
            key: ids_ for key, ids_ in found.items() if len(ids_) > 1
        }
        bodies: defaultdict[str, set[bytes]] = defaultdict(set)
        for received in receiver.snapshot():
            assert partner_accepts(mine.partner.secret, received)
            assert received.headers["x-webhook-id"] == received.event["id"]
            bodies[received.event["id"]].add(received.body)
        assert all(len(sent) == 1 for sent in bodies.values())  # a retry sends the same event
        for withdrawal_id in ids:
            [succeed_id] = found[(withdrawal_id, "withdrawal.succeed")]
            [sent] = bodies[succeed_id]
            assert json.loads(sent)["data"] == finals[withdrawal_id]
        time.sleep(0.5)  # nothing more arrives than the retries of these events
        assert set(delivered()) == wanted
        assert server.stop() == 0
        log = server.log_path.read_text(errors="replace")
        assert "custody worker round failed" not in log and "Traceback" not in log
    finally:
        receiver.stop()
        server.close()
