"""Transfers between a partner's wallets (seed 001 "Wallets") and Secure Send (seed 000).

Partners (OAuth or API key; scope `write` to move money, `read` for the history):

- `POST /wallets/transfer-to-user/` `{wallet_id, currency, amount, callback_url?,
  external_id?}`: from the partner's master wallet to its sub-account `wallet_id` (a
  wallet or user vault of the partner's own, not the master itself).
- `POST /wallets/withdraw-to-master/`, the same body: from the sub-account to the master.

  Both answer **202** `{status: "accepted", transfer_id, message, transfer}` once the
  receipt (status `pending`, seed 004's RECEIVED) is committed. The ledger actor then
  completes the transfer (`completed`, webhook `transfer.completed`) or fails it when
  the source cannot pay at that moment (`failed`, reason `insufficient_funds`, webhook
  `transfer.failed`); nothing is checked against the balance before the 202. A webhook
  goes to the request's `callback_url` if given, else to the partner's webhook URL.
- `POST /wallets/transfer-history/` `{wallet_id, status?, transfer_type?, currency?,
  limit 1..100 (20), offset}` → `{wallet_id, transfers, total, limit, offset}`: the
  transfers whose source or destination is the wallet, newest first.
- `GET /wallets/transfers/{transfer_id}/` (`t_N`): one transfer, to poll its status.

Users (a user's token from `POST /users/login`):

- `POST /secure-send/` `{wallet_id, to_email, currency, amount, otp}`: an instant
  transfer from the user's own vault to the vault of the user with that e-mail address
  (of any partner), answered **201** with the completed transfer. The user must have 2FA
  on (else 403 `two_factor_required`); the OTP is checked and used up like a login's
  (each time step once: a wrong or reused one is a 401 `otp_rejected`), before the
  recipient is looked up, so that addresses cannot be probed without a second factor:
  unknown e-mail → 404, sending to oneself → 422, not enough available balance → 422
  `insufficient_funds` (refused synchronously, nothing moved).

Currencies are a ledger currency (`USDT`) or a withdrawal code (`USDTTRC20` → `USDT`);
answers name the ledger currency. Amounts are decimal strings with at most the
currency's decimals (never rounded, never a JSON number). Every transfer is shaped by
`custody.views.transfer`, the shape the webhooks carry too.

Idempotency: a POST that moves money may carry a key, `external_id` in the body or an
`Idempotency-Key` header (both: they must be equal, else 422). A repeat with the same
key and the same content (kind, source, destination, currency, amount, callback_url:
their SHA-256 fingerprint) answers the first result, same transfer and status code; the
same key with other content is a 409 `idempotency_conflict`. Keys are the partner's;
a user's Secure Send key is kept as `secure_send:<uid>:<key>` (what `external_id`
shows), so that users of one partner never collide. A Secure Send repeat is recognised
before its OTP is checked: the retry of a send whose answer was lost still answers the
first result although its OTP is spent.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, ClassVar

import asyncpg
import falcon
import falcon.asgi
import msgspec

from strongroom.actors.messages import Refused
from strongroom.custody import views
from strongroom.custody.desk import Known
from strongroom.custody.transfers import TransferKind, TransferStatus, WalletTransfer
from strongroom.custody.views import TRANSFER_PREFIX, parse_public_id
from strongroom.custody.withdrawals import default_rules
from strongroom.errors import ConfigurationError
from strongroom.http.auth import Principal
from strongroom.http.body import read_json
from strongroom.http.context import Services, principal
from strongroom.http.problems import Problem, invalid, not_found
from strongroom.http.resources.users import identity_problems
from strongroom.http.webhooks import CALLBACK_URL_LENGTH_MAX, validate_callback_url
from strongroom.identity import credentials, errors
from strongroom.money import parse_amount
from strongroom.persistence import repositories
from strongroom.persistence.recovery import wallet_transfer_from_row

WalletId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Amount = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CallbackUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=CALLBACK_URL_LENGTH_MAX)]
Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Otp = Annotated[str, msgspec.Meta(max_length=16)]
HISTORY_LIMIT_DEFAULT = 20
HISTORY_LIMIT_MAX = 100
OFFSET_MAX = 10**9
KEY_LENGTH_MAX = 64
IDEMPOTENCY_HEADER = "Idempotency-Key"
ACCEPTED_MESSAGE = "Transfer request accepted and is being processed"
SECURE_SEND_KEY_PREFIX = "secure_send"


class WalletTransferIn(msgspec.Struct, forbid_unknown_fields=True):
    wallet_id: WalletId
    currency: CurrencyCode
    amount: Amount
    callback_url: CallbackUrl | None = None
    external_id: ExternalId | None = None


class TransferHistoryIn(msgspec.Struct, forbid_unknown_fields=True):
    wallet_id: WalletId
    status: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    transfer_type: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    currency: CurrencyCode | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=HISTORY_LIMIT_MAX)] = HISTORY_LIMIT_DEFAULT
    offset: Annotated[int, msgspec.Meta(ge=0, le=OFFSET_MAX)] = 0


class SecureSendIn(msgspec.Struct, forbid_unknown_fields=True):
    wallet_id: WalletId
    to_email: Email
    currency: CurrencyCode
    amount: Amount
    otp: Otp


# --------------------------------------------------------------------------- shared


def fingerprint(
    kind: TransferKind,
    from_wallet: str,
    to_wallet: str,
    currency: str,
    amount: int,
    callback_url: str | None,
) -> str:
    """The digest of a transfer request's content: equal content, equal digest."""
    canonical = msgspec.json.encode(
        [str(kind), from_wallet, to_wallet, currency, amount, callback_url]
    )
    return hashlib.sha256(canonical).hexdigest()


def request_key(req: falcon.asgi.Request, external_id: str | None) -> str | None:
    """The request's idempotency key: `external_id`, or the `Idempotency-Key` header."""
    header = req.get_header(IDEMPOTENCY_HEADER)
    if header is not None:
        if not 0 < len(header) <= KEY_LENGTH_MAX or not all(
            0x20 <= ord(character) < 0x7F for character in header
        ):
            raise invalid(
                IDEMPOTENCY_HEADER,
                f"must be 1 to {KEY_LENGTH_MAX} printable ASCII characters",
            )
        if external_id is not None and external_id != header:
            raise invalid(
                "external_id",
                f"differs from the {IDEMPOTENCY_HEADER} header: send one key, or the same",
                code="idempotency_key_mismatch",
            )
    return external_id if external_id is not None else header


class Transfers:
    """What the transfer resources share: currency codes, amounts, the desk's answers."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._codes: dict[str, str] | None = None

    def ledger_currency(self, code: str, field: str = "currency") -> str:
        """A ledger currency, or the ledger currency of a withdrawal code (422 otherwise)."""
        currencies = self.services.config.currencies
        if code in currencies:
            return code
        if self._codes is None:
            # Made on first use: routes are listed before there are services (OpenAPI).
            try:
                self._codes = {rule.code: rule.currency for rule in default_rules(currencies)}
            except ConfigurationError:
                self._codes = {}
        found = self._codes.get(code)
        if found is None:
            known = ", ".join(sorted({*currencies, *self._codes}))
            raise invalid(field, f"unknown currency {code!r}: one of {known}",
                          code="unsupported_currency")  # fmt: skip
        return found

    def amount(self, text: str, currency: str) -> int:
        return parse_amount("amount", text, self.services.config.currencies[currency].decimals)

    def view(self, transfer: WalletTransfer) -> dict[str, Any]:
        return views.transfer(transfer, self.services.config.currencies)

    async def read(self, transfer_id: int) -> WalletTransfer | None:
        row = await self.services.pool.fetchrow(
            "SELECT * FROM wallet_transfers WHERE transfer_id = $1", transfer_id
        )
        return None if row is None else wallet_transfer_from_row(row)

    async def by_key(self, partner_id: str, key: str) -> WalletTransfer | None:
        row = await self.services.pool.fetchrow(
            "SELECT * FROM wallet_transfers WHERE partner_id = $1 AND idempotency_key = $2",
            partner_id,
            key,
        )
        return None if row is None else wallet_transfer_from_row(row)

    def new(
        self,
        kind: TransferKind,
        partner_id: str,
        source: str,
        destination: str,
        currency: str,
        amount: int,
        key: str | None,
        callback_url: str | None,
    ) -> WalletTransfer:
        """A transfer as received (pending), its id from the service's one counter."""
        trading = self.services.trading
        now_ns = trading.clock_ns()
        return WalletTransfer(
            transfer_id=trading.new_order_id(),
            kind=kind,
            partner_id=partner_id,
            from_wallet=source,
            to_wallet=destination,
            currency=currency,
            amount=amount,
            status=TransferStatus.PENDING,
            created_ns=now_ns,
            updated_ns=now_ns,
            key=key,
            fingerprint=fingerprint(kind, source, destination, currency, amount, callback_url),
            callback_url=callback_url,
        )

    async def submit(self, transfer: WalletTransfer, *, instant: bool) -> WalletTransfer:
        """The transfer as committed: the new one, or the first of a repeated key."""
        outcome = await self.services.trading.transfer(transfer, instant=instant)
        if isinstance(outcome, Known):
            first = await self.read(outcome.entity_id)
            if first is None:  # the desk answers a repeat only after the first's commit
                raise Problem(503, "service_unavailable", "the first transfer is not readable yet")
            return first
        if isinstance(outcome, Refused):
            raise refusal_problem(outcome)
        assert isinstance(outcome, WalletTransfer), outcome
        return outcome


def refusal_problem(refused: Refused) -> Problem:
    if refused.code == "idempotency_conflict":
        return Problem(409, refused.code, refused.detail)
    if refused.code == "insufficient_funds":
        return Problem(422, refused.code, refused.detail,
                       errors=[{"field": "amount", "message": refused.detail}])  # fmt: skip
    return Problem(422, refused.code, refused.detail)


def conflict(key: str) -> Problem:
    return Problem(409, "idempotency_conflict", f"key {key[:64]!r} was used with other content")


# --------------------------------------------------------------------------- partners


class WalletTransferResource:
    """POST /wallets/transfer-to-user/ and /wallets/withdraw-to-master/ (module docstring)."""

    scopes: ClassVar[dict[str, str]] = {"POST": "write"}

    def __init__(self, transfers: Transfers, kind: TransferKind) -> None:
        self.transfers = transfers
        self.kind = kind

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.transfers.services
        caller = principal(req)
        body = await read_json(req, WalletTransferIn)
        currency = self.transfers.ledger_currency(body.currency)
        amount = self.transfers.amount(body.amount, currency)
        callback_url = None
        if body.callback_url is not None:
            callback_url = validate_callback_url(body.callback_url)
        key = request_key(req, body.external_id)
        partner_id = caller.partner_id
        master = await repositories.master_wallet(services.pool, partner_id)
        services.wallet_owners[master] = partner_id
        # The partner's own wallets only: an operator's admin scope sees other partners'
        # wallets, but moves money between its own master and sub-accounts only.
        if services.wallet_owners.get(body.wallet_id) != partner_id:
            raise not_found(f"wallet {body.wallet_id}")
        if body.wallet_id == master:
            raise invalid("wallet_id", "is the master wallet: name one of its sub-accounts",
                          code="master_wallet")  # fmt: skip
        source, destination = (
            (master, body.wallet_id)
            if self.kind is TransferKind.TO_SUB
            else (body.wallet_id, master)
        )
        transfer = self.transfers.new(
            self.kind, partner_id, source, destination, currency, amount, key, callback_url
        )
        received = await self.transfers.submit(transfer, instant=False)
        view = self.transfers.view(received)
        resp.status = falcon.HTTP_202
        resp.location = f"/wallets/transfers/{view['transfer_id']}/"
        resp.media = {
            "status": "accepted",
            "transfer_id": view["transfer_id"],
            "message": ACCEPTED_MESSAGE,
            "transfer": view,
        }


HISTORY_QUERY = """
SELECT * FROM wallet_transfers
 WHERE (from_wallet = $1 OR to_wallet = $1)
   AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3)
   AND ($4::text IS NULL OR currency = $4)
"""


class TransferHistoryResource:
    """POST /wallets/transfer-history/ (module docstring)."""

    scopes: ClassVar[dict[str, str]] = {"POST": "read"}

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.transfers.services
        caller = principal(req)
        body = await read_json(req, TransferHistoryIn)
        status = _choice("status", body.status, TransferStatus)
        kind = _choice("transfer_type", body.transfer_type, TransferKind)
        currency = None
        if body.currency is not None:
            currency = self.transfers.ledger_currency(body.currency)
        master = await repositories.master_wallet(services.pool, caller.partner_id)
        services.wallet_owners[master] = caller.partner_id
        wallet_id = services.require_wallet(req, body.wallet_id)
        rows, total = await history(
            services.pool, wallet_id, status, kind, currency, body.limit, body.offset
        )
        resp.media = {
            "wallet_id": wallet_id,
            "transfers": [self.transfers.view(wallet_transfer_from_row(row)) for row in rows],
            "total": total,
            "limit": body.limit,
            "offset": body.offset,
        }


async def history(
    pool: asyncpg.Pool,
    wallet_id: str,
    status: str | None,
    kind: str | None,
    currency: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """One page of a wallet's transfers, newest first, and how many there are, read in
    one snapshot."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = list(
            await connection.fetch(
                HISTORY_QUERY + " ORDER BY transfer_id DESC LIMIT $5 OFFSET $6",
                wallet_id, status, kind, currency, limit, offset,
            )
        )  # fmt: skip
        total: int = await connection.fetchval(
            f"SELECT count(*) FROM ({HISTORY_QUERY}) AS listed", wallet_id, status, kind, currency
        )
    return rows, total


def _choice(
    field: str, value: str | None, choices: type[TransferStatus | TransferKind]
) -> str | None:
    if value is None:
        return None
    names = [str(choice) for choice in choices]
    if value not in names:
        raise invalid(field, f"must be one of {', '.join(names)}")
    return value


class TransferResource:
    """GET /wallets/transfers/{transfer_id}/: a transfer one of whose wallets the caller
    may see (or that the caller's partner made), else 404."""

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, transfer_id: str
    ) -> None:
        services = self.transfers.services
        caller = principal(req)
        number = parse_public_id(TRANSFER_PREFIX, transfer_id)
        found = None if number is None else await self.transfers.read(number)
        if found is None or not _visible(services, caller, found):
            raise not_found(f"transfer {transfer_id[:64]}")
        resp.media = self.transfers.view(found)


def _visible(services: Services, caller: Principal, transfer: WalletTransfer) -> bool:
    return (
        transfer.partner_id == caller.partner_id
        or services.wallet_visible(caller, transfer.from_wallet)
        or services.wallet_visible(caller, transfer.to_wallet)
    )


# --------------------------------------------------------------------------- users


class SecureSendResource:
    """POST /secure-send/ (module docstring). The checks that need no secret come first,
    then a repeated key, then the OTP, then the recipient."""

    users = True
    partners = False  # a user's own call

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self.transfers.services
        caller = principal(req)
        uid = caller.user_id
        assert uid is not None  # AuthMiddleware lets only users call this route
        body = await read_json(req, SecureSendIn)
        currency = self.transfers.ledger_currency(body.currency)
        amount = self.transfers.amount(body.amount, currency)
        header_key = request_key(req, None)
        key = None if header_key is None else f"{SECURE_SEND_KEY_PREFIX}:{uid}:{header_key}"
        wallet_id = services.require_wallet(req, body.wallet_id)  # the user's own vault
        try:
            to_email = credentials.normalize_email(body.to_email)
        except errors.InvalidEmail as error:
            raise invalid("to_email", str(error), code=error.code) from None
        sender = await services.users.user(uid)
        assert sender is not None
        if not sender.totp_enabled:
            raise two_factor_required()
        if to_email == sender.email:
            raise invalid("to_email", "is your own address: send to someone else",
                          code="same_wallet")  # fmt: skip
        recipient = await services.pool.fetchval(
            "SELECT wallet_id FROM users WHERE email = $1", to_email
        )
        if key is not None:
            first = await self.transfers.by_key(caller.partner_id, key)
            if first is not None:
                same = recipient is not None and first.fingerprint == fingerprint(
                    TransferKind.SECURE_SEND, wallet_id, recipient, currency, amount, None
                )
                if not same:
                    raise conflict(header_key or "")
                self._answer(resp, first)
                return
        async with identity_problems():
            try:
                await services.users.consume_otp(uid, body.otp)
            except errors.WrongState:
                raise two_factor_required() from None
        if recipient is None:
            raise not_found(f"user with email {to_email}")
        transfer = self.transfers.new(
            TransferKind.SECURE_SEND, caller.partner_id, wallet_id, recipient, currency, amount,
            key, None,
        )  # fmt: skip
        self._answer(resp, await self.transfers.submit(transfer, instant=True))

    def _answer(self, resp: falcon.asgi.Response, transfer: WalletTransfer) -> None:
        view = self.transfers.view(transfer)
        resp.status = falcon.HTTP_201
        resp.location = f"/wallets/transfers/{view['transfer_id']}/"
        resp.media = view


def two_factor_required() -> Problem:
    return Problem(
        403,
        "two_factor_required",
        "Secure Send needs 2FA: turn it on with /users/2fa/setup and /users/2fa/confirm",
    )


# --------------------------------------------------------------------------- routes


OPERATIONS: tuple[tuple[str, str, str, int], ...] = (
    (
        "/wallets/transfer-to-user/",
        "post",
        "Move {amount} of {currency} from the master wallet to sub-account {wallet_id}:"
        " 202 accepted (pending), completed or failed asynchronously with a webhook",
        202,
    ),
    (
        "/wallets/withdraw-to-master/",
        "post",
        "Move {amount} of {currency} from sub-account {wallet_id} to the master wallet:"
        " 202 accepted (pending), completed or failed asynchronously with a webhook",
        202,
    ),
    (
        "/wallets/transfer-history/",
        "post",
        "A wallet's transfers, newest first (status, transfer_type, currency,"
        " limit <= 100, offset)",
        200,
    ),
    ("/wallets/transfers/{transfer_id}/", "get", "A transfer (t_N) and its status", 200),
    (
        "/secure-send/",
        "post",
        "Send {amount} of {currency} from your vault to the user with {to_email} at once;"
        " needs 2FA and a fresh {otp}",
        201,
    ),
)
REQUESTS: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("/wallets/transfer-to-user/", "post"): WalletTransferIn,
    ("/wallets/withdraw-to-master/", "post"): WalletTransferIn,
    ("/wallets/transfer-history/", "post"): TransferHistoryIn,
    ("/secure-send/", "post"): SecureSendIn,
}


def routes(services: Services) -> list[tuple[str, object]]:
    transfers = Transfers(services)
    return [
        ("/wallets/transfer-to-user/", WalletTransferResource(transfers, TransferKind.TO_SUB)),
        ("/wallets/withdraw-to-master/", WalletTransferResource(transfers, TransferKind.TO_MASTER)),
        ("/wallets/transfer-history/", TransferHistoryResource(transfers)),
        ("/wallets/transfers/{transfer_id}/", TransferResource(transfers)),
        ("/secure-send/", SecureSendResource(transfers)),
    ]
