"""What every REST resource may use: configuration, pool, trading service, authority."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import falcon.asgi

from strongroom.config import TradingConfig
from strongroom.http.auth import Authority, Principal
from strongroom.http.feed import FeedThread
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.webhooks import Webhooks
from strongroom.identity.users import Users
from strongroom.service import Trading
from strongroom.wire.credentials import CredentialStore


@dataclass(slots=True)
class Readiness:
    database: bool = False
    listeners: dict[str, bool] = field(default_factory=dict)
    # The ports the listeners are bound to, so that a client given only the REST URL
    # (the simulation harness, say) finds the MTF gateway and the feed.
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.database and bool(self.listeners) and all(self.listeners.values())


@dataclass(slots=True)
class Services:
    config: TradingConfig
    pool: asyncpg.Pool
    trading: Trading
    authority: Authority
    wallet_owners: dict[str, str]
    mtf_credentials: CredentialStore
    feed: FeedThread
    users: Users
    webhooks: Webhooks
    # Key of the payment addresses' derivation (one address per payment), kept outside
    # the database like every other key derived from the data directory's.
    payment_address_key: bytes = b""
    readiness: Readiness = field(default_factory=Readiness)

    @property
    def feed_port(self) -> int:
        """The websocket feed's port (the web page at / connects to it)."""
        return self.feed.port

    def wallet_visible(self, principal: Principal, wallet_id: str) -> bool:
        if principal.user_id is not None:
            return wallet_id == principal.wallet_id
        owner = self.wallet_owners.get(wallet_id)
        return owner is not None and (principal.admin or owner == principal.partner_id)

    def require_wallet(self, req: falcon.asgi.Request, wallet_id: str) -> str:
        """The wallet id if the caller may use it; 404 otherwise (existence is not leaked)."""
        if not self.wallet_visible(req.context.principal, wallet_id):
            raise not_found(f"wallet {wallet_id}")
        return wallet_id

    def require_market(self, symbol: str) -> str:
        if symbol not in self.config.markets:
            raise not_found(f"market {symbol}")
        return symbol


def int_param(req: falcon.asgi.Request, name: str, default: int, low: int, high: int) -> int:
    text = req.get_param(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid(name, "must be an integer") from None
    if not low <= value <= high:
        raise invalid(name, f"must be between {low} and {high}")
    return value


def principal(req: falcon.asgi.Request) -> Principal:
    value = req.context.principal
    if value is None:
        raise Problem(401, "unauthorized", "authentication required")
    assert isinstance(value, Principal)
    return value
