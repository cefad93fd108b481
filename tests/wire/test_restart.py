"""What an MTF member was told survives `kill -9`: its orders, its ids, its nonces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.actors.messages import Side
from strongroom.wire.mtf import Code, Reject
from tests.server import ServerProcess
from tests.support import deposit, new_wallet
from tests.wire.conftest import connect, issue_credentials

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "serve")
    process.start()
    yield process
    process.close()


async def test_orders_ids_and_nonces_survive_a_kill(own_server: ServerProcess) -> None:
    with own_server.client() as admin:
        wallet_id = new_wallet(admin, "member")
        deposit(admin, wallet_id, "BTC", "1")
        client_id, secret = issue_credentials(admin, wallet_id)
    before = await connect(own_server, client_id, secret)
    assert (await before.login(nonce=77)).code == Code.LOGIN_ACCEPTED
    before.session.new_order(Side.SELL, 1, 500, 0.25, 60000.0)
    before.session.new_order(Side.SELL, 1, 501, 0.25, 60001.0)
    before.flush()
    assert [(await before.next_frame()).letter for _ in range(2)] == ["A", "A"]
    own_server.kill()  # `A` was sent after the commit: both orders must come back
    await before.close()
    own_server.start()

    replay = await connect(own_server, client_id, secret)
    assert (await replay.login(nonce=77)).code == Code.LOGIN_REJECTED  # the nonce is durable
    await replay.close()
    after = await connect(own_server, client_id, secret)
    assert (await after.login(nonce=78)).code == Code.LOGIN_ACCEPTED
    after.session.new_order(Side.SELL, 1, 500, 0.1, 60000.0)  # id used before the kill
    after.session.cancel(1, 501)  # an order entered before the kill, by its client id
    after.flush()
    duplicate, canceled = await after.next_frame(), await after.next_frame()
    assert (duplicate.letter, duplicate.order_id, duplicate.order_condition) == (
        "J", 500, Reject.DUPLICATE_ORDER,
    )  # fmt: skip
    assert (canceled.letter, canceled.order_id, canceled.open_quantity) == ("C", 501, 0.25)
    with own_server.client() as admin:
        listed = admin.get("/orders/", params={"wallet_id": wallet_id}).json()
    assert sorted((row["external_id"], row["status"]) for row in listed) == [
        (f"mtf:{client_id}:500", "open"),
        (f"mtf:{client_id}:501", "canceled"),
    ]
    await after.close()
