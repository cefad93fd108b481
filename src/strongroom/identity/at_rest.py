"""Secrets the server must read back (a user's TOTP secret, their RSA private key), kept
encrypted in the database under a key that lives outside it (AES-256-GCM; the associated
data names what the secret belongs to, so a ciphertext copied to another row does not
open)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.identity.errors import IdentityError

NONCE_SIZE = 12
VERSION = "v1"


class SealBroken(IdentityError):
    """A sealed secret that does not open: altered, moved, or sealed under another key."""

    code = "seal_broken"


class ServerSealer:
    def __init__(self, key: bytes, label: bytes = b"secrets at rest") -> None:
        # A key of its own for this use, from the server's key.
        self._aead = AESGCM(hmac.new(key, label, hashlib.sha256).digest())

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        version, _, text = sealed.partition(":")
        try:
            if version != VERSION:
                raise ValueError(version)
            data = base64.urlsafe_b64decode(text.encode())
            nonce, ciphertext = data[:NONCE_SIZE], data[NONCE_SIZE:]
            return self._aead.decrypt(nonce, ciphertext, context.encode()).decode()
        except (InvalidTag, ValueError) as error:
            raise SealBroken("a sealed secret did not open") from error

    def __repr__(self) -> str:
        return "ServerSealer(<key>)"
