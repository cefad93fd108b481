"""User credentials: email addresses, passwords, TOTP second factors, user tokens, login throttling.

This is the pure core behind `POST /users/register`, `/users/login`, `/users/2fa/setup` and
`/users/2fa/confirm` (seeds 000 and 001). Nothing here does I/O, reads a clock or touches a
database: the time comes in as `now_s` (seconds since the Unix epoch, as a float), and the
caller stores what must survive (password hashes, TOTP secrets, the last accepted TOTP step).

- `normalize_email`: strict, practical validation without DNS; the whole address is
  lowercased, so that `Alice@Example.com` and `alice@example.com` are one account.
- `password_problems`, `hash_password`, `verify_password`, `needs_rehash`: a strength policy
  that explains itself, and argon2id storage.
- `new_totp_secret`, `otpauth_uri`, `verify_otp`: RFC 6238 (30 s steps, 6 digits, HMAC-SHA1),
  each code accepted once.
- `UserTokens`: HS256 JWTs for users, one hour by default, the algorithm pinned.
- `LoginThrottle`: failed logins counted per account and per client address.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pyotp
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from strongroom.identity.errors import InvalidEmail, InvalidToken, OtpRejected, Throttled

# --- email addresses ------------------------------------------------------------------------

EMAIL_LENGTH_MAX = 254  # RFC 5321 §4.5.3.1.3: a path is 256 octets including "<" and ">"
EMAIL_LOCAL_LENGTH_MAX = 64  # RFC 5321 §4.5.3.1.1
DOMAIN_LABEL_LENGTH_MAX = 63  # RFC 1035 §2.3.4

# RFC 5322 dot-atom: atext runs separated by single dots. Quoted local parts ("a b"@x) and
# domain literals (x@[192.0.2.1]) are legal but rarely deliverable, so they are refused.
_LOCAL_CHARACTERS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def normalize_email(text: str) -> str:
    """The address in its one stored spelling (all lower case), or `InvalidEmail(reason)`.

    Accepted: `local@domain` in ASCII (international domains in their `xn--` form), the
    local part a dot-atom of at most 64 characters, the domain at least two labels of 1 to 63
    letters, digits and inner hyphens with a non-numeric top-level label, 254 characters in
    all. Nothing is trimmed: surrounding spaces are the edge's business, not a new spelling.

    The whole address is lowercased, not only the domain: RFC 5321 lets a server treat
    local parts case-sensitively, but hardly any does, and two accounts that differ only in
    case would invite confusion and impersonation.
    """
    if not text:
        raise InvalidEmail("is empty")
    if len(text) > EMAIL_LENGTH_MAX:
        raise InvalidEmail(f"is longer than {EMAIL_LENGTH_MAX} characters")
    if not text.isascii():
        raise InvalidEmail("must be ASCII (write an international domain in its xn-- form)")
    if any(character.isspace() or not character.isprintable() for character in text):
        raise InvalidEmail("must not contain spaces or control characters")
    if text.count("@") != 1:
        raise InvalidEmail("must contain exactly one @")
    local, domain = text.lower().split("@")
    _check_local_part(local)
    _check_domain(domain)
    return f"{local}@{domain}"


def _check_local_part(local: str) -> None:
    if not local:
        raise InvalidEmail("has nothing before the @")
    if len(local) > EMAIL_LOCAL_LENGTH_MAX:
        raise InvalidEmail(f"has more than {EMAIL_LOCAL_LENGTH_MAX} characters before the @")
    if not _LOCAL_CHARACTERS.fullmatch(local):
        raise InvalidEmail("has a character before the @ that is not allowed")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmail("has a dot at the start or end of the name, or two dots in a row")


def _check_domain(domain: str) -> None:
    if not domain:
        raise InvalidEmail("has nothing after the @")
    labels = domain.split(".")
    if len(labels) < 2:
        raise InvalidEmail("needs a dot in the domain")
    if any(not label for label in labels):
        raise InvalidEmail("has an empty domain label (a dot at the start or end, or two dots)")
    if any(len(label) > DOMAIN_LABEL_LENGTH_MAX for label in labels):
        raise InvalidEmail(f"has a domain label longer than {DOMAIN_LABEL_LENGTH_MAX} characters")
    if not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise InvalidEmail("has a domain label with characters other than letters, digits, inner -")
    top_level = labels[-1]
    if top_level.isdigit():
        raise InvalidEmail("has a numeric top-level domain")
    if len(top_level) < 2:
        raise InvalidEmail("has a one-character top-level domain")


# --- passwords -----------------------------------------------------------------------------

PASSWORD_LENGTH_MIN = 12
PASSWORD_LENGTH_MAX = 128
PASSWORD_CLASSES_MIN = 3
EMAIL_NAME_LENGTH_MIN = 3  # a shorter local part ("al") is too common a substring to refuse

# The most common passwords that are long enough to pass the length rule; they are compared
# case-insensitively, so "Qwerty123456" is caught by "qwerty123456". Breach corpora (e.g.
# the NCSC and SecLists top lists) are dominated by these shapes: a word or keyboard walk,
# then digits, then perhaps a symbol.
_COMMON_PASSWORDS = frozenset(
    (
        "password1234",
        "password12345",
        "password123!",
        "password123!!",
        "password2023",
        "password2024",
        "password2025",
        "passw0rd1234",
        "passw0rd123!",
        "p@ssw0rd1234",
        "p@ssw0rd123!",
        "p@ssword1234",
        "p@ssword123!",
        "qwerty123456",
        "qwerty123456!",
        "qwerty123!@#",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiop!@",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "1qaz@wsx3edc",
        "!qaz2wsx3edc",
        "zaq12wsx3edc",
        "abc123456789",
        "abcd12345678",
        "abcdefgh1234",
        "123456789abc",
        "123456abcdef",
        "iloveyou1234",
        "iloveyou123!",
        "welcome12345",
        "welcome123!!",
        "welcome@1234",
        "letmein12345",
        "letmein123!!",
        "admin1234567",
        "admin123456!",
        "administrator1",
        "changeme1234",
        "changeme123!",
        "football1234",
        "baseball1234",
        "monkey123456",
        "dragon123456",
        "sunshine1234",
        "princess1234",
        "superman1234",
        "starwars1234",
        "whatever1234",
        "summer2024!!",
        "winter2024!!",
    )
)

_HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)  # argon2id, 64 MiB, t=3


def _normalized_password(password: str) -> str:
    # NIST SP 800-63B §5.1.1.2: normalize so that one password typed on two keyboards (or
    # composed or decomposed accents) is one password.
    return unicodedata.normalize("NFKC", password)


def password_problems(password: str, email: str) -> list[str]:
    """Why `password` is not acceptable for the account `email`, in words; empty when it is.

    Counted after NFKC normalization (as stored). Each reason completes "The password ...".
    `email` need not be valid: its part before the last @ is what a password must not contain.
    """
    normalized = _normalized_password(password)
    if len(normalized) > PASSWORD_LENGTH_MAX:
        # The one thing to fix; and the other rules need not run over a megabyte.
        return [f"must be at most {PASSWORD_LENGTH_MAX} characters long"]
    problems: list[str] = []
    if len(normalized) < PASSWORD_LENGTH_MIN:
        problems.append(f"must be at least {PASSWORD_LENGTH_MIN} characters long")
    if _character_classes(normalized) < PASSWORD_CLASSES_MIN:
        problems.append(
            f"must mix at least {PASSWORD_CLASSES_MIN} of: lowercase letters, uppercase letters,"
            " digits, other characters"
        )
    folded = normalized.casefold()
    email_name = email.rpartition("@")[0] if "@" in email else email
    email_name = _normalized_password(email_name).casefold()
    if len(email_name) >= EMAIL_NAME_LENGTH_MIN and email_name in folded:
        problems.append("must not contain the name part of the email address")
    if folded in _COMMON_PASSWORDS:
        problems.append("is one of the most common passwords")
    if normalized and len(set(normalized)) == 1:
        problems.append("must not be a single repeated character")
    return problems


def _character_classes(password: str) -> int:
    lower = upper = digit = other = False
    for character in password:
        if character.islower():
            lower = True
        elif character.isupper():
            upper = True
        elif character.isdecimal():
            digit = True
        else:
            other = True
    return lower + upper + digit + other


def hash_password(password: str) -> str:
    """The argon2id hash to store (PHC string with salt and parameters).

    It does not judge strength (call `password_problems` first); it refuses only what is
    longer than `PASSWORD_LENGTH_MAX`, with `ValueError`.
    """
    normalized = _normalized_password(password)
    if len(normalized) > PASSWORD_LENGTH_MAX:
        raise ValueError(f"a password has at most {PASSWORD_LENGTH_MAX} characters")
    return _HASHER.hash(normalized)


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from; a damaged `stored` never matches.

    To keep "no such account" as slow as "wrong password", a caller with no account to check
    should still verify against some hash made with `hash_password`.
    """
    normalized = _normalized_password(password)
    if len(normalized) > PASSWORD_LENGTH_MAX:
        return False  # could never have been hashed
    try:
        return _HASHER.verify(stored, normalized)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether `stored` was made with other parameters than today's (or is not argon2 at all).

    After a successful `verify_password`, the caller replaces such a hash with a new one.
    """
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


# --- TOTP (RFC 6238) -----------------------------------------------------------------------

OTP_STEP_S = 30
OTP_DIGITS = 6
OTP_DRIFT_STEPS = 1  # a code from one step before or after is accepted: clocks drift
TOTP_SECRET_LENGTH = 32  # base32 characters: 160 bits, RFC 4226's recommended key size
TOTP_SECRET_LENGTH_MAX = 128
OTP_ISSUER_DEFAULT = "strongroom"

_OTP_PATTERN = re.compile(rf"[0-9]{{{OTP_DIGITS}}}")
_SECRET_PATTERN = re.compile(rf"[A-Z2-7]{{{TOTP_SECRET_LENGTH},{TOTP_SECRET_LENGTH_MAX}}}")


def new_totp_secret() -> str:
    """A fresh random TOTP secret: 32 base32 characters (160 bits) from the system's CSPRNG."""
    return pyotp.random_base32(length=TOTP_SECRET_LENGTH)


def _totp(secret: str) -> pyotp.TOTP:
    if not _SECRET_PATTERN.fullmatch(secret):
        raise ValueError(
            f"a TOTP secret is {TOTP_SECRET_LENGTH} to {TOTP_SECRET_LENGTH_MAX} base32 characters"
        )
    return pyotp.TOTP(secret, digits=OTP_DIGITS, interval=OTP_STEP_S)


def otpauth_uri(secret: str, email: str, issuer: str = OTP_ISSUER_DEFAULT) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads (from a QR code).

    Google's Key URI Format forbids a colon in the issuer and in the account name: the label
    is `issuer:account`.
    """
    if not issuer or ":" in issuer or ":" in email or not email:
        raise ValueError("the issuer and the email must be non-empty and contain no colon")
    return _totp(secret).provisioning_uri(name=email, issuer_name=issuer)


def verify_otp(secret: str, otp: str, now_s: float, last_used_step: int | None) -> int:
    """The time step of `otp` if it is valid now and newer than `last_used_step`.

    The caller stores the returned step as the next `last_used_step`: a code (and every code
    before it) is then refused, so an observed code cannot be replayed, not even within its
    30 seconds. Raises `OtpRejected` with reason "malformed" (not exactly 6 ASCII digits),
    "wrong code" (no match within one step either side of `now_s`), or "already used".
    """
    totp = _totp(secret)
    if not _OTP_PATTERN.fullmatch(otp):
        raise OtpRejected("malformed")
    if not (math.isfinite(now_s) and now_s >= 0.0):
        raise ValueError("now_s must be a finite, non-negative number of seconds")
    current_step = int(now_s // OTP_STEP_S)
    offered = otp.encode("ascii")
    matched: list[int] = []
    # Every candidate is computed and compared, so the time taken does not tell which matched.
    for step in range(current_step - OTP_DRIFT_STEPS, current_step + OTP_DRIFT_STEPS + 1):
        if step >= 0 and hmac.compare_digest(totp.generate_otp(step).encode("ascii"), offered):
            matched.append(step)
    if not matched:
        raise OtpRejected("wrong code")
    fresh = [step for step in matched if last_used_step is None or step > last_used_step]
    if not fresh:
        raise OtpRejected("already used")
    return max(fresh)


# --- user tokens (JWT) ---------------------------------------------------------------------

TOKEN_ALGORITHM = "HS256"
TOKEN_TYPE = "user"
TOKEN_LIFETIME_S_DEFAULT = 3600
TOKEN_ISSUER_DEFAULT = "strongroom"
TOKEN_KEY_SIZE_MIN = 32  # RFC 7518 §3.2: an HS256 key is at least as long as the hash
TOKEN_LENGTH_MAX = 4096
TOKEN_ID_RANDOM_BYTES = 16
# A token issued on another host may carry an `iat` slightly ahead of this host's clock.
TOKEN_CLOCK_SKEW_S = 60.0
IDENTIFIER_LENGTH_MAX = 128

_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "jti", "partner", "typ"]


def _random_token_id() -> str:
    return secrets.token_urlsafe(TOKEN_ID_RANDOM_BYTES)


@dataclass(frozen=True, slots=True)
class UserClaims:
    """What a verified user token says: who, for which partner, until when, which token."""

    uid: str
    partner_id: str
    expires_at_s: int
    token_id: str


class UserTokens:
    """Issues and verifies users' HS256 JWTs; time comes from the caller.

    Claims: `sub` (the user id), `partner`, `iat`, `exp` (whole seconds), `iss`, `jti` (random,
    for revocation lists), `typ` = "user" (so that another kind of token signed with the same
    key is not taken for a user's). Verification pins HS256: `alg: none`, HS512 and the rest
    are refused before any signature check. PyJWT is told not to check times itself (it
    would read the system clock); `verify` checks them against `now_s`.
    """

    __slots__ = ("_key", "_new_token_id", "issuer", "lifetime_s")

    def __init__(
        self,
        key: bytes,
        *,
        issuer: str = TOKEN_ISSUER_DEFAULT,
        lifetime_s: int = TOKEN_LIFETIME_S_DEFAULT,
        new_token_id: Callable[[], str] = _random_token_id,
    ) -> None:
        if len(key) < TOKEN_KEY_SIZE_MIN:
            raise ValueError(f"the token key must have at least {TOKEN_KEY_SIZE_MIN} bytes")
        if not issuer:
            raise ValueError("the issuer must not be empty")
        if lifetime_s < 1:
            raise ValueError("lifetime_s must be at least one second")
        self._key = key
        self._new_token_id = new_token_id
        self.issuer = issuer
        self.lifetime_s = lifetime_s

    def issue(self, uid: str, partner_id: str, now_s: float) -> str:
        """A token for user `uid` of partner `partner_id`, valid for `lifetime_s` from `now_s`."""
        for name, value in (("uid", uid), ("partner_id", partner_id)):
            if not 0 < len(value) <= IDENTIFIER_LENGTH_MAX:
                raise ValueError(f"{name} must have 1 to {IDENTIFIER_LENGTH_MAX} characters")
        if not (math.isfinite(now_s) and now_s >= 0.0):
            raise ValueError("now_s must be a finite, non-negative number of seconds")
        issued_at_s = math.floor(now_s)
        payload: dict[str, Any] = {
            "sub": uid,
            "partner": partner_id,
            "iat": issued_at_s,
            "exp": issued_at_s + self.lifetime_s,
            "iss": self.issuer,
            "jti": self._new_token_id(),
            "typ": TOKEN_TYPE,
        }
        return jwt.encode(payload, self._key, algorithm=TOKEN_ALGORITHM)

    def verify(self, token: str, now_s: float) -> UserClaims:
        """The claims of a token this issuer signed that is valid at `now_s`, or `InvalidToken`.

        Reasons: "too long", "malformed", "algorithm not allowed", "bad signature",
        "missing claim <name>", "malformed claim <name>", "wrong issuer", "wrong type",
        "lifetime too long", "not yet valid", "expired" (at `exp` exactly and after).
        """
        if len(token) > TOKEN_LENGTH_MAX:
            raise InvalidToken("too long")
        payload = self._decode(token)
        if payload["typ"] != TOKEN_TYPE:
            raise InvalidToken("wrong type")
        uid = _text_claim(payload, "sub")
        partner_id = _text_claim(payload, "partner")
        token_id = _text_claim(payload, "jti")
        issued_at_s = _time_claim(payload, "iat")
        expires_at_s = _time_claim(payload, "exp")
        if expires_at_s <= issued_at_s:
            raise InvalidToken("malformed claim exp")
        # Lowering `lifetime_s` then also shortens the tokens already out there.
        if expires_at_s - issued_at_s > self.lifetime_s:
            raise InvalidToken("lifetime too long")
        if issued_at_s > now_s + TOKEN_CLOCK_SKEW_S:
            raise InvalidToken("not yet valid")
        if now_s >= expires_at_s:
            raise InvalidToken("expired")
        return UserClaims(
            uid=uid, partner_id=partner_id, expires_at_s=expires_at_s, token_id=token_id
        )

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._key,
                algorithms=[TOKEN_ALGORITHM],
                issuer=self.issuer,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("algorithm not allowed") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"missing claim {error.claim}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None


def _text_claim(payload: dict[str, Any], name: str) -> str:
    value = payload[name]
    if not isinstance(value, str) or not 0 < len(value) <= IDENTIFIER_LENGTH_MAX:
        raise InvalidToken(f"malformed claim {name}")
    return value


def _time_claim(payload: dict[str, Any], name: str) -> int:
    value = payload[name]
    # `bool` is an `int` in Python and JSON floats are not what `issue` writes.
    if type(value) is not int:
        raise InvalidToken(f"malformed claim {name}")
    return value


# --- login throttling ----------------------------------------------------------------------

ACCOUNT_FAILURES_MAX_DEFAULT = 5
ADDRESS_FAILURES_MAX_DEFAULT = 20
THROTTLE_WINDOW_S_DEFAULT = 15 * 60.0
THROTTLE_KEYS_MAX_DEFAULT = 100_000


class _FailureCounter:
    """Failure times per key in a sliding window, for one kind of key (accounts or addresses).

    Only the newest `failures_max` times of a key matter (the key is blocked while all of
    them are inside the window), so that is all a key keeps. Keys are ordered by their last
    failure, which makes both pruning (from the front, while expired) and eviction (of the
    least recently failing key) O(1).
    """

    __slots__ = ("_failures", "failures_max", "keys_max", "window_s")

    def __init__(self, failures_max: int, window_s: float, keys_max: int) -> None:
        self.failures_max = failures_max
        self.window_s = window_s
        self.keys_max = keys_max
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after_s(self, key: str, now_s: float) -> float | None:
        failures = self._failures.get(key)
        if failures is None or len(failures) < self.failures_max:
            return None
        wait_s = failures[0] + self.window_s - now_s
        return wait_s if wait_s > 0.0 else None

    def record(self, key: str, now_s: float) -> None:
        self._prune(now_s)
        failures = self._failures.pop(key, None)
        if failures is None:
            failures = deque(maxlen=self.failures_max)
        failures.append(now_s)
        self._failures[key] = failures
        while len(self._failures) > self.keys_max:
            self._failures.popitem(last=False)

    def clear(self, key: str, now_s: float) -> None:
        self._failures.pop(key, None)
        self._prune(now_s)

    def _prune(self, now_s: float) -> None:
        while self._failures:
            key, failures = next(iter(self._failures.items()))
            if now_s < failures[-1] + self.window_s:
                return
            del self._failures[key]


class LoginThrottle:
    """Refuses logins after too many failures, per account and per client address.

    Defaults: 5 failures per account and 20 per address within any 15 minutes. A login is
    refused while either count has reached its maximum; `retry_after_s` says for how long
    (the edge answers 429 with a Retry-After of that, rounded up). A success clears the
    account's failures but not the address's: an attacker who owns one account must not be
    able to reset the address counter that limits guessing at others.

    Memory is bounded: at most `keys_max` accounts and `keys_max` addresses are tracked,
    expired keys are dropped as new failures arrive, and when full the key whose last failure
    is oldest is forgotten. Time comes from the caller and never runs backwards here: a
    `now_s` earlier than one already seen is taken as that one.
    """

    __slots__ = ("_accounts", "_addresses", "_latest_now_s")

    def __init__(
        self,
        *,
        account_failures_max: int = ACCOUNT_FAILURES_MAX_DEFAULT,
        address_failures_max: int = ADDRESS_FAILURES_MAX_DEFAULT,
        window_s: float = THROTTLE_WINDOW_S_DEFAULT,
        keys_max: int = THROTTLE_KEYS_MAX_DEFAULT,
    ) -> None:
        if account_failures_max < 1 or address_failures_max < 1:
            raise ValueError("the failure maxima must be at least 1")
        if not (math.isfinite(window_s) and window_s > 0.0):
            raise ValueError("window_s must be a positive number of seconds")
        if keys_max < 1:
            raise ValueError("keys_max must be at least 1")
        self._accounts = _FailureCounter(account_failures_max, window_s, keys_max)
        self._addresses = _FailureCounter(address_failures_max, window_s, keys_max)
        self._latest_now_s = -math.inf

    @property
    def tracked_accounts(self) -> int:
        return len(self._accounts)

    @property
    def tracked_addresses(self) -> int:
        return len(self._addresses)

    def retry_after_s(self, account: str, address: str, now_s: float) -> float | None:
        """None if a login for `account` from `address` may be tried now, else seconds to wait."""
        now_s = self._advance(now_s)
        waits = [
            wait_s
            for wait_s in (
                self._accounts.retry_after_s(account, now_s),
                self._addresses.retry_after_s(address, now_s),
            )
            if wait_s is not None
        ]
        return max(waits) if waits else None

    def check(self, account: str, address: str, now_s: float) -> None:
        """`retry_after_s`, raising `Throttled(retry_after_s)` when the login must wait."""
        wait_s = self.retry_after_s(account, address, now_s)
        if wait_s is not None:
            raise Throttled(wait_s)

    def failed(self, account: str, address: str, now_s: float) -> None:
        """A failed login (wrong password or OTP) for `account` from `address`."""
        now_s = self._advance(now_s)
        self._accounts.record(account, now_s)
        self._addresses.record(address, now_s)

    def succeeded(self, account: str, now_s: float) -> None:
        """A successful login: the account's failures are forgotten."""
        self._accounts.clear(account, self._advance(now_s))

    def _advance(self, now_s: float) -> float:
        if math.isnan(now_s):
            raise ValueError("now_s must be a number of seconds")
        self._latest_now_s = max(self._latest_now_s, now_s)
        return self._latest_now_s
