"""Users of partners (seed 000 "Basic Integration Flow", "Vault Generation Sequence"):
registration, login, TOTP 2FA, the master password and the vault it seals.

The pure rules live in `credentials` and `vault_keys`; this is their shell: PostgreSQL,
the clock, and the background work. Slow steps (argon2id, RSA and vault key generation)
run in threads, never on the event loop. Secrets the server must read back (TOTP secret,
RSA private key) are sealed under the server key; the vault's keys are sealed under the
user's master password, which is never stored: without it nobody, the operator included,
can sign for that vault. A vault being generated when the process stops cannot be
finished (its master password is gone): at the next start it is back to PREPARING, and
the user sets the master password again.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from loguru import logger

from strongroom.identity import credentials, vault_keys
from strongroom.identity.at_rest import ServerSealer
from strongroom.identity.errors import (
    EmailTaken,
    ExternalIdTaken,
    InvalidCredentials,
    OtpRejected,
    OtpRequired,
    WeakPassword,
    WrongState,
)

PREPARING, GENERATING, READY = "PREPARING", "GENERATING", "READY"
VAULT_GENERATIONS_AT_ONCE = 2


@functools.cache
def absent_hash() -> str:
    """Verified when the email is unknown, so that such a login takes as long as a wrong
    password (made on first use, not at import)."""
    return credentials.hash_password("no such user: only timing is at stake here")


@dataclass(frozen=True, slots=True)
class User:
    uid: str
    partner_id: str
    email: str
    external_id: str | None
    rsa_public_key: str
    totp_enabled: bool
    vault_status: str
    main_vault_uuid: str | None
    wallet_id: str
    created_at: datetime


def user_from_row(row: asyncpg.Record) -> User:
    return User(
        row["uid"], row["partner_id"], row["email"], row["external_id"], row["rsa_public_key"],
        row["totp_enabled"], row["vault_status"], row["main_vault_uuid"], row["wallet_id"],
        row["created_at"],
    )  # fmt: skip


class Users:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sealer: ServerSealer,
        tokens: credentials.UserTokens,
        *,
        clock_s: Callable[[], float] = time.time,
        vault_parameters: vault_keys.Argon2Parameters = vault_keys.DEFAULT_ARGON2_PARAMETERS,
    ) -> None:
        self._pool = pool
        self._sealer = sealer
        self.tokens = tokens
        self._clock_s = clock_s
        self._vault_parameters = vault_parameters
        self.throttle = credentials.LoginThrottle()
        # OTPs offered for a call by a user who holds a token (Secure Send), per user.
        self.otp_throttle = credentials.LoginThrottle()
        self._generations = asyncio.Semaphore(VAULT_GENERATIONS_AT_ONCE)
        self._background: set[asyncio.Task[None]] = set()
        # uid -> (partner, wallet) of users who hold a token (a user never changes either)
        self._identities: dict[str, tuple[str, str]] = {}

    async def resume(self) -> int:
        """At start: vaults whose generation was cut short go back to PREPARING."""
        status: str = await self._pool.execute(
            "UPDATE users SET vault_status = $1, updated_at = now() WHERE vault_status = $2",
            PREPARING,
            GENERATING,
        )
        return int(status.split()[-1])

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()

    # ------------------------------------------------------------------ registration

    async def register(
        self, partner_id: str, email_text: str, password: str, external_id: str | None
    ) -> User:
        email = credentials.normalize_email(email_text)
        problems = credentials.password_problems(password, email)
        if problems:
            raise WeakPassword(problems)
        password_hash, (public_key, private_key) = await asyncio.gather(
            asyncio.to_thread(credentials.hash_password, password),
            asyncio.to_thread(vault_keys.generate_rsa_key_pair),
        )
        uid = str(uuid.uuid4())
        wallet_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "INSERT INTO wallets (wallet_id, owner, name, external_id, created_at,"
                    " updated_at) VALUES ($1, $2, $3, NULL, $4, $4)",
                    wallet_id,
                    partner_id,
                    f"vault of {email}",
                    now,
                )
                row = await connection.fetchrow(
                    "INSERT INTO users (uid, partner_id, email, external_id, password_hash,"
                    " rsa_public_key, rsa_private_key, wallet_id, created_at, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING *",
                    uid,
                    partner_id,
                    email,
                    external_id,
                    password_hash,
                    public_key,
                    self._sealer.seal(private_key, f"rsa:{uid}"),
                    wallet_id,
                    now,
                )
        except asyncpg.UniqueViolationError as error:
            if "external_id" in (error.constraint_name or ""):
                raise ExternalIdTaken("a user with this external_id exists already") from None
            raise EmailTaken("a user with this email exists already") from None
        assert row is not None
        return user_from_row(row)

    async def user(self, uid: str) -> User | None:
        row = await self._pool.fetchrow("SELECT * FROM users WHERE uid = $1", uid)
        return None if row is None else user_from_row(row)

    async def identity(self, uid: str) -> tuple[str, str] | None:
        """(partner, wallet) of a user, for a token's principal."""
        known = self._identities.get(uid)
        if known is None:
            user = await self.user(uid)
            if user is None:
                return None
            if len(self._identities) >= 100_000:
                self._identities.pop(next(iter(self._identities)))
            known = self._identities[uid] = (user.partner_id, user.wallet_id)
        return known

    # ------------------------------------------------------------------ login

    async def login(self, email_text: str, password: str, otp: str | None, address: str) -> str:
        """A user token, or InvalidCredentials / OtpRequired / OtpRejected / Throttled."""
        now_s = self._clock_s()
        account = email_text.strip().lower()[:320]
        self.throttle.check(account, address, now_s)
        row = await self._pool.fetchrow("SELECT * FROM users WHERE email = $1", account)
        stored = row["password_hash"] if row is not None else absent_hash()
        matches = await asyncio.to_thread(credentials.verify_password, password, stored)
        if row is None or not matches:
            self.throttle.failed(account, address, now_s)
            raise InvalidCredentials("wrong email or password")
        if row["totp_enabled"]:
            if not otp:
                raise OtpRequired("this account needs a one-time password (otp)")
            try:
                await self._consume_otp(row, otp, now_s)
            except OtpRejected:
                self.throttle.failed(account, address, now_s)
                raise
        self.throttle.succeeded(account, now_s)
        return self.tokens.issue(row["uid"], row["partner_id"], now_s)

    async def consume_otp(self, uid: str, otp: str) -> None:
        """The second factor of one call (Secure Send): the user's OTP, used up as a
        login's is (each time step once). WrongState `two_factor_required` when 2FA is
        off; OtpRejected, or Throttled after too many rejections for this user."""
        now_s = self._clock_s()
        self.otp_throttle.check(uid, uid, now_s)
        row = await self._pool.fetchrow("SELECT * FROM users WHERE uid = $1", uid)
        assert row is not None
        if not row["totp_enabled"]:
            raise WrongState("two_factor_required", "turn on 2FA first (/users/2fa/setup)")
        try:
            await self._consume_otp(row, otp, now_s)
        except OtpRejected:
            self.otp_throttle.failed(uid, uid, now_s)
            raise
        self.otp_throttle.succeeded(uid, now_s)

    async def _consume_otp(self, row: asyncpg.Record, otp: str, now_s: float) -> None:
        """Check an OTP against the confirmed secret and use it up (once, even under races)."""
        secret = self._sealer.open(row["totp_secret"], f"totp:{row['uid']}")
        step = credentials.verify_otp(secret, otp, now_s, row["otp_last_step"])
        used = await self._pool.fetchval(
            "UPDATE users SET otp_last_step = $2, updated_at = now() WHERE uid = $1"
            " AND (otp_last_step IS NULL OR otp_last_step < $2) RETURNING uid",
            row["uid"],
            step,
        )
        if used is None:
            raise OtpRejected("already used")

    # ------------------------------------------------------------------ 2FA

    async def setup_two_factor(self, uid: str) -> dict[str, str]:
        row = await self._pool.fetchrow("SELECT * FROM users WHERE uid = $1", uid)
        assert row is not None
        if row["totp_enabled"]:
            raise WrongState("two_factor_enabled", "2FA is on already")
        secret = credentials.new_totp_secret()
        await self._pool.execute(
            "UPDATE users SET totp_secret = $2, updated_at = now() WHERE uid = $1",
            uid,
            self._sealer.seal(secret, f"totp:{uid}"),
        )
        return {"secret": secret, "otpauth_uri": credentials.otpauth_uri(secret, row["email"])}

    async def confirm_two_factor(self, uid: str, otp: str) -> None:
        row = await self._pool.fetchrow("SELECT * FROM users WHERE uid = $1", uid)
        assert row is not None
        if row["totp_enabled"]:
            raise WrongState("two_factor_enabled", "2FA is on already")
        if row["totp_secret"] is None:
            raise WrongState("two_factor_not_set_up", "call /users/2fa/setup first")
        await self._consume_otp(row, otp, self._clock_s())
        await self._pool.execute(
            "UPDATE users SET totp_enabled = true, updated_at = now() WHERE uid = $1", uid
        )

    # ------------------------------------------------------------------ vault

    async def set_master_password(self, uid: str, master_password: str, otp: str) -> None:
        """Check, mark GENERATING (durably), and generate the vault in the background."""
        row = await self._pool.fetchrow("SELECT * FROM users WHERE uid = $1", uid)
        assert row is not None
        if not row["totp_enabled"]:
            raise WrongState("two_factor_required", "turn on 2FA before the master password")
        if row["vault_status"] != PREPARING:
            raise WrongState("vault_exists", f"the vault is {row['vault_status']} already")
        problems = credentials.password_problems(master_password, row["email"])
        if problems:
            raise WeakPassword(problems)
        await self._consume_otp(row, otp, self._clock_s())
        marked = await self._pool.fetchval(
            "UPDATE users SET vault_status = $2, updated_at = now()"
            " WHERE uid = $1 AND vault_status = $3 RETURNING uid",
            uid,
            GENERATING,
            PREPARING,
        )
        if marked is None:
            raise WrongState("vault_exists", "the vault is being generated already")
        task = asyncio.get_running_loop().create_task(self._generate(uid, master_password))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _generate(self, uid: str, master_password: str) -> None:
        try:
            async with self._generations:
                vault = await asyncio.to_thread(
                    vault_keys.generate_vault, master_password, parameters=self._vault_parameters
                )
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "INSERT INTO vaults (vault_uuid, uid, public_keys, sealed)"
                    " VALUES ($1, $2, $3, $4)",
                    vault.vault_uuid,
                    uid,
                    json.dumps(vault.public.to_dict()),
                    json.dumps(vault.sealed.to_dict()),
                )
                await connection.execute(
                    "UPDATE users SET vault_status = $2, main_vault_uuid = $3, updated_at = now()"
                    " WHERE uid = $1",
                    uid,
                    READY,
                    vault.vault_uuid,
                )
            logger.info("vault generated", uid=uid, vault_uuid=vault.vault_uuid)
        except Exception as error:
            logger.error("vault generation failed", uid=uid, error=type(error).__name__)
            await self._pool.execute(
                "UPDATE users SET vault_status = $2, updated_at = now() WHERE uid = $1",
                uid,
                PREPARING,
            )

    async def vault_public(self, uid: str) -> vault_keys.VaultPublic | None:
        document = await self._pool.fetchval("SELECT public_keys FROM vaults WHERE uid = $1", uid)
        if document is None:
            return None
        loaded: dict[str, Any] = json.loads(document)
        return vault_keys.VaultPublic.from_dict(loaded)
