"""The pure behaviours wired as the actors wire them, on one thread, for tests.

Vault → Clearing (ledger hold) → OrderBook → Clearing (settle) → vault, exactly the
hops of the pykka runtime, without threads or I/O.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from strongroom.actors.book import OrderBook
from strongroom.actors.clearing import Clearing
from strongroom.actors.ledger import Ledger
from strongroom.actors.messages import (
    Admitted,
    BookCommand,
    BookResults,
    CancelOrder,
    DepositRequest,
    JournalUnit,
    OrderKind,
    OrderRequest,
    PlaceOrder,
    Refused,
    ReplaceAdmitted,
    ReplaceOrder,
    ReplaceRequest,
    Reply,
    Side,
    TimeInForce,
)
from strongroom.actors.vault import Vault
from strongroom.config import DEFAULT, TradingConfig


class Pipeline:
    def __init__(self, config: TradingConfig = DEFAULT) -> None:
        self.config = config
        self.ledger = Ledger(config.currencies)
        self.clearing = Clearing(config, self.ledger)
        self.books = {
            symbol: OrderBook(market.market_id, collar_bps=config.fees.market_collar_bps)
            for symbol, market in config.markets.items()
        }
        self.vaults: dict[str, Vault] = {}
        self.units: list[JournalUnit] = []
        self.deposited: defaultdict[str, int] = defaultdict(int)
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)

    def vault(self, wallet_id: str) -> Vault:
        return self.vaults.setdefault(wallet_id, Vault(wallet_id, self.config))

    def deposit(self, wallet_id: str, currency: str, amount: int) -> Reply:
        outcome = self.clearing.deposit(
            DepositRequest(next(self._tokens), next(self._ids), f"tid-{next(self._ids)}",
                           wallet_id, currency, amount, True, "f", 0)
        )  # fmt: skip
        assert isinstance(outcome, JournalUnit)
        self.units.append(outcome)
        self.deposited[currency] += amount
        return outcome.replies[0][1]

    def place(
        self,
        wallet_id: str,
        side: Side,
        quantity: int,
        price: int = 0,
        *,
        market: str = "BTC-USDT",
        kind: OrderKind = OrderKind.LIMIT,
        stop_price: int = 0,
        display_quantity: int = 0,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        external_id: str | None = None,
    ) -> Reply:
        token = next(self._tokens)
        request = OrderRequest(
            token, next(self._ids), wallet_id, market, side, kind, price, quantity, stop_price,
            display_quantity, time_in_force, post_only, external_id, "fingerprint", 0,
        )  # fmt: skip
        admission = self.vault(wallet_id).admit(request, self.books[market].best_ask())
        if not isinstance(admission, Admitted):
            return admission
        refusal = self.clearing.admit(admission)
        if refusal is not None:
            self.vault(wallet_id).ended(request.order_id)
            return refusal
        return self._book(market, token, PlaceOrder(admission.order))

    def cancel(self, wallet_id: str, order_id: int) -> Reply:
        market = self.vault(wallet_id).open_orders.get(order_id)
        if market is None:
            return Refused("order_not_open", "")
        return self._book(market, next(self._tokens), CancelOrder(order_id, wallet_id))

    def replace(self, wallet_id: str, order_id: int, price: int, quantity: int) -> Reply:
        market = self.vault(wallet_id).open_orders.get(order_id)
        if market is None:
            return Refused("order_not_open", "")
        request = ReplaceRequest(next(self._tokens), wallet_id, order_id, price, quantity, 0)
        top_up = JournalUnit([], [], [], [], {}, [])
        refusal = self.clearing.admit_replace(ReplaceAdmitted(request, market), top_up)
        if top_up.transfers:
            self.units.append(top_up)
        if refusal is not None:
            return refusal
        command = ReplaceOrder(order_id, wallet_id, price, quantity)
        return self._book(market, request.token, command)

    def _book(self, market: str, token: int, command: BookCommand) -> Reply:
        book = self.books[market]
        events = tuple(book.handle(command))
        unit, ended = self.clearing.settle(
            BookResults(market, ((token, command, events),), book.sequence, 0)
        )
        self.units.append(unit)
        for wallet_id, order_id in ended:
            self.vault(wallet_id).ended(order_id)
        return unit.replies[0][1]
