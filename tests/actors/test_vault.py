"""The Vault behaviour alone: admission, holds and the settlement of a fill."""

from __future__ import annotations

from strongroom.actors.messages import (
    Account,
    AccountCode,
    Admitted,
    DuplicateOrder,
    OrderKind,
    OrderRequest,
    Refused,
    Side,
    TimeInForce,
    Trade,
)
from strongroom.actors.vault import OPEN_ORDERS_MAX, Vault, settlement
from strongroom.config import DEFAULT

BTC_USDT = DEFAULT.markets["BTC-USDT"]


def request(order_id: int = 1, **changes: object) -> OrderRequest:
    fields: dict[str, object] = {
        "token": 1, "order_id": order_id, "wallet_id": "w", "market": "BTC-USDT",
        "side": Side.BUY, "kind": OrderKind.LIMIT, "price": 2_000_000, "quantity": 5,
        "stop_price": 0, "display_quantity": 0, "time_in_force": TimeInForce.GTC,
        "post_only": False, "external_id": None, "fingerprint": "a", "at_ns": 0,
    }  # fmt: skip
    fields.update(changes)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def test_buy_limit_holds_price_times_quantity_of_quote() -> None:
    admitted = Vault("w", DEFAULT).admit(request(), best_ask=None)
    assert isinstance(admitted, Admitted) and admitted.hold is not None
    assert admitted.hold.amount == 2_000_000 * 5  # 20,000.00 × 0.0005 BTC = 10 USDT
    assert admitted.hold.debit == Account(AccountCode.MAIN_COIN, "USDT", "w")
    assert admitted.hold.credit == Account(AccountCode.LOCKED_COIN, "USDT", "w")
    assert admitted.hold.hold_id == 1


def test_sell_holds_base_quantity() -> None:
    admitted = Vault("w", DEFAULT).admit(request(side=Side.SELL), best_ask=None)
    assert isinstance(admitted, Admitted) and admitted.hold is not None
    assert admitted.hold.amount == 5 * 10_000 and admitted.hold.debit.currency == "BTC"


def test_market_buy_holds_at_the_collar_above_the_best_ask() -> None:
    vault = Vault("w", DEFAULT)
    admitted = vault.admit(request(kind=OrderKind.MARKET, price=0), best_ask=1_000_000)
    assert isinstance(admitted, Admitted) and admitted.hold is not None
    assert admitted.order.price == 1_050_000
    assert admitted.hold.amount == 1_050_000 * 5
    nothing = vault.admit(request(2, kind=OrderKind.MARKET, price=0), best_ask=None)
    assert isinstance(nothing, Admitted) and nothing.hold is None and nothing.order.price == 0


def test_stop_market_buy_holds_at_the_collar_above_its_stop() -> None:
    admitted = Vault("w", DEFAULT).admit(
        request(kind=OrderKind.STOP_MARKET, price=0, stop_price=1_000_000), best_ask=None
    )
    assert isinstance(admitted, Admitted) and admitted.hold is not None
    assert admitted.hold.amount == 1_050_000 * 5


def test_external_id_repeats_are_recognised() -> None:
    vault = Vault("w", DEFAULT)
    assert isinstance(vault.admit(request(1, external_id="x"), None), Admitted)
    assert vault.admit(request(2, external_id="x"), None) == DuplicateOrder(1, True)
    assert vault.admit(request(3, external_id="x", fingerprint="b"), None) == DuplicateOrder(
        1, False
    )


def test_an_external_id_is_kept_when_the_order_ends_and_freed_when_it_was_refused() -> None:
    vault = Vault("w", DEFAULT)
    assert isinstance(vault.admit(request(1, external_id="x"), None), Admitted)
    vault.ended(1)  # filled or canceled: the id stays taken
    assert vault.admit(request(2, external_id="x"), None) == DuplicateOrder(1, True)
    assert isinstance(vault.admit(request(3, external_id="y"), None), Admitted)
    vault.refused(3)  # the ledger refused the hold: the order never existed
    assert 3 not in vault.open_orders
    assert isinstance(vault.admit(request(4, external_id="y"), None), Admitted)


def test_open_order_limit_and_passivation() -> None:
    vault = Vault("w", DEFAULT)
    for order_id in range(1, OPEN_ORDERS_MAX + 1):
        assert isinstance(vault.admit(request(order_id), None), Admitted)
    refused = vault.admit(request(OPEN_ORDERS_MAX + 1), None)
    assert isinstance(refused, Refused) and refused.code == "too_many_open_orders"
    assert not vault.idle
    for order_id in range(1, OPEN_ORDERS_MAX + 1):
        vault.ended(order_id)
    assert vault.idle


def test_terms_are_checked() -> None:
    vault = Vault("w", DEFAULT)
    cases = {
        "invalid_quantity": request(quantity=0),
        "invalid_price": request(price=0),
        "not_allowed": request(post_only=True, time_in_force=TimeInForce.IOC),
    }
    for code, bad in cases.items():
        outcome = vault.admit(bad, None)
        assert isinstance(outcome, Refused) and outcome.code == code
    assert vault.idle


def test_settlement_takes_fees_from_what_each_side_receives_rounded_down() -> None:
    trade = Trade(
        trade_id=1, price=2_000_001, quantity=3, taker_side=Side.BUY,
        maker_order_id=10, maker_wallet_id="seller", maker_remaining=0,
        taker_order_id=11, taker_wallet_id="buyer", taker_remaining=0,
    )  # fmt: skip
    postings = settlement(BTC_USDT, DEFAULT.currencies, DEFAULT.fees, trade)
    notional = 2_000_001 * 3  # µUSDT
    base = 3 * 10_000  # sat
    by_credit = {(p.credit.code, p.credit.wallet_id, p.credit.currency): p for p in postings}
    seller_fee = notional * 10 // 10_000  # maker
    buyer_fee = base * 20 // 10_000  # taker
    assert by_credit[AccountCode.MAIN_COIN, "seller", "USDT"].amount == notional - seller_fee
    assert by_credit[AccountCode.REVENUE_COIN, None, "USDT"].amount == seller_fee
    assert by_credit[AccountCode.MAIN_COIN, "buyer", "BTC"].amount == base - buyer_fee
    assert by_credit[AccountCode.REVENUE_COIN, None, "BTC"].amount == buyer_fee
    assert sum(p.amount for p in postings if p.debit.currency == "USDT") == notional
    assert all(p.hold_id in (10, 11) for p in postings)
