"""Errors of the custody package; the edges map them to their codes in one place."""

from __future__ import annotations

from strongroom.errors import StrongroomError


class CustodyError(StrongroomError):
    """Base of the custody package's errors."""

    code = "custody_error"


class IllegalTransition(CustodyError):
    """An event the withdrawal's state does not allow; the withdrawal is left unchanged."""

    code = "illegal_transition"

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"a {state} withdrawal does not allow {event}")
        self.state = state
        self.event = event


class InvalidEventDetails(CustodyError):
    """Details that do not suit the event (a txid on a cancel, a dispatch without a txid)."""

    code = "invalid_event_details"


class UnsupportedCurrency(CustodyError):
    """A withdrawal currency code (or currency and chain) with no withdrawal rule."""

    code = "unsupported_currency"

    def __init__(self, what: str) -> None:
        super().__init__(f"no withdrawals of {what}")
        self.what = what


class InvalidAmount(CustodyError):
    """An amount that is not a positive integer of minor units within the ledger's range."""

    code = "invalid_amount"


class BelowMinimum(CustodyError):
    """An amount (received, fee excluded) below the currency's minimum withdrawal."""

    code = "below_minimum"

    def __init__(self, amount: int, minimum: int) -> None:
        super().__init__(f"amount {amount} is below the minimum {minimum}")
        self.amount = amount
        self.minimum = minimum


class AboveMaximum(CustodyError):
    """An amount (received, fee excluded) above the currency's maximum withdrawal."""

    code = "above_maximum"

    def __init__(self, amount: int, maximum: int) -> None:
        super().__init__(f"amount {amount} is above the maximum {maximum}")
        self.amount = amount
        self.maximum = maximum


class InvalidAddress(CustodyError):
    """A destination that is not a mainnet address of the withdrawal's chain."""

    code = "invalid_address"

    def __init__(self, chain: str, reason: str) -> None:
        super().__init__(f"not a {chain} address: {reason}")
        self.chain = chain
        self.reason = reason


class InvalidWithdrawal(CustodyError):
    """Withdrawal fields that cannot make a withdrawal (custom_id too long, empty wallet)."""

    code = "invalid_withdrawal"


class ChainError(CustodyError):
    """A chain refused a submission or does not know a transaction."""

    code = "chain_error"


class UnknownTransaction(ChainError):
    code = "unknown_transaction"

    def __init__(self, txid: str) -> None:
        super().__init__(f"unknown transaction {txid[:80]!r}")
        self.txid = txid
