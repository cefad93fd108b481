"""MTF members against the session's real `strongroom serve`: funded wallets with credentials."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest_asyncio

from strongroom.wire.client import MtfClient
from strongroom.wire.mtf import Code
from tests.server import ServerProcess
from tests.support import deposit, new_wallet


@dataclass
class Member:
    wallet_id: str
    client_id: int
    secret: str
    client: MtfClient


def issue_credentials(admin: httpx.Client, wallet_id: str) -> tuple[int, str]:
    response = admin.post(f"/wallets/{wallet_id}/mtf-credentials/")
    assert response.status_code == 201, response.text
    body = response.json()
    return body["client_id"], body["secret"]


async def connect(server: ServerProcess, client_id: int, secret: str, **options: bool) -> MtfClient:
    return await MtfClient.connect("127.0.0.1", server.mtf_port, client_id, secret, **options)


MemberFactory = Callable[..., Awaitable[Member]]


@pytest_asyncio.fixture(loop_scope="function")
async def member(server: ServerProcess, admin: httpx.Client) -> AsyncIterator[MemberFactory]:
    """`await member(BTC="1", USDT="100000")`: a funded wallet, logged in over MTF.

    At teardown the connections close and the wallets' open orders are canceled, so the
    books are left as they were found.
    """
    made: list[Member] = []

    async def make(wallet_id: str | None = None, **amounts: str) -> Member:
        if wallet_id is None:
            wallet_id = new_wallet(admin, "mtf member")
            for currency, amount in amounts.items():
                deposit(admin, wallet_id, currency, amount)
        client_id, secret = issue_credentials(admin, wallet_id)
        client = await connect(server, client_id, secret)
        answer = await client.login()
        assert answer.code == Code.LOGIN_ACCEPTED, answer
        made.append(Member(wallet_id, client_id, secret, client))
        return made[-1]

    yield make
    for made_member in made:
        with contextlib.suppress(Exception):
            await made_member.client.close()
        for status in ("open", "pending"):
            listed = admin.get("/orders/", params={"wallet_id": made_member.wallet_id,
                                                   "status": status})  # fmt: skip
            for listed_order in listed.json():
                admin.delete(f"/orders/{listed_order['id']}/")
