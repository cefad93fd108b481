"""MTF credentials of a wallet: issue (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Any, ClassVar

import falcon
import falcon.asgi
import msgspec

from strongroom.http.body import read_bytes, read_json
from strongroom.http.context import Services, principal
from strongroom.http.problems import Problem, not_found
from strongroom.http.representations import iso
from strongroom.wire.credentials import CredentialInfo, TooManyCredentials


class CredentialsIn(msgspec.Struct, forbid_unknown_fields=True):
    """No fields yet; an empty body or `{}` is accepted, anything else is refused."""


def credential_json(info: CredentialInfo) -> dict[str, Any]:
    return {
        "client_id": info.client_id,
        "wallet_id": info.wallet_id,
        "created": iso(info.created_at),
        "revoked": iso(info.revoked_at),
    }


class MtfCredentialsResource:
    scopes: ClassVar[dict[str, str]] = {"GET": "read", "POST": "write", "DELETE": "write"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, wallet_id: str
    ) -> None:
        self.services.require_wallet(req, wallet_id)
        if req.content_length:
            await read_json(req, CredentialsIn)
        else:
            await read_bytes(req)
        try:
            credential = await self.services.mtf_credentials.issue(
                wallet_id, principal(req).client_id
            )
        except TooManyCredentials as error:
            raise Problem(409, "too_many_credentials", str(error)) from None
        resp.status = falcon.HTTP_201
        resp.media = {
            "client_id": credential.client_id,
            "secret": credential.secret,
            "wallet_id": wallet_id,
        }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, wallet_id: str
    ) -> None:
        self.services.require_wallet(req, wallet_id)
        infos = await self.services.mtf_credentials.of_wallet(wallet_id)
        resp.media = [credential_json(info) for info in infos]

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, wallet_id: str
    ) -> None:
        """Revoke every live credential of the wallet and close their sessions."""
        self.services.require_wallet(req, wallet_id)
        revoked = await self.services.mtf_credentials.revoke(wallet_id)
        resp.media = {"revoked": revoked}


class MtfCredentialResource:
    scopes: ClassVar[dict[str, str]] = {"DELETE": "write"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, wallet_id: str, client_id: str
    ) -> None:
        self.services.require_wallet(req, wallet_id)
        if not client_id.isdigit() or not 0 < int(client_id) < 2**32:
            raise not_found(f"MTF credential {client_id}")
        if not await self.services.mtf_credentials.revoke(wallet_id, int(client_id)):
            raise not_found(f"live MTF credential {client_id} of wallet {wallet_id}")
        resp.status = falcon.HTTP_204
