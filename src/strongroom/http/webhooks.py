"""Partner webhooks (seed 001 "Configure Webhooks", seed 004 "Partner Webhooks"): the rules
(URL checks, signatures, the retry schedule) as pure functions, a durable outbox in
PostgreSQL (`enqueue`), and the worker that delivers it.

A delivery is a POST of the event's JSON envelope `{id, type, created_at, data}` with
`X-Webhook-Id` (the event id, the same on every attempt: receivers dedupe by it),
`X-Webhook-Timestamp` (unix seconds) and `X-Webhook-Signature: sha256=<hex HMAC-SHA256>`
keyed with the partner's secret over `timestamp + "." + body`. A 2xx answer within the
timeout is a success; anything else (another status, a redirect, which is never followed,
no answer) is retried with exponential backoff until the attempts run out.

At least once: an event is marked delivered only after a 2xx. The worker claims due events
with `FOR UPDATE SKIP LOCKED` and moves their next attempt a lease ahead, so an attempt cut
short by a crash (kill -9 included) is made again, by the next process, once the lease is
over; several workers on one database never send one attempt twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import asyncpg.pool
import httpx
import msgspec
from loguru import logger

from strongroom import __version__
from strongroom.errors import ValidationError
from strongroom.http.representations import iso
from strongroom.identity.at_rest import SealBroken, ServerSealer

CALLBACK_URL_LENGTH_MAX = 2048
SIGNATURE_PREFIX = "sha256="
SECRET_PREFIX = "sec_"
SECRET_MASK_VISIBLE = 8  # "sec_" and 4 characters of the random part
EVENT_TYPE_LENGTH_MAX = 64
EVENT_ID_LENGTH_MAX = 64
PAYLOAD_SIZE_MAX = 64 * 1024
ERROR_LENGTH_MAX = 500
LEASE_MARGIN_S = 5.0  # beyond the delivery timeout: recording the outcome
CLAIM_FAILURE_PAUSE_S = 1.0
ACQUIRE_TIMEOUT_S = 10.0
_EVENT_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{EVENT_ID_LENGTH_MAX}}}")  # it goes in a header
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

Database: TypeAlias = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | asyncpg.Pool


# --------------------------------------------------------------------------- pure rules


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`X-Webhook-Signature`: hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, over
    the decimal timestamp, a dot and the body exactly as sent."""
    message = str(timestamp).encode() + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """After failed attempt n (1-based): wait min(cap, base · 2^(n-1)); give up after
    `attempts_max` attempts."""

    base_s: float = 1.0
    cap_s: float = 600.0
    attempts_max: int = 20

    def __post_init__(self) -> None:
        if not self.base_s > 0 or not self.cap_s >= self.base_s or self.attempts_max < 1:
            raise ValueError("a retry policy needs 0 < base_s <= cap_s and attempts_max >= 1")

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        exponent = min(attempt - 1, 64)  # 2^64 · base is past any cap; no float overflow
        return min(self.cap_s, self.base_s * 2.0**exponent)


PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # PENDING (retry after delay_s), DELIVERED or FAILED (given up)
    delay_s: float | None

    @property
    def done(self) -> bool:
        return self.status != PENDING


def outcome(status_code: int | None, attempt: int, policy: RetryPolicy) -> Outcome:
    """What an attempt's answer means: delivered on a 2xx, else retry or give up."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome(DELIVERED, None)
    if attempt >= policy.attempts_max:
        return Outcome(FAILED, None)
    return Outcome(PENDING, policy.delay_s(attempt))


def validate_callback_url(text: str, field: str = "callback_url") -> str:
    """An absolute http(s) URL with a host, no credentials, no fragment, at most 2048
    characters of printable ASCII; raises ValidationError (422) otherwise."""
    if len(text) > CALLBACK_URL_LENGTH_MAX:
        raise ValidationError(field, f"must not exceed {CALLBACK_URL_LENGTH_MAX} characters")
    if not text or not all(0x21 <= ord(character) < 0x7F for character in text):
        raise ValidationError(field, "must be printable ASCII without spaces")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise ValidationError(field, f"is not a valid URL: {error}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(field, "must be an http or https URL")
    if "@" in parts.netloc:
        raise ValidationError(field, "must not carry credentials")
    if "#" in text:
        raise ValidationError(field, "must not have a fragment")
    if port == 0:
        raise ValidationError(field, "has an invalid port")
    if not _valid_host(parts.hostname, bracketed="[" in parts.netloc):
        raise ValidationError(field, "must name a valid host")
    return text


def _valid_host(host: str | None, *, bracketed: bool) -> bool:
    if not host:
        return False
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return False
    if all(label.isdigit() for label in labels):  # numbers only: it must be an IPv4 address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def mask_secret(secret: str) -> str:
    return secret[:SECRET_MASK_VISIBLE] + "…"


def envelope(event_id: str, event_type: str, created_at: datetime, payload_json: str) -> bytes:
    """The body of every attempt of one event (the same bytes each time)."""
    return msgspec.json.encode(
        {
            "id": event_id,
            "type": event_type,
            "created_at": iso(created_at),
            "data": msgspec.Raw(payload_json.encode()),
        }
    )


def loggable_url(url: str) -> str:
    """A URL without its query (it may carry the partner's own tokens), for logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _sealing_context(partner_id: str) -> str:
    return f"webhook secret|{partner_id}"


# --------------------------------------------------------------------------- the outbox


async def enqueue(
    database: Database,
    partner_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    callback_url: str | None = None,
    *,
    event_id: str | None = None,
) -> str | None:
    """Write one event to the outbox; its id, or None if nothing was written: the partner
    has no webhook settings (nothing can be signed), or `event_id` was written before.

    Given a connection, the event is written in the caller's transaction, so it commits,
    or not, together with the state change it reports; given a pool, it is committed on
    return. From its commit on it is delivered at least once, to `callback_url` if given
    (a per-request URL, checked like the partner's), else to the partner's webhook URL as
    it is at each attempt.
    """
    if not _EVENT_TYPE.fullmatch(event_type) or len(event_type) > EVENT_TYPE_LENGTH_MAX:
        raise ValueError(f"not an event type: {event_type!r}")
    if event_id is not None and not _EVENT_ID.fullmatch(event_id):
        raise ValueError("an event id has 1 to 64 letters, digits or . _ : -")
    target_url = None if callback_url is None else validate_callback_url(callback_url)
    document = msgspec.json.encode(payload)
    if len(document) > PAYLOAD_SIZE_MAX:
        raise ValueError(f"a webhook payload is limited to {PAYLOAD_SIZE_MAX} bytes")
    written: str | None = await database.fetchval(
        "INSERT INTO webhook_events (event_id, partner_id, event_type, payload, target_url)"
        " SELECT $1, $2, $3, $4::jsonb, $5"
        " WHERE EXISTS (SELECT 1 FROM partner_webhooks WHERE partner_id = $2)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        event_id or "evt_" + uuid.uuid4().hex,
        partner_id,
        event_type,
        document.decode(),
        target_url,
    )
    return written


@dataclass(frozen=True, slots=True)
class WebhookSetting:
    callback_url: str
    secret_masked: str


@dataclass(frozen=True, slots=True)
class Configured:
    callback_url: str
    secret_masked: str
    secret: str | None  # only when the settings were created by this call


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    event_type: str
    url: str
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    next_attempt_at: datetime | None
    done: bool


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = 5.0  # the whole attempt: connect, send, the answer's head
    batch_size: int = 10  # events claimed per query
    concurrency: int = 32  # attempts in flight
    poll_interval_s: float = 0.25  # how often due events are looked for when idle

    @property
    def lease_s(self) -> float:
        return self.timeout_s + LEASE_MARGIN_S


@dataclass(frozen=True, slots=True)
class _Claimed:
    event_id: str
    partner_id: str
    event_type: str
    payload_json: str
    target_url: str | None
    created_at: datetime
    attempt: int
    partner_url: str | None
    secret_sealed: str | None


def delivery_from_row(row: asyncpg.Record) -> Delivery:
    return Delivery(
        row["event_id"], row["event_type"], row["url"], row["attempt"], row["attempted_at"],
        row["status_code"], row["error"], row["next_attempt_at"], row["done"],
    )  # fmt: skip


def claimed_from_row(row: asyncpg.Record, setting: asyncpg.Record | None) -> _Claimed:
    return _Claimed(
        row["event_id"], row["partner_id"], row["event_type"], row["payload"],
        row["target_url"], row["created_at"], row["attempts"],
        None if setting is None else setting["callback_url"],
        None if setting is None else setting["secret_sealed"],
    )  # fmt: skip


class Webhooks:
    """Partners' webhook settings, their deliveries, and the delivery worker (an asyncio
    task: `start`, `stop`; `wake` after an enqueue to look for due events at once)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sealer: ServerSealer,
        settings: WebhookSettings = WebhookSettings(),
        *,
        clock_s: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self._sealer = sealer
        self._clock_s = clock_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._stopping = False

    # ---------------------------------------------------------------- settings

    async def configure(self, partner_id: str, callback_url: str) -> Configured:
        """Set the partner's URL; the signing secret is made (and returned) the first time
        only, and kept sealed: later calls change the URL and keep the secret."""
        url = validate_callback_url(callback_url)
        secret = new_secret()
        row = await self.pool.fetchrow(
            "INSERT INTO partner_webhooks (partner_id, callback_url, secret_sealed, secret_masked)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (partner_id)"
            " DO UPDATE SET callback_url = excluded.callback_url, updated_at = now()"
            " RETURNING (xmax = 0) AS created, secret_masked",
            partner_id,
            url,
            self._sealer.seal(secret, _sealing_context(partner_id)),
            mask_secret(secret),
        )
        assert row is not None
        return Configured(url, row["secret_masked"], secret if row["created"] else None)

    async def setting(self, partner_id: str) -> WebhookSetting | None:
        row = await self.pool.fetchrow(
            "SELECT callback_url, secret_masked FROM partner_webhooks WHERE partner_id = $1",
            partner_id,
        )
        return None if row is None else WebhookSetting(row["callback_url"], row["secret_masked"])

    async def deliveries(
        self, partner_id: str, event_id: str | None, limit: int, offset: int
    ) -> list[Delivery]:
        """The partner's delivery attempts, newest first."""
        rows = await self.pool.fetch(
            "SELECT d.event_id, e.event_type, d.url, d.attempt, d.attempted_at, d.status_code,"
            " d.error, d.next_attempt_at, d.done"
            " FROM webhook_deliveries d JOIN webhook_events e USING (event_id)"
            " WHERE d.partner_id = $1 AND ($2::text IS NULL OR d.event_id = $2)"
            " ORDER BY d.id DESC LIMIT $3 OFFSET $4",
            partner_id,
            event_id,
            limit,
            offset,
        )
        return [delivery_from_row(row) for row in rows]

    async def enqueue(
        self,
        partner_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        callback_url: str | None = None,
        *,
        event_id: str | None = None,
    ) -> str | None:
        """`enqueue` on the pool (committed on return), then look for due events at once:
        for a cause that was committed already."""
        written = await enqueue(
            self.pool, partner_id, event_type, payload, callback_url, event_id=event_id
        )
        if written is not None:
            self.wake()
        return written

    # ---------------------------------------------------------------- the worker

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(self.settings.timeout_s),
            limits=httpx.Limits(
                max_connections=self.settings.concurrency, max_keepalive_connections=0
            ),
            trust_env=False,  # no proxy or certificate settings from the environment
            headers={"User-Agent": f"strongroom-webhooks/{__version__}"},
            transport=self._transport,
        )
        self._task = asyncio.create_task(self._run(), name="webhook worker")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop claiming; let attempts in flight end (each is bounded by the timeout), then
        close the client. An attempt cut short is made again after its lease."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await self._task
            except Exception as error:  # shutdown goes on: the pool must still close
                logger.opt(exception=error).error("the webhook worker had stopped")
        if self._in_flight:
            _, unfinished = await asyncio.wait(
                set(self._in_flight), timeout=self.settings.timeout_s + 1.0
            )
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            free = self.settings.concurrency - len(self._in_flight)
            wanted = min(free, self.settings.batch_size)
            claimed: list[_Claimed] = []
            if wanted > 0:
                try:
                    claimed = await self._claim(wanted)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
                    logger.warning("webhook events not claimed", error=repr(error))
                    await asyncio.sleep(CLAIM_FAILURE_PAUSE_S)
                    continue
                except Exception as error:  # the worker must outlive whatever happens here
                    logger.opt(exception=error).error("webhook events not claimed")
                    await asyncio.sleep(CLAIM_FAILURE_PAUSE_S)
                    continue
            for event in claimed:
                task = asyncio.create_task(self._attempt(event), name=f"webhook {event.event_id}")
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == wanted:
                continue  # more may be due
            try:
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if len(self._in_flight) == self.settings.concurrency - 1:
            self._wakeup.set()  # a place is free again

    async def _claim(self, count: int) -> list[_Claimed]:
        async with (
            self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as connection,
            connection.transaction(),
        ):
            rows = await connection.fetch(
                "WITH due AS ("
                "  SELECT event_id FROM webhook_events"
                "  WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
                "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " UPDATE webhook_events e SET attempts = e.attempts + 1,"
                "  next_attempt_at = clock_timestamp() + $2 * interval '1 second'"
                " FROM due WHERE e.event_id = due.event_id"
                " RETURNING e.event_id, e.partner_id, e.event_type, e.payload::text AS payload,"
                "  e.target_url, e.created_at, e.attempts",
                count,
                self.settings.lease_s,
            )
            partners = {row["partner_id"] for row in rows}
            settings = {
                row["partner_id"]: row
                for row in await connection.fetch(
                    "SELECT partner_id, callback_url, secret_sealed FROM partner_webhooks"
                    " WHERE partner_id = ANY($1::text[])",
                    list(partners),
                )
            }
        return [claimed_from_row(row, settings.get(row["partner_id"])) for row in rows]

    async def _attempt(self, event: _Claimed) -> None:
        """One attempt and its record; nothing it meets may stop the worker."""
        try:
            url = event.target_url or event.partner_url or ""
            attempted_at = self._clock_s()
            status_code, error = await self._post(event, url, int(attempted_at))
            await self._record(event, url, attempted_at, status_code, error)
        except Exception as error:  # the event is retried after its lease
            logger.opt(exception=error).error(
                "webhook attempt not recorded", event_id=event.event_id
            )

    async def _post(
        self, event: _Claimed, url: str, timestamp: int
    ) -> tuple[int | None, str | None]:
        """POST the event: the answer's status (its body is not read), or what went wrong."""
        if event.secret_sealed is None or not url:
            return None, "no webhook settings for the partner"
        try:
            secret = self._sealer.open(event.secret_sealed, _sealing_context(event.partner_id))
        except SealBroken:
            return None, "the partner's secret does not open (another server key?)"
        body = envelope(event.event_id, event.event_type, event.created_at, event.payload_json)
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Id": event.event_id,
            "X-Webhook-Timestamp": str(timestamp),
            "X-Webhook-Signature": signature(secret, timestamp, body),
        }
        assert self._client is not None
        try:
            async with (
                asyncio.timeout(self.settings.timeout_s),
                self._client.stream("POST", url, content=body, headers=headers) as response,
            ):
                return response.status_code, None
        except TimeoutError:
            return None, f"no answer within {self.settings.timeout_s} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            return None, f"{type(error).__name__}: {error}"[:ERROR_LENGTH_MAX]

    async def _record(
        self,
        event: _Claimed,
        url: str,
        attempted_at: float,
        status_code: int | None,
        error: str | None,
    ) -> None:
        decided = outcome(status_code, event.attempt, self.settings.retry)
        async with (
            self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as connection,
            connection.transaction(),
        ):
            # A stale attempt (its lease ran out and the event was claimed again) leaves the
            # event to the newer one, unless it delivered it.
            next_attempt_at: datetime | None = await connection.fetchval(
                "UPDATE webhook_events SET status = $2,"
                " next_attempt_at = clock_timestamp() + $3 * interval '1 second'"
                " WHERE event_id = $1 AND status = 'pending' AND (attempts = $4 OR $2 = $5)"
                " RETURNING next_attempt_at",
                event.event_id,
                decided.status,
                decided.delay_s or 0.0,
                event.attempt,
                DELIVERED,
            )
            await connection.execute(
                "INSERT INTO webhook_deliveries (event_id, partner_id, attempt, url, attempted_at,"
                " status_code, error, next_attempt_at, done)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                event.event_id,
                event.partner_id,
                event.attempt,
                url,
                datetime.fromtimestamp(attempted_at, UTC),
                status_code,
                error,
                None if decided.done else next_attempt_at,
                decided.done,
            )
        fields = {"event_id": event.event_id, "attempt": event.attempt, "url": loggable_url(url)}
        if decided.status == DELIVERED:
            logger.debug("webhook delivered", status_code=status_code, **fields)
        elif decided.status == FAILED:
            logger.error("webhook given up", status_code=status_code, error=error, **fields)
        else:
            logger.warning(
                "webhook attempt failed, will retry",
                status_code=status_code,
                error=error,
                retry_in_s=decided.delay_s,
                **fields,
            )
