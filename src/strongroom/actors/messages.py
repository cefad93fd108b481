"""Every command, event and reply exchanged by the behaviours: frozen, slotted, immutable.

Prices are integer ticks and quantities integer lots of their market; money is integer
minor units of its currency (see `strongroom.config`). No float appears here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from strongroom.custody.payments import Payment
    from strongroom.custody.transfers import WalletTransfer
    from strongroom.custody.withdrawals import TrackedWithdrawal


class Message(msgspec.Struct, frozen=True, gc=False):
    """Base of every message: immutable, hashable, cheap to build (msgspec Structs are
    C-level; a frozen dataclass pays for `object.__setattr__` on every field)."""


# --------------------------------------------------------------------------- orders


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrderKind(IntEnum):
    LIMIT = 0
    MARKET = 1
    STOP_LIMIT = 2
    STOP_MARKET = 3


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2


class CancelReason(IntEnum):
    REQUESTED = 0  # the owner asked
    UNFILLED = 1  # IOC (or market) remainder after matching
    FILL_OR_KILL = 2  # FOK could not fill in full, nothing traded
    NO_LIQUIDITY = 3  # market order with no opposite side
    SELF_TRADE = 4  # resting order canceled by self-trade prevention


class RejectReason(IntEnum):
    """Values equal the MTF reject codes (SPEC §4) so the gateway maps them one to one."""

    UNKNOWN_MARKET = 1
    INVALID_QUANTITY = 2
    INVALID_PRICE = 3
    INSUFFICIENT_FUNDS = 4
    DUPLICATE_ORDER = 5
    UNKNOWN_ORDER = 6
    WOULD_TRADE = 7
    NOT_ALLOWED = 12


class BookOrder(Message, frozen=True):
    """The terms of an order as its book needs them.

    `price`: limit price in ticks. For a market or stop-market *buy* it is the cap the
    held funds cover (0 = nothing held, the order can only be canceled); for a market
    or stop-market *sell* it is 0 and the book applies its collar.
    `stop_price`: ticks, 0 = none. `display_quantity`: lots, 0 = fully displayed.
    """

    order_id: int
    wallet_id: str
    side: Side
    kind: OrderKind
    price: int
    quantity: int
    stop_price: int = 0
    display_quantity: int = 0
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False


# Book commands


class PlaceOrder(Message, frozen=True):
    order: BookOrder


class CancelOrder(Message, frozen=True):
    order_id: int
    wallet_id: str


class ReplaceOrder(Message, frozen=True):
    """New limit price (ticks) and new total quantity (lots, filled part included)."""

    order_id: int
    wallet_id: str
    price: int
    quantity: int


BookCommand = PlaceOrder | CancelOrder | ReplaceOrder

# Book events


class OrderAccepted(Message, frozen=True):
    """The book has sequenced the order; its fills (if any) follow."""

    order_id: int


class OrderRejected(Message, frozen=True):
    order_id: int
    reason: RejectReason


class OrderPending(Message, frozen=True):
    """A stop order parked until the last trade price reaches its stop.

    `priority` comes from the same per-book counter as `OrderRested.priority`; among stops
    with the same stop price it is their trigger order, which recovery must rebuild.
    """

    order_id: int
    priority: int = 0


class OrderTriggered(Message, frozen=True):
    order_id: int


class OrderRested(Message, frozen=True):
    """The order (or an iceberg's refilled tip) joined the back of its price level.

    `priority` rises strictly within a book: ordering resting orders of one level by it
    gives their time priority, which is how recovery rebuilds the queue.
    """

    order_id: int
    price: int
    remaining: int
    visible: int
    priority: int


class Trade(Message, frozen=True):
    trade_id: int
    price: int
    quantity: int
    taker_side: Side
    maker_order_id: int
    maker_wallet_id: str
    maker_remaining: int
    taker_order_id: int
    taker_wallet_id: str
    taker_remaining: int


class OrderCanceled(Message, frozen=True):
    order_id: int
    quantity: int  # lots canceled (what was still open)
    reason: CancelReason


class OrderReplaced(Message, frozen=True):
    order_id: int
    price: int
    quantity: int  # new total
    remaining: int
    priority_kept: bool


BookEvent = (
    OrderAccepted
    | OrderRejected
    | OrderPending
    | OrderTriggered
    | OrderRested
    | Trade
    | OrderCanceled
    | OrderReplaced
)

# --------------------------------------------------------------------------- ledger


class AccountCode(IntEnum):
    """Peatio's chart of accounts."""

    ASSET_FIAT = 101
    ASSET_COIN = 102
    MAIN_FIAT = 201
    MAIN_COIN = 202
    LOCKED_FIAT = 211
    LOCKED_COIN = 212
    REVENUE_FIAT = 301
    REVENUE_COIN = 302
    EXPENSE_FIAT = 401
    EXPENSE_COIN = 402


class Account(Message, frozen=True):
    """One balance: member accounts (2xx) name a wallet, system accounts do not."""

    code: AccountCode
    currency: str
    wallet_id: str | None = None


class Posting(Message, frozen=True):
    """`amount` minor units from `debit` to `credit` (same currency).

    `hold_id` names the hold (an order or withdrawal id) when the posting credits or
    debits a locked account: a hold's remainder is the sum of its postings.
    """

    debit: Account
    credit: Account
    amount: int
    hold_id: int | None = None


class Transfer(Message, frozen=True):
    """A set of postings applied whole or not at all.

    `key` is the idempotency key (None: not idempotent); `kind` says what caused it
    ("deposit", "hold", "fill", "release", ...).
    """

    transfer_id: int
    kind: str
    postings: tuple[Posting, ...]
    key: str | None = None


class TransferRejection(IntEnum):
    INSUFFICIENT_FUNDS = 1
    CONFLICT = 2  # same key, different content
    INVALID = 3  # empty, non-positive amount, mixed currencies, wrong account kind


class TransferApplied(Message, frozen=True):
    transfer: Transfer


class TransferDuplicate(Message, frozen=True):
    """Same key and same content as an applied transfer: that first result, unchanged."""

    first: Transfer


class TransferRejected(Message, frozen=True):
    transfer: Transfer
    reason: TransferRejection
    detail: str = ""


TransferOutcome = TransferApplied | TransferDuplicate | TransferRejected

# --------------------------------------------------------------------------- pipeline
# edge → vault shard → ledger actor (clearing) → book → ledger actor → journal → edge.
# `token` names the edge's waiting reply; 0 means nobody waits.


class OrderRequest(Message, frozen=True):
    """A validated new order from an edge, in ticks and lots."""

    token: int
    order_id: int
    wallet_id: str
    market: str
    side: Side
    kind: OrderKind
    price: int
    quantity: int
    stop_price: int
    display_quantity: int
    time_in_force: TimeInForce
    post_only: bool
    external_id: str | None
    fingerprint: str
    at_ns: int


class CancelRequest(Message, frozen=True):
    token: int
    wallet_id: str
    order_id: int
    at_ns: int


class ReplaceRequest(Message, frozen=True):
    """New limit price (ticks) and new total quantity (lots, filled part included)."""

    token: int
    wallet_id: str
    order_id: int
    price: int
    quantity: int
    at_ns: int


class DepositRequest(Message, frozen=True):
    token: int
    deposit_id: int
    tid: str
    wallet_id: str
    currency: str
    amount: int
    accept: bool
    fingerprint: str
    at_ns: int


class DepositStateRequest(Message, frozen=True):
    """Seed 002's `PUT /deposits/state`: load the money of a submitted deposit, or drop it."""

    token: int
    tid: str
    state: str
    at_ns: int


class Admitted(Message, frozen=True):
    """A vault admitted the order: the hold its book needs (None: nothing to hold)."""

    request: OrderRequest
    order: BookOrder
    hold: Posting | None


class ReplaceAdmitted(Message, frozen=True):
    """The vault knows the order as open on `market`; the ledger adjusts its hold next."""

    request: ReplaceRequest
    market: str


class BookBatch(Message, frozen=True):
    market: str
    commands: tuple[tuple[int, BookCommand], ...]


class BookResults(Message, frozen=True):
    market: str
    results: tuple[tuple[int, BookCommand, tuple[BookEvent, ...]], ...]
    sequence: int
    at_ns: int


class OrdersEnded(Message, frozen=True):
    """Told to vault shards once orders of their wallets ended (filled, canceled, rejected).

    `refused`: orders the ledger refused before any book saw them; they never existed,
    so their client order ids may be used again.
    """

    orders: tuple[tuple[str, int], ...]
    refused: tuple[tuple[str, int], ...] = ()


# --------------------------------------------------------------------------- states


class OrderFields(msgspec.Struct, gc=False):
    """An order's state, field by field: frozen as `OrderState` when it leaves the clearing,
    mutable as the clearing's own record of a live order."""

    order_id: int
    wallet_id: str
    market: str
    side: Side
    kind: OrderKind
    price: int
    quantity: int
    stop_price: int
    display_quantity: int
    time_in_force: TimeInForce
    post_only: bool
    external_id: str | None
    fingerprint: str
    status: str  # new, pending, open, filled, canceled, rejected
    filled: int  # lots
    funds: int  # quote minor units traded
    remaining: int  # lots still open
    visible: int  # lots displayed
    priority: int
    created_ns: int
    updated_ns: int
    reason: str = ""

    @property
    def live(self) -> bool:
        return self.status in ("new", "pending", "open")


# msgspec allows a frozen Struct to extend a mutable one; mypy's dataclass model does not.
class OrderState(OrderFields, frozen=True):  # type: ignore[misc]
    """An order's state as journaled and answered: immutable."""


class TradeRecord(Message, frozen=True):
    market: str
    trade_id: int
    price: int
    quantity: int
    taker_side: Side
    maker_order_id: int
    taker_order_id: int
    at_ns: int


class DepositState(Message, frozen=True):
    deposit_id: int
    tid: str
    wallet_id: str
    currency: str
    amount: int
    state: str  # submitted, accepted, canceled, rejected
    fingerprint: str
    transfer_id: int | None
    created_ns: int
    completed_ns: int | None


# --------------------------------------------------------------------------- replies


class Refused(Message, frozen=True):
    """The command changed nothing; `code` is the snake_case problem code."""

    code: str
    detail: str


class DuplicateOrder(Message, frozen=True):
    order_id: int
    same_content: bool


Reply = OrderState | DepositState | Refused | DuplicateOrder


class OutboxEvent(Message, frozen=True):
    """A webhook event written in the transaction of the change it reports.

    `payload` is the JSON document of the event's data; `callback_url` a per-request URL
    (None: the partner's webhook URL). Partners without webhook settings get nothing.
    """

    event_id: str
    partner_id: str  # "": the owner of `wallet_id`, found when the event is written
    event_type: str
    payload: str
    callback_url: str | None = None
    wallet_id: str | None = None


@dataclass(slots=True)
class JournalUnit:
    """All effects of one batch of commands: committed together, then replied to.

    `results` are the book results the unit settles; they stay in this process and are
    published to the edges (MTF sessions, feed) once the unit is committed.
    """

    transfers: list[Transfer]
    orders: list[OrderState]
    trades: list[TradeRecord]
    deposits: list[DepositState]
    sequences: dict[str, int]
    replies: list[tuple[int, Any]]  # a Reply, or a custody desk's answer
    results: list[BookResults] = field(default_factory=list)
    wallet_transfers: list[WalletTransfer] = field(default_factory=list)
    withdrawals: list[TrackedWithdrawal] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    events: list[OutboxEvent] = field(default_factory=list)
