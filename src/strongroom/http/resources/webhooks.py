"""The partner's webhooks (seed 001 "Configure Webhooks"): its URL and signing secret, and
the record of every delivery attempt. Delivery itself is `strongroom.http.webhooks`."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import falcon.asgi
import msgspec

from strongroom.http.body import read_json
from strongroom.http.context import Services, int_param, principal
from strongroom.http.problems import invalid
from strongroom.http.representations import iso
from strongroom.http.webhooks import (
    CALLBACK_URL_LENGTH_MAX,
    EVENT_ID_LENGTH_MAX,
    Delivery,
)

DELIVERIES_LIMIT_MAX = 100
OFFSET_MAX = 10**9
CREATED_MESSAGE = (
    "Webhook settings created successfully. Please save your secret - it will not be shown again."
)
UPDATED_MESSAGE = "Webhook settings updated; the secret is unchanged."


class WebhooksIn(msgspec.Struct, forbid_unknown_fields=True):
    callback_url: Annotated[str, msgspec.Meta(min_length=1, max_length=CALLBACK_URL_LENGTH_MAX)]


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "url": delivery.url,
        "attempt": delivery.attempt,
        "attempted_at": iso(delivery.attempted_at),
        "status_code": delivery.status_code,
        "error": delivery.error,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "done": delivery.done,
    }


class WebhooksResource:
    """POST /user/webhooks/ {callback_url}: the secret is in the answer the first time only."""

    scopes: ClassVar[dict[str, str]] = {"POST": "write"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        partner_id = principal(req).partner_id
        body = await read_json(req, WebhooksIn)
        configured = await self.services.webhooks.configure(partner_id, body.callback_url)
        answer: dict[str, Any] = {
            "callback_url": configured.callback_url,
            "secret_masked": configured.secret_masked,
        }
        if configured.secret is not None:
            answer["secret"] = configured.secret
            resp.set_header("Cache-Control", "no-store")
        answer["message"] = CREATED_MESSAGE if configured.secret is not None else UPDATED_MESSAGE
        resp.media = answer


class WebhookDeliveriesResource:
    """GET /user/webhooks/deliveries/?event_id=&limit=&offset=: the partner's own attempts,
    newest first."""

    scopes: ClassVar[dict[str, str]] = {"GET": "read"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        partner_id = principal(req).partner_id
        limit = int_param(req, "limit", 20, 1, DELIVERIES_LIMIT_MAX)
        offset = int_param(req, "offset", 0, 0, OFFSET_MAX)
        event_id = req.get_param("event_id")
        if event_id is not None and not 0 < len(event_id) <= EVENT_ID_LENGTH_MAX:
            raise invalid("event_id", f"must have 1 to {EVENT_ID_LENGTH_MAX} characters")
        deliveries = await self.services.webhooks.deliveries(partner_id, event_id, limit, offset)
        resp.media = [delivery_json(delivery) for delivery in deliveries]
