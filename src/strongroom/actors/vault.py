"""The Vault behaviour: one wallet's consistency boundary for its orders and money.

A vault admits an order only if the wallet's own rules allow it (client order id not
seen before, open-order limit, sane terms) and says which funds the ledger must hold
before the order may reach its book. Once the book has matched, `settlement` gives the
postings that move a fill's money, with the maker/taker fees of SPEC §2.
"""

from __future__ import annotations

from collections.abc import Mapping

from strongroom.actors.messages import (
    Account,
    AccountCode,
    Admitted,
    BookOrder,
    DuplicateOrder,
    OrderKind,
    OrderRequest,
    Posting,
    Refused,
    Side,
    TimeInForce,
    Trade,
)
from strongroom.config import BASIS_POINTS, Currency, Fees, Market, TradingConfig

OPEN_ORDERS_MAX = 1_000
EXTERNAL_IDS_MAX = 100_000


# Member accounts are asked for on every order and fill: reuse the immutable objects.
_MEMBER_ACCOUNTS_MAX = 200_000
_member_accounts: dict[tuple[str, str, bool], Account] = {}


def _member_account(currency: Currency, wallet_id: str, locked: bool) -> Account:
    key = (currency.code, wallet_id, locked)
    account = _member_accounts.get(key)
    if account is None:
        if len(_member_accounts) >= _MEMBER_ACCOUNTS_MAX:
            _member_accounts.clear()
        fiat = currency.kind == "fiat"
        if locked:
            code = AccountCode.LOCKED_FIAT if fiat else AccountCode.LOCKED_COIN
        else:
            code = AccountCode.MAIN_FIAT if fiat else AccountCode.MAIN_COIN
        account = _member_accounts[key] = Account(code, currency.code, wallet_id)
    return account


def main_account(currency: Currency, wallet_id: str) -> Account:
    return _member_account(currency, wallet_id, False)


def locked_account(currency: Currency, wallet_id: str) -> Account:
    return _member_account(currency, wallet_id, True)


def asset_account(currency: Currency) -> Account:
    code = AccountCode.ASSET_FIAT if currency.kind == "fiat" else AccountCode.ASSET_COIN
    return Account(code, currency.code)


def revenue_account(currency: Currency) -> Account:
    code = AccountCode.REVENUE_FIAT if currency.kind == "fiat" else AccountCode.REVENUE_COIN
    return Account(code, currency.code)


def collar_cap(price: int, collar_bps: int) -> int:
    """The highest buy price within the collar above `price`, in whole ticks (rounded down)."""
    return price * (BASIS_POINTS + collar_bps) // BASIS_POINTS


class Vault:
    """Per-wallet admission: no I/O, no clock; state is the wallet's live orders."""

    __slots__ = ("_config", "_external_ids", "_external_of", "open_orders", "wallet_id")

    def __init__(self, wallet_id: str, config: TradingConfig) -> None:
        self.wallet_id = wallet_id
        self._config = config
        self.open_orders: dict[int, str] = {}  # order id → market
        self._external_ids: dict[str, tuple[int, str]] = {}
        self._external_of: dict[int, str] = {}  # open order id → its external id

    @property
    def idle(self) -> bool:
        """Nothing live: the vault can be passivated and rebuilt empty later."""
        return not self.open_orders

    def admit(
        self, request: OrderRequest, best_ask: int | None
    ) -> Admitted | Refused | DuplicateOrder:
        if request.external_id is not None:
            seen = self._external_ids.get(request.external_id)
            if seen is not None:
                return DuplicateOrder(seen[0], seen[1] == request.fingerprint)
        market = self._config.markets.get(request.market)
        if market is None:
            return Refused("unknown_market", f"no market {request.market}")
        if len(self.open_orders) >= OPEN_ORDERS_MAX:
            return Refused("too_many_open_orders", f"at most {OPEN_ORDERS_MAX} open orders")
        refusal = _check_terms(request)
        if refusal is not None:
            return refusal
        order = BookOrder(
            order_id=request.order_id,
            wallet_id=self.wallet_id,
            side=request.side,
            kind=request.kind,
            price=self._book_price(request, best_ask),
            quantity=request.quantity,
            stop_price=request.stop_price,
            display_quantity=request.display_quantity,
            time_in_force=request.time_in_force,
            post_only=request.post_only,
        )
        hold = self._hold(market, order)
        self.open_orders[request.order_id] = request.market
        if request.external_id is not None:
            if len(self._external_ids) >= EXTERNAL_IDS_MAX:
                self._external_ids.pop(next(iter(self._external_ids)))
            self._external_ids[request.external_id] = (request.order_id, request.fingerprint)
            self._external_of[request.order_id] = request.external_id
        return Admitted(request, order, hold)

    def ended(self, order_id: int) -> None:
        self.open_orders.pop(order_id, None)
        self._external_of.pop(order_id, None)

    def refused(self, order_id: int) -> None:
        """The ledger refused the order before any book saw it: it never existed, so its
        external id is free again (a retry after a deposit is a new order)."""
        self.open_orders.pop(order_id, None)
        external_id = self._external_of.pop(order_id, None)
        if external_id is not None and self._external_ids.get(external_id, (0,))[0] == order_id:
            del self._external_ids[external_id]

    def _book_price(self, request: OrderRequest, best_ask: int | None) -> int:
        """For market-type buys, the price cap the held funds will cover."""
        if request.side is Side.SELL and request.kind in (OrderKind.MARKET, OrderKind.STOP_MARKET):
            return 0
        collar_bps = self._config.fees.market_collar_bps
        if request.kind is OrderKind.MARKET:
            return 0 if best_ask is None else collar_cap(best_ask, collar_bps)
        if request.kind is OrderKind.STOP_MARKET:
            return collar_cap(request.stop_price, collar_bps)
        return request.price

    def _hold(self, market: Market, order: BookOrder) -> Posting | None:
        currency_code, amount = hold_needed(market, order.side, order.price, order.quantity)
        if amount == 0:
            return None
        currency = self._config.currencies[currency_code]
        return Posting(
            main_account(currency, self.wallet_id),
            locked_account(currency, self.wallet_id),
            amount,
            order.order_id,
        )


def hold_needed(market: Market, side: Side, price: int, lots: int) -> tuple[str, int]:
    """What an order of `lots` at `price` must have held: quote for a buy, base for a sell."""
    if side is Side.BUY:
        return market.quote, market.quote_minor(price, lots)
    return market.base, market.base_minor(lots)


def _check_terms(request: OrderRequest) -> Refused | None:
    kind = request.kind
    if request.quantity <= 0:
        return Refused("invalid_quantity", "quantity must be greater than zero")
    display = request.display_quantity
    if display < 0 or (display and display >= request.quantity):
        return Refused("invalid_quantity", "display_quantity must be below quantity")
    if kind in (OrderKind.LIMIT, OrderKind.STOP_LIMIT) and request.price <= 0:
        return Refused("invalid_price", "price is required for limit orders")
    if kind in (OrderKind.MARKET, OrderKind.STOP_MARKET) and request.price != 0:
        return Refused("invalid_price", "market orders take no price")
    if kind in (OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET) and request.stop_price <= 0:
        return Refused("invalid_price", "stop_price is required for stop orders")
    if kind in (OrderKind.LIMIT, OrderKind.MARKET) and request.stop_price != 0:
        return Refused("invalid_price", "stop_price is only for stop orders")
    if request.post_only and (
        kind is not OrderKind.LIMIT or request.time_in_force != TimeInForce.GTC
    ):
        return Refused("not_allowed", "post_only applies to GTC limit orders only")
    if request.display_quantity and kind is not OrderKind.LIMIT:
        return Refused("not_allowed", "display_quantity applies to limit orders only")
    return None


def settlement(
    market: Market,
    currencies: Mapping[str, Currency],
    fees: Fees,
    trade: Trade,
) -> tuple[Posting, ...]:
    """The postings of one fill: each side pays from its hold, fees come off what it receives.

    A fee is the received amount × its rate, rounded down to the minor unit.
    """
    base, quote = currencies[market.base], currencies[market.quote]
    if trade.taker_side is Side.BUY:
        buyer, buyer_order, buyer_bps = trade.taker_wallet_id, trade.taker_order_id, fees.taker_bps
        seller, seller_order, seller_bps = (
            trade.maker_wallet_id,
            trade.maker_order_id,
            fees.maker_bps,
        )
    else:
        buyer, buyer_order, buyer_bps = trade.maker_wallet_id, trade.maker_order_id, fees.maker_bps
        seller, seller_order, seller_bps = (
            trade.taker_wallet_id,
            trade.taker_order_id,
            fees.taker_bps,
        )
    notional = market.quote_minor(trade.price, trade.quantity)
    base_amount = market.base_minor(trade.quantity)
    seller_fee = notional * seller_bps // BASIS_POINTS
    buyer_fee = base_amount * buyer_bps // BASIS_POINTS
    buyer_locked = locked_account(quote, buyer)
    seller_locked = locked_account(base, seller)
    postings = [
        Posting(buyer_locked, main_account(quote, seller), notional - seller_fee, buyer_order),
        Posting(seller_locked, main_account(base, buyer), base_amount - buyer_fee, seller_order),
    ]
    if seller_fee:
        postings.append(Posting(buyer_locked, revenue_account(quote), seller_fee, buyer_order))
    if buyer_fee:
        postings.append(Posting(seller_locked, revenue_account(base), buyer_fee, seller_order))
    return tuple(postings)
