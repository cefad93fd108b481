"""Withdrawals: Peatio's state machine as a table, the money each step moves, fees and limits.

The states and events are those of Peatio's `Withdraw` model (seed 002 describes the
states; the events and their sources follow Peatio's AASM definition), narrowed to what
a custodian that validates synchronously needs:

- `prepared` is the initial state; nothing is held. Peatio's `submit` (prepared →
  submitted, funds locked) and `accept` (submitted → accepted, validated) are one step
  here, `accept`: the wallet's rules, the address and the limits are checked when the
  withdrawal is prepared, so "submitted, waiting for validation" has nothing to wait for.
- `skipped` (the hot wallet could not pay; seed 002) is left out until hot-wallet
  balances are modelled; `process` from `errored` covers the retry it stands for.
- `reject` applies only before a transaction is broadcast (from `accepted`). Once a
  transaction may be on the chain only the chain settles it (`success` or `fail`), or an
  operator from `errored`: giving the funds back while the transaction may still confirm
  would pay the withdrawal twice.

    prepared    accept   → accepted     hold     main → locked (amount + fee)
    prepared    cancel   → canceled     none     nothing was held
    accepted    cancel   → canceled     release  locked → main
    accepted    reject   → rejected     release  locked → main
    accepted    process  → processing   none     queued for the chain worker
    accepted    load     → confirming   none     an operator's transaction (txid given)
    processing  dispatch → confirming   none     broadcast (txid given)
    processing  fail     → failed       release  locked → main
    processing  err      → errored      none     the hold stays: an operator decides
    confirming  success  → succeed      send     locked → asset (amount), → revenue (fee)
    confirming  fail     → failed       release  locked → main
    errored     process  → processing   none     retry
    errored     success  → succeed      send     the operator found it confirmed
    errored     fail     → failed       release  locked → main

`succeed`, `canceled`, `rejected` and `failed` are final (Peatio's COMPLETED_STATES): they
allow no event. Funds are held exactly in `accepted`, `processing`, `confirming` and
`errored`, so each withdrawal holds once and then releases or sends once.

Money is integer minor units. `amount` is what the recipient receives (Peatio: "the
withdraw amount excluding fee"); `fee` is the exchange's; the hold is `total` = amount +
fee. Ledger accounts follow Peatio's chart and this ledger's posting convention
(`Posting(debit, credit, amount)` moves funds from the debited account to the credited
one, assets debit-normal): a withdrawal that succeeds credits the asset account with
`amount` (the coins leave custody) and the revenue account with `fee`. Peatio writes the
first as `Operations::Asset.debit!` because its asset operations count decreases as
debits; the effect on the books is the same.

Pure: no I/O, no clock (every change takes `at_ns`), no ids of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from msgspec.structs import replace

from strongroom.actors.messages import Account, AccountCode, Message, Posting
from strongroom.config import BASIS_POINTS, Currency
from strongroom.config import DEFAULT as DEFAULT_CONFIG
from strongroom.custody.errors import (
    AboveMaximum,
    BelowMinimum,
    IllegalTransition,
    InvalidAddress,
    InvalidAmount,
    InvalidEventDetails,
    InvalidWithdrawal,
    UnsupportedCurrency,
)
from strongroom.errors import ConfigurationError
from strongroom.identity.vault_keys import BITCOIN, ETHEREUM, TRON, validate_address

AMOUNT_MAX = 2**62
"""The largest total (amount + fee) of one withdrawal, in minor units: the ledger's limit."""

CUSTOM_ID_LENGTH_MAX = 64  # characters; Peatio's tid "must not exceed 64 characters"
REASON_LENGTH_MAX = 500  # characters
TXID_LENGTH_MAX = 128  # characters; Peatio's txid column is a string(128)
WALLET_ID_LENGTH_MAX = 64  # characters

CHAINS = frozenset({BITCOIN, ETHEREUM, TRON})
"""The chains a withdrawal may leave by: those `validate_address` knows."""


# --------------------------------------------------------------------------- the machine


class WithdrawalState(StrEnum):
    PREPARED = "prepared"
    ACCEPTED = "accepted"
    PROCESSING = "processing"
    CONFIRMING = "confirming"
    SUCCEED = "succeed"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"
    ERRORED = "errored"


class WithdrawalEvent(StrEnum):
    """Peatio's event names are the values (`err` included)."""

    ACCEPT = "accept"
    CANCEL = "cancel"
    REJECT = "reject"
    PROCESS = "process"
    LOAD = "load"
    DISPATCH = "dispatch"
    SUCCESS = "success"
    FAIL = "fail"
    ERROR = "err"


class MoneyEffect(StrEnum):
    """What a transition does to the withdrawal's funds (see `legs` and `postings`)."""

    NONE = "none"
    HOLD = "hold"  # main → locked: amount + fee
    RELEASE = "release"  # locked → main: amount + fee
    SEND = "send"  # locked → asset: amount (out of custody); locked → revenue: fee


class Step(NamedTuple):
    target: WithdrawalState
    effect: MoneyEffect


_S = WithdrawalState
_E = WithdrawalEvent
_M = MoneyEffect

TRANSITIONS: Mapping[tuple[WithdrawalState, WithdrawalEvent], Step] = MappingProxyType(
    {
        (_S.PREPARED, _E.ACCEPT): Step(_S.ACCEPTED, _M.HOLD),
        (_S.PREPARED, _E.CANCEL): Step(_S.CANCELED, _M.NONE),
        (_S.ACCEPTED, _E.CANCEL): Step(_S.CANCELED, _M.RELEASE),
        (_S.ACCEPTED, _E.REJECT): Step(_S.REJECTED, _M.RELEASE),
        (_S.ACCEPTED, _E.PROCESS): Step(_S.PROCESSING, _M.NONE),
        (_S.ACCEPTED, _E.LOAD): Step(_S.CONFIRMING, _M.NONE),
        (_S.PROCESSING, _E.DISPATCH): Step(_S.CONFIRMING, _M.NONE),
        (_S.PROCESSING, _E.FAIL): Step(_S.FAILED, _M.RELEASE),
        (_S.PROCESSING, _E.ERROR): Step(_S.ERRORED, _M.NONE),
        (_S.CONFIRMING, _E.SUCCESS): Step(_S.SUCCEED, _M.SEND),
        (_S.CONFIRMING, _E.FAIL): Step(_S.FAILED, _M.RELEASE),
        (_S.ERRORED, _E.PROCESS): Step(_S.PROCESSING, _M.NONE),
        (_S.ERRORED, _E.SUCCESS): Step(_S.SUCCEED, _M.SEND),
        (_S.ERRORED, _E.FAIL): Step(_S.FAILED, _M.RELEASE),
    }
)
"""(state, event) → (target state, money effect); a pair not in the table is illegal."""

FINAL_STATES = frozenset({_S.SUCCEED, _S.CANCELED, _S.REJECTED, _S.FAILED})
HOLDING_STATES = frozenset({_S.ACCEPTED, _S.PROCESSING, _S.CONFIRMING, _S.ERRORED})
"""The states in which the withdrawal's total is held in the wallet's locked account."""

# The events that need a transaction id by the time they are applied, and the details
# each event may carry.
_NEEDS_TXID = frozenset({_E.LOAD, _E.DISPATCH, _E.SUCCESS})
_TAKES_CONFIRMATIONS = frozenset({_E.LOAD, _E.DISPATCH, _E.SUCCESS})
_TAKES_REASON = frozenset({_E.CANCEL, _E.REJECT, _E.FAIL, _E.ERROR})


def step(state: WithdrawalState, event: WithdrawalEvent) -> Step:
    """The table's entry for (state, event); `IllegalTransition` when it has none."""
    found = TRANSITIONS.get((state, event))
    if found is None:
        raise IllegalTransition(str(state), str(event))
    return found


def transition(state: WithdrawalState, event: WithdrawalEvent) -> WithdrawalState:
    """The state `event` leads to from `state`; `IllegalTransition` if it is not allowed."""
    return step(state, event).target


def events_allowed(state: WithdrawalState) -> frozenset[WithdrawalEvent]:
    return frozenset(event for (source, event) in TRANSITIONS if source is state)


# --------------------------------------------------------------------------- withdrawal


class Withdrawal(Message, frozen=True):
    """One withdrawal, immutable: every change is a new value made by `apply`.

    `currency` is the ledger's currency ("USDT") and `chain` the network it leaves by
    ("TRON"); `amount` is what the address receives and `fee` what the exchange keeps,
    both in minor units of `currency`. `custom_id` is the caller's reference (seed 001's
    custom_id, Peatio's tid). `reason` says why it was canceled, rejected, failed or
    errored. `withdrawal_id` is also the ledger's hold id for its funds.
    """

    withdrawal_id: int
    wallet_id: str
    currency: str
    chain: str
    address: str
    amount: int
    fee: int
    state: WithdrawalState
    created_ns: int
    updated_ns: int
    custom_id: str | None = None
    txid: str | None = None
    confirmations: int = 0
    reason: str = ""

    @property
    def total(self) -> int:
        """What the wallet pays and what is held: amount + fee (Peatio's `sum`)."""
        return self.amount + self.fee

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def holding(self) -> bool:
        return self.state in HOLDING_STATES


class TrackedWithdrawal(Message, frozen=True):
    """A withdrawal with what the custody desk keeps beside it: whose it is, the code it
    was asked in ("USDTTRC20"), its idempotency key and content digest, and the
    per-request callback URL of its webhooks."""

    withdrawal: Withdrawal
    partner_id: str
    code: str
    key: str | None = None
    fingerprint: str = ""
    callback_url: str | None = None


def apply(
    withdrawal: Withdrawal,
    event: WithdrawalEvent,
    at_ns: int,
    *,
    txid: str | None = None,
    confirmations: int | None = None,
    reason: str | None = None,
) -> tuple[Withdrawal, MoneyEffect]:
    """The withdrawal after `event` at `at_ns`, and the money the caller must move.

    Details: `txid` with `load`, `dispatch` or `success` (required unless the withdrawal
    has one; once set it never changes: one withdrawal, one transaction); `confirmations`
    with the same events; `reason` with `cancel`, `reject`, `fail` or `err`. An illegal
    event raises `IllegalTransition`, unsuitable details `InvalidEventDetails`; either
    way nothing changes (the withdrawal is immutable, and nothing else is touched).
    """
    found = step(withdrawal.state, event)
    new_txid = withdrawal.txid
    if txid is not None:
        if event not in _NEEDS_TXID:
            raise InvalidEventDetails(f"{event} takes no txid")
        if not txid or len(txid) > TXID_LENGTH_MAX or txid != txid.strip():
            raise InvalidEventDetails(f"txid must be 1 to {TXID_LENGTH_MAX} characters, trimmed")
        if withdrawal.txid is not None and txid != withdrawal.txid:
            raise InvalidEventDetails(
                f"withdrawal {withdrawal.withdrawal_id} already has txid {withdrawal.txid!r}"
            )
        new_txid = txid
    if event in _NEEDS_TXID and new_txid is None:
        raise InvalidEventDetails(f"{event} needs the transaction's txid")
    new_confirmations = withdrawal.confirmations
    if confirmations is not None:
        if event not in _TAKES_CONFIRMATIONS:
            raise InvalidEventDetails(f"{event} takes no confirmations")
        _check_confirmations(confirmations)
        new_confirmations = confirmations
    new_reason = withdrawal.reason
    if reason is not None:
        if event not in _TAKES_REASON:
            raise InvalidEventDetails(f"{event} takes no reason")
        if len(reason) > REASON_LENGTH_MAX:
            raise InvalidEventDetails(f"reason longer than {REASON_LENGTH_MAX} characters")
        new_reason = reason
    changed = replace(
        withdrawal,
        state=found.target,
        updated_ns=at_ns,
        txid=new_txid,
        confirmations=new_confirmations,
        reason=new_reason,
    )
    return changed, found.effect


def observe_confirmations(withdrawal: Withdrawal, confirmations: int, at_ns: int) -> Withdrawal:
    """A confirming withdrawal with the confirmations its transaction has now.

    Not a transition: the state stays `confirming` (a reorganisation may lower the count).
    """
    if withdrawal.state is not WithdrawalState.CONFIRMING:
        raise InvalidEventDetails(
            f"confirmations are observed while confirming, not when {withdrawal.state}"
        )
    _check_confirmations(confirmations)
    if confirmations == withdrawal.confirmations:
        return withdrawal
    return replace(withdrawal, confirmations=confirmations, updated_ns=at_ns)


def _check_confirmations(confirmations: int) -> None:
    if type(confirmations) is not int or confirmations < 0:
        raise InvalidEventDetails(f"confirmations {confirmations!r} is not an integer ≥ 0")


# --------------------------------------------------------------------------- fees and limits


@dataclass(frozen=True, slots=True)
class WithdrawalRule:
    """How one currency leaves by one chain: limits and fee, all in minor units.

    `code` is the withdrawal currency code of seed 001 ("USDTTRC20"): the currency and
    the chain in one name. The limits bound `amount`, what the recipient receives (fee
    excluded), so that a fee can never eat a withdrawal and no dust reaches the chain.
    The fee is `fee_flat` (the network's cost, seed 001's network_fee) plus `fee_bps`
    basis points of the amount (the platform's, seed 001's platform_fee) rounded UP to
    the minor unit: a fraction of a minor unit is never given away.
    """

    code: str
    currency: str
    chain: str
    amount_min: int
    amount_max: int
    fee_flat: int
    fee_bps: int = 0

    def __post_init__(self) -> None:
        where = f"withdrawal rule {self.code!r}"
        if not self.code or not self.currency:
            raise ConfigurationError(f"{where}: code and currency are required")
        if self.chain not in CHAINS:
            raise ConfigurationError(f"{where}: chain {self.chain!r} is not one of {CHAINS}")
        for name in ("amount_min", "amount_max", "fee_flat", "fee_bps"):
            if type(getattr(self, name)) is not int:
                raise ConfigurationError(f"{where}: {name} must be an integer")
        if not 1 <= self.amount_min <= self.amount_max:
            raise ConfigurationError(f"{where}: need 1 ≤ amount_min ≤ amount_max")
        if self.fee_flat < 0 or not 0 <= self.fee_bps <= BASIS_POINTS:
            raise ConfigurationError(f"{where}: need fee_flat ≥ 0 and 0 ≤ fee_bps ≤ 10000")
        if self.amount_max + self.fee_for(self.amount_max) > AMOUNT_MAX:
            raise ConfigurationError(f"{where}: amount_max plus its fee exceeds {AMOUNT_MAX}")

    def fee_for(self, amount: int) -> int:
        """The fee of a withdrawal sending `amount`: flat plus basis points, rounded up."""
        return self.fee_flat + -(-amount * self.fee_bps // BASIS_POINTS)


class WithdrawalRules:
    """The withdrawal rules by code, each (currency, chain) pair at most once."""

    __slots__ = ("_by_code", "_by_pair")

    def __init__(self, rules: Iterable[WithdrawalRule]) -> None:
        self._by_code: dict[str, WithdrawalRule] = {}
        self._by_pair: dict[tuple[str, str], WithdrawalRule] = {}
        for rule in rules:
            pair = (rule.currency, rule.chain)
            if rule.code in self._by_code or pair in self._by_pair:
                raise ConfigurationError(
                    f"withdrawal rule {rule.code!r}: code or {rule.currency} on {rule.chain} "
                    "is given twice"
                )
            self._by_code[rule.code] = rule
            self._by_pair[pair] = rule

    def rule(self, code: str) -> WithdrawalRule:
        found = self._by_code.get(code)
        if found is None:
            raise UnsupportedCurrency(repr(code[:32]))
        return found

    def rule_for(self, currency: str, chain: str) -> WithdrawalRule:
        found = self._by_pair.get((currency, chain))
        if found is None:
            raise UnsupportedCurrency(f"{currency[:32]!r} on {chain[:32]!r}")
        return found

    def codes(self) -> tuple[str, ...]:
        return tuple(self._by_code)

    def __iter__(self) -> Iterator[WithdrawalRule]:
        return iter(tuple(self._by_code.values()))

    def __len__(self) -> int:
        return len(self._by_code)

    def check_currencies(self, currencies: Mapping[str, Currency]) -> None:
        """`ConfigurationError` unless every rule's currency is a configured coin."""
        for rule in self._by_code.values():
            currency = currencies.get(rule.currency)
            if currency is None or currency.kind != "coin":
                raise ConfigurationError(
                    f"withdrawal rule {rule.code!r}: {rule.currency} is not a configured coin"
                )


def _minor(text: str, currency: Currency) -> int:
    value = Decimal(text).scaleb(currency.decimals)
    if value != value.to_integral_value():
        raise ConfigurationError(f"{text} {currency.code} is not a whole number of minor units")
    return int(value)


# (code, currency, chain, amount_min, amount_max, fee_flat) as decimal strings. USDT is one
# currency in the ledger (one balance) and leaves by Ethereum (ERC-20) or TRON (TRC-20),
# each with its own code as in seed 001; its TRON limits are seed 001's (10 to 100000).
DEFAULT_RULE_TERMS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("BTC", "BTC", BITCOIN, "0.0005", "100", "0.0001"),
    ("ETH", "ETH", ETHEREUM, "0.005", "1000", "0.001"),
    ("USDTERC20", "USDT", ETHEREUM, "20", "100000", "5"),
    ("USDTTRC20", "USDT", TRON, "10", "100000", "1"),
)


def default_rules(
    currencies: Mapping[str, Currency] = DEFAULT_CONFIG.currencies,
) -> WithdrawalRules:
    """`DEFAULT_RULE_TERMS` in minor units of `currencies` (no percentage fee)."""
    rules = []
    for code, currency_code, chain, minimum, maximum, fee in DEFAULT_RULE_TERMS:
        currency = currencies.get(currency_code)
        if currency is None:
            raise ConfigurationError(f"withdrawal rule {code!r}: unknown currency")
        rules.append(
            WithdrawalRule(
                code=code,
                currency=currency_code,
                chain=chain,
                amount_min=_minor(minimum, currency),
                amount_max=_minor(maximum, currency),
                fee_flat=_minor(fee, currency),
            )
        )
    withdrawal_rules = WithdrawalRules(rules)
    withdrawal_rules.check_currencies(currencies)
    return withdrawal_rules


DEFAULT_RULES = default_rules()


class Estimate(NamedTuple):
    """A withdrawal's figures in minor units: total = receive + fee is what the wallet pays."""

    fee: int
    total: int
    receive: int


def _check_amount(amount: int) -> None:
    if type(amount) is not int:
        raise InvalidAmount(f"amount {amount!r} is not an integer of minor units")
    if not 0 < amount <= AMOUNT_MAX:
        raise InvalidAmount(f"amount {amount} is not in 1..2**62")


def estimate(
    rules: WithdrawalRules, code: str, amount: int, *, includes_fee: bool = False
) -> Estimate:
    """Fee, total and amount received of a withdrawal of `amount` minor units of `code`.

    By default `amount` is what the recipient receives (Peatio's amount, seed 001's
    `final_amount: true`) and the fee comes on top. With `includes_fee` it is what the
    wallet pays (seed 001's `final_amount: false`): the recipient gets the largest
    amount whose total fits in it, so `total` may be a minor unit short of `amount` when
    the rounded-up percentage leaves no exact fit. The limits apply to what is received.
    """
    rule = rules.rule(code)
    _check_amount(amount)
    if includes_fee:
        # The largest r with r + ceil(r × bps / B) ≤ amount − flat is ⌊S × B / (B + bps)⌋.
        available = amount - rule.fee_flat
        receive = max(available, 0) * BASIS_POINTS // (BASIS_POINTS + rule.fee_bps)
    else:
        receive = amount
    if receive < rule.amount_min:
        raise BelowMinimum(receive, rule.amount_min)
    if receive > rule.amount_max:
        raise AboveMaximum(receive, rule.amount_max)
    fee = rule.fee_for(receive)
    return Estimate(fee=fee, total=receive + fee, receive=receive)


def prepare(
    rules: WithdrawalRules,
    *,
    withdrawal_id: int,
    wallet_id: str,
    code: str,
    address: str,
    amount: int,
    at_ns: int,
    custom_id: str | None = None,
    includes_fee: bool = False,
) -> Withdrawal:
    """A new withdrawal in `prepared` (nothing held yet; `accept` holds its total).

    Checks all that needs no balance: the code has a rule, the amount is within its
    limits (see `estimate`), the address is a mainnet address of the rule's chain.
    """
    if type(withdrawal_id) is not int or not 0 < withdrawal_id <= AMOUNT_MAX:
        raise InvalidWithdrawal(f"withdrawal_id {withdrawal_id!r} is not a positive integer")
    if not wallet_id or len(wallet_id) > WALLET_ID_LENGTH_MAX:
        raise InvalidWithdrawal(f"wallet_id must be 1 to {WALLET_ID_LENGTH_MAX} characters")
    if custom_id is not None and not 0 < len(custom_id) <= CUSTOM_ID_LENGTH_MAX:
        raise InvalidWithdrawal(f"custom_id must be 1 to {CUSTOM_ID_LENGTH_MAX} characters")
    rule = rules.rule(code)
    figures = estimate(rules, code, amount, includes_fee=includes_fee)
    valid, why = validate_address(rule.chain, address)
    if not valid:
        raise InvalidAddress(rule.chain, why)
    return Withdrawal(
        withdrawal_id=withdrawal_id,
        wallet_id=wallet_id,
        currency=rule.currency,
        chain=rule.chain,
        address=address,
        amount=figures.receive,
        fee=figures.fee,
        state=WithdrawalState.PREPARED,
        created_ns=at_ns,
        updated_ns=at_ns,
        custom_id=custom_id,
    )


# --------------------------------------------------------------------------- ledger legs


class Leg(Message, frozen=True):
    """One side of a ledger entry: a debit or a credit of one account (Peatio's operation).

    Member accounts (2xx) name their wallet; system accounts (1xx, 3xx) do not.
    """

    account_code: AccountCode
    wallet_id: str | None
    currency: str
    debit: int
    credit: int


def _codes(currency: Currency) -> tuple[AccountCode, AccountCode, AccountCode, AccountCode]:
    """(asset, main, locked, revenue) account codes of the currency's kind."""
    if currency.kind == "fiat":
        return (
            AccountCode.ASSET_FIAT,
            AccountCode.MAIN_FIAT,
            AccountCode.LOCKED_FIAT,
            AccountCode.REVENUE_FIAT,
        )
    return (
        AccountCode.ASSET_COIN,
        AccountCode.MAIN_COIN,
        AccountCode.LOCKED_COIN,
        AccountCode.REVENUE_COIN,
    )


def _check_money(amount: int, fee: int) -> None:
    _check_amount(amount)
    if type(fee) is not int or fee < 0:
        raise InvalidAmount(f"fee {fee!r} is not an integer ≥ 0")
    if amount + fee > AMOUNT_MAX:
        raise InvalidAmount(f"amount + fee {amount + fee} exceeds 2**62")


def legs(
    effect: MoneyEffect, *, currency: Currency, wallet_id: str, amount: int, fee: int
) -> tuple[Leg, ...]:
    """The debits and credits of `effect` for a withdrawal of `amount` with `fee`.

    They balance: per currency the debits equal the credits, so assets + expenses −
    liabilities − revenues stays 0. A zero fee has no revenue leg; NONE has no legs.
    """
    _check_money(amount, fee)
    asset, main, locked, revenue = _codes(currency)
    code = currency.code
    total = amount + fee
    result: tuple[Leg, ...]
    if effect is MoneyEffect.NONE:
        result = ()
    elif effect is MoneyEffect.HOLD:
        result = (Leg(main, wallet_id, code, total, 0), Leg(locked, wallet_id, code, 0, total))
    elif effect is MoneyEffect.RELEASE:
        result = (Leg(locked, wallet_id, code, total, 0), Leg(main, wallet_id, code, 0, total))
    else:
        sent = (Leg(locked, wallet_id, code, total, 0), Leg(asset, None, code, 0, amount))
        result = (*sent, Leg(revenue, None, code, 0, fee)) if fee else sent
    assert sum(leg.debit for leg in result) == sum(leg.credit for leg in result)
    return result


def postings(
    effect: MoneyEffect,
    *,
    currency: Currency,
    wallet_id: str,
    amount: int,
    fee: int,
    hold_id: int,
) -> tuple[Posting, ...]:
    """`legs` as the ledger's postings, each naming the withdrawal's hold.

    Ready to go in a `Transfer` (the caller gives its id, kind and idempotency key).
    """
    _check_money(amount, fee)
    asset, main, locked, revenue = _codes(currency)
    code = currency.code
    main_account = Account(main, code, wallet_id)
    locked_account = Account(locked, code, wallet_id)
    total = amount + fee
    if effect is MoneyEffect.NONE:
        return ()
    if effect is MoneyEffect.HOLD:
        return (Posting(main_account, locked_account, total, hold_id),)
    if effect is MoneyEffect.RELEASE:
        return (Posting(locked_account, main_account, total, hold_id),)
    sent = Posting(locked_account, Account(asset, code), amount, hold_id)
    if not fee:
        return (sent,)
    return (sent, Posting(locked_account, Account(revenue, code), fee, hold_id))


def withdrawal_postings(
    withdrawal: Withdrawal, effect: MoneyEffect, currency: Currency
) -> tuple[Posting, ...]:
    """`postings` of `effect` for `withdrawal`, its id as the hold id."""
    if currency.code != withdrawal.currency:
        raise InvalidWithdrawal(f"currency {currency.code} is not {withdrawal.currency}")
    return postings(
        effect,
        currency=currency,
        wallet_id=withdrawal.wallet_id,
        amount=withdrawal.amount,
        fee=withdrawal.fee,
        hold_id=withdrawal.withdrawal_id,
    )
