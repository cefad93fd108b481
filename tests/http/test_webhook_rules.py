"""The pure rules of webhooks: signatures, the retry schedule, callback URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.custody.views import event_id_for
from strongroom.errors import ValidationError
from strongroom.http.webhooks import (
    CALLBACK_URL_LENGTH_MAX,
    DELIVERED,
    FAILED,
    PENDING,
    RetryPolicy,
    envelope,
    loggable_url,
    mask_secret,
    new_secret,
    outcome,
    signature,
    validate_callback_url,
)


def partner_check(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a partner's receiver does, from the documentation alone."""
    expected = hmac.new(
        secret.encode("utf-8"), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return header.startswith("sha256=") and hmac.compare_digest(header[7:], expected)


def test_a_known_signature() -> None:
    # printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac sec_test_secret
    assert signature("sec_test_secret", 1_700_000_000, b'{"id":"evt_1"}') == (
        "sha256=76bb105fc4640ce105ecc21a22ba82a34468bfce9ee660280b54cd9914cf1920"
    )


@given(
    secret=st.text(min_size=1, max_size=64),
    timestamp=st.integers(min_value=0, max_value=2**40),
    body=st.binary(max_size=512),
)
def test_a_partner_verifies_every_signature(secret: str, timestamp: int, body: bytes) -> None:
    assert partner_check(secret, str(timestamp), body, signature(secret, timestamp, body))


@given(
    secret=st.text(min_size=1, max_size=32),
    timestamp=st.integers(min_value=0, max_value=2**40),
    body=st.binary(min_size=1, max_size=256),
    position=st.integers(min_value=0),
)
def test_any_change_breaks_the_signature(
    secret: str, timestamp: int, body: bytes, position: int
) -> None:
    sent = signature(secret, timestamp, body)
    index = position % len(body)
    altered = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
    assert not partner_check(secret, str(timestamp), altered, sent)
    assert not partner_check(secret, str(timestamp + 1), body, sent)
    assert not partner_check(secret + "x", str(timestamp), body, sent)


def test_the_default_schedule_doubles_from_one_second_to_ten_minutes() -> None:
    policy = RetryPolicy()
    delays = [policy.delay_s(attempt) for attempt in range(1, 14)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]


@given(
    base_s=st.floats(min_value=0.001, max_value=100),
    factor=st.floats(min_value=1, max_value=10_000),
    attempts_max=st.integers(min_value=1, max_value=100),
    attempt=st.integers(min_value=1, max_value=10_000),
)
def test_the_schedule_doubles_up_to_the_cap(
    base_s: float, factor: float, attempts_max: int, attempt: int
) -> None:
    policy = RetryPolicy(base_s, base_s * factor, attempts_max)
    delay = policy.delay_s(attempt)
    assert base_s <= delay <= policy.cap_s
    assert delay == min(policy.cap_s, base_s * 2 ** min(attempt - 1, 64))
    assert policy.delay_s(attempt + 1) >= delay
    if delay < policy.cap_s:
        assert policy.delay_s(attempt + 1) == min(policy.cap_s, 2 * delay)


@given(
    status_code=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
    attempt=st.integers(min_value=1, max_value=30),
    attempts_max=st.integers(min_value=1, max_value=30),
)
def test_only_a_2xx_delivers_and_attempts_run_out(
    status_code: int | None, attempt: int, attempts_max: int
) -> None:
    policy = RetryPolicy(0.5, 60, attempts_max)
    decided = outcome(status_code, attempt, policy)
    if status_code is not None and 200 <= status_code < 300:
        assert (decided.status, decided.delay_s, decided.done) == (DELIVERED, None, True)
    elif attempt >= attempts_max:
        assert (decided.status, decided.delay_s, decided.done) == (FAILED, None, True)
    else:
        assert decided.status == PENDING and not decided.done
        assert decided.delay_s == policy.delay_s(attempt)


@pytest.mark.parametrize(
    ("base_s", "cap_s", "attempts_max"), [(0, 1, 1), (-1, 1, 1), (2, 1, 1), (1, 1, 0)]
)
def test_a_retry_policy_is_checked(base_s: float, cap_s: float, attempts_max: int) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base_s, cap_s, attempts_max)


@pytest.mark.parametrize(
    "url",
    [
        "https://partner.example.com/webhook",
        "http://127.0.0.1:8080/hook?x=1",
        "http://[::1]:9000/",
        "HTTPS://Example.COM",
        "https://example.com.",
    ],
)
def test_good_callback_urls_are_kept_as_given(url: str) -> None:
    assert validate_callback_url(url) == url


BAD_URLS = [
    "",
    "example.com/webhook",
    "ftp://example.com/",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "http://",
    "http:///path",
    "http://:80/",
    "https://user:password@example.com/",
    "https://example.com/#fragment",
    "https://exa mple.com/",
    " https://example.com/",
    "https://example.com/\n",
    "https://exämple.com/",
    "http://[::1/",
    "http://[not-an-address]/",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://example.com:port/",
    "http://-bad-.example.com/",
    "http://under_score.example.com/",
    "http://999.1.1.1/",
    "https://example.com/" + "a" * CALLBACK_URL_LENGTH_MAX,
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_callback_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_callback_url(url)
    assert raised.value.field == "callback_url"


@given(st.text(max_size=80))
def test_whatever_is_accepted_is_an_http_url_with_a_host(text: str) -> None:
    try:
        validate_callback_url(text)
    except ValidationError:
        return
    scheme, _, rest = text.partition("://")
    assert scheme.lower() in ("http", "https") and rest and len(text) <= CALLBACK_URL_LENGTH_MAX


def test_secrets_are_random_and_masked_to_a_prefix() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("sec_") and len(first) == 52
    masked = mask_secret(first)
    assert masked == first[:8] + "…" and first[8:] not in masked


def test_an_envelope_is_the_same_bytes_every_time() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = envelope("evt_1", "deposit.completed", created, '{"tid": "T1", "amount": "1.5"}')
    assert body == envelope("evt_1", "deposit.completed", created, '{"tid": "T1", "amount": "1.5"}')
    assert json.loads(body) == {
        "id": "evt_1",
        "type": "deposit.completed",
        "created_at": "2026-01-02T03:04:05Z",
        "data": {"tid": "T1", "amount": "1.5"},
    }


def test_event_ids_of_a_cause_are_stable_and_distinct() -> None:
    assert event_id_for("deposit.completed", "T1") == event_id_for("deposit.completed", "T1")
    assert event_id_for("deposit.completed", "T1") != event_id_for("deposit.completed", "T2")
    assert len(event_id_for("x")) <= 64


def test_logged_urls_lose_their_query() -> None:
    assert loggable_url("https://h.example/p?token=abc#x") == "https://h.example/p"
