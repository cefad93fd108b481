"""The MTF gateway end to end: real TCP members against a real `strongroom serve`.

Each test trades in a price band of its own (the server is shared by the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from strongroom.actors.messages import Side, TimeInForce
from strongroom.wire.mtf import FRAME, FRAME_SIZE, Code, Frame, MemberSession, Reject
from tests.server import ServerProcess
from tests.support import assert_quiet, balances, new_wallet, order
from tests.wire.conftest import MemberFactory, connect, issue_credentials

pytestmark = pytest.mark.asyncio(loop_scope="function")

BTC_USDT = 1
ETH_USDT = 2


def codes(frames: list[Frame]) -> str:
    return "".join(frame.letter for frame in frames)


def is_end(client_order_id: int):  # type: ignore[no-untyped-def]
    """The frame that ends an order's story: its last fill, a cancel or a reject."""

    def done(frame: Frame) -> bool:
        return frame.order_id == client_order_id and (
            frame.code in (Code.CANCELED, Code.REJECTED)
            or (frame.code == Code.EXECUTED and frame.open_quantity == 0.0)
        )

    return done


async def test_two_members_trade_with_fills_on_both_sides_and_settle_exactly(
    admin: httpx.Client, member: MemberFactory
) -> None:
    assert_quiet(admin, "BTC-USDT", "51000.00", "51010.00")
    seller = await member(BTC="1")
    buyer = await member(USDT="100000")
    seller.client.session.new_order(Side.SELL, BTC_USDT, 1, 0.5, 51000.0)
    seller.client.session.new_order(Side.SELL, BTC_USDT, 2, 0.3, 51010.0)
    seller.client.flush()
    accepted = [await seller.client.next_frame(), await seller.client.next_frame()]
    assert [(frame.letter, frame.order_id) for frame in accepted] == [("A", 1), ("A", 2)]
    assert accepted[0].open_quantity == 0.5 and accepted[0].price == 51000.0
    assert accepted[0].client_id == seller.client_id and accepted[0].market_id == BTC_USDT

    buyer.client.session.new_order(
        Side.BUY, BTC_USDT, 7, 1.0, 51010.0, time_in_force=TimeInForce.IOC
    )
    buyer.client.flush()
    frames = await buyer.client.frames_until(is_end(7))
    assert codes(frames) == "AEEC"  # accepted, fills in match order, IOC remainder canceled
    accepted_frame, first, second, canceled = frames
    assert accepted_frame.total_quantity == 1.0 and accepted_frame.open_quantity == 1.0
    assert (first.price, first.matched_quantity, first.open_quantity, first.notional) == (
        51000.0, 0.5, 0.5, 25500.0,
    )  # fmt: skip
    assert (second.price, second.matched_quantity, second.open_quantity, second.notional) == (
        51010.0, 0.3, 0.2, 15303.0,
    )  # fmt: skip
    assert canceled.open_quantity == pytest.approx(0.2, rel=1e-12)
    assert all(frame.order_id == 7 and frame.client_id == buyer.client_id for frame in frames)
    ids = [frame.message_id for frame in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    maker_fills = await seller.client.frames_until(is_end(2))
    assert [(f.letter, f.order_id, f.matched_quantity, f.open_quantity) for f in maker_fills] == [
        ("E", 1, 0.5, 0.0),
        ("E", 2, 0.3, 0.0),
    ]
    # Maker fee 0.10 % of the USDT received, taker 0.20 % of the BTC received (SPEC §2).
    sold = balances(admin, seller.wallet_id)
    assert sold["BTC"]["amount"] == "0.20000000"
    assert sold["USDT"]["amount"] == "40762.197000"  # 40803 - 40.803
    bought = balances(admin, buyer.wallet_id)
    assert bought["USDT"]["amount"] == "59197.000000"
    assert bought["USDT"]["pending_amount"] == "0.000000"  # the IOC's unused hold released
    assert bought["BTC"]["amount"] == "0.79840000"  # 0.8 - 0.0016


async def test_order_entered_over_mtf_is_visible_over_rest_and_the_other_way_round(
    admin: httpx.Client, member: MemberFactory
) -> None:
    assert_quiet(admin, "BTC-USDT", "52000.00", "52000.00")
    mtf = await member(BTC="1", USDT="100000")
    mtf.client.session.new_order(Side.SELL, BTC_USDT, 11, 0.25, 52000.0)
    mtf.client.flush()
    assert (await mtf.client.next_frame()).letter == "A"
    listed = admin.get("/orders/", params={"wallet_id": mtf.wallet_id, "status": "open"}).json()
    assert [(row["external_id"], row["price"], row["quantity"]) for row in listed] == [
        (f"mtf:{mtf.client_id}:11", "52000.00", "0.2500")
    ]
    # Canceled over REST: the member hears it over MTF.
    assert admin.delete(f"/orders/{listed[0]['id']}/").status_code == 200
    canceled = await mtf.client.next_frame()
    assert (canceled.letter, canceled.order_id, canceled.open_quantity) == ("C", 11, 0.25)

    # A resting REST order of another wallet is what an MTF taker trades with.
    rest_wallet = new_wallet(admin, "rest maker")
    admin.post("/management/v2/deposits/new", json={
        "uid": rest_wallet, "currency": "BTC", "amount": "1", "tid": f"t-{time.time_ns()}",
        "state": "accepted",
    })  # fmt: skip
    resting = order(admin, rest_wallet, side="sell", price="52000.00", quantity="0.1000")
    mtf.client.session.new_order(Side.BUY, BTC_USDT, 12, 0.1, 52000.0)
    mtf.client.flush()
    frames = await mtf.client.frames_until(is_end(12))
    assert codes(frames) == "AE"
    assert frames[1].price == 52000.0 and frames[1].notional == 5200.0
    assert admin.get(f"/orders/{resting['id']}/").json()["status"] == "filled"


async def test_cancel_and_replace_keep_or_lose_priority(
    admin: httpx.Client, member: MemberFactory
) -> None:
    assert_quiet(admin, "ETH-USDT", "4100.00", "4101.00")
    maker = await member(ETH="10")
    taker = await member(USDT="100000")
    session = maker.client.session
    session.new_order(Side.SELL, ETH_USDT, 1, 1.0, 4100.0)  # first in the queue
    session.new_order(Side.SELL, ETH_USDT, 2, 1.0, 4100.0)
    session.new_order(Side.SELL, ETH_USDT, 3, 1.0, 4101.0)
    maker.client.flush()
    assert codes([await maker.client.next_frame() for _ in range(3)]) == "AAA"

    session.replace(ETH_USDT, 1, 0.5, 4100.0)  # smaller, same price: keeps priority
    session.replace(ETH_USDT, 3, 1.0, 4100.0)  # new price: joins the back of 4100
    session.cancel(ETH_USDT, 2)
    maker.client.flush()
    answers = [await maker.client.next_frame() for _ in range(3)]
    # Answers for different orders may come in any order (a cancel needs no hold change).
    answers.sort(key=lambda frame: frame.order_id)
    assert [(f.letter, f.order_id, f.open_quantity, f.price) for f in answers] == [
        ("R", 1, 0.5, 4100.0),
        ("C", 2, 1.0, 4100.0),
        ("R", 3, 1.0, 4100.0),
    ]
    taker.client.session.new_order(Side.BUY, ETH_USDT, 1, 1.5, 4100.0)
    taker.client.flush()
    assert codes(await taker.client.frames_until(is_end(1))) == "AEE"
    fills = await maker.client.frames_until(is_end(3))
    assert [(f.order_id, f.matched_quantity) for f in fills] == [(1, 0.5), (3, 1.0)]
    # Cancel of an order that is no longer open: J 6, and the session goes on.
    session.cancel(ETH_USDT, 1)
    maker.client.flush()
    rejected = await maker.client.next_frame()
    assert (rejected.letter, rejected.order_id, rejected.order_condition) == (
        "J", 1, Reject.UNKNOWN_ORDER,
    )  # fmt: skip


async def test_self_trade_prevention_cancels_the_resting_order(
    admin: httpx.Client, member: MemberFactory
) -> None:
    assert_quiet(admin, "BTC-USDT", "53000.00", "53000.00")
    trader = await member(BTC="1", USDT="100000")
    trader.client.session.new_order(Side.SELL, BTC_USDT, 1, 0.2, 53000.0)
    trader.client.flush()
    assert (await trader.client.next_frame()).letter == "A"
    trader.client.session.new_order(Side.BUY, BTC_USDT, 2, 0.2, 53000.0)
    trader.client.flush()
    frames = [await trader.client.next_frame() for _ in range(2)]
    assert sorted((f.letter, f.order_id) for f in frames) == [("A", 2), ("C", 1)]
    assert not [f for f in trader.client.pending() if f.code == Code.EXECUTED]
    listed = admin.get("/orders/", params={"wallet_id": trader.wallet_id}).json()
    assert {row["external_id"]: row["status"] for row in listed} == {
        f"mtf:{trader.client_id}:1": "canceled",
        f"mtf:{trader.client_id}:2": "open",
    }


async def test_rejects_from_the_actors_and_a_bad_frame_leave_the_session_trading(
    admin: httpx.Client, member: MemberFactory
) -> None:
    assert_quiet(admin, "BTC-USDT", "54000.00", "54000.00")
    trader = await member(USDT="1000")
    client, session = trader.client, trader.client.session
    session.new_order(Side.BUY, BTC_USDT, 1, 1.0, 54000.0)  # needs 54000 USDT
    client.flush()
    rejected = await client.next_frame()
    assert (rejected.letter, rejected.order_condition) == ("J", Reject.INSUFFICIENT_FUNDS)

    # An unknown code is answered, and the next order goes through.
    session.send_raw(Frame(BTC_USDT, 9, trader.client_id, ord("Z"), message_id=0))
    session.new_order(Side.BUY, BTC_USDT, 1, 0.01, 54000.0)  # the refused id is free again
    client.flush()
    bad, accepted = await client.next_frame(), await client.next_frame()
    assert (bad.letter, bad.order_condition) == ("J", Reject.MALFORMED)
    assert (accepted.letter, accepted.order_id) == ("A", 1)

    session.new_order(Side.BUY, BTC_USDT, 1, 0.01, 54000.0)
    session.new_order(Side.SELL, 99, 2, 0.01, 54000.0)
    session.new_order(Side.BUY, BTC_USDT, 3, 0.00015, 54000.0)
    session.new_order(Side.BUY, BTC_USDT, 4, 0.01, 54000.005)
    client.flush()
    answers = [await client.next_frame() for _ in range(4)]
    assert [(f.letter, f.order_id, f.order_condition) for f in answers] == [
        ("J", 1, Reject.DUPLICATE_ORDER),
        ("J", 2, Reject.UNKNOWN_MARKET),
        ("J", 3, Reject.INVALID_QUANTITY),
        ("J", 4, Reject.INVALID_PRICE),
    ]
    # Post-only crossing its own side's opposite: rejected by the book, J 7.
    maker = await member(BTC="1")
    maker.client.session.new_order(Side.SELL, BTC_USDT, 1, 0.01, 54000.0, post_only=True)
    maker.client.flush()
    would_trade = await maker.client.next_frame()
    assert (would_trade.letter, would_trade.order_condition) == ("J", Reject.WOULD_TRADE)


async def test_a_silent_peer_is_dropped_after_five_seconds(
    server: ServerProcess, admin: httpx.Client
) -> None:
    client_id, secret = issue_credentials(admin, new_wallet(admin, "silent"))
    silent = await connect(server, client_id, secret, heartbeats=False)
    try:
        assert (await silent.login()).code == Code.LOGIN_ACCEPTED
        started = time.monotonic()
        await silent.wait_closed(timeout_s=15)
        elapsed = time.monotonic() - started
        assert 4.5 <= elapsed <= 8.0, elapsed
        heartbeats = [frame for frame in silent.pending() if frame.code == Code.HEARTBEAT]
        assert len(heartbeats) >= 3  # the MTF kept sending H each idle second meanwhile
    finally:
        await silent.close()


async def test_a_member_who_heartbeats_stays_connected(
    admin: httpx.Client, member: MemberFactory
) -> None:
    alive = await member()
    await asyncio.sleep(6.5)
    alive.client.session.new_order(Side.BUY, BTC_USDT, 1, 0.0001, 0.01)  # no funds: J 4
    alive.client.flush()
    assert (await alive.client.next_frame()).letter == "J"


async def test_login_failures(server: ServerProcess, admin: httpx.Client) -> None:
    client_id, secret = issue_credentials(admin, new_wallet(admin, "logins"))
    wrong = await connect(server, client_id, "0" * 64)
    answer = await wrong.login()
    assert (answer.letter, answer.order_condition) == ("j", Reject.NOT_ALLOWED)
    await wrong.wait_closed()
    await wrong.close()

    first = await connect(server, client_id, secret)
    assert (await first.login(nonce=4242)).letter == "l"
    await first.close()
    replay = await connect(server, client_id, secret)
    assert (await replay.login(nonce=4242)).letter == "j"  # a nonce is never accepted twice
    await replay.close()

    early = await connect(server, client_id, secret)
    early.session.new_order(Side.BUY, BTC_USDT, 1, 0.1, 1.0)
    early.flush()
    not_logged_in = await early.next_frame()
    assert (not_logged_in.letter, not_logged_in.order_condition) == ("J", Reject.NOT_LOGGED_IN)
    await early.close()


async def test_credentials_are_shown_once_listed_without_secret_and_revocation_disconnects(
    admin: httpx.Client, member: MemberFactory, server: ServerProcess
) -> None:
    trader = await member()
    listed = admin.get(f"/wallets/{trader.wallet_id}/mtf-credentials/")
    assert listed.status_code == 200
    assert [row["client_id"] for row in listed.json()] == [trader.client_id]
    assert "secret" not in listed.json()[0] and listed.json()[0]["revoked"] is None
    assert len(trader.secret) == 64 and int(trader.secret, 16) >= 0

    revoked = admin.delete(f"/wallets/{trader.wallet_id}/mtf-credentials/{trader.client_id}/")
    assert revoked.status_code == 204
    await trader.client.wait_closed(timeout_s=5)
    again = await connect(server, trader.client_id, trader.secret)
    assert (await again.login()).letter == "j"
    await again.close()
    assert (
        admin.delete(f"/wallets/{trader.wallet_id}/mtf-credentials/{trader.client_id}/").status_code
        == 404
    )
    assert admin.get(f"/wallets/{trader.wallet_id}/mtf-credentials/").json()[0]["revoked"]


async def test_credentials_need_the_wallet_and_write_scope(
    server: ServerProcess, admin: httpx.Client
) -> None:
    assert admin.post("/wallets/nope/mtf-credentials/").status_code == 404
    wallet_id = new_wallet(admin, "scoped")
    with server.client(scope="read") as reader:
        assert reader.post(f"/wallets/{wallet_id}/mtf-credentials/").status_code == 403
        assert reader.get(f"/wallets/{wallet_id}/mtf-credentials/").status_code == 200
    unknown = admin.post(f"/wallets/{wallet_id}/mtf-credentials/", json={"x": 1})
    assert unknown.status_code == 422


async def test_a_member_who_does_not_read_is_cut_off_without_slowing_others(
    server: ServerProcess, admin: httpx.Client, member: MemberFactory
) -> None:
    assert_quiet(admin, "BTC-USDT", "55000.00", "55000.00")
    client_id, secret = issue_credentials(admin, new_wallet(admin, "not reading"))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.mtf_port)
    session = MemberSession(client_id, secret, wall_ns=time.time_ns, monotonic=time.monotonic)
    session.login(nonce=time.time_ns())
    writer.write(session.data_to_send())
    assert FRAME.unpack(await reader.readexactly(FRAME_SIZE))[3] == Code.LOGIN_ACCEPTED
    other = await member(BTC="1")

    # 150,000 frames of an unknown code: 13 MB of `J` answers that are never read.
    flood = Frame(0, 0, client_id, ord("Z")).encode() * 150_000
    with contextlib.suppress(ConnectionError):  # the server may cut us off mid-write
        for start in range(0, len(flood), 1 << 20):
            writer.write(flood[start : start + (1 << 20)])
            await writer.drain()
            # Meanwhile another member's round trip stays quick.
            started = time.monotonic()
            other.client.session.new_order(Side.SELL, BTC_USDT, start + 1, 0.0001, 55000.0)
            other.client.flush()
            assert (await other.client.next_frame()).letter == "A"
            assert time.monotonic() - started < 2.0
    # The stream ends (closed or reset; a wait_for timeout would fail the test) before
    # most of the answers were sent: the server dropped the member.
    received = 0
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):
            received += len(chunk)
    assert received < 150_000 * FRAME_SIZE / 2
    writer.close()
