"""MTF credentials: issued per wallet, secrets never stored.

The login HMAC needs the secret itself on the server, so it cannot be kept as a one-way
hash. Instead the secret is *derived*: `HMAC-SHA256(key, client_id ‖ salt)` in hex,
where `salt` is random per credential and stored, and `key` lives outside the database
(`DATA_DIR/mtf-secret.key`, mode 0600, or `STRONGROOM_MTF_KEY`). A copy of the database
alone gives no usable secret; revoking is marking the row.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from strongroom.actors.messages import TimeInForce
from strongroom.wire.mtf import POST_ONLY, Credential, Keyring, LiveOrder, MarketGrid

KEY_FILE = "mtf-secret.key"
KEY_ENVIRONMENT = "STRONGROOM_MTF_KEY"
CLIENT_ID_MAX = 2**32 - 1
CREDENTIALS_PER_WALLET_MAX = 20
EXTERNAL_ID_PREFIX = "mtf:"


def load_key(data_dir: Path) -> bytes:
    """The derivation key: from the environment (hex), else the data dir's key file."""
    text = os.environ.get(KEY_ENVIRONMENT)
    if text:
        return bytes.fromhex(text)
    path = data_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key.hex())
    return key


def derive_secret(key: bytes, client_id: int, salt: bytes) -> str:
    return hmac.new(key, struct.pack(">I", client_id) + salt, hashlib.sha256).hexdigest()


def external_id(client_id: int, client_order_id: int) -> str:
    """How an MTF order is known outside the gateway (REST shows it as `external_id`)."""
    return f"{EXTERNAL_ID_PREFIX}{client_id}:{client_order_id}"


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    client_id: int
    wallet_id: str
    created_at: datetime
    revoked_at: datetime | None


class TooManyCredentials(Exception):
    pass


class CredentialStore:
    """Issue, list and revoke credentials; claim login nonces; load a member's orders."""

    def __init__(self, pool: asyncpg.Pool, key: bytes, keyring: Keyring) -> None:
        self._pool = pool
        self._key = key
        self.keyring = keyring
        # Called with the client ids of every revocation (the gateway closes their sessions).
        self.on_revoke: list[Callable[[list[int]], None]] = []

    async def load(self) -> None:
        rows = await self._pool.fetch(
            "SELECT client_id, wallet_id, salt FROM mtf_credentials WHERE revoked_at IS NULL"
        )
        for row in rows:
            self.keyring.add(self._credential(row["client_id"], row["wallet_id"], row["salt"]))

    def _credential(self, client_id: int, wallet_id: str, salt: bytes) -> Credential:
        return Credential(client_id, wallet_id, derive_secret(self._key, client_id, salt))

    async def issue(self, wallet_id: str, created_by: str) -> Credential:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT 1 FROM wallets WHERE wallet_id = $1 FOR UPDATE", wallet_id
            )
            live = await connection.fetchval(
                "SELECT count(*) FROM mtf_credentials WHERE wallet_id = $1 AND revoked_at IS NULL",
                wallet_id,
            )
            if live >= CREDENTIALS_PER_WALLET_MAX:
                raise TooManyCredentials(
                    f"a wallet has at most {CREDENTIALS_PER_WALLET_MAX} live MTF credentials"
                )
            while True:
                client_id = secrets.randbelow(CLIENT_ID_MAX) + 1
                salt = secrets.token_bytes(16)
                status = await connection.execute(
                    "INSERT INTO mtf_credentials (client_id, wallet_id, salt, created_by)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    client_id,
                    wallet_id,
                    salt,
                    created_by,
                )
                if status.endswith(" 1"):
                    break
        credential = self._credential(client_id, wallet_id, salt)
        self.keyring.add(credential)
        return credential

    async def of_wallet(self, wallet_id: str) -> list[CredentialInfo]:
        rows = await self._pool.fetch(
            "SELECT client_id, wallet_id, created_at, revoked_at FROM mtf_credentials"
            " WHERE wallet_id = $1 ORDER BY created_at, client_id",
            wallet_id,
        )
        return [CredentialInfo(**dict(row)) for row in rows]

    async def revoke(self, wallet_id: str, client_id: int | None = None) -> list[int]:
        """Revoke one credential of the wallet (or all of them); the client ids revoked."""
        rows = await self._pool.fetch(
            "UPDATE mtf_credentials SET revoked_at = now()"
            " WHERE wallet_id = $1 AND revoked_at IS NULL AND ($2::bigint IS NULL"
            " OR client_id = $2) RETURNING client_id",
            wallet_id,
            client_id,
        )
        revoked = [row["client_id"] for row in rows]
        for revoked_id in revoked:
            self.keyring.revoke(revoked_id)
        for listener in self.on_revoke:
            listener(revoked)
        return revoked

    async def claim_nonce(self, client_id: int, nonce: int) -> bool:
        """Durably record a login nonce; False if it was ever used before by this client."""
        status: str = await self._pool.execute(
            "INSERT INTO mtf_login_nonces (client_id, nonce) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            client_id,
            nonce,
        )
        return status.endswith(" 1")

    async def member_orders(
        self, client_id: int, wallet_id: str, grids: dict[str, MarketGrid]
    ) -> tuple[set[int], dict[int, tuple[int, LiveOrder]]]:
        """Client order ids this client ever used, and its live orders by client order id
        (with their system order ids), from the committed orders."""
        prefix = external_id(client_id, 0)[:-1]
        rows = await self._pool.fetch(
            "SELECT order_id, market, external_id, status, price, quantity, stop_price,"
            " display_quantity, time_in_force, post_only FROM orders"
            " WHERE wallet_id = $1 AND starts_with(external_id, $2)",
            wallet_id,
            prefix,
        )
        used: set[int] = set()
        live: dict[int, tuple[int, LiveOrder]] = {}
        for row in rows:
            client_order_id = int(row["external_id"][len(prefix) :])
            used.add(client_order_id)
            grid = grids.get(row["market"])
            if row["status"] in ("new", "open", "pending") and grid is not None:
                condition = int(TimeInForce(row["time_in_force"])) | (
                    POST_ONLY if row["post_only"] else 0
                )
                live[client_order_id] = (
                    row["order_id"],
                    LiveOrder(
                        client_order_id, grid, row["price"], row["quantity"],
                        row["stop_price"], row["display_quantity"], condition,
                    ),
                )  # fmt: skip
        return used, live
