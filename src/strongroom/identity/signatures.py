"""API key request signatures (SPEC §5, seed 003 "APIKEY authentication with signature").

A partner sends four headers on every signed request:

- `APIKEY`: the public key id, `sk_` followed by 24 URL-safe characters (`new_api_key`);
- `TIMESTAMP`: whole seconds since the Unix epoch, as decimal digits. Seed 003's reference
  client is PHP `$timestamp = time(); // Basic epoch timestamp`, which is seconds, so only
  seconds are accepted; a value above 10^11 (year 5138 in seconds, 1973 in milliseconds) is
  refused with a reason that says milliseconds were sent;
- `CONTENT`: the MD5 hex digest of the raw body, also for an empty body (a GET): seed 003,
  `$content = md5(""); // The content should always be an MD5 hash even when empty`;
- `SIGNATURE`: hex HMAC-SHA512 with key = the secret string's UTF-8 bytes over
  `APIKEY + TIMESTAMP + CONTENT`, the header values exactly as sent.

The secret is never stored. Like the MTF secrets (`strongroom.wire.credentials`), it is
derived: `HMAC-SHA256(server key, len(api key) ‖ api key ‖ salt)` in hex, with a random
salt per key kept in the database and the server key kept outside it. The server needs the
secret itself to check an HMAC, so a one-way hash will not do; derivation means that a copy
of the database alone yields no usable secret.

Hex is compared case-insensitively (SIGNATURE and CONTENT): base16 has two spellings (RFC
4648 writes it upper case, PHP and Python write it lower case) and both denote the same
bytes. Case gives an eavesdropper nothing: the signature is checked against the exact
header strings, and replays are recognised by the signature's bytes, not its spelling.

Everything here is pure: no I/O, and the time comes from the caller (`now_s`).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets

from strongroom.identity.errors import SignatureRejected

API_KEY_PREFIX = "sk_"
API_KEY_RANDOM_BYTES = 18  # 24 URL-safe base64 characters, 144 bits
SALT_SIZE = 16
SERVER_KEY_SIZE_MIN = 16
API_KEY_LENGTH_MAX = 128
TIMESTAMP_DIGITS_MAX = 20
# Seconds since the epoch stay below this until the year 5138; milliseconds passed it in 1973.
TIMESTAMP_MILLISECONDS_THRESHOLD = 10**11
CONTENT_HEX_LENGTH = 32  # MD5
SIGNATURE_HEX_LENGTH = 128  # SHA-512
WINDOW_S_DEFAULT = 30.0
REPLAY_CAPACITY_DEFAULT = 100_000

REPLAYED = "replayed"
REPLAY_CACHE_FULL = "replay cache full; retry"

_API_KEY_PATTERN = re.compile(rf"[\x21-\x7e]{{1,{API_KEY_LENGTH_MAX}}}")
_TIMESTAMP_PATTERN = re.compile(rf"[0-9]{{1,{TIMESTAMP_DIGITS_MAX}}}")
_CONTENT_PATTERN = re.compile(rf"[0-9a-fA-F]{{{CONTENT_HEX_LENGTH}}}")
_SIGNATURE_PATTERN = re.compile(rf"[0-9a-fA-F]{{{SIGNATURE_HEX_LENGTH}}}")


def new_api_key() -> tuple[str, bytes]:
    """A fresh public key id (`sk_` + 24 URL-safe characters) and a random 16-byte salt."""
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_RANDOM_BYTES), secrets.token_bytes(
        SALT_SIZE
    )


def derive_secret(server_key: bytes, api_key: str, salt: bytes) -> str:
    """The key's secret, hex HMAC-SHA256: shown to the partner once, re-derived on each request.

    The key id is length-prefixed so that no two (key id, salt) pairs share a message.
    """
    if len(server_key) < SERVER_KEY_SIZE_MIN:
        raise ValueError(f"the server key must have at least {SERVER_KEY_SIZE_MIN} bytes")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"the salt must have {SALT_SIZE} bytes")
    encoded = api_key.encode("utf-8")
    if not 0 < len(encoded) <= API_KEY_LENGTH_MAX:
        raise ValueError(f"an API key id has 1 to {API_KEY_LENGTH_MAX} bytes")
    message = len(encoded).to_bytes(2, "big") + encoded + salt
    return hmac.new(server_key, message, hashlib.sha256).hexdigest()


def content_digest(body: bytes) -> str:
    """MD5 hex of the body, the `CONTENT` header (for an empty body too, as seed 003 says)."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def signature(secret: str, api_key: str, timestamp: str, content: str) -> str:
    """Hex HMAC-SHA512(key = secret's UTF-8 bytes, message = APIKEY + TIMESTAMP + CONTENT)."""
    message = (api_key + timestamp + content).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha512).hexdigest()


# `SignatureVerifier.verify` has a keyword argument named `signature`, which hides this name.
_signature_of = signature


class SignatureVerifier:
    """Checks signed requests and refuses replays; one instance per process, one thread.

    A signature is remembered only after it has been accepted in full, so requests that fail
    authentication can neither fill nor probe the memory. It is remembered while its
    timestamp is inside the window: after that the request is refused as stale anyway.

    The memory never holds more than `replay_capacity` signatures. When it is full and none
    can be forgotten yet, a new request is refused with "replay cache full; retry" rather
    than accepted: accepting it unremembered, or evicting a signature still inside the
    window, would let that request be replayed. The refusal is temporary (every entry ages
    out within `window_s`), and the edges' rate limits keep honest traffic far below it.

    `now_s` comes from the caller and may step backwards (clock adjustment). Signatures
    older than the newest `now_s - window_s` may already have been forgotten, so they are
    refused as stale even when the current `now_s` would admit them.
    """

    __slots__ = ("_expiries", "_latest_now_s", "_remembered", "replay_capacity", "window_s")

    def __init__(
        self,
        *,
        window_s: float = WINDOW_S_DEFAULT,
        replay_capacity: int = REPLAY_CAPACITY_DEFAULT,
    ) -> None:
        if not window_s >= 0.0:
            raise ValueError("window_s must be a non-negative number of seconds")
        if replay_capacity < 1:
            raise ValueError("replay_capacity must be at least 1")
        self.window_s = window_s
        self.replay_capacity = replay_capacity
        self._remembered: set[bytes] = set()
        # (timestamp in seconds, signature bytes): the oldest timestamp is forgotten first.
        self._expiries: list[tuple[int, bytes]] = []
        self._latest_now_s = float("-inf")

    @property
    def remembered(self) -> int:
        """How many accepted signatures are held for replay detection."""
        return len(self._remembered)

    def verify(
        self,
        *,
        api_key: str,
        secret: str,
        timestamp: str,
        content: str,
        signature: str,
        body: bytes,
        now_s: float,
    ) -> None:
        """Accept the request (and remember its signature) or raise `SignatureRejected`.

        The header values are passed as received; an absent header is passed as "".
        The window is inclusive: a timestamp exactly `window_s` away is accepted.
        """
        self._forget_until(now_s)
        _require_well_formed(api_key, timestamp, content, signature)
        seconds = int(timestamp)
        if seconds > TIMESTAMP_MILLISECONDS_THRESHOLD:
            raise SignatureRejected(
                "TIMESTAMP looks like milliseconds; send whole seconds since the epoch"
            )
        oldest_s = self._latest_now_s - self.window_s
        if seconds < oldest_s:
            raise SignatureRejected(
                f"TIMESTAMP is {_seconds(self._latest_now_s - seconds)} s in the past;"
                f" at most {_seconds(self.window_s)} s is accepted"
            )
        if seconds > now_s + self.window_s:
            raise SignatureRejected(
                f"TIMESTAMP is {_seconds(seconds - now_s)} s in the future;"
                f" at most {_seconds(self.window_s)} s is accepted"
            )
        if not hmac.compare_digest(content.lower(), content_digest(body)):
            raise SignatureRejected("CONTENT is not the MD5 hex digest of the body")
        expected = bytes.fromhex(_signature_of(secret, api_key, timestamp, content))
        received = bytes.fromhex(signature)
        if not hmac.compare_digest(received, expected):
            raise SignatureRejected("SIGNATURE does not match")
        if received in self._remembered:
            raise SignatureRejected(REPLAYED)
        if len(self._remembered) >= self.replay_capacity:
            raise SignatureRejected(REPLAY_CACHE_FULL)
        self._remembered.add(received)
        heapq.heappush(self._expiries, (seconds, received))

    def _forget_until(self, now_s: float) -> None:
        """Forget the signatures whose timestamps have left the window for good."""
        self._latest_now_s = max(self._latest_now_s, now_s)
        oldest_s = self._latest_now_s - self.window_s
        while self._expiries and self._expiries[0][0] < oldest_s:
            _, forgotten = heapq.heappop(self._expiries)
            self._remembered.discard(forgotten)


def _seconds(duration_s: float) -> str:
    """A duration for a reason: to the millisecond, without trailing zeros."""
    return f"{duration_s:.3f}".rstrip("0").rstrip(".")


def _require_well_formed(api_key: str, timestamp: str, content: str, signature: str) -> None:
    for header, value in (
        ("APIKEY", api_key),
        ("TIMESTAMP", timestamp),
        ("CONTENT", content),
        ("SIGNATURE", signature),
    ):
        if not value:
            raise SignatureRejected(f"{header} header is missing")
    if not _API_KEY_PATTERN.fullmatch(api_key):
        raise SignatureRejected(
            f"APIKEY must be 1 to {API_KEY_LENGTH_MAX} printable ASCII characters"
        )
    if not _TIMESTAMP_PATTERN.fullmatch(timestamp):
        raise SignatureRejected("TIMESTAMP is not an integer number of seconds since the epoch")
    if not _CONTENT_PATTERN.fullmatch(content):
        raise SignatureRejected(f"CONTENT is not {CONTENT_HEX_LENGTH} hex digits (MD5)")
    if not _SIGNATURE_PATTERN.fullmatch(signature):
        raise SignatureRejected(f"SIGNATURE is not {SIGNATURE_HEX_LENGTH} hex digits (HMAC-SHA512)")
