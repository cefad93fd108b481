"""User credentials: emails, passwords, TOTP, user tokens and the login throttle, all pure."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import argon2
import jwt
import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import StrongroomError
from strongroom.identity.credentials import (
    EMAIL_LENGTH_MAX,
    TOKEN_CLOCK_SKEW_S,
    LoginThrottle,
    UserClaims,
    UserTokens,
    hash_password,
    needs_rehash,
    new_totp_secret,
    normalize_email,
    otpauth_uri,
    password_problems,
    verify_otp,
    verify_password,
)
from strongroom.identity.errors import (
    IdentityError,
    InvalidEmail,
    InvalidToken,
    OtpRejected,
    Throttled,
    WeakPassword,
)

# --- email addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),
        ("alice.b.smith+tag@mail.example.co.uk", "alice.b.smith+tag@mail.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("a_b-c!#$%&*/=?^`{|}~@example.org", "a_b-c!#$%&*/=?^`{|}~@example.org"),
        ("x@a-b.io", "x@a-b.io"),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
        ("user@123.example.com", "user@123.example.com"),
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
        ("a@" + "b" * 63 + ".com", "a@" + "b" * 63 + ".com"),
        # 64 + 1 + 189: exactly 254 characters
        ("A" * 64 + "@" + ".".join(["B" * 61] * 3) + ".COM", None),
    ],
)
def test_valid_emails_are_lowercased(text: str, normalized: str | None) -> None:
    assert normalize_email(text) == (normalized or text.lower())


def test_the_longest_accepted_address_is_254_characters() -> None:
    address = "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".com"
    assert len(address) == EMAIL_LENGTH_MAX
    assert normalize_email(address) == address
    with pytest.raises(InvalidEmail, match="longer than 254"):
        normalize_email("a" + address)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        ("alice", "exactly one @"),
        ("alice@@example.com", "exactly one @"),
        ("a@b@example.com", "exactly one @"),
        ("@example.com", "nothing before the @"),
        ("alice@", "nothing after the @"),
        ("alice @example.com", "spaces"),
        (" alice@example.com", "spaces"),
        ("alice@example.com ", "spaces"),
        ("alice@example.com\n", "spaces"),
        ("alice\t@example.com", "spaces"),
        ("alice\x00@example.com", "control"),
        ("alice@exämple.com", "ASCII"),
        ("jösé@example.com", "ASCII"),
        ("a" * 65 + "@example.com", "more than 64"),
        ('"alice"@example.com', "not allowed"),
        ("alice(comment)@example.com", "not allowed"),
        ("ali,ce@example.com", "not allowed"),
        (".alice@example.com", "dot"),
        ("alice.@example.com", "dot"),
        ("al..ice@example.com", "dot"),
        ("alice@localhost", "needs a dot"),
        ("alice@example..com", "empty domain label"),
        ("alice@.example.com", "empty domain label"),
        ("alice@example.com.", "empty domain label"),
        ("alice@-example.com", "inner -"),
        ("alice@example-.com", "inner -"),
        ("alice@exa_mple.com", "inner -"),
        ("alice@[192.0.2.1]", "inner -"),
        ("alice@" + "b" * 64 + ".com", "longer than 63"),
        ("alice@192.0.2.1", "numeric top-level"),
        ("alice@example.c", "one-character top-level"),
        ("a" * 250 + "@example.com", "longer than 254"),
    ],
)
def test_invalid_emails_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidEmail, match=reason) as raised:
        normalize_email(text)
    assert reason in raised.value.reason
    assert isinstance(raised.value, IdentityError)
    assert isinstance(raised.value, StrongroomError)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.emails()))
def test_normalize_email_accepts_or_explains_and_is_idempotent(text: str) -> None:
    try:
        normalized = normalize_email(text)
    except InvalidEmail as error:
        assert error.reason
        return
    assert normalized == text.lower()
    assert len(normalized) <= EMAIL_LENGTH_MAX
    assert normalize_email(normalized) == normalized


# --- passwords -----------------------------------------------------------------------------

EMAIL = "alice.smith@example.com"
LENGTH_MIN = "must be at least 12 characters long"
LENGTH_MAX = "must be at most 128 characters long"
CLASSES = "must mix at least 3 of: lowercase letters, uppercase letters, digits, other characters"
EMAIL_NAME = "must not contain the name part of the email address"
COMMON = "is one of the most common passwords"
REPEATED = "must not be a single repeated character"


@pytest.mark.parametrize(
    ("password", "problems"),
    [
        ("correct-Horse-7-battery", []),
        ("Tr0ub4dor&3xyz", []),
        ("ünïcödé-PASS-42", []),
        ("abcDEF123456", []),
        ("abcDEF!@#$%^", []),
        ("ABC123!@#$%^", []),
        ("Sh0rt!", [LENGTH_MIN]),
        ("", [LENGTH_MIN, CLASSES]),
        ("alllowercaseletters", [CLASSES]),
        ("lowercase123456", [CLASSES]),
        ("UPPER-CASE-ONLY", [CLASSES]),
        ("aaaaaaaaaaaaaaaa", [CLASSES, REPEATED]),
        ("aaa", [LENGTH_MIN, CLASSES, REPEATED]),
        ("Xx1!" * 32, []),
        ("Xx1!" * 32 + "y", [LENGTH_MAX]),
        ("x" * 1_000_000, [LENGTH_MAX]),
        ("My-Alice.Smith-2024", [EMAIL_NAME]),
        ("my-ALICE.SMITH-2024", [EMAIL_NAME]),
        ("password123!", [COMMON]),
        ("Password123!", [COMMON]),
        ("Qwerty123456", [COMMON]),
        ("QWERTY123456", [CLASSES, COMMON]),
        ("P@ssw0rd1234", [COMMON]),
        ("qwerty123456", [CLASSES, COMMON]),
    ],
)
def test_password_problems(password: str, problems: list[str]) -> None:
    assert password_problems(password, EMAIL) == problems


@pytest.mark.parametrize(
    ("password", "email", "contains_name"),
    [
        ("Bob-is-my-Name-42", "bob@example.com", True),
        ("Al-is-my-Name-42", "al@example.com", False),  # under 3 characters: not checked
        ("Weird-ab-Name-42", "a@b@example.com", False),  # the name is "a@b", 3 characters
        ("Weird-A@B-Name-42", "a@b@example.com", True),
        ("Carol-Password-7", "not an email carol", False),
        ("xNOT AN EMAIL CAROLx1", "not an email carol", True),
    ],
)
def test_password_must_not_contain_the_email_name(
    password: str, email: str, contains_name: bool
) -> None:
    assert (EMAIL_NAME in password_problems(password, email)) is contains_name


def test_weak_password_error_carries_the_reasons() -> None:
    error = WeakPassword(password_problems("aaa", EMAIL))
    assert error.reasons == (LENGTH_MIN, CLASSES, REPEATED)
    assert isinstance(error, IdentityError)


def test_hash_and_verify_round_trip() -> None:
    stored = hash_password("correct-Horse-7-battery")
    assert stored.startswith("$argon2id$")
    assert verify_password("correct-Horse-7-battery", stored)
    assert not verify_password("correct-Horse-7-batterY", stored)
    assert not verify_password("", stored)
    assert not needs_rehash(stored)
    # Salted: the same password never hashes the same way twice.
    assert hash_password("correct-Horse-7-battery") != stored


def test_passwords_are_compared_after_unicode_normalization() -> None:
    composed, decomposed = "Caf\u00e9-Latte-2024", "Cafe\u0301-Latte-2024"
    assert composed != decomposed
    assert verify_password(decomposed, hash_password(composed))


def test_damaged_or_foreign_hashes_never_verify_and_need_rehash() -> None:
    assert not verify_password("anything", "not a hash")
    assert not verify_password("anything", "")
    assert not verify_password("x" * 1000, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
    assert needs_rehash("not a hash")
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    old = weaker.hash("correct-Horse-7-battery")
    assert verify_password("correct-Horse-7-battery", old)
    assert needs_rehash(old)


def test_overlong_passwords_are_not_hashed() -> None:
    with pytest.raises(ValueError, match="at most 128"):
        hash_password("x" * 129)


# --- TOTP ----------------------------------------------------------------------------------

# RFC 6238 appendix B: the ASCII key "12345678901234567890", here in base32 (32 characters).
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW_S = 1_700_000_015.5
STEP = int(NOW_S // 30)


@pytest.mark.parametrize(
    ("time_s", "code"),
    # The 8-digit values of RFC 6238's SHA-1 table, cut to the last 6 digits.
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_rfc_6238_vectors(time_s: int, code: str) -> None:
    assert verify_otp(RFC_SECRET, code, time_s, None) == time_s // 30


def code_at(time_s: float) -> str:
    return pyotp.TOTP(SECRET).at(time_s)


@pytest.mark.parametrize("offset_s", [-30, 0, 30])
def test_a_code_within_one_step_is_accepted_once(offset_s: int) -> None:
    code = code_at(NOW_S + offset_s)
    step = verify_otp(SECRET, code, NOW_S, None)
    assert step == STEP + offset_s // 30
    with pytest.raises(OtpRejected, match="already used"):
        verify_otp(SECRET, code, NOW_S, step)
    # ...and still refused a step later, when it is the previous step's code.
    with pytest.raises(OtpRejected):
        verify_otp(SECRET, code, NOW_S + 30, step)


def test_an_older_code_after_a_newer_one_is_refused() -> None:
    newer = verify_otp(SECRET, code_at(NOW_S + 30), NOW_S, None)
    with pytest.raises(OtpRejected, match="already used"):
        verify_otp(SECRET, code_at(NOW_S), NOW_S, newer)
    with pytest.raises(OtpRejected, match="already used"):
        verify_otp(SECRET, code_at(NOW_S - 30), NOW_S, newer)
    # The next step's code, once its time has come, is fine.
    assert verify_otp(SECRET, code_at(NOW_S + 60), NOW_S + 60, newer) == STEP + 2


@pytest.mark.parametrize("offset_s", [-90, -60, 60, 90, 3600])
def test_a_code_two_or_more_steps_away_is_refused(offset_s: int) -> None:
    code = code_at(NOW_S + offset_s)
    assert code not in {code_at(NOW_S - 30), code_at(NOW_S), code_at(NOW_S + 30)}
    with pytest.raises(OtpRejected, match="wrong code"):
        verify_otp(SECRET, code, NOW_S, None)


@pytest.mark.parametrize(
    "otp",
    [
        "",
        "12345",
        "1234567",
        "12345a",
        " 123456",
        "123456 ",
        "123456\n",
        "+12345",
        "-12345",
        "12 345",
        "١٢٣٤٥٦",  # Arabic-Indic digits: str.isdigit() says yes
        "１２３４５６",  # fullwidth digits
    ],
)
def test_malformed_codes_are_refused(otp: str) -> None:
    with pytest.raises(OtpRejected, match="malformed"):
        verify_otp(SECRET, otp, NOW_S, None)


def test_a_wrong_code_is_refused() -> None:
    right = code_at(NOW_S)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    if wrong in {code_at(NOW_S - 30), code_at(NOW_S + 30)}:  # pragma: no cover
        wrong = f"{(int(right) + 2) % 1_000_000:06d}"
    with pytest.raises(OtpRejected, match="wrong code") as raised:
        verify_otp(SECRET, wrong, NOW_S, None)
    assert raised.value.reason == "wrong code"


def test_the_first_step_has_no_previous_step() -> None:
    assert verify_otp(SECRET, code_at(5), 5.0, None) == 0
    assert verify_otp(SECRET, code_at(35), 5.0, None) == 1


def test_bad_secrets_and_times_are_programming_errors() -> None:
    for secret in ("", "JBSWY3DP", "jbswy3dpehpk3pxpjbswy3dpehpk3pxp", "1" * 32, "A" * 129):
        with pytest.raises(ValueError, match="base32"):
            verify_otp(secret, "123456", NOW_S, None)
    for now_s in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="now_s"):
            verify_otp(SECRET, "123456", now_s, None)


def test_new_secrets_are_random_base32_of_160_bits() -> None:
    secrets = {new_totp_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32
        assert len(base64.b32decode(secret)) == 20
        step = verify_otp(secret, pyotp.TOTP(secret).at(NOW_S), NOW_S, None)
        assert step == STEP


def test_otpauth_uri_round_trips_through_pyotp() -> None:
    uri = otpauth_uri(SECRET, "alice@example.com")
    assert uri.startswith("otpauth://totp/strongroom:alice%40example.com?")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == SECRET
    assert parsed.issuer == "strongroom"
    assert parsed.name == "alice@example.com"
    assert (parsed.digits, parsed.interval) == (6, 30)
    assert "Acme%20Bank:" in otpauth_uri(SECRET, "alice@example.com", issuer="Acme Bank")
    with pytest.raises(ValueError, match="colon"):
        otpauth_uri(SECRET, "alice@example.com", issuer="a:b")


# --- user tokens ---------------------------------------------------------------------------

KEY = bytes(range(32))
ISSUED_S = 1_700_000_000
REQUIRED = ("exp", "iat", "sub", "iss", "jti", "partner", "typ")


def tokens(**overrides: Any) -> UserTokens:
    return UserTokens(KEY, **overrides)


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: dict[str, Any], algorithm: str = "HS256", key: bytes = KEY) -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def valid_payload() -> dict[str, Any]:
    return claims_of(tokens().issue("user-1", "partner-1", ISSUED_S))


def test_token_round_trip() -> None:
    token = tokens().issue("user-1", "partner-1", ISSUED_S + 0.75)
    claims = tokens().verify(token, ISSUED_S + 10)
    assert claims == UserClaims(
        uid="user-1",
        partner_id="partner-1",
        expires_at_s=ISSUED_S + 3600,
        token_id=claims.token_id,
    )
    payload = claims_of(token)
    assert payload == {
        "sub": "user-1",
        "partner": "partner-1",
        "iat": ISSUED_S,
        "exp": ISSUED_S + 3600,
        "iss": "strongroom",
        "jti": claims.token_id,
        "typ": "user",
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_ids_are_random_unless_injected() -> None:
    issuer = tokens()
    first, second = (issuer.issue("u", "p", ISSUED_S) for _ in range(2))
    assert claims_of(first)["jti"] != claims_of(second)["jti"]
    counter = iter(range(100))
    fixed = tokens(new_token_id=lambda: f"token-{next(counter)}")
    assert fixed.verify(fixed.issue("u", "p", ISSUED_S), ISSUED_S).token_id == "token-0"
    again = tokens(new_token_id=lambda: "token-0")
    assert again.issue("u", "p", ISSUED_S) == tokens(new_token_id=lambda: "token-0").issue(
        "u", "p", ISSUED_S
    )


def test_expiry_is_exactly_at_the_boundary() -> None:
    token = tokens().issue("user-1", "partner-1", ISSUED_S)
    assert tokens().verify(token, ISSUED_S + 3599.999).expires_at_s == ISSUED_S + 3600
    with pytest.raises(InvalidToken, match="expired") as raised:
        tokens().verify(token, ISSUED_S + 3600)
    assert raised.value.reason == "expired"
    short = tokens(lifetime_s=60)
    token = short.issue("user-1", "partner-1", ISSUED_S)
    short.verify(token, ISSUED_S + 59)
    with pytest.raises(InvalidToken, match="expired"):
        short.verify(token, ISSUED_S + 60)


def test_verification_uses_the_given_clock_not_the_system_clock() -> None:
    # By the system clock the first token expired long ago and the second is from the future.
    past = tokens().issue("user-1", "partner-1", 1000)
    assert tokens().verify(past, 1500).expires_at_s == 4600
    future = tokens().issue("user-1", "partner-1", 4_000_000_000)
    assert tokens().verify(future, 4_000_000_010).uid == "user-1"


def test_a_token_from_the_future_is_refused_beyond_the_clock_skew() -> None:
    token = tokens().issue("user-1", "partner-1", ISSUED_S)
    assert tokens().verify(token, ISSUED_S - TOKEN_CLOCK_SKEW_S).uid == "user-1"
    with pytest.raises(InvalidToken, match="not yet valid"):
        tokens().verify(token, ISSUED_S - TOKEN_CLOCK_SKEW_S - 1)


def test_wrong_key_is_a_bad_signature() -> None:
    token = UserTokens(b"\x01" * 32).issue("user-1", "partner-1", ISSUED_S)
    with pytest.raises(InvalidToken, match="bad signature"):
        tokens().verify(token, ISSUED_S)


def test_tampered_payload_is_a_bad_signature() -> None:
    token = tokens().issue("user-1", "partner-1", ISSUED_S)
    header, _, signature = token.split(".")
    payload = claims_of(token) | {"sub": "user-2"}
    tampered = ".".join([header, b64(json.dumps(payload).encode()), signature])
    with pytest.raises(InvalidToken, match="bad signature"):
        tokens().verify(tampered, ISSUED_S)
    # A flipped signature character, or none at all, is refused the same way.
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidToken, match="bad signature"):
        tokens().verify(flipped, ISSUED_S)
    with pytest.raises(InvalidToken, match="bad signature"):
        tokens().verify(f"{header}.{token.split('.')[1]}.", ISSUED_S)


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "", "hs256"])
def test_unsigned_tokens_crafted_by_hand_are_refused(algorithm: str) -> None:
    header = b64(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    body = b64(json.dumps(valid_payload()).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}.{b64(b'anything')}"):
        with pytest.raises(InvalidToken, match="algorithm not allowed"):
            tokens().verify(token, ISSUED_S)


def test_a_header_without_algorithm_is_refused() -> None:
    header = b64(json.dumps({"typ": "JWT"}).encode())
    body = b64(json.dumps(valid_payload()).encode())
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        tokens().verify(f"{header}.{body}.", ISSUED_S)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_same_key_are_refused(algorithm: str) -> None:
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        tokens().verify(signed(valid_payload(), algorithm), ISSUED_S)


@pytest.mark.parametrize("claim", REQUIRED)
def test_missing_claims_are_refused(claim: str) -> None:
    payload = valid_payload()
    del payload[claim]
    with pytest.raises(InvalidToken, match=f"missing claim {claim}") as raised:
        tokens().verify(signed(payload), ISSUED_S)
    assert raised.value.reason == f"missing claim {claim}"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "someone-else"}, "wrong issuer"),
        ({"typ": "partner"}, "wrong type"),
        ({"sub": ""}, "malformed claim sub"),
        ({"sub": 42}, "malformed"),
        ({"partner": ["p"]}, "malformed claim partner"),
        ({"jti": 5}, "malformed"),
        ({"exp": float(ISSUED_S + 3600)}, "malformed claim exp"),
        ({"exp": True}, "malformed claim exp"),
        ({"iat": "yesterday"}, "malformed claim iat"),
        ({"exp": ISSUED_S}, "malformed claim exp"),
        ({"exp": ISSUED_S + 3601}, "lifetime too long"),
        ({"aud": "elsewhere"}, "malformed"),
    ],
)
def test_claims_that_are_wrong_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        tokens().verify(signed(valid_payload() | changes), ISSUED_S)


def test_a_non_text_issuer_is_refused() -> None:
    # PyJWT will not encode such a token, so it is signed by hand.
    body = json.dumps(valid_payload() | {"iss": 7}).encode()
    token = jwt.PyJWS().encode(body, KEY, algorithm="HS256")
    with pytest.raises(InvalidToken, match="wrong issuer"):
        tokens().verify(token, ISSUED_S)


def test_lowering_the_lifetime_shortens_tokens_already_issued() -> None:
    token = tokens(lifetime_s=7200).issue("user-1", "partner-1", ISSUED_S)
    assert tokens(lifetime_s=7200).verify(token, ISSUED_S).uid == "user-1"
    with pytest.raises(InvalidToken, match="lifetime too long"):
        tokens().verify(token, ISSUED_S)


def test_other_issuers_tokens_are_refused() -> None:
    token = tokens(issuer="elsewhere").issue("user-1", "partner-1", ISSUED_S)
    with pytest.raises(InvalidToken, match="wrong issuer"):
        tokens().verify(token, ISSUED_S)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"),
        ("garbage", "malformed"),
        ("a.b.c", "malformed"),
        ("a.b", "malformed"),
        ("....", "malformed"),
        (b64(b"[1]") + "." + b64(b"{}") + ".", "malformed"),
        (b64(b'{"alg": "HS256"}') + "." + b64(b"[1, 2]") + ".x", "malformed"),
        ("é.é.é", "malformed"),
        ("x" * 4097, "too long"),
    ],
)
def test_garbage_is_malformed(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        tokens().verify(token, ISSUED_S)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(st.text(alphabet="ABCxyz019-_=.{}\"'", max_size=40), max_size=4).map(".".join),
    )
)
def test_any_text_is_refused_with_invalid_token_only(token: str) -> None:
    with pytest.raises(InvalidToken):
        tokens().verify(token, ISSUED_S)


def test_token_construction_limits() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        UserTokens(b"short")
    with pytest.raises(ValueError, match="lifetime_s"):
        UserTokens(KEY, lifetime_s=0)
    with pytest.raises(ValueError, match="issuer"):
        UserTokens(KEY, issuer="")
    with pytest.raises(ValueError, match="uid"):
        tokens().issue("", "partner-1", ISSUED_S)
    with pytest.raises(ValueError, match="partner_id"):
        tokens().issue("user-1", "p" * 129, ISSUED_S)
    with pytest.raises(ValueError, match="now_s"):
        tokens().issue("user-1", "partner-1", float("nan"))


# --- login throttle ------------------------------------------------------------------------


def test_throttle_defaults_per_account() -> None:
    throttle = LoginThrottle()
    for attempt in range(5):
        assert throttle.retry_after_s("alice", "192.0.2.1", 1000.0 + attempt) is None
        throttle.failed("alice", "192.0.2.1", 1000.0 + attempt)
    # The oldest of the five failures (at 1000) leaves the 15-minute window at 1900.
    assert throttle.retry_after_s("alice", "192.0.2.1", 1010.0) == 890.0
    assert throttle.retry_after_s("alice", "198.51.100.7", 1010.0) == 890.0  # another address
    assert throttle.retry_after_s("bob", "192.0.2.1", 1010.0) is None  # another account
    with pytest.raises(Throttled) as raised:
        throttle.check("alice", "192.0.2.1", 1010.0)
    assert raised.value.retry_after_s == 890.0
    assert throttle.retry_after_s("alice", "192.0.2.1", 1899.0) == 1.0
    assert throttle.retry_after_s("alice", "192.0.2.1", 1900.0) is None
    throttle.check("alice", "192.0.2.1", 1900.0)


def test_throttle_defaults_per_address() -> None:
    throttle = LoginThrottle()
    for attempt in range(20):
        throttle.failed(f"user-{attempt}", "192.0.2.1", 1000.0)
    assert throttle.retry_after_s("someone-new", "192.0.2.1", 1000.0) == 900.0
    assert throttle.retry_after_s("someone-new", "192.0.2.2", 1000.0) is None


def test_success_clears_the_account_but_not_the_address() -> None:
    throttle = LoginThrottle(account_failures_max=2, address_failures_max=3)
    throttle.failed("alice", "192.0.2.1", 0.0)
    throttle.failed("alice", "192.0.2.1", 1.0)
    assert throttle.retry_after_s("alice", "192.0.2.9", 2.0) is not None
    throttle.succeeded("alice", 2.0)
    assert throttle.retry_after_s("alice", "192.0.2.9", 2.0) is None
    throttle.failed("mallory", "192.0.2.1", 3.0)
    throttle.succeeded("mallory", 4.0)
    assert throttle.retry_after_s("bob", "192.0.2.1", 4.0) == 896.0


def test_a_clock_stepping_back_is_taken_as_the_latest_time() -> None:
    throttle = LoginThrottle(account_failures_max=1)
    throttle.failed("alice", "192.0.2.1", 1000.0)
    assert throttle.retry_after_s("alice", "192.0.2.1", 10.0) == 900.0
    throttle.failed("bob", "192.0.2.1", 10.0)  # recorded at 1000
    assert throttle.retry_after_s("bob", "192.0.2.1", 1899.0) == 1.0


def test_throttle_memory_is_bounded_and_expired_keys_are_pruned() -> None:
    throttle = LoginThrottle(account_failures_max=1, address_failures_max=1, keys_max=10)
    for index in range(1000):
        throttle.failed(f"user-{index}", f"address-{index}", 1000.0 + index / 1000)
        assert throttle.tracked_accounts <= 10
        assert throttle.tracked_addresses <= 10
    assert throttle.tracked_accounts == throttle.tracked_addresses == 10
    # The most recent keys are the ones kept; the oldest were forgotten.
    assert throttle.retry_after_s("user-999", "nowhere", 1001.0) is not None
    assert throttle.retry_after_s("user-0", "nowhere", 1001.0) is None
    # Once the window has passed, the next failure sweeps all expired keys away.
    throttle.failed("late", "late-address", 1001.0 + 900)
    assert throttle.tracked_accounts == throttle.tracked_addresses == 1


def test_throttle_construction_limits() -> None:
    for arguments in (
        {"account_failures_max": 0},
        {"address_failures_max": 0},
        {"window_s": 0.0},
        {"window_s": float("inf")},
        {"keys_max": 0},
    ):
        with pytest.raises(ValueError):
            LoginThrottle(**arguments)
    with pytest.raises(ValueError, match="now_s"):
        LoginThrottle().failed("alice", "192.0.2.1", float("nan"))


@dataclass
class ReferenceThrottle:
    """The obvious model: every failure's time in a list, counted afresh on each question."""

    account_failures_max: int
    address_failures_max: int
    window_s: float
    accounts: dict[str, list[float]] = field(default_factory=dict)
    addresses: dict[str, list[float]] = field(default_factory=dict)

    def retry_after_s(self, account: str, address: str, now_s: float) -> float | None:
        waits = []
        for times, maximum in (
            (self.accounts.get(account, []), self.account_failures_max),
            (self.addresses.get(address, []), self.address_failures_max),
        ):
            recent = sorted(time_s for time_s in times if now_s < time_s + self.window_s)
            if len(recent) >= maximum:
                waits.append(recent[-maximum] + self.window_s - now_s)
        return max(waits) if waits else None

    def failed(self, account: str, address: str, now_s: float) -> None:
        self.accounts.setdefault(account, []).append(now_s)
        self.addresses.setdefault(address, []).append(now_s)

    def succeeded(self, account: str) -> None:
        self.accounts.pop(account, None)


ACCOUNTS = ("alice", "bob", "carol")
ADDRESSES = ("192.0.2.1", "192.0.2.2")
ADVANCES_S = (0.0, 0.5, 1.0, 7.0, 49.5, 50.0, 99.0, 100.0, 250.0)
# (operation, account, address, seconds to advance)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("fail"), st.sampled_from(ACCOUNTS), st.sampled_from(ADDRESSES), st.just(0.0)
        ),
        st.tuples(st.just("succeed"), st.sampled_from(ACCOUNTS), st.just(""), st.just(0.0)),
        st.tuples(st.just("advance"), st.just(""), st.just(""), st.sampled_from(ADVANCES_S)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 4), st.integers(1, 6))
def test_throttle_matches_the_reference_model(
    steps: list[tuple[str, str, str, float]], account_max: int, address_max: int
) -> None:
    throttle = LoginThrottle(
        account_failures_max=account_max, address_failures_max=address_max, window_s=100.0
    )
    model = ReferenceThrottle(account_max, address_max, 100.0)
    now_s = 5000.0
    for operation, account, address, advance_s in steps:
        if operation == "fail":
            throttle.failed(account, address, now_s)
            model.failed(account, address, now_s)
        elif operation == "succeed":
            throttle.succeeded(account, now_s)
            model.succeeded(account)
        now_s += advance_s
        for some_account in ACCOUNTS:
            for some_address in ADDRESSES:
                expected = model.retry_after_s(some_account, some_address, now_s)
                assert throttle.retry_after_s(some_account, some_address, now_s) == expected
                if expected is not None:
                    assert 0.0 < expected <= 100.0
