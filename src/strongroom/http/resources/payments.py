"""Payments (invoices) of seed 001 "Payments" and seed 000's merchant flow, and the sandbox
chain that pays them (seed 004's "Create Incoming Test Transfer"). Partners only.

- `POST /payments/` (scope `write`) `{amount, currency, price_currency?, callback_url?,
  order_id?, order_description?, is_fixed_rate?, is_fee_paid_by_user?, customer_email?,
  wallet_id?, expiry_minutes?}` → 201, the payment (`custody.views.payment`), status
  `waiting`. `currency` is what the payer sends, a payment code (`BTC`, `ETH`,
  `USDTERC20`, `USDTTRC20`: coin and chain in one name; a coin that arrives by one chain
  only may be named by itself, `USDT` is a 422 `ambiguous_currency`). `price_currency`
  (default: the coin itself) is what `amount` counts: a configured currency (`USD`,
  `EUR`, `USDT`, `BTC`…) or a payment code. `wallet_id` (default: the partner's master
  wallet) is credited when the payment ends; another partner's wallet is a 404.
  `expiry_minutes` is 1 to 1440 (default 30).
- `GET /payments/?limit=20&offset=0&status=&currency=&blockchain=&token=` → `{payments,
  total, limit, offset}`: the partner's own, newest first. `currency` is a payment code
  or a ledger currency, `blockchain` one of BTC, ETH, TRX (TRON too), `token` the ledger
  currency (USDT); an unknown value is a 422, not an empty page.
- `POST /payments/status/` (scope `read`: it only reads) `{transaction_id: "pay_12"}` →
  the payment; an unknown id or another partner's is a 404.
- `GET /payments/min-amount/?currency=USDTTRC20` → `{currency, ledger_currency, chain,
  blockchain, token, min_amount, max_amount}`.
- `POST /sandbox/chain/incoming` (scope `admin`) `{address, currency, amount, txid}`:
  coins arrive at `address` in transaction `txid` (see below).

Amounts are decimal strings with at most the currency's decimals (more is a 422, never
rounded); answers have exactly that many places.

**pay_amount.** Priced in the coin itself (same ledger currency), `amount` must be exact
in the coin's decimals and is the pay_amount. Priced in anything else, `amount` (exact in
the price currency's decimals) is converted at the rate `GET /rates/` publishes (a book's
mid, inverted or crossed through USDT, fiat by reference rates: `strongroom.rates`), and
a result that does not land on the coin's minor unit is rounded UP to the next one: the
payer must never be asked for less than the price. No rate (an empty book without trades,
or no route) is a 422 `no_rate`. The pay_amount must be within the payment code's
limits, the same as its withdrawal rule's (`GET /payments/min-amount/`): a 422
`below_minimum` or `above_maximum` otherwise. The rate is fixed when the payment is made
(pay_amount never changes), whatever `is_fixed_rate` says; no fee is charged on a
payment, so `is_fee_paid_by_user` changes nothing either (both are accepted, as the seed
lists them, and are part of the request's content for idempotency). `customer_email`
must be a valid address; it is not kept (the payment has no field for it).

**pay_address.** Each payment has an address of its own on its code's chain, derived from
the server's payment-address key and the payment id: the first 20 bytes of
HMAC-SHA256(key, "payment:{id}") as a bech32 P2WPKH address (BTC), an EIP-55 address
(ETH, ERC-20) or a base58check address with version 0x41 (TRON). Nobody holds a private
key for it: it stands for the custodian's own receiving address in the simulated chain.

**Idempotency.** The `Idempotency-Key` header (1 to 64 characters) is the key; `order_id`
is the partner's reference only, not a key (two payments may share it). A repeat with the
same key and the same content answers the first payment as it is now (201); with other
content a 409 `idempotency_conflict`.

**Sandbox chain.** An `address` (ETH addresses in any case, BTC in either single case)
that is a payment's pay_address → the coins are that payment's (`Trading.payment_incoming`):
200 `{kind: "payment", payment}`, status `partially_paid` or `confirming` (then `finished`
after `--payment-confirm-s`, moved by the custody worker, which credits everything
received to the payment's wallet); a txid already counted → 200, unchanged; an expired
payment → 422 `payment_expired`; a finished one → 409 `payment_closed`. Else an address
that is a user vault's deposit address (`GET /users/me/deposit-keys`) → a deposit to that
vault's wallet, accepted at once, with tid `chain:{ledger currency}:{txid}`: 200 `{kind:
"deposit", deposit}`; the same txid again answers the same deposit (no second credit),
with another amount a 409 `idempotency_conflict`. Any other address is a 404. `currency`
must be the address's coin: the payment's code or its ledger currency, or for a deposit
address a coin that arrives at it (BTC at the BTC address; ETH, USDT or USDTERC20 at the
ETH address): else a 422 `currency_mismatch`. One transfer is at most 10^15 minor units.

Deposit addresses are derived from the vaults' public keys and not stored, so they are
found through an index this process derives from the `vaults` table, on first need and
then for the vaults made since (`DepositAddressIndex`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterable
from decimal import ROUND_CEILING, Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Annotated, Any, ClassVar

import asyncpg
import falcon
import falcon.asgi
import msgspec
from bip_utils import (  # type: ignore[import-untyped, unused-ignore]
    Base58Encoder,
    Kekkak256,
    SegwitBech32Encoder,
)

from strongroom.actors.messages import DepositState, Refused
from strongroom.config import Currency
from strongroom.custody import views
from strongroom.custody.desk import Known
from strongroom.custody.payments import Payment, PaymentStatus
from strongroom.custody.withdrawals import TXID_LENGTH_MAX, WithdrawalRule
from strongroom.http.body import read_json
from strongroom.http.context import Services, int_param, principal
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.representations import deposit_json
from strongroom.http.resources.rates import NoRate, Pricer, single_param
from strongroom.http.resources.withdrawal_info import WithdrawalInfo
from strongroom.http.webhooks import CALLBACK_URL_LENGTH_MAX, validate_callback_url
from strongroom.identity import credentials, vault_keys
from strongroom.identity.errors import InvalidEmail, UnsupportedCurrency
from strongroom.identity.vault_keys import BITCOIN, ETHEREUM, TRON
from strongroom.money import format_minor, parse_amount
from strongroom.persistence import repositories
from strongroom.persistence.recovery import payment_from_row

CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
AmountText = Annotated[str, msgspec.Meta(max_length=64)]
WalletId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
OrderDescription = Annotated[str, msgspec.Meta(max_length=500)]
Email = Annotated[str, msgspec.Meta(max_length=320)]
CallbackUrl = Annotated[str, msgspec.Meta(max_length=CALLBACK_URL_LENGTH_MAX)]
ExpiryMinutes = Annotated[int, msgspec.Meta(ge=1, le=1440)]
TransactionId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=vault_keys.ADDRESS_LENGTH_MAX)]
Txid = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=TXID_LENGTH_MAX, pattern=r"^[A-Za-z0-9._:-]+$"),
]

EXPIRY_MINUTES_DEFAULT = 30
MINUTE_NS = 60 * 1_000_000_000
IDEMPOTENCY_KEY_LENGTH_MAX = 64
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
OFFSET_MAX = 10**9
KNOWN_WAIT_S = 5.0  # a repeat answered before its first payment's row is readable
ADDRESS_BYTES = 20
# One simulated transfer at most (minor units): sums of them stay far inside a bigint.
INCOMING_AMOUNT_MAX = 10**15
# The chains' names as seed 001 writes them (`"blockchain": "TRX"`); TRON is accepted too.
BLOCKCHAIN_NAMES = {BITCOIN: "BTC", ETHEREUM: "ETH", TRON: "TRX"}
BLOCKCHAIN_FILTERS = {**{name: chain for chain, name in BLOCKCHAIN_NAMES.items()}, TRON: TRON}
READ_ONLY: dict[str, str] = {"POST": "read"}
ADMIN_ONLY: dict[str, str] = {"POST": "admin"}

# A conversion's product, exactly: far more digits than any amount times any rate has.
_EXACT = Context(prec=400, traps=[Inexact, InvalidOperation, Overflow])


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    amount: AmountText
    currency: CurrencyCode
    price_currency: CurrencyCode | None = None
    callback_url: CallbackUrl | None = None
    order_id: OrderId | None = None
    order_description: OrderDescription | None = None
    is_fixed_rate: bool = True
    is_fee_paid_by_user: bool = False
    customer_email: Email | None = None
    wallet_id: WalletId | None = None
    expiry_minutes: ExpiryMinutes = EXPIRY_MINUTES_DEFAULT


class PaymentStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    transaction_id: TransactionId


class ChainIncomingIn(msgspec.Struct, forbid_unknown_fields=True):
    address: Address
    currency: CurrencyCode
    amount: AmountText
    txid: Txid


OPERATIONS: tuple[tuple[str, str, str, int], ...] = (
    (
        "/payments/",
        "post",
        "Create a payment (invoice) {amount, currency, price_currency?, wallet_id?, …}:"
        " its own pay_address, pay_amount at the rate (rounded up), status waiting",
        201,
    ),
    ("/payments/", "get", "Your payments, newest first (status, currency, blockchain, token)", 200),
    ("/payments/status/", "post", "A payment by its transaction_id (pay_N)", 200),
    ("/payments/min-amount/", "get", "A payment currency's minimum and maximum amount", 200),
    (
        "/sandbox/chain/incoming",
        "post",
        "Simulate coins arriving on chain {address, currency, amount, txid}: a payment"
        " advances, or a vault's deposit is credited once per txid (admin)",
        200,
    ),
)
REQUESTS: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("/payments/", "post"): PaymentIn,
    ("/payments/status/", "post"): PaymentStatusIn,
    ("/sandbox/chain/incoming", "post"): ChainIncomingIn,
}


def routes(services: Services) -> list[tuple[str, object]]:
    info = WithdrawalInfo(services)  # the payment codes are the withdrawal codes
    payments = Payments(services, info)
    return [
        ("/payments/", PaymentsResource(payments)),
        ("/payments/status/", PaymentStatusResource(payments)),
        ("/payments/min-amount/", MinAmountResource(payments)),
        ("/sandbox/chain/incoming", ChainIncomingResource(payments, DepositAddressIndex())),
    ]


# --------------------------------------------------------------------------- pure rules


def pay_amount_for(amount: int, source_decimals: int, rate: Decimal, target_decimals: int) -> int:
    """`amount` minor units of the source at `rate`, in minor units of the target,
    rounded UP: the smallest whole number of minor units worth at least the amount."""
    if amount <= 0 or not rate > 0:
        raise ValueError("amount and rate are positive")
    scaled = Decimal(amount).scaleb(target_decimals - source_decimals, _EXACT)
    exact = _EXACT.multiply(scaled, rate)
    return int(exact.to_integral_value(rounding=ROUND_CEILING, context=_EXACT))


def eip55(digits: str) -> str:
    """`0x` and the 40 hex digits with EIP-55's checksum case (keccak of the lower case)."""
    lower = digits.lower()
    digest = Kekkak256.QuickDigest(lower.encode("ascii")).hex()
    return "0x" + "".join(
        character.upper() if int(nibble, 16) >= 8 else character
        for character, nibble in zip(lower, digest, strict=False)
    )


def payment_address(key: bytes, payment_id: int, chain: str) -> str:
    """The pay_address of payment `payment_id` on `chain` (see the module's docstring)."""
    body = hmac.new(key, f"payment:{payment_id}".encode(), hashlib.sha256).digest()
    body = body[:ADDRESS_BYTES]
    if chain == BITCOIN:
        return str(SegwitBech32Encoder.Encode("bc", 0, body))
    if chain == ETHEREUM:
        return eip55(body.hex())
    if chain == TRON:
        return str(Base58Encoder.CheckEncode(bytes([0x41]) + body))
    raise ValueError(f"no payment addresses on chain {chain!r}")


def canonical_address(text: str) -> str:
    """One spelling of an address that may be written several ways: an Ethereum address in
    a single case gets its EIP-55 case, a bech32 address in upper case is lowered."""
    if text.startswith("0x") and len(text) == 42:
        digits = text[2:]
        if all(c in "0123456789abcdefABCDEF" for c in digits) and digits in (
            digits.lower(),
            digits.upper(),
        ):
            return eip55(digits)
        return text
    if text.startswith("BC1") and text == text.upper():
        return text.lower()
    return text


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# --------------------------------------------------------------------------- shared


class Payments:
    """What the resources share: the codes' rules, currency resolution, reads."""

    def __init__(self, services: Services, info: WithdrawalInfo) -> None:
        self.services = services
        self.info = info

    def currency(self, code: str) -> Currency:
        return self.services.config.currencies[code]

    def describe(self, rule: WithdrawalRule) -> dict[str, Any]:
        return {
            **self.info.describe(rule),
            "blockchain": BLOCKCHAIN_NAMES.get(rule.chain, rule.chain),
            "token": rule.currency,
        }

    def price_currency(self, text: str) -> Currency:
        """A configured currency, or the ledger currency of a payment code."""
        found = self.services.config.currencies.get(text)
        if found is not None:
            return found
        for rule in self.info.rules:
            if rule.code == text:
                return self.currency(rule.currency)
        raise invalid("price_currency", f"unknown currency {text[:16]!r}")

    def view(self, payment: Payment) -> dict[str, Any]:
        return views.payment(payment, self.services.config.currencies)

    async def row(self, payment_id: int, partner_id: str | None = None) -> Payment | None:
        query = "SELECT * FROM payments WHERE payment_id = $1"
        if partner_id is None:
            row = await self.services.pool.fetchrow(query, payment_id)
        else:
            row = await self.services.pool.fetchrow(query + " AND partner_id = $2",
                                                    payment_id, partner_id)  # fmt: skip
        return None if row is None else payment_from_row(row)

    async def committed(self, payment_id: int) -> Payment:
        """The first payment of a repeated key, once its row is readable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KNOWN_WAIT_S
        while True:
            found = await self.row(payment_id)
            if found is not None:
                return found
            if loop.time() > deadline:
                raise Problem(503, "service_unavailable", "the first request is still in progress")
            await asyncio.sleep(0.02)


REFUSALS = {"payment_expired": 422, "payment_closed": 409, "not_found": 404}


def refusal(reply: Refused) -> Problem:
    """A desk's refusal as a problem (`idempotency_conflict` and the rest: 409)."""
    return Problem(REFUSALS.get(reply.code, 409), reply.code, reply.detail)


# --------------------------------------------------------------------------- payments


class PaymentsResource:
    """POST and GET /payments/ (see the module's docstring)."""

    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        payments, services = self.payments, self.payments.services
        caller = principal(req)
        body = await read_json(req, PaymentIn)
        key = req.get_header("Idempotency-Key")
        if key is not None and not 0 < len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
            raise invalid(
                "Idempotency-Key", f"must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters"
            )
        rule = payments.info.rule(body.currency)
        coin = payments.currency(rule.currency)
        price = payments.price_currency(body.price_currency or rule.code)
        price_text = body.price_currency or rule.code
        price_amount = parse_amount("amount", body.amount, price.decimals)
        callback_url = None
        if body.callback_url is not None:
            callback_url = validate_callback_url(body.callback_url)
        email = None
        if body.customer_email is not None:
            try:
                email = credentials.normalize_email(body.customer_email)
            except InvalidEmail as error:
                raise invalid("customer_email", str(error)) from None
        if body.wallet_id is None:
            wallet_id = await repositories.master_wallet(services.pool, caller.partner_id)
            services.wallet_owners[wallet_id] = caller.partner_id
        else:
            wallet_id = services.require_wallet(req, body.wallet_id)
        pay_amount = await self._pay_amount(price_amount, price, coin)
        self._check_limits(rule, coin, pay_amount)
        content = fingerprint(
            wallet_id, rule.code, price_text, price_amount, callback_url, body.order_id,
            body.order_description, body.is_fixed_rate, body.is_fee_paid_by_user, email,
            body.expiry_minutes,
        )  # fmt: skip
        payment_id = services.trading.new_order_id()
        at_ns = services.trading.clock_ns()
        payment = Payment(
            payment_id=payment_id,
            partner_id=caller.partner_id,
            wallet_id=wallet_id,
            code=rule.code,
            currency=rule.currency,
            chain=rule.chain,
            pay_address=payment_address(services.payment_address_key, payment_id, rule.chain),
            pay_amount=pay_amount,
            price_amount=format_minor(price_amount, price.decimals),
            price_currency=price_text,
            status=PaymentStatus.WAITING,
            expires_ns=at_ns + body.expiry_minutes * MINUTE_NS,
            created_ns=at_ns,
            updated_ns=at_ns,
            order_id=body.order_id,
            order_description=body.order_description,
            key=key,
            fingerprint=content,
            callback_url=callback_url,
        )
        reply = await services.trading.create_payment(payment)
        if isinstance(reply, Refused):
            raise refusal(reply)
        if isinstance(reply, Known):
            reply = await payments.committed(reply.entity_id)
        resp.status = falcon.HTTP_201
        resp.media = payments.view(reply)

    async def _pay_amount(self, amount: int, price: Currency, coin: Currency) -> int:
        if price.code == coin.code:
            return amount  # exact by parse_amount: more decimals than the coin's was a 422
        try:
            rate = await Pricer(self.payments.services).rate(price.code, coin.code)
        except NoRate as error:
            raise invalid("price_currency", error.detail, code="no_rate") from None
        return pay_amount_for(amount, price.decimals, rate, coin.decimals)

    @staticmethod
    def _check_limits(rule: WithdrawalRule, coin: Currency, pay_amount: int) -> None:
        def text(amount: int) -> str:
            return f"{format_minor(amount, coin.decimals)} {coin.code}"

        if pay_amount < rule.amount_min:
            raise invalid(
                "amount",
                f"pays {text(pay_amount)}, below the minimum {text(rule.amount_min)}",
                code="below_minimum",
            )
        if pay_amount > rule.amount_max:
            raise invalid(
                "amount",
                f"pays {text(pay_amount)}, above the maximum {text(rule.amount_max)}",
                code="above_maximum",
            )

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        limit = int_param(req, "limit", LIST_LIMIT_DEFAULT, 1, LIST_LIMIT_MAX)
        offset = int_param(req, "offset", 0, 0, OFFSET_MAX)
        conditions, arguments = ["partner_id = $1"], [caller.partner_id]

        def where(condition: str, value: str) -> None:
            arguments.append(value)
            conditions.append(condition.format(f"${len(arguments)}"))

        status = single_param(req, "status")
        if status is not None:
            if status not in set(PaymentStatus):
                raise invalid("status", f"must be one of {', '.join(PaymentStatus)}")
            where("status = {}", status)
        rules = list(self.payments.info.rules)
        currency = single_param(req, "currency")
        if currency is not None:
            if currency in {rule.code for rule in rules}:
                where("code = {}", currency)
            elif currency in {rule.currency for rule in rules}:
                where("currency = {}", currency)
            else:
                raise invalid("currency", f"no payments in {currency[:16]!r}")
        blockchain = single_param(req, "blockchain")
        if blockchain is not None:
            chain = BLOCKCHAIN_FILTERS.get(blockchain.upper())
            if chain is None:
                names = ", ".join(BLOCKCHAIN_NAMES.values())
                raise invalid("blockchain", f"must be one of {names}")
            where("chain = {}", chain)
        token = single_param(req, "token")
        if token is not None:
            if token.upper() not in {rule.currency for rule in rules}:
                raise invalid("token", f"no payments in token {token[:16]!r}")
            where("currency = {}", token.upper())
        clause = " AND ".join(conditions)
        pool = self.payments.services.pool
        rows = await pool.fetch(
            f"SELECT * FROM payments WHERE {clause}"
            f" ORDER BY created_at DESC, payment_id DESC"
            f" LIMIT {limit} OFFSET {offset}",
            *arguments,
        )
        total = await pool.fetchval(f"SELECT count(*) FROM payments WHERE {clause}", *arguments)
        resp.media = {
            "payments": [self.payments.view(payment_from_row(row)) for row in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }


class PaymentStatusResource:
    """POST /payments/status/ (see the module's docstring)."""

    scopes: ClassVar[dict[str, str]] = READ_ONLY

    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        body = await read_json(req, PaymentStatusIn)
        payment_id = views.parse_public_id(views.PAYMENT_PREFIX, body.transaction_id)
        found = None
        if payment_id is not None:
            found = await self.payments.row(payment_id, caller.partner_id)
        if found is None:
            raise not_found(f"payment {body.transaction_id[:32]!r}")
        resp.media = self.payments.view(found)


class MinAmountResource:
    """GET /payments/min-amount/ (see the module's docstring)."""

    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        code = single_param(req, "currency")
        if code is None:
            raise invalid("currency", "is required")
        rule = self.payments.info.rule(code)
        decimals = self.payments.currency(rule.currency).decimals
        resp.media = {
            **self.payments.describe(rule),
            "min_amount": format_minor(rule.amount_min, decimals),
            "max_amount": format_minor(rule.amount_max, decimals),
        }


# --------------------------------------------------------------------------- sandbox chain


class DepositAddressIndex:
    """Deposit address → (wallet, chain) of every user vault, derived from the vaults'
    public keys (index 0, as `GET /users/me/deposit-keys` shows them). Vaults are never
    deleted and their keys never change, so what is indexed stays true; a lookup that
    misses derives the vaults made since, in a thread (about a millisecond a vault)."""

    def __init__(self) -> None:
        self._by_address: dict[str, tuple[str, str]] = {}
        self._vaults: set[str] = set()
        self._lock = asyncio.Lock()

    async def find(self, pool: asyncpg.Pool, address: str) -> tuple[str, str] | None:
        found = self._by_address.get(address)
        if found is not None:
            return found
        async with self._lock:
            rows = await pool.fetch(
                "SELECT v.vault_uuid, v.public_keys::text AS public_keys, u.wallet_id"
                " FROM vaults v JOIN users u USING (uid)"
                " WHERE NOT (v.vault_uuid = ANY($1::text[]))",
                list(self._vaults),
            )
            if rows:
                derived = await asyncio.to_thread(_derive, [tuple(row) for row in rows])
                self._by_address.update(derived)
                self._vaults.update(row["vault_uuid"] for row in rows)
        return self._by_address.get(address)


def _derive(rows: Iterable[tuple[Any, ...]]) -> dict[str, tuple[str, str]]:
    derived = {}
    for _, public_keys, wallet_id in rows:
        public = vault_keys.VaultPublic.from_dict(json.loads(public_keys))
        for coin, chain in ((BITCOIN, BITCOIN), (ETHEREUM, ETHEREUM)):
            derived[vault_keys.deposit_address(public, coin)] = (wallet_id, chain)
    return derived


class ChainIncomingResource:
    """POST /sandbox/chain/incoming (see the module's docstring)."""

    scopes: ClassVar[dict[str, str]] = ADMIN_ONLY

    def __init__(self, payments: Payments, deposit_addresses: DepositAddressIndex) -> None:
        self.payments = payments
        self.deposit_addresses = deposit_addresses

    def _coin(self, text: str) -> tuple[str, str | None]:
        """(ledger currency, chain or None for "the address's") of a code or a coin."""
        for rule in self.payments.info.rules:
            if rule.code == text:
                return rule.currency, rule.chain
        currency = self.payments.services.config.currencies.get(text)
        if currency is None or currency.kind != "coin":
            raise invalid("currency", f"no coin {text[:16]!r}", code="unsupported_currency")
        return currency.code, None

    def _amount(self, text: str, coin: str) -> int:
        amount = parse_amount("amount", text, self.payments.currency(coin).decimals)
        if amount > INCOMING_AMOUNT_MAX:
            raise invalid("amount", f"at most {INCOMING_AMOUNT_MAX} minor units a transfer")
        return amount

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, ChainIncomingIn)
        services = self.payments.services
        coin, chain = self._coin(body.currency)
        address = canonical_address(body.address)
        row = await services.pool.fetchrow("SELECT * FROM payments WHERE pay_address = $1",
                                           address)  # fmt: skip
        if row is not None:
            await self._pay(resp, payment_from_row(row), coin, chain, body)
            return
        owner = await self.deposit_addresses.find(services.pool, address)
        if owner is None:
            raise not_found(f"address {body.address[:100]!r}")
        wallet_id, address_chain = owner
        try:
            arrives_on = vault_keys.chain_of_currency(coin)
        except UnsupportedCurrency:
            arrives_on = None
        if arrives_on != address_chain or chain not in (None, address_chain):
            raise invalid(
                "currency",
                f"{body.currency} does not arrive at this {address_chain} deposit address",
                code="currency_mismatch",
            )
        amount = self._amount(body.amount, coin)
        reply = await services.trading.deposit(
            tid=f"chain:{coin}:{body.txid}",
            wallet_id=wallet_id,
            currency=coin,
            amount=amount,
            accept=True,
            fingerprint=fingerprint("chain", wallet_id, coin, amount, address),
        )
        if isinstance(reply, Refused):
            raise refusal(reply)
        assert isinstance(reply, DepositState)
        resp.media = {"kind": "deposit", "deposit": deposit_json(reply, services.config)}

    async def _pay(
        self,
        resp: falcon.asgi.Response,
        payment: Payment,
        coin: str,
        chain: str | None,
        body: ChainIncomingIn,
    ) -> None:
        if coin != payment.currency or chain not in (None, payment.chain):
            raise invalid(
                "currency",
                f"{body.currency} does not arrive at this {payment.code} payment address",
                code="currency_mismatch",
            )
        amount = self._amount(body.amount, coin)
        if body.txid not in payment.txids:  # a txid counted already changes nothing
            reply = await self.payments.services.trading.payment_incoming(
                payment.payment_id, body.txid, amount
            )
            if isinstance(reply, Refused):
                raise refusal(reply)
            payment = reply
        resp.media = {"kind": "payment", "payment": self.payments.view(payment)}
