"""OAuth 2.0 client credentials (RFC 6749 §4.4), bearer tokens (RFC 6750) and scopes.

Client secrets are stored as argon2id hashes (scrypt ones from before still verify);
access tokens are random and stored as their SHA-256, so a database leak reveals neither
in usable form. An application belongs to a partner (tenant), which owns the wallets;
deleting an application revokes its tokens at once. Scopes are checked
for every route in `AuthMiddleware`: a resource declares what it needs per method
(default: `read` for GET, `write` otherwise) or says it is `public`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import argon2
import asyncpg
import falcon.asgi

from strongroom.http.body import read_bytes
from strongroom.http.problems import Problem
from strongroom.identity import signatures
from strongroom.identity.errors import InvalidToken, SignatureRejected
from strongroom.identity.users import Users

USER_SCOPES = frozenset({"read", "write"})

SCOPES = ("read", "write", "admin")
TOKEN_LIFETIME_S = 3600
TOKEN_CACHE_MAX = 100_000
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


_HASHER = argon2.PasswordHasher()


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(secret: str, stored: str) -> bool:
    if stored.startswith("scrypt$"):
        _, salt, expected = stored.split("$")
        digest = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), dklen=32, **_SCRYPT)
        return hmac.compare_digest(digest.hex(), expected)
    try:
        return _HASHER.verify(stored, secret)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_scopes(text: str) -> frozenset[str] | None:
    scopes = frozenset(text.split())
    return scopes if scopes <= set(SCOPES) else None


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    scopes: frozenset[str]
    partner_id: str
    user_id: str | None = None  # a user's token: it acts on that user's vault only
    wallet_id: str | None = None  # the user's vault

    def allows(self, scope: str) -> bool:
        # admin is the operator's scope and includes the others.
        return scope in self.scopes or "admin" in self.scopes

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes


@dataclass(frozen=True, slots=True)
class Application:
    id: int
    name: str
    client_id: str
    scopes: str
    partner_id: str
    created_at: datetime


def application_from_row(row: asyncpg.Record) -> Application:
    return Application(
        row["id"], row["name"], row["client_id"], row["scopes"], row["partner_id"],
        row["created_at"],
    )  # fmt: skip


def api_key_from_row(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        row["api_key"], row["scopes"], row["signature_required"], row["partner_id"],
        row["created_at"],
    )  # fmt: skip


class TokenError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class ApiKey:
    api_key: str
    scopes: str
    signature_required: bool
    partner_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _LiveApiKey:
    principal: Principal
    secret: str
    signature_required: bool


class Authority:
    def __init__(
        self,
        pool: asyncpg.Pool,
        clock_s: Callable[[], float] = time.time,
        *,
        api_key_derivation_key: bytes = b"",
    ) -> None:
        self._pool = pool
        self._clock_s = clock_s
        self._tokens: dict[bytes, tuple[Principal, float]] = {}
        self._api_key_derivation_key = api_key_derivation_key
        self._api_keys: dict[str, _LiveApiKey] = {}
        self.signatures = signatures.SignatureVerifier()
        self.users: Users | None = None  # user tokens are accepted once set

    async def ensure_application(self, name: str, client_id: str, secret: str, scopes: str) -> None:
        """The bootstrap application exists with exactly this secret (idempotent)."""
        stored = await self._pool.fetchval(
            "SELECT secret_hash FROM oauth_applications WHERE client_id = $1", client_id
        )
        if stored is not None and await asyncio.to_thread(verify_secret, secret, stored):
            await self._pool.execute(
                "UPDATE oauth_applications SET scopes = $2 WHERE client_id = $1", client_id, scopes
            )
            return
        secret_hash = await asyncio.to_thread(hash_secret, secret)
        await self._pool.execute(
            "INSERT INTO oauth_applications (name, client_id, secret_hash, scopes, partner_id)"
            " VALUES ($1, $2, $3, $4, $2) ON CONFLICT (client_id)"
            " DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes",
            name,
            client_id,
            secret_hash,
            scopes,
        )

    async def application_count(self) -> int:
        count: int = await self._pool.fetchval("SELECT count(*) FROM oauth_applications")
        return count

    async def create_application(self, name: str, scopes: str) -> tuple[str, str]:
        """A new application that is a partner of its own (the operator's bootstrap)."""
        client_id = secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(36)
        await self.ensure_application(name, client_id, secret, scopes)
        return client_id, secret

    async def add_application(
        self, partner_id: str | None, name: str, scopes: str
    ) -> tuple[Application, str]:
        """A new application of `partner_id` (None: of a new partner); its secret is
        returned this once and kept only as a hash."""
        client_id = secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(36)
        secret_hash = await asyncio.to_thread(hash_secret, secret)
        row = await self._pool.fetchrow(
            "INSERT INTO oauth_applications (name, client_id, secret_hash, scopes, partner_id)"
            " VALUES ($1, $2, $3, $4, coalesce($5, $2)) RETURNING *",
            name,
            client_id,
            secret_hash,
            scopes,
            partner_id,
        )
        assert row is not None
        return application_from_row(row), secret

    async def applications(self, partner_id: str) -> list[Application]:
        rows = await self._pool.fetch(
            "SELECT * FROM oauth_applications WHERE partner_id = $1 ORDER BY id", partner_id
        )
        return [application_from_row(row) for row in rows]

    async def delete_application(self, partner_id: str, application_id: int) -> bool:
        """Delete one of the partner's applications; its tokens stop working at once."""
        client_id = await self._pool.fetchval(
            "DELETE FROM oauth_applications WHERE id = $1 AND partner_id = $2 RETURNING client_id",
            application_id,
            partner_id,
        )  # its access tokens go with it (ON DELETE CASCADE)
        if client_id is None:
            return False
        for digest in [d for d, (p, _) in self._tokens.items() if p.client_id == client_id]:
            del self._tokens[digest]
        return True

    async def issue_token(
        self, grant_type: str | None, client_id: str | None, secret: str | None, scope: str | None
    ) -> dict[str, Any]:
        if grant_type != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "only client_credentials is supported")
        row = await self._check_client(client_id, secret)
        allowed = frozenset(row["scopes"].split())
        requested = allowed if scope is None or not scope.strip() else parse_scopes(scope)
        if requested is None or not requested <= allowed:
            raise TokenError(
                400, "invalid_scope", f"scope must be a subset of {' '.join(sorted(allowed))}"
            )
        token = secrets.token_urlsafe(32)
        expires_at = self._clock_s() + TOKEN_LIFETIME_S
        scope_text = " ".join(sorted(requested))
        await self._pool.execute(
            "INSERT INTO access_tokens (token_hash, client_id, scopes, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            token_digest(token),
            client_id,
            scope_text,
            datetime.fromtimestamp(int(expires_at), UTC),
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "scope": scope_text,
        }

    def now_s(self) -> float:
        return self._clock_s()

    async def create_api_key(
        self, creator: Principal, scopes: str, signature_required: bool
    ) -> tuple[ApiKey, str]:
        """A new API key of the creator's partner; its secret is returned this once."""
        api_key, salt = signatures.new_api_key()
        row = await self._pool.fetchrow(
            "INSERT INTO api_keys (api_key, partner_id, created_by, scopes, signature_required,"
            " salt) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            api_key,
            creator.partner_id,
            creator.client_id,
            scopes,
            signature_required,
            salt,
        )
        assert row is not None
        secret = signatures.derive_secret(self._api_key_derivation_key, api_key, salt)
        return api_key_from_row(row), secret

    async def live_api_keys(self, partner_id: str) -> list[ApiKey]:
        rows = await self._pool.fetch(
            "SELECT * FROM api_keys WHERE partner_id = $1 AND revoked_at IS NULL"
            " ORDER BY created_at, api_key",
            partner_id,
        )
        return [api_key_from_row(row) for row in rows]

    async def revoke_api_key(self, partner_id: str, api_key: str) -> bool:
        revoked = await self._pool.fetchval(
            "UPDATE api_keys SET revoked_at = now()"
            " WHERE api_key = $1 AND partner_id = $2 AND revoked_at IS NULL RETURNING api_key",
            api_key,
            partner_id,
        )
        self._api_keys.pop(api_key, None)
        return revoked is not None

    async def api_key(self, api_key: str) -> _LiveApiKey | None:
        """A live key with its derived secret (cached until revoked)."""
        live = self._api_keys.get(api_key)
        if live is not None:
            return live
        if len(api_key) > signatures.API_KEY_LENGTH_MAX:
            return None
        row = await self._pool.fetchrow(
            "SELECT * FROM api_keys WHERE api_key = $1 AND revoked_at IS NULL", api_key
        )
        if row is None:
            return None
        principal = Principal(
            f"apikey:{api_key}", frozenset(row["scopes"].split()), row["partner_id"]
        )
        secret = signatures.derive_secret(self._api_key_derivation_key, api_key, row["salt"])
        live = _LiveApiKey(principal, secret, row["signature_required"])
        if len(self._api_keys) >= TOKEN_CACHE_MAX:
            self._api_keys.pop(next(iter(self._api_keys)))
        self._api_keys[api_key] = live
        return live

    async def _check_client(self, client_id: str | None, secret: str | None) -> asyncpg.Record:
        if not client_id or not secret:
            raise TokenError(401, "invalid_client", "client_id and client_secret are required")
        row = await self._pool.fetchrow(
            "SELECT secret_hash, scopes FROM oauth_applications WHERE client_id = $1", client_id
        )
        if row is None or not await asyncio.to_thread(verify_secret, secret, row["secret_hash"]):
            raise TokenError(401, "invalid_client", "unknown client or wrong secret")
        return row

    async def revoke_token(self, client_id: str | None, secret: str | None, token: str) -> None:
        """RFC 7009: a client revokes one of its own tokens; anything else changes nothing."""
        await self._check_client(client_id, secret)
        digest = token_digest(token)
        revoked = await self._pool.fetchval(
            "UPDATE access_tokens SET revoked = true WHERE token_hash = $1 AND client_id = $2"
            " RETURNING client_id",
            digest,
            client_id,
        )
        if revoked is not None:
            self._tokens.pop(digest, None)

    async def authenticate_bearer(self, token: str) -> Principal | None:
        """A partner's access token or a user's token (a JWT, once `users` is set); a user
        token that does not verify raises InvalidToken with its reason."""
        users = self.users
        if token.count(".") != 2 or users is None:
            return await self.authenticate(token)
        claims = users.tokens.verify(token, self.now_s())
        identity = await users.identity(claims.uid)
        if identity is None or identity[0] != claims.partner_id:
            raise InvalidToken("names no user")
        partner_id, wallet_id = identity
        return Principal(f"user:{claims.uid}", USER_SCOPES, partner_id, claims.uid, wallet_id)

    async def authenticate_feed(self, token: str) -> Principal | None:
        """For the feed's `auth` op: any bearer token, None if it is not valid."""
        try:
            return await self.authenticate_bearer(token)
        except InvalidToken:
            return None

    async def authenticate(self, token: str) -> Principal | None:
        digest = token_digest(token)
        cached = self._tokens.get(digest)
        now = self._clock_s()
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            del self._tokens[digest]
            return None
        row = await self._pool.fetchrow(
            "SELECT t.client_id, t.scopes, t.expires_at, a.partner_id FROM access_tokens t"
            " JOIN oauth_applications a USING (client_id)"
            " WHERE t.token_hash = $1 AND NOT t.revoked AND t.expires_at > now()",
            digest,
        )
        if row is None:
            return None
        principal = Principal(row["client_id"], frozenset(row["scopes"].split()), row["partner_id"])
        if len(self._tokens) >= TOKEN_CACHE_MAX:
            self._tokens.pop(next(iter(self._tokens)))
        expires_at = (row["expires_at"] - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(seconds=1)
        self._tokens[digest] = (principal, expires_at)
        return principal


def invalid_token(detail: str) -> Problem:
    return Problem(
        401,
        "invalid_token",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="strongroom", error="invalid_token"'},
    )


def required_scope(resource: object, method: str) -> str | None:
    """The scope a route needs; None for public routes."""
    if getattr(resource, "public", False):
        return None
    declared: dict[str, str] = getattr(resource, "scopes", {})
    return declared.get(method, "read" if method in ("GET", "HEAD") else "write")


class AuthMiddleware:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    async def process_resource(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        params: dict[str, Any],
    ) -> None:
        req.context.principal = None
        if resource is None:
            return
        scope = required_scope(resource, req.method)
        if scope is None:
            return
        header = req.get_header("Authorization")
        api_key = req.get_header("APIKEY")
        if header is None and api_key is not None:
            principal = await self._api_key_principal(req, api_key)
        else:
            principal = await self._bearer_principal(header or "")
        if principal.user_id is not None and not getattr(resource, "users", False):
            raise Problem(403, "partners_only", "this call is for partners, not users")
        if principal.user_id is None and not getattr(resource, "partners", True):
            raise Problem(403, "users_only", "this call takes a user's token (POST /users/login)")
        if not principal.allows(scope):
            raise Problem(
                403,
                "insufficient_scope",
                f"this call needs the {scope} scope",
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="strongroom", error="insufficient_scope", scope="{scope}"'
                    )
                },
            )
        req.context.principal = principal

    async def _bearer_principal(self, header: str) -> Principal:
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "unauthorized",
                "a bearer token or an API key is required",
                headers={"WWW-Authenticate": 'Bearer realm="strongroom"'},
            )
        token = token.strip()
        try:
            principal = await self.authority.authenticate_bearer(token)
        except InvalidToken as error:
            raise invalid_token(f"the user token is not valid: {error.reason}") from None
        if principal is None:
            raise invalid_token("the access token is invalid, expired or revoked")
        return principal

    async def _api_key_principal(self, req: falcon.asgi.Request, api_key: str) -> Principal:
        """APIKEY alone, or with TIMESTAMP, CONTENT and SIGNATURE when the key requires it
        (SPEC §5). The body is read here to be checked and kept for the resource."""
        live = await self.authority.api_key(api_key)
        if live is None:
            raise Problem(401, "invalid_api_key", "the API key is unknown or revoked")
        if live.signature_required:
            body = await read_bytes(req)
            req.context.body = body
            try:
                self.authority.signatures.verify(
                    api_key=api_key,
                    secret=live.secret,
                    timestamp=req.get_header("TIMESTAMP") or "",
                    content=req.get_header("CONTENT") or "",
                    signature=req.get_header("SIGNATURE") or "",
                    body=body,
                    now_s=self.authority.now_s(),
                )
            except SignatureRejected as error:
                raise Problem(401, "invalid_signature", error.reason) from None
        return live.principal
