"""Provisioning through REST, as a partner would be set up and would set itself up.

The admin makes a new partner (`POST /o/apps/` with `new_partner`); the partner makes a
wallet per agent (`POST /wallets/`) and MTF credentials for its MTF agents
(`POST /wallets/{id}/mtf-credentials/`); the admin funds the wallets with accepted
deposits (`POST /management/v2/deposits/new`, one tid per wallet and currency, recorded
as acknowledged like every other deposit of the run).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

import httpx

from strongroom.config import TradingConfig
from strongroom.sims.agents import Agent
from strongroom.sims.edges import Acked
from strongroom.sims.target import Target

CONCURRENCY = 16
HTTP_TIMEOUT_S = 30.0


class ProvisioningError(RuntimeError):
    pass


@dataclass(slots=True)
class Provisioned:
    admin: httpx.AsyncClient
    partner: httpx.AsyncClient
    partner_id: str
    admin_token: str
    partner_token: str
    mtf_credentials: dict[str, tuple[int, str]] = field(default_factory=dict)  # agent → …

    async def close(self) -> None:
        await self.admin.aclose()
        await self.partner.aclose()


def _expect(response: httpx.Response, status: int, what: str) -> dict[str, object]:
    if response.status_code != status:
        raise ProvisioningError(f"{what}: {response.status_code} {response.text[:500]}")
    body: dict[str, object] = response.json()
    return body


async def client_for(
    base_url: str, client_id: str, secret: str, scope: str, connections_max: int
) -> tuple[httpx.AsyncClient, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as anonymous:
        response = await anonymous.post(
            "/o/token/",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": scope,
            },
        )
    token = str(_expect(response, 200, "token")["access_token"])
    client = httpx.AsyncClient(
        base_url=base_url,
        timeout=HTTP_TIMEOUT_S,
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(
            max_connections=connections_max, max_keepalive_connections=connections_max
        ),
    )
    return client, token


async def provision(
    target: Target,
    agents: list[Agent],
    run_id: str,
    config: TradingConfig,
    acked: Acked,
    connections_max: int,
) -> Provisioned:
    admin, admin_token = await client_for(
        target.base_url,
        target.admin_client_id,
        target.admin_client_secret,
        "read write admin",
        connections_max,
    )
    application = _expect(
        await admin.post(
            "/o/apps/",
            json={"name": f"sim-{run_id}", "scopes": "read write", "new_partner": True},
        ),
        201,
        "a partner",
    )
    partner, partner_token = await client_for(
        target.base_url,
        str(application["client_id"]),
        str(application["client_secret"]),
        "read write",
        connections_max,
    )
    provisioned = Provisioned(
        admin, partner, str(application["partner_id"]), admin_token, partner_token
    )
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(agent: Agent) -> None:
        async with limit:
            wallet = _expect(
                await partner.post(
                    "/wallets/",
                    json={"name": agent.name, "external_id": f"sim-{run_id}-{agent.name}"},
                ),
                201,
                f"wallet of {agent.name}",
            )
            agent.wallet_id = str(wallet["wallet_id"])
            for currency, amount in agent.population.funds.items():
                tid = f"sim-{run_id}-{agent.name}-funds-{currency}"
                deposit = _expect(
                    await admin.post(
                        "/management/v2/deposits/new",
                        json={
                            "uid": agent.wallet_id,
                            "currency": currency,
                            "amount": amount,
                            "tid": tid,
                            "state": "accepted",
                        },
                    ),
                    201,
                    f"funds of {agent.name}",
                )
                minor = int(Decimal(amount).scaleb(config.currencies[currency].decimals))
                acked.deposit(tid, agent.wallet_id, currency, minor, int(str(deposit["id"])))
            if agent.population.edge == "mtf":
                credentials = _expect(
                    await partner.post(f"/wallets/{agent.wallet_id}/mtf-credentials/", json={}),
                    201,
                    f"MTF credentials of {agent.name}",
                )
                provisioned.mtf_credentials[agent.name] = (
                    int(str(credentials["client_id"])),
                    str(credentials["secret"]),
                )

    try:
        await asyncio.gather(*(one(agent) for agent in agents))
    except BaseException:
        await provisioned.close()
        raise
    return provisioned
