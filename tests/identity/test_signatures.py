"""API key request signatures: built here the way a partner's client builds them."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import StrongroomError
from strongroom.identity.errors import IdentityError, SignatureRejected
from strongroom.identity.signatures import (
    REPLAY_CACHE_FULL,
    REPLAYED,
    SignatureVerifier,
    content_digest,
    derive_secret,
    new_api_key,
    signature,
)

NOW_S = 1_700_000_000
SERVER_KEY = bytes(range(32))
API_KEY = "sk_abcdefghijklmnopqrstuvwx"
SECRET = "9f" * 32
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def partner_headers(
    body: bytes, timestamp: int | str, *, api_key: str = API_KEY, secret: str = SECRET
) -> dict[str, str]:
    """What seed 003's PHP client sends: md5(body), then hash_hmac('sha512', ..., $secret)."""
    content = hashlib.md5(body).hexdigest()
    message = f"{api_key}{timestamp}{content}".encode()
    return {
        "api_key": api_key,
        "timestamp": str(timestamp),
        "content": content,
        "signature": hmac.new(secret.encode(), message, hashlib.sha512).hexdigest(),
    }


def verify(
    verifier: SignatureVerifier,
    headers: dict[str, str],
    body: bytes,
    now_s: float = NOW_S,
    secret: str = SECRET,
) -> None:
    verifier.verify(**headers, secret=secret, body=body, now_s=now_s)


def rejected(
    verifier: SignatureVerifier,
    headers: dict[str, str],
    body: bytes,
    now_s: float = NOW_S,
    secret: str = SECRET,
) -> str:
    with pytest.raises(SignatureRejected) as caught:
        verify(verifier, headers, body, now_s, secret)
    return caught.value.reason


# Key issuing and derivation


def test_new_api_key_has_a_documented_shape_and_a_fresh_salt() -> None:
    first, first_salt = new_api_key()
    second, second_salt = new_api_key()
    assert re.fullmatch(r"sk_[A-Za-z0-9_-]{24}", first)
    assert first != second
    assert len(first_salt) == 16
    assert first_salt != second_salt


def test_derive_secret_is_hmac_sha256_of_the_length_prefixed_key_and_salt() -> None:
    salt = b"s" * 16
    expected = hmac.new(
        SERVER_KEY, bytes([0, len(API_KEY)]) + API_KEY.encode() + salt, hashlib.sha256
    ).hexdigest()
    assert derive_secret(SERVER_KEY, API_KEY, salt) == expected
    assert derive_secret(SERVER_KEY, API_KEY, salt) == expected  # deterministic: not stored
    assert derive_secret(SERVER_KEY, API_KEY, b"t" * 16) != expected
    assert derive_secret(bytes(32), API_KEY, salt) != expected
    assert derive_secret(SERVER_KEY, API_KEY + "x", salt) != expected


@pytest.mark.parametrize(
    ("server_key", "api_key", "salt"),
    [(b"short", API_KEY, b"s" * 16), (SERVER_KEY, API_KEY, b"s" * 15), (SERVER_KEY, "", b"s" * 16)],
)
def test_derive_secret_refuses_weak_inputs(server_key: bytes, api_key: str, salt: bytes) -> None:
    with pytest.raises(ValueError):
        derive_secret(server_key, api_key, salt)


def test_a_derived_secret_signs_requests_end_to_end() -> None:
    api_key, salt = new_api_key()
    secret = derive_secret(SERVER_KEY, api_key, salt)
    body = b'{"wallet_id": "w1"}'
    headers = partner_headers(body, NOW_S, api_key=api_key, secret=secret)
    verify(SignatureVerifier(), headers, body, secret=derive_secret(SERVER_KEY, api_key, salt))


# Content and signature


def test_content_digest_is_md5_hex_also_for_an_empty_body() -> None:
    assert content_digest(b"") == EMPTY_MD5
    assert content_digest(b"abc") == "900150983cd24fb0d6963f7d28e17f72"


def test_signature_matches_a_partner_computation() -> None:
    headers = partner_headers(b"", NOW_S)
    assert headers["content"] == EMPTY_MD5
    assert signature(SECRET, API_KEY, str(NOW_S), EMPTY_MD5) == headers["signature"]


def test_signature_known_answer() -> None:
    # Independently computed: hash_hmac('sha512', 'k1' . '100' . md5(''), 's')
    expected = hmac.new(b"s", b"k1100" + EMPTY_MD5.encode(), hashlib.sha512).hexdigest()
    assert signature("s", "k1", "100", EMPTY_MD5) == expected
    assert len(expected) == 128


# Replays


def test_accepted_once_then_replayed_then_accepted_for_a_new_timestamp() -> None:
    verifier = SignatureVerifier()
    body = b'{"amount": "1.5"}'
    verify(verifier, partner_headers(body, NOW_S), body)
    assert rejected(verifier, partner_headers(body, NOW_S), body, now_s=NOW_S + 1) == REPLAYED
    verify(verifier, partner_headers(body, NOW_S + 1), body, now_s=NOW_S + 1)
    assert verifier.remembered == 2


def test_an_empty_body_get_is_accepted_and_not_replayable() -> None:
    verifier = SignatureVerifier()
    verify(verifier, partner_headers(b"", NOW_S), b"")
    assert rejected(verifier, partner_headers(b"", NOW_S), b"") == REPLAYED


def test_different_keys_with_the_same_timestamp_and_body_are_both_accepted() -> None:
    verifier = SignatureVerifier()
    verify(verifier, partner_headers(b"", NOW_S), b"")
    other = partner_headers(b"", NOW_S, api_key="sk_other", secret="other")
    verify(verifier, other, b"", secret="other")


def test_a_failed_verification_is_not_remembered() -> None:
    verifier = SignatureVerifier()
    headers = partner_headers(b"body", NOW_S)
    assert rejected(verifier, headers, b"body", secret="wrong") == "SIGNATURE does not match"
    assert verifier.remembered == 0
    verify(verifier, headers, b"body")


# The window: inclusive at exactly ±30 s


def test_a_timestamp_exactly_30_s_old_or_ahead_is_accepted() -> None:
    verifier = SignatureVerifier()
    verify(verifier, partner_headers(b"", NOW_S - 30), b"")
    verify(verifier, partner_headers(b"", NOW_S + 30), b"")


def test_a_timestamp_31_s_old_or_ahead_is_refused() -> None:
    verifier = SignatureVerifier()
    stale = rejected(verifier, partner_headers(b"", NOW_S - 31), b"")
    future = rejected(verifier, partner_headers(b"", NOW_S + 31), b"")
    assert stale == "TIMESTAMP is 31 s in the past; at most 30 s is accepted"
    assert future == "TIMESTAMP is 31 s in the future; at most 30 s is accepted"


def test_a_fraction_of_a_second_past_the_boundary_is_refused() -> None:
    headers = partner_headers(b"", NOW_S)
    stale = rejected(SignatureVerifier(), headers, b"", now_s=NOW_S + 30.001)
    future = rejected(SignatureVerifier(), headers, b"", now_s=NOW_S - 30.001)
    assert stale == "TIMESTAMP is 30.001 s in the past; at most 30 s is accepted"
    assert future == "TIMESTAMP is 30.001 s in the future; at most 30 s is accepted"


def test_the_window_is_configurable() -> None:
    verifier = SignatureVerifier(window_s=5.0)
    verify(verifier, partner_headers(b"", NOW_S - 5), b"")
    assert "past" in rejected(verifier, partner_headers(b"", NOW_S - 6), b"")


def test_milliseconds_are_refused_with_a_reason_that_says_so() -> None:
    verifier = SignatureVerifier()
    reason = rejected(verifier, partner_headers(b"", NOW_S * 1000), b"")
    assert reason == "TIMESTAMP looks like milliseconds; send whole seconds since the epoch"


def test_a_clock_stepping_back_cannot_reopen_a_forgotten_signature() -> None:
    verifier = SignatureVerifier()
    headers = partner_headers(b"", NOW_S)
    verify(verifier, headers, b"")
    verify(verifier, partner_headers(b"", NOW_S + 60), b"", now_s=NOW_S + 60)  # forgets NOW_S
    assert verifier.remembered == 1
    assert "past" in rejected(verifier, headers, b"", now_s=NOW_S)


# Malformed and wrong headers


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("api_key", "APIKEY header is missing"),
        ("timestamp", "TIMESTAMP header is missing"),
        ("content", "CONTENT header is missing"),
        ("signature", "SIGNATURE header is missing"),
    ],
)
def test_a_missing_header_is_named(header: str, reason: str) -> None:
    headers = partner_headers(b"", NOW_S) | {header: ""}
    assert rejected(SignatureVerifier(), headers, b"") == reason


@pytest.mark.parametrize(
    "timestamp", ["1700000000.0", "-1700000000", "+1700000000", " 1700000000", "1_700_000_000",
                  "1700000000\n", "١٧٠٠٠٠٠٠٠٠", "1e9", "0x6553f100", "9" * 21],
)  # fmt: skip
def test_a_timestamp_that_is_not_plain_integer_digits_is_refused(timestamp: str) -> None:
    headers = partner_headers(b"", timestamp)
    reason = rejected(SignatureVerifier(), headers, b"")
    assert reason == "TIMESTAMP is not an integer number of seconds since the epoch"


@pytest.mark.parametrize("api_key", ["sk key", "sk_\u00e9", "k" * 129, "sk\t"])
def test_an_api_key_that_is_not_printable_ascii_is_refused(api_key: str) -> None:
    headers = partner_headers(b"", NOW_S, api_key=api_key)
    assert rejected(SignatureVerifier(), headers, b"").startswith("APIKEY must be")


def test_a_wrong_secret_is_refused() -> None:
    headers = partner_headers(b"{}", NOW_S, secret="not the secret")
    assert rejected(SignatureVerifier(), headers, b"{}") == "SIGNATURE does not match"


def test_a_signature_for_another_api_key_is_refused() -> None:
    headers = partner_headers(b"{}", NOW_S) | {"api_key": "sk_someone_else"}
    assert rejected(SignatureVerifier(), headers, b"{}") == "SIGNATURE does not match"


def test_a_body_other_than_the_signed_one_is_refused() -> None:
    headers = partner_headers(b'{"amount": "1"}', NOW_S)
    reason = rejected(SignatureVerifier(), headers, b'{"amount": "1000"}')
    assert reason == "CONTENT is not the MD5 hex digest of the body"


def test_a_content_header_that_is_not_md5_hex_is_refused() -> None:
    headers = partner_headers(b"", NOW_S) | {"content": hashlib.sha256(b"").hexdigest()}
    assert rejected(SignatureVerifier(), headers, b"") == "CONTENT is not 32 hex digits (MD5)"
    headers = partner_headers(b"", NOW_S) | {"content": "z" * 32}
    assert rejected(SignatureVerifier(), headers, b"") == "CONTENT is not 32 hex digits (MD5)"


def test_an_empty_body_must_still_carry_md5_of_nothing() -> None:
    headers = partner_headers(b"", NOW_S) | {"content": "0" * 32}
    assert "CONTENT is not the MD5" in rejected(SignatureVerifier(), headers, b"")


def test_an_uppercase_hex_signature_is_accepted_and_is_the_same_signature() -> None:
    verifier = SignatureVerifier()
    headers = partner_headers(b"x", NOW_S)
    verify(verifier, headers | {"signature": headers["signature"].upper()}, b"x")
    # Spelling the same bytes differently is still a replay.
    assert rejected(verifier, headers, b"x") == REPLAYED


def test_an_uppercase_content_header_is_accepted_when_it_was_signed_that_way() -> None:
    body = b"x"
    content = hashlib.md5(body).hexdigest().upper()
    message = f"{API_KEY}{NOW_S}{content}".encode()
    headers = {
        "api_key": API_KEY,
        "timestamp": str(NOW_S),
        "content": content,
        "signature": hmac.new(SECRET.encode(), message, hashlib.sha512).hexdigest(),
    }
    verify(SignatureVerifier(), headers, body)


@pytest.mark.parametrize(
    "bad",
    [
        "g" * 128,  # not hex
        "ab" * 63,  # too short
        "ab" * 65,  # too long
        "ab " * 42 + "ab",  # bytes.fromhex would skip the spaces
        "0x" + "ab" * 63,
    ],
)
def test_a_signature_that_is_not_128_hex_digits_is_refused(bad: str) -> None:
    headers = partner_headers(b"", NOW_S) | {"signature": bad}
    reason = rejected(SignatureVerifier(), headers, b"")
    assert reason == "SIGNATURE is not 128 hex digits (HMAC-SHA512)"


def test_a_flipped_signature_digit_is_refused() -> None:
    headers = partner_headers(b"", NOW_S)
    last = headers["signature"][-1]
    flipped = headers["signature"][:-1] + ("0" if last != "0" else "1")
    reason = rejected(SignatureVerifier(), headers | {"signature": flipped}, b"")
    assert reason == "SIGNATURE does not match"


def test_signature_rejected_belongs_to_the_error_hierarchy() -> None:
    error = SignatureRejected("why")
    assert isinstance(error, IdentityError)
    assert isinstance(error, StrongroomError)
    assert error.reason == "why"
    assert error.code == "signature_rejected"


# Memory: pruning and the capacity bound


def test_pruning_lets_memory_fall_back() -> None:
    verifier = SignatureVerifier()
    for offset in range(10):
        verify(verifier, partner_headers(b"", NOW_S + offset), b"", now_s=NOW_S + offset)
    assert verifier.remembered == 10
    # At NOW_S + 35, timestamps NOW_S .. NOW_S + 4 have left the window.
    verify(verifier, partner_headers(b"", NOW_S + 35), b"", now_s=NOW_S + 35)
    assert verifier.remembered == 10 - 5 + 1
    verify(verifier, partner_headers(b"", NOW_S + 100), b"", now_s=NOW_S + 100)
    assert verifier.remembered == 1


def test_an_entry_exactly_at_the_window_edge_is_still_remembered() -> None:
    verifier = SignatureVerifier()
    headers = partner_headers(b"", NOW_S)
    verify(verifier, headers, b"")
    assert rejected(verifier, headers, b"", now_s=NOW_S + 30) == REPLAYED
    assert verifier.remembered == 1


def test_a_full_memory_fails_closed_until_entries_age_out() -> None:
    verifier = SignatureVerifier(replay_capacity=3)
    for offset in range(3):
        verify(verifier, partner_headers(b"", NOW_S + offset), b"", now_s=NOW_S + offset)
    full = partner_headers(b"", NOW_S + 3)
    assert rejected(verifier, full, b"", now_s=NOW_S + 3) == REPLAY_CACHE_FULL
    assert verifier.remembered == 3
    # A replay is still named as such when the memory is full.
    assert rejected(verifier, partner_headers(b"", NOW_S), b"", now_s=NOW_S + 3) == REPLAYED
    # Once NOW_S leaves the window there is room again, and the refused request may retry.
    verify(verifier, full, b"", now_s=NOW_S + 31)
    assert verifier.remembered == 3


def test_capacity_is_never_exceeded() -> None:
    verifier = SignatureVerifier(replay_capacity=50)
    accepted = 0
    for index in range(200):
        body = str(index).encode()
        try:
            verify(verifier, partner_headers(body, NOW_S), body, now_s=NOW_S + index % 7)
            accepted += 1
        except SignatureRejected as error:
            assert error.reason == REPLAY_CACHE_FULL
        assert verifier.remembered <= 50
    assert accepted == 50


@pytest.mark.parametrize(
    ("window_s", "replay_capacity"), [(-1.0, 10), (float("nan"), 10), (30.0, 0)]
)
def test_the_verifier_refuses_nonsensical_limits(window_s: float, replay_capacity: int) -> None:
    with pytest.raises(ValueError):
        SignatureVerifier(window_s=window_s, replay_capacity=replay_capacity)


# Property


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=512),
    api_key=st.from_regex(r"sk_[A-Za-z0-9_-]{1,40}", fullmatch=True),
    secret=st.text(min_size=1, max_size=80),
    offset_s=st.integers(min_value=-30, max_value=30),
    jitter_s=st.floats(min_value=-0.5, max_value=0.5),
)
def test_first_verify_succeeds_and_second_is_a_replay(
    body: bytes, api_key: str, secret: str, offset_s: int, jitter_s: float
) -> None:
    now_s = NOW_S + jitter_s
    timestamp = NOW_S + offset_s
    if abs(now_s - timestamp) > 30:
        timestamp -= 1 if offset_s > 0 else -1
    verifier = SignatureVerifier()
    headers = partner_headers(body, timestamp, api_key=api_key, secret=secret)
    verify(verifier, headers, body, now_s=now_s, secret=secret)
    assert rejected(verifier, headers, body, now_s=now_s, secret=secret) == REPLAYED
    assert verifier.remembered == 1
