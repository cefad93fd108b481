"""The webhook outbox against a real PostgreSQL, delivered through an in-process transport:
an event commits with its cause or not at all, claims never overlap, redirects are not
followed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from strongroom.errors import ValidationError
from strongroom.http.webhooks import RetryPolicy, Webhooks, WebhookSettings, enqueue
from strongroom.identity.at_rest import ServerSealer

pytestmark = pytest.mark.asyncio(loop_scope="function")

FAST = WebhookSettings(RetryPolicy(0.05, 0.2, 3), timeout_s=2.0, poll_interval_s=0.05)


class Rollback(Exception):
    pass


def webhooks(pool: asyncpg.Pool, handler: Callable[[httpx.Request], httpx.Response]) -> Webhooks:
    return Webhooks(pool, ServerSealer(b"k" * 32), FAST, transport=httpx.MockTransport(handler))


def signed_by(secret: str, request: httpx.Request) -> bool:
    timestamp = request.headers["X-Webhook-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.content, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(request.headers["X-Webhook-Signature"], "sha256=" + expected)


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_an_event_commits_with_its_cause_or_not_at_all(pool: asyncpg.Pool) -> None:
    outbox = webhooks(pool, lambda request: httpx.Response(200))
    assert await enqueue(pool, "nobody", "deposit.completed", {"x": 1}) is None  # no settings
    await outbox.configure("p1", "https://p1.example/hook")
    with pytest.raises(Rollback):
        async with pool.acquire() as connection, connection.transaction():
            assert await enqueue(connection, "p1", "deposit.completed", {"x": 1}, event_id="e1")
            raise Rollback
    assert await pool.fetchval("SELECT count(*) FROM webhook_events") == 0
    async with pool.acquire() as connection, connection.transaction():
        assert await enqueue(connection, "p1", "deposit.completed", {"x": 1}, event_id="e1")
    assert await enqueue(pool, "p1", "deposit.completed", {"x": 2}, event_id="e1") is None
    row = await pool.fetchrow("SELECT * FROM webhook_events")
    assert row is not None and row["event_id"] == "e1" and row["status"] == "pending"
    with pytest.raises(ValidationError):
        await enqueue(pool, "p1", "deposit.completed", {}, "ftp://elsewhere.example/")
    for bad_type in ("", "deposit", "Deposit.Completed", "a." + "b" * 64):
        with pytest.raises(ValueError):
            await enqueue(pool, "p1", bad_type, {})
    with pytest.raises(ValueError):
        await enqueue(pool, "p1", "deposit.completed", {}, event_id="id\r\nX-Injected: 1")
    with pytest.raises(ValueError):
        await enqueue(pool, "p1", "deposit.completed", {"blob": "x" * 70_000})


async def test_a_per_request_url_is_used_and_signed_with_the_partners_secret(
    pool: asyncpg.Pool,
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    outbox = webhooks(pool, answer)
    secret = (await outbox.configure("p1", "https://p1.example/hook")).secret
    assert secret is not None
    await outbox.start()
    try:
        event_id = await outbox.enqueue(
            "p1", "transfer.completed", {"id": 7}, "https://p1.example/other"
        )
        await until(lambda: len(seen) == 1)
    finally:
        await outbox.stop()
    [request] = seen
    assert str(request.url) == "https://p1.example/other"
    assert request.headers["X-Webhook-Id"] == event_id and signed_by(secret, request)
    [delivery] = await outbox.deliveries("p1", None, 10, 0)
    assert (delivery.url, delivery.status_code, delivery.done) == (
        "https://p1.example/other", 202, True,
    )  # fmt: skip


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(pool: asyncpg.Pool) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "https://attacker.example/"})

    outbox = webhooks(pool, answer)
    await outbox.configure("p1", "https://p1.example/hook")
    await outbox.start()
    try:
        await outbox.enqueue("p1", "deposit.completed", {})
        await until(lambda: len(seen) == 3)  # every attempt, then given up
        await asyncio.sleep(0.3)
    finally:
        await outbox.stop()
    assert seen == ["https://p1.example/hook"] * 3
    attempts = await outbox.deliveries("p1", None, 10, 0)
    assert [(d.attempt, d.status_code, d.done) for d in attempts] == [
        (3, 302, True), (2, 302, False), (1, 302, False),
    ]  # fmt: skip
    assert await pool.fetchval("SELECT status FROM webhook_events") == "failed"


async def test_two_workers_on_one_database_send_each_event_once(pool: asyncpg.Pool) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["X-Webhook-Id"])
        return httpx.Response(200)

    first, second = webhooks(pool, answer), webhooks(pool, answer)
    await first.configure("p1", "https://p1.example/hook")
    for number in range(40):
        await enqueue(pool, "p1", "deposit.completed", {"n": number})
    await first.start()
    await second.start()
    try:
        await until(lambda: len(seen) >= 40)
        await asyncio.sleep(0.3)
    finally:
        await first.stop()
        await second.stop()
    assert len(seen) == 40 and len(set(seen)) == 40
    assert (
        await pool.fetchval("SELECT count(*) FROM webhook_events WHERE status = 'delivered'") == 40
    )
