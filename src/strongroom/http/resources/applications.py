"""OAuth applications of a partner (seed 001 "Authentication"): list, create, delete.

A partner's applications share its wallets. An application never gets more than its
creator holds (no `admin` from a caller without it); only the operator (`admin`) can
start a new partner (`"new_partner": true`). The secret is in the answer to the create
and nowhere else: the database keeps an argon2id hash.
"""

from __future__ import annotations

from typing import Annotated, Any

import falcon
import falcon.asgi
import msgspec

from strongroom.http.auth import SCOPES, Application, Principal
from strongroom.http.body import read_json
from strongroom.http.context import Services, principal
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.representations import iso

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
APPLICATIONS_PER_PARTNER_MAX = 100


class ApplicationIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    scopes: str | list[str]
    new_partner: bool = False


def application_json(application: Application) -> dict[str, Any]:
    return {
        "id": application.id,
        "name": application.name,
        "client_id": application.client_id,
        "scopes": application.scopes,
        "partner_id": application.partner_id,
        "created": iso(application.created_at),
    }


def grantable_scopes(caller: Principal, value: str | list[str]) -> str:
    """The scopes asked for (a space-separated string or a list), if the caller holds them
    all: as one string in canonical order."""
    names = value.split() if isinstance(value, str) else value
    unknown = sorted(set(names) - set(SCOPES))
    if not names or unknown:
        raise invalid("scopes", f"a non-empty set of {', '.join(SCOPES)}; unknown: {unknown}")
    beyond = sorted(scope for scope in set(names) if not caller.allows(scope))
    if beyond:
        raise Problem(403, "insufficient_scope", f"you cannot grant {', '.join(beyond)}")
    return " ".join(scope for scope in SCOPES if scope in names)


class ApplicationsResource:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        applications = await self.services.authority.applications(principal(req).partner_id)
        resp.media = [application_json(application) for application in applications]

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        body = await read_json(req, ApplicationIn)
        scopes = grantable_scopes(caller, body.scopes)
        if body.new_partner and not caller.admin:
            raise Problem(403, "insufficient_scope", "only the operator starts a new partner")
        authority = self.services.authority
        partner_id = None if body.new_partner else caller.partner_id
        if (
            partner_id is not None
            and len(await authority.applications(partner_id)) >= APPLICATIONS_PER_PARTNER_MAX
        ):
            raise Problem(
                409,
                "too_many_applications",
                f"a partner has at most {APPLICATIONS_PER_PARTNER_MAX} applications",
            )
        application, secret = await authority.add_application(partner_id, body.name, scopes)
        resp.status = falcon.HTTP_201
        resp.media = {**application_json(application), "client_secret": secret}


class ApplicationResource:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, application_id: str
    ) -> None:
        if not application_id.isdigit() or len(application_id) > 18:
            raise not_found(f"application {application_id}")
        deleted = await self.services.authority.delete_application(
            principal(req).partner_id, int(application_id)
        )
        if not deleted:
            raise not_found(f"application {application_id}")
        resp.status = falcon.HTTP_204
