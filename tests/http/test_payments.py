"""Payments (seed 001 "Payments", seed 000's merchant flow) end to end: invoices made over
REST, paid through the sandbox chain (`POST /sandbox/chain/incoming`), finished by the
custody worker, credited through the ledger, announced by signed webhooks.

Prices in EUR and USD convert at the reference rates (exact and independent of the
session's books). The rate from a book, its rounding up and `no_rate` run on a server of
this module's own, whose books hold only this module's orders; so does expiry: an
invoice lives at least a minute, so its deadline is moved into the past in the database
while the server runs, and the server restarted, which restores the payments from their
rows (as after any restart, an invoice whose deadline passed is expired at once). No clock
is faked and no testing knob exists in the server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from bip_utils import (  # type: ignore[import-untyped, unused-ignore]
    Base58Decoder,
    SegwitBech32Decoder,
)
from hypothesis import given
from hypothesis import strategies as st

from strongroom.http.resources.payments import (
    canonical_address,
    eip55,
    pay_amount_for,
    payment_address,
)
from strongroom.identity.vault_keys import validate_address
from tests.http.partners import (
    Received,
    Receiver,
    deliveries,
    eventually,
    hooked_partner,
    new_partner,
    partner_accepts,
)
from tests.ledger import check_ledger, database_url
from tests.server import ServerProcess
from tests.support import assert_problem, balances, deposit, new_wallet, order

EXACT = Context(prec=400)


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/payments/", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def incoming(
    client: httpx.Client, payment: dict[str, Any], amount: str, txid: str | None = None
) -> httpx.Response:
    return client.post(
        "/sandbox/chain/incoming",
        json={"address": payment["pay_address"], "currency": payment["currency"],
              "amount": amount, "txid": txid or uuid.uuid4().hex},
    )  # fmt: skip


def paid(client: httpx.Client, payment: dict[str, Any], amount: str, txid: str | None = None
         ) -> dict[str, Any]:  # fmt: skip
    response = incoming(client, payment, amount, txid)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["kind"] == "payment"
    payment: dict[str, Any] = answer["payment"]
    return payment


def status(client: httpx.Client, payment_id: str) -> dict[str, Any]:
    response = client.post("/payments/status/", json={"transaction_id": payment_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finished(client: httpx.Client, payment_id: str, final: str = "finished") -> dict[str, Any]:
    eventually(lambda: status(client, payment_id)["status"] == final, f"{payment_id} {final}")
    return status(client, payment_id)


def usdt(client: httpx.Client, wallet_id: str) -> str:
    return balances(client, wallet_id)["USDT"]["amount"]


# --------------------------------------------------------------------------- pure rules


@given(
    amount=st.integers(1, 10**15),
    source_decimals=st.integers(0, 8),
    target_decimals=st.integers(0, 8),
    rate=st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e6"), places=18),
)
def test_a_conversion_is_rounded_up_to_the_next_minor_unit(
    amount: int, source_decimals: int, target_decimals: int, rate: Decimal
) -> None:
    if rate <= 0:
        return
    exact = EXACT.multiply(Decimal(amount).scaleb(target_decimals - source_decimals), rate)
    found = pay_amount_for(amount, source_decimals, rate, target_decimals)
    assert found >= exact > found - 1  # never less than the price, never a unit more
    assert found == int(exact.to_integral_value(rounding=ROUND_CEILING))


@given(key=st.binary(max_size=64), payment_id=st.integers(1, 2**63 - 1))
def test_payment_addresses_are_valid_deterministic_and_per_payment(
    key: bytes, payment_id: int
) -> None:
    for chain in ("BTC", "ETH", "TRON"):
        address = payment_address(key, payment_id, chain)
        assert validate_address(chain, address) == (True, ""), (chain, address)
        assert address == payment_address(key, payment_id, chain)
        assert address != payment_address(key, payment_id + 1, chain)
        assert canonical_address(address) == address
    btc = payment_address(key, payment_id, "BTC")
    version, program = SegwitBech32Decoder.Decode("bc", btc)
    assert (version, len(program)) == (0, 20)  # P2WPKH
    assert bytes(Base58Decoder.CheckDecode(payment_address(key, payment_id, "TRON")))[0] == 0x41
    ethereum = payment_address(key, payment_id, "ETH")
    upper = "0x" + ethereum[2:].upper()
    assert canonical_address(ethereum.lower()) == canonical_address(upper) == ethereum
    assert canonical_address(btc.upper()) == btc


def test_eip55_is_the_standard_one() -> None:
    # EIP-55's own examples.
    for address in ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
                    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"):  # fmt: skip
        assert eip55(address[2:].lower()) == address


# --------------------------------------------------------------------------- paying


def test_paid_in_full_it_confirms_finishes_and_credits_exactly_pay_amount(
    admin: httpx.Client,
) -> None:
    wallet_id = new_wallet(admin, "merchant")
    payment = create(admin, amount="25.50", currency="USDTTRC20", price_currency="EUR",
                     wallet_id=wallet_id, order_id="order-1",
                     order_description="two mugs", customer_email="Payer@Example.com")  # fmt: skip
    assert payment["payment_id"].startswith("pay_")
    assert payment["transaction_id"] == payment["payment_id"]
    assert payment["status"] == "waiting" and payment["wallet_id"] == wallet_id
    assert (payment["currency"], payment["ledger_currency"], payment["chain"]) == (
        "USDTTRC20", "USDT", "TRON"
    )  # fmt: skip
    assert payment["pay_amount"] == "27.540000"  # 25.50 EUR at the reference rate 1.08
    assert (payment["price_amount"], payment["price_currency"]) == ("25.50", "EUR")
    assert (payment["order_id"], payment["order_description"]) == ("order-1", "two mugs")
    assert payment["received_amount"] == "0.000000" and payment["txids"] == []
    address = {"currency": "USDTTRC20", "address": payment["pay_address"]}
    checked = admin.post("/withdrawal/validate-address/", json=address)
    assert checked.json()["valid"] is True
    assert status(admin, payment["payment_id"]) == payment
    assert usdt(admin, wallet_id) == "0.000000"

    confirming = paid(admin, payment, "27.540000", "tx-full")
    assert confirming["status"] == "confirming" and confirming["txids"] == ["tx-full"]
    assert confirming["received_amount"] == "27.540000"
    assert usdt(admin, wallet_id) == "0.000000"  # credited when it finishes, not before
    done = finished(admin, payment["payment_id"])
    assert done["received_amount"] == "27.540000"
    assert usdt(admin, wallet_id) == "27.540000"
    # The coins are counted once: the txid again changes nothing, new coins are refused.
    assert paid(admin, payment, "27.540000", "tx-full") == done
    assert_problem(incoming(admin, payment, "1"), 409, "payment_closed")
    assert usdt(admin, wallet_id) == "27.540000"


def test_partly_paid_then_topped_up_it_finishes_with_the_sum_credited(
    admin: httpx.Client,
) -> None:
    wallet_id = new_wallet(admin, "merchant")
    payment = create(admin, amount="30", currency="USDTERC20", wallet_id=wallet_id)
    assert payment["pay_amount"] == "30.000000" and payment["price_currency"] == "USDTERC20"
    assert payment["chain"] == "ETH" and payment["pay_address"].startswith("0x")
    part = paid(admin, payment, "12.5", "tx-a")
    assert part["status"] == "partially_paid" and part["received_amount"] == "12.500000"
    assert paid(admin, payment, "12.5", "tx-a") == part  # the same transaction, again
    # Any spelling of the address reaches the payment; USDT names the coin too.
    again = admin.post("/sandbox/chain/incoming", json={
        "address": payment["pay_address"].lower(), "currency": "USDT", "amount": "7.5",
        "txid": "tx-b",
    })  # fmt: skip
    assert again.status_code == 200, again.text
    assert again.json()["payment"]["status"] == "partially_paid"
    topped = paid(admin, payment, "10.000001", "tx-c")
    assert topped["status"] == "confirming" and topped["txids"] == ["tx-a", "tx-b", "tx-c"]
    assert topped["received_amount"] == "30.000001"
    done = finished(admin, payment["payment_id"])
    assert done["received_amount"] == "30.000001"
    assert usdt(admin, wallet_id) == "30.000001"  # everything that arrived, once


def test_a_payment_without_wallet_is_credited_to_the_master_wallet(
    server: ServerProcess, admin: httpx.Client
) -> None:
    partner = new_partner(server, admin)
    master = partner.client.get("/user/me/").json()["master_wallet_id"]
    payment = create(partner.client, amount="10.00", currency="USDTTRC20", price_currency="USD")
    assert payment["wallet_id"] == master and payment["pay_amount"] == "10.000000"
    paid(admin, payment, "10")
    finished(partner.client, payment["payment_id"])
    assert usdt(partner.client, master) == "10.000000"
    other = new_partner(server, admin)  # another partner sees nothing of it
    missing = other.client.post("/payments/status/", json={"transaction_id": payment["payment_id"]})
    assert_problem(missing, 404, "not_found")
    assert other.client.get("/payments/").json()["total"] == 0


def test_the_coins_must_be_the_payments(admin: httpx.Client) -> None:
    payment = create(admin, amount="0.001", currency="BTC")
    for currency in ("ETH", "USDT", "USDTERC20"):
        body = {"address": payment["pay_address"], "currency": currency, "amount": "1",
                "txid": "tx"}  # fmt: skip
        response = admin.post("/sandbox/chain/incoming", json=body)
        assert (
            assert_problem(response, 422, "currency_mismatch")["errors"][0]["field"] == "currency"
        )
    too_precise = incoming(admin, payment, "0.000000001")
    assert_problem(too_precise, 422, "validation_error")
    assert status(admin, payment["payment_id"])["received_amount"] == "0.00000000"


# --------------------------------------------------------------------------- idempotency


def test_a_repeated_key_answers_the_first_payment_and_other_content_is_409(
    admin: httpx.Client,
) -> None:
    wallet_id = new_wallet(admin, "merchant")
    key = f"invoice-{uuid.uuid4().hex[:12]}"
    fields = {"amount": "20", "currency": "USDTTRC20", "wallet_id": wallet_id, "order_id": "o-1"}
    first = admin.post("/payments/", json=fields, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    paid(admin, first.json(), "5")
    repeat = admin.post("/payments/", json=fields, headers={"Idempotency-Key": key})
    assert repeat.status_code == 201, repeat.text
    assert repeat.json()["payment_id"] == first.json()["payment_id"]
    assert repeat.json()["status"] == "partially_paid"  # the first payment as it is now
    other = admin.post("/payments/", json={**fields, "amount": "21"},
                       headers={"Idempotency-Key": key})  # fmt: skip
    assert_problem(other, 409, "idempotency_conflict")
    # order_id is the partner's reference, not a key: the same one twice is two payments.
    second = create(admin, **fields)
    assert second["payment_id"] != first.json()["payment_id"]
    assert second["pay_address"] != first.json()["pay_address"]
    long_key = admin.post("/payments/", json=fields, headers={"Idempotency-Key": "k" * 65})
    assert assert_problem(long_key, 422)["errors"][0]["field"] == "Idempotency-Key"


# --------------------------------------------------------------------------- reads


def test_the_list_is_the_partners_own_newest_first_filtered_and_paged(
    server: ServerProcess, admin: httpx.Client
) -> None:
    partner = new_partner(server, admin)
    client = partner.client
    btc = create(client, amount="0.001", currency="BTC")
    eth = create(client, amount="0.01", currency="ETH")
    tron = create(client, amount="10", currency="USDTTRC20")
    erc = create(client, amount="20", currency="USDTERC20")
    paid(admin, tron, "1")
    listed = client.get("/payments/").json()
    assert listed["total"] == 4 and (listed["limit"], listed["offset"]) == (20, 0)
    order_of = [p["payment_id"] for p in listed["payments"]]
    assert order_of == [erc["payment_id"], tron["payment_id"], eth["payment_id"],
                        btc["payment_id"]]  # fmt: skip

    def ids(**params: str) -> list[str]:
        response = client.get("/payments/", params=params)
        assert response.status_code == 200, response.text
        return [p["payment_id"] for p in response.json()["payments"]]

    assert ids(status="partially_paid") == [tron["payment_id"]]
    assert ids(status="waiting") == [erc["payment_id"], eth["payment_id"], btc["payment_id"]]
    assert ids(status="finished") == []
    assert ids(currency="USDTTRC20") == [tron["payment_id"]]
    assert ids(currency="USDT") == [erc["payment_id"], tron["payment_id"]]
    assert ids(blockchain="TRX") == ids(blockchain="tron") == [tron["payment_id"]]
    assert ids(blockchain="eth") == [erc["payment_id"], eth["payment_id"]]
    assert ids(token="usdt", blockchain="ETH") == [erc["payment_id"]]
    assert ids(token="BTC") == [btc["payment_id"]]
    page = client.get("/payments/", params={"limit": 2, "offset": 1}).json()
    assert [p["payment_id"] for p in page["payments"]] == order_of[1:3] and page["total"] == 4
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "paid"},
                   {"currency": "DOGE"}, {"blockchain": "SOL"}, {"token": "EUR"}):  # fmt: skip
        field = next(iter(params))
        body = assert_problem(client.get("/payments/", params=params), 422)
        assert body["errors"][0]["field"] == field, body
    assert_problem(client.get("/payments/?status=waiting&status=expired"), 422)


def test_status_by_transaction_id(admin: httpx.Client) -> None:
    payment = create(admin, amount="10", currency="USDTTRC20")
    assert status(admin, payment["transaction_id"])["pay_address"] == payment["pay_address"]
    for unknown in ("pay_999999999999", "pay_0", "pay_x", "12", "wd_1", ""):
        response = admin.post("/payments/status/", json={"transaction_id": unknown})
        assert response.status_code in (404, 422), response.text
        assert_problem(response, response.status_code)
        if unknown:
            assert response.status_code == 404
    assert_problem(admin.post("/payments/status/", json={"transaction_id": 5}), 422)
    assert_problem(admin.post("/payments/status/", json={}), 422)


def test_min_amount(admin: httpx.Client) -> None:
    answer = admin.get("/payments/min-amount/", params={"currency": "USDTTRC20"}).json()
    assert answer == {"currency": "USDTTRC20", "ledger_currency": "USDT", "chain": "TRON",
                      "blockchain": "TRX", "token": "USDT", "min_amount": "10.000000",
                      "max_amount": "100000.000000"}  # fmt: skip
    btc = admin.get("/payments/min-amount/", params={"currency": "BTC"}).json()
    assert (btc["min_amount"], btc["max_amount"], btc["blockchain"]) == (
        "0.00050000", "100.00000000", "BTC"
    )  # fmt: skip
    assert_problem(admin.get("/payments/min-amount/"), 422)
    assert_problem(admin.get("/payments/min-amount/", params={"currency": "USDT"}), 422,
                   "ambiguous_currency")  # fmt: skip
    assert_problem(admin.get("/payments/min-amount/", params={"currency": "DOGE"}), 422,
                   "unsupported_currency")  # fmt: skip


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"currency": "DOGE"}, "unsupported_currency", "currency"),
        ({"currency": "EUR"}, "unsupported_currency", "currency"),
        ({"currency": "USDT"}, "ambiguous_currency", "currency"),
        ({"amount": 100}, "validation_error", "amount"),
        ({"amount": "1e2"}, "validation_error", "amount"),
        ({"amount": "-10"}, "validation_error", "amount"),
        ({"amount": "0"}, "validation_error", "amount"),
        ({"amount": "10.0000001"}, "validation_error", "amount"),  # USDT has 6 decimals
        ({"amount": "10.001", "price_currency": "EUR"}, "validation_error", "amount"),
        ({"amount": "9.999999"}, "below_minimum", "amount"),
        ({"amount": "5", "price_currency": "USD"}, "below_minimum", "amount"),
        ({"amount": "100000.000001"}, "above_maximum", "amount"),
        ({"price_currency": "XYZ"}, "validation_error", "price_currency"),
        ({"expiry_minutes": 0}, "validation_error", "expiry_minutes"),
        ({"expiry_minutes": 1441}, "validation_error", "expiry_minutes"),
        ({"callback_url": "ftp://partner.example.com/"}, "validation_error", "callback_url"),
        ({"customer_email": "not an email"}, "validation_error", "customer_email"),
        ({"order_id": ""}, "validation_error", "order_id"),
        ({"is_fixed_rate": "yes"}, "validation_error", "is_fixed_rate"),
        ({"tip": "1"}, "validation_error", "tip"),
    ],
)
def test_bad_input_is_a_precise_422(
    admin: httpx.Client, fields: dict[str, Any], code: str, field: str
) -> None:
    body = {"amount": "10", "currency": "USDTTRC20", **fields}
    problem = assert_problem(admin.post("/payments/", json=body), 422, code)
    assert problem["errors"][0]["field"] == field, problem


def test_a_wallet_of_another_partner_or_none_is_404_and_scopes_hold(
    server: ServerProcess, admin: httpx.Client
) -> None:
    partner = new_partner(server, admin)
    foreign = new_wallet(admin, "not the partner's")
    body = {"amount": "10", "currency": "USDTTRC20", "wallet_id": foreign}
    assert_problem(partner.client.post("/payments/", json=body), 404, "not_found")
    unknown = {**body, "wallet_id": str(uuid.uuid4())}
    assert_problem(partner.client.post("/payments/", json=unknown), 404, "not_found")
    with server.client(scope="read") as reader:
        assert_problem(reader.post("/payments/", json=body), 403, "insufficient_scope")
        assert reader.get("/payments/").status_code == 200
        assert reader.get("/payments/min-amount/", params={"currency": "BTC"}).status_code == 200
    assert partner.client.get("/payments/").json()["total"] == 0  # nothing was made
    assert_problem(admin.post("/payments/", content=b"{", headers={
        "Content-Type": "application/json"}), 400, "malformed_json")  # fmt: skip


# --------------------------------------------------------------------------- webhooks


def payment_events(received: list[Received], payment_id: str) -> list[Received]:
    return [r for r in received if r.event["data"].get("payment_id") == payment_id]


def test_a_hooked_partner_receives_each_status_signed_and_in_order(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = hooked_partner(server, admin, receiver.url)
    wallet_id = new_wallet(partner.client, "shop")
    payment = create(partner.client, amount="40.00", currency="USDTTRC20",
                     price_currency="USD", wallet_id=wallet_id)  # fmt: skip
    payment_id = payment["payment_id"]

    def statuses() -> list[str]:
        return [r.event["data"]["status"] for r in payment_events(receiver.snapshot(), payment_id)]

    eventually(lambda: statuses() == ["waiting"], "payment.waiting")
    paid(admin, payment, "15", "hook-a")
    eventually(lambda: statuses() == ["waiting", "partially_paid"], "payment.partially_paid")
    paid(admin, payment, "15", "hook-b")  # no new status: no event
    paid(admin, payment, "10", "hook-c")
    eventually(lambda: len(statuses()) == 4, "payment.confirming and payment.finished")
    assert statuses() == ["waiting", "partially_paid", "confirming", "finished"]
    events = payment_events(receiver.snapshot(), payment_id)
    assert all(partner_accepts(partner.secret, r) for r in events)
    assert [r.event["type"] for r in events] == [
        "payment.waiting", "payment.partially_paid", "payment.confirming", "payment.finished",
    ]  # fmt: skip
    assert len({r.headers["x-webhook-id"] for r in events}) == 4
    assert all(r.event["id"] == r.headers["x-webhook-id"] for r in events)
    last = events[-1].event["data"]
    assert last == status(partner.client, payment_id)
    assert last["received_amount"] == "40.000000" and last["txids"] == [
        "hook-a",
        "hook-b",
        "hook-c",
    ]
    assert usdt(partner.client, wallet_id) == "40.000000"
    eventually(lambda: len(deliveries(partner)) >= 4, "the deliveries are recorded")
    assert {d["url"] for d in deliveries(partner)} == {receiver.url}


def test_a_callback_url_per_payment_receives_that_payments_events(
    server: ServerProcess, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = hooked_partner(server, admin, receiver.url)
    own = Receiver().start()
    try:
        payment = create(partner.client, amount="10", currency="USDTTRC20",
                         callback_url=own.url)  # fmt: skip
        plain = create(partner.client, amount="11", currency="USDTTRC20")
        paid(admin, payment, "10")
        eventually(
            lambda: len(payment_events(own.snapshot(), payment["payment_id"])) == 3,
            "waiting, confirming and finished at the payment's own URL",
        )
        events = payment_events(own.snapshot(), payment["payment_id"])
        assert [r.event["type"] for r in events] == [
            "payment.waiting", "payment.confirming", "payment.finished",
        ]  # fmt: skip
        assert all(partner_accepts(partner.secret, r) for r in events)
        assert not payment_events(receiver.snapshot(), payment["payment_id"])
        eventually(lambda: bool(payment_events(receiver.snapshot(), plain["payment_id"])),
                   "the other payment's event at the partner's URL")  # fmt: skip
        assert not payment_events(own.snapshot(), plain["payment_id"])
    finally:
        own.stop()


# --------------------------------------------------------------------------- own server


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: its books hold only this module's orders, and its
    custody worker runs every 0.05 s."""
    process = ServerProcess(
        Path(tmp_path_factory.mktemp("payments")) / "data",
        ("--custody-interval-s", "0.05", "--payment-confirm-s", "0.2",
         "--chain-block-s", "0.05", "--chain-confirmations", "2"),
    )  # fmt: skip
    process.start()
    yield process
    process.close()


@pytest.fixture
def operator(shop: ServerProcess) -> Iterator[httpx.Client]:
    with shop.client() as client:
        yield client
    if shop.running:
        check_ledger(shop)


def test_priced_off_a_book_the_pay_amount_is_rounded_up_and_no_book_is_no_rate(
    operator: httpx.Client,
) -> None:
    no_book = operator.post("/payments/", json={"amount": "100.00", "currency": "BTC",
                                                "price_currency": "USD"})  # fmt: skip
    assert assert_problem(no_book, 422, "no_rate")["errors"][0]["field"] == "price_currency"
    buyer, seller = new_wallet(operator, "buyer"), new_wallet(operator, "seller")
    deposit(operator, buyer, "USDT", "1000")
    deposit(operator, seller, "BTC", "1")
    bid = order(operator, buyer, "BTC-USDT", side="buy", price="60123.45", quantity="0.0010")
    ask = order(operator, seller, "BTC-USDT", side="sell", price="60456.78", quantity="0.0010")
    try:
        published = operator.get("/rates/", params={"currency_from": "USD", "currency_to": "BTC",
                                                    "amount": "100.00"}).json()  # fmt: skip
        mid = (Decimal("60123.45") + Decimal("60456.78")) / 2
        rate = Context(prec=18).divide(Decimal(1), mid)  # USD = USDT by reference, then 1/mid
        assert Decimal(published["rate"]) == rate
        payment = create(operator, amount="100.00", currency="BTC", price_currency="USD")
        exact = EXACT.multiply(Decimal(10_000).scaleb(6), rate)  # 100.00 USD in satoshis
        assert exact != exact.to_integral_value()  # the rounding matters here
        up = int(exact.to_integral_value(rounding=ROUND_CEILING))
        assert Decimal(payment["pay_amount"]) == Decimal(up).scaleb(-8)
        down = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        assert Decimal(published["estimated_amount"]) == Decimal(down).scaleb(-8)  # rates: down
        priced_in_coin = operator.post("/payments/", json={"amount": "0.000000001",
                                                           "currency": "BTC"})  # fmt: skip
        assert_problem(priced_in_coin, 422, "validation_error")  # exact in the coin: no rounding
    finally:
        for placed in (bid, ask):
            operator.delete(f"/orders/{placed['id']}/")


async def move_deadlines_into_the_past(url: str, payment_ids: list[int]) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "UPDATE payments SET expires_at = now() - interval '1 second'"
            " WHERE payment_id = ANY($1::bigint[])",
            payment_ids,
        )
    finally:
        await connection.close()


def test_an_expired_invoice_cannot_be_paid_and_keeps_what_arrived_before(
    shop: ServerProcess, operator: httpx.Client
) -> None:
    wallet_id = new_wallet(operator, "merchant")
    unpaid = create(operator, amount="50", currency="USDTTRC20", wallet_id=wallet_id,
                    expiry_minutes=1)  # fmt: skip
    part = create(operator, amount="50", currency="USDTTRC20", wallet_id=wallet_id)
    full = create(operator, amount="50", currency="USDTTRC20", wallet_id=wallet_id)
    paid(operator, part, "20", "before")
    paid(operator, full, "50", "in-full")
    finished(operator, full["payment_id"])
    numbers = [int(p["payment_id"].removeprefix("pay_")) for p in (unpaid, part)]
    asyncio.run(move_deadlines_into_the_past(database_url(shop), numbers))
    assert shop.stop() == 0
    shop.start()
    with shop.client() as client:
        expired = finished(client, unpaid["payment_id"], "expired")
        assert expired["received_amount"] == "0.000000"
        finished(client, part["payment_id"], "expired")
        assert usdt(client, wallet_id) == "70.000000"  # the partial 20 and the full 50
        for payment in (unpaid, part):
            late = incoming(client, payment, "50", "too-late")
            assert_problem(late, 422, "payment_expired")
        assert paid(client, part, "20", "before")["status"] == "expired"  # counted: unchanged
        assert usdt(client, wallet_id) == "70.000000"  # nothing more credited
        listed = client.get("/payments/", params={"status": "expired"}).json()
        assert {p["payment_id"] for p in listed["payments"]} >= {
            unpaid["payment_id"], part["payment_id"]
        }  # fmt: skip
    check_ledger(shop)
