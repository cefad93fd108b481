"""Public market data: markets, committed depth from the feed's market data, trades from the
journal."""

from __future__ import annotations

import falcon.asgi

from strongroom.actors.messages import Side
from strongroom.http.context import Services, int_param
from strongroom.http.representations import iso, market_json, price_text, quantity_text
from strongroom.money import format_minor
from strongroom.persistence import repositories

DEPTH_LIMIT_MAX = 1_000
TRADES_LIMIT_MAX = 1_000


class MarketsResource:
    public = True

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        config = self.services.config
        resp.media = [market_json(market, config) for market in config.markets.values()]


class DepthResource:
    public = True

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, market: str
    ) -> None:
        symbol = self.services.require_market(market)
        limit = int_param(req, "limit", 50, 1, DEPTH_LIMIT_MAX)
        sequence, bids, asks = await self.services.feed.depth(symbol, limit)
        spec = self.services.config.markets[symbol]
        resp.media = {
            "market": symbol,
            "sequence": sequence,
            "bids": [[price_text(spec, p), quantity_text(spec, q)] for p, q in bids],
            "asks": [[price_text(spec, p), quantity_text(spec, q)] for p, q in asks],
        }


class TradesResource:
    public = True

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, market: str
    ) -> None:
        symbol = self.services.require_market(market)
        limit = int_param(req, "limit", 100, 1, TRADES_LIMIT_MAX)
        spec = self.services.config.markets[symbol]
        quote_decimals = self.services.config.currencies[spec.quote].decimals
        rows = await repositories.trades(self.services.pool, symbol, limit)
        resp.media = [
            {
                "id": row["trade_id"],
                "price": price_text(spec, row["price"]),
                "quantity": quantity_text(spec, row["quantity"]),
                "funds": format_minor(
                    spec.quote_minor(row["price"], row["quantity"]), quote_decimals
                ),
                "taker_side": "buy" if row["taker_side"] == Side.BUY else "sell",
                "created_at": iso(row["created_at"]),
            }
            for row in rows
        ]
