"""The Ledger behaviour: double-entry accounts, transfers applied whole, holds.

Peatio's chart of accounts (see `AccountCode`): 1xx assets, 2xx member liabilities
(20x main, 21x locked), 3xx revenues, 4xx expenses; x01 fiat, x02 coin. A `Posting`
moves `amount` minor units from its debit account to its credit account. Balances are
kept in their natural sign: assets and expenses are debit-normal (debits - credits),
liabilities and revenues credit-normal (credits - debits), so that per currency

    assets + expenses - liabilities - revenues = 0

always. A member's balances never go negative, and neither does a hold: the funds an
order or a withdrawal set aside in a locked account, tracked by `hold_id` as the
credits to locked accounts with that id minus the debits from them.

Pure: no I/O, threads, clock or randomness. It runs on the hot path of every order (a
hold, fills, a release), so `apply` does O(postings) work and allocates little.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from strongroom.actors.messages import (
    Account,
    AccountCode,
    Posting,
    Transfer,
    TransferApplied,
    TransferDuplicate,
    TransferOutcome,
    TransferRejected,
    TransferRejection,
)
from strongroom.config import Currency
from strongroom.errors import StrongroomError

AMOUNT_MAX = 2**62
"""The largest amount of one posting, in minor units: sums stay far inside 64 bits."""

POSTINGS_MAX = 1_000
"""The most postings one transfer may carry (a fill needs a handful)."""

VALID_ACCOUNTS_MAX = 1 << 20
"""The most well-formed accounts remembered to skip their validation."""

_CODES_OF_KIND: dict[str, frozenset[AccountCode]] = {
    "fiat": frozenset(
        {
            AccountCode.ASSET_FIAT,
            AccountCode.MAIN_FIAT,
            AccountCode.LOCKED_FIAT,
            AccountCode.REVENUE_FIAT,
            AccountCode.EXPENSE_FIAT,
        }
    ),
    "coin": frozenset(
        {
            AccountCode.ASSET_COIN,
            AccountCode.MAIN_COIN,
            AccountCode.LOCKED_COIN,
            AccountCode.REVENUE_COIN,
            AccountCode.EXPENSE_COIN,
        }
    ),
}
_MEMBER_CODES = frozenset(
    {
        AccountCode.MAIN_FIAT,
        AccountCode.MAIN_COIN,
        AccountCode.LOCKED_FIAT,
        AccountCode.LOCKED_COIN,
    }
)
_LOCKED_CODES = frozenset({AccountCode.LOCKED_FIAT, AccountCode.LOCKED_COIN})
_MAIN_OF_LOCKED = {
    AccountCode.LOCKED_FIAT: AccountCode.MAIN_FIAT,
    AccountCode.LOCKED_COIN: AccountCode.MAIN_COIN,
}
# +1: a debit raises the natural balance (assets, expenses); -1: a credit does.
_DEBIT_SIGN: dict[int, int] = {code: 1 if code // 100 in (1, 4) else -1 for code in AccountCode}


class LedgerInvariantError(StrongroomError):
    """The ledger found its own books out of balance: a bug or corrupt restored state."""

    code = "internal_error"


_Key = tuple[AccountCode, str, str | None]
"""An account as (code, currency, wallet_id): hashed in C, unlike the dataclass."""


def _key(account: Account) -> _Key:
    return (account.code, account.currency, account.wallet_id)


def _account(key: _Key) -> Account:
    return Account(AccountCode(key[0]), key[1], key[2])


class Ledger:
    """Accounts, holds and idempotency keys of every currency; `apply` is all-or-nothing."""

    __slots__ = (
        "_balances",
        "_codes",
        "_hold_accounts",
        "_hold_remaining",
        "_keys",
        "_totals",
        "_valid_accounts",
    )

    def __init__(self, currencies: Mapping[str, Currency]) -> None:
        # currency code -> the account codes of its kind: one lookup validates both.
        self._codes: dict[str, frozenset[AccountCode]] = {
            code: _CODES_OF_KIND[currency.kind] for code, currency in currencies.items()
        }
        # State is keyed by `_Key` rather than `Account`: the dataclass's generated
        # __hash__ and __eq__ run in Python and dominated the cost of `apply`.
        self._balances: dict[_Key, int] = {}  # natural sign; zero balances dropped
        self._hold_remaining: dict[int, int] = {}  # live holds only (remaining != 0)
        self._hold_accounts: dict[int, _Key] = {}  # the locked account of a live hold
        self._keys: dict[str, Transfer] = {}  # idempotency key -> first applied transfer
        # per currency, the sum of debit-signed balances: 0 unless the books are broken.
        self._totals: dict[str, int] = dict.fromkeys(self._codes, 0)
        # Accounts already found well-formed, so that validating them is one lookup.
        self._valid_accounts: set[_Key] = set()

    # ------------------------------------------------------------------ commands

    def apply(self, transfer: Transfer) -> TransferOutcome:
        """Apply every posting of `transfer`, or none.

        In order: a malformed transfer is INVALID; a key already applied answers
        `TransferDuplicate` (same kind and postings) or CONFLICT; a hold named on a
        locked account other than its own is INVALID; a member account or a hold that
        the net effect would leave negative is INSUFFICIENT_FUNDS. A rejected key is not
        remembered, so a retry may succeed later.
        """
        postings = transfer.postings
        if not postings:
            return TransferRejected(transfer, TransferRejection.INVALID, "no postings")
        if len(postings) > POSTINGS_MAX:
            return TransferRejected(
                transfer, TransferRejection.INVALID, f"more than {POSTINGS_MAX} postings"
            )

        # One pass validates each posting (whatever the state) and sums the net effect
        # of the whole transfer: its postings may net out before funds are checked.
        valid_accounts = self._valid_accounts
        deltas: dict[_Key, int] = {}
        hold_deltas: dict[int, int] = {}
        hold_uses: list[tuple[int, _Key, int]] | None = None
        for index, posting in enumerate(postings):
            debit = posting.debit
            credit = posting.credit
            amount = posting.amount
            debit_key = (debit.code, debit.currency, debit.wallet_id)
            credit_key = (credit.code, credit.currency, credit.wallet_id)
            debit_locked = debit.code in _LOCKED_CODES
            credit_locked = credit.code in _LOCKED_CODES
            hold_id = posting.hold_id
            if not (
                type(amount) is int
                and 0 < amount <= AMOUNT_MAX
                and debit_key in valid_accounts
                and credit_key in valid_accounts
                and debit.currency == credit.currency
                and debit_key != credit_key
                and (
                    not (debit_locked or credit_locked)
                    if hold_id is None
                    else type(hold_id) is int and debit_locked is not credit_locked
                )
            ):
                problem = self._posting_problem(posting)
                if problem is not None:
                    return TransferRejected(
                        transfer, TransferRejection.INVALID, f"posting {index}: {problem}"
                    )
            deltas[debit_key] = deltas.get(debit_key, 0) + _DEBIT_SIGN[debit.code] * amount
            deltas[credit_key] = deltas.get(credit_key, 0) - _DEBIT_SIGN[credit.code] * amount
            if hold_id is not None:
                if hold_uses is None:
                    hold_uses = []
                if debit_locked:
                    hold_deltas[hold_id] = hold_deltas.get(hold_id, 0) - amount
                    hold_uses.append((hold_id, debit_key, index))
                else:
                    hold_deltas[hold_id] = hold_deltas.get(hold_id, 0) + amount
                    hold_uses.append((hold_id, credit_key, index))

        key = transfer.key
        if key is not None:
            first = self._keys.get(key)
            if first is not None:
                if first.kind == transfer.kind and first.postings == transfer.postings:
                    return TransferDuplicate(first)
                return TransferRejected(
                    transfer,
                    TransferRejection.CONFLICT,
                    f"key {key!r} was applied (transfer {first.transfer_id}) with other content",
                )

        hold_accounts = self._hold_accounts
        new_holds: dict[int, _Key] | None = None
        if hold_uses is not None:
            for hold_id, locked, index in hold_uses:
                bound = hold_accounts.get(hold_id)
                if bound is None:
                    if new_holds is None:
                        new_holds = {}
                    bound = new_holds.setdefault(hold_id, locked)
                if bound != locked:
                    return TransferRejected(
                        transfer,
                        TransferRejection.INVALID,
                        f"posting {index}: hold {hold_id} belongs to another locked account",
                    )

        balances = self._balances
        for account, delta in deltas.items():
            if delta < 0 and account[0] in _MEMBER_CODES:
                balance = balances.get(account, 0)
                if balance + delta < 0:
                    return TransferRejected(
                        transfer,
                        TransferRejection.INSUFFICIENT_FUNDS,
                        f"{_name(_account(account))} has {balance}, needs {-delta}",
                    )
        hold_remaining = self._hold_remaining
        for hold_id, delta in hold_deltas.items():
            if delta < 0:
                remaining = hold_remaining.get(hold_id, 0)
                if remaining + delta < 0:
                    return TransferRejected(
                        transfer,
                        TransferRejection.INSUFFICIENT_FUNDS,
                        f"hold {hold_id} has {remaining}, needs {-delta}",
                    )

        # Commit: nothing below can fail but the invariant check.
        totals = self._totals
        for account, delta in deltas.items():
            if delta:
                balance = balances.get(account, 0) + delta
                if balance:
                    balances[account] = balance
                else:
                    del balances[account]
                totals[account[1]] += _DEBIT_SIGN[account[0]] * delta
        for hold_id, delta in hold_deltas.items():
            if delta:
                remaining = hold_remaining.get(hold_id, 0) + delta
                if remaining:
                    hold_remaining[hold_id] = remaining
                    if new_holds is not None and hold_id in new_holds:
                        hold_accounts[hold_id] = new_holds[hold_id]
                else:
                    del hold_remaining[hold_id]
                    del hold_accounts[hold_id]
        if key is not None:
            self._keys[key] = transfer
        for account in deltas:
            if totals[account[1]]:
                raise LedgerInvariantError(
                    f"{account[1]} out of balance by {totals[account[1]]} "
                    f"after transfer {transfer.transfer_id}"
                )
        return TransferApplied(transfer)

    def apply_batch(self, transfers: Iterable[Transfer]) -> list[TransferOutcome]:
        """Apply each transfer in order, each whole or not at all, independently."""
        apply = self.apply
        return [apply(transfer) for transfer in transfers]

    def restore(
        self,
        balances: Iterable[tuple[Account, int]],
        holds: Iterable[tuple[int, Account, int]],
        keys: Iterable[tuple[str, Transfer]],
    ) -> None:
        """Replace the whole state with committed state (before any `apply`).

        The history is not replayed nor validated, but the restored books must balance:
        per currency totals of 0, members and holds not negative, each locked account
        equal to the sum of its holds; otherwise `LedgerInvariantError`.
        """
        self._balances = {_key(account): amount for account, amount in balances if amount}
        self._hold_remaining = {}
        self._hold_accounts = {}
        for hold_id, account, remaining in holds:
            if remaining:
                self._hold_remaining[hold_id] = remaining
                self._hold_accounts[hold_id] = _key(account)
        self._keys = dict(keys)
        self._totals = dict.fromkeys(self._codes, 0)
        locked_sums: dict[_Key, int] = {}
        for hold_id, remaining in self._hold_remaining.items():
            if remaining < 0:
                raise LedgerInvariantError(f"restored hold {hold_id} is negative: {remaining}")
            locked = self._hold_accounts[hold_id]
            locked_sums[locked] = locked_sums.get(locked, 0) + remaining
        for entry, amount in self._balances.items():
            code, currency, _ = entry
            self._totals[currency] = self._totals.get(currency, 0) + _DEBIT_SIGN[code] * amount
            if code in _MEMBER_CODES and amount < 0:
                raise LedgerInvariantError(
                    f"restored {_name(_account(entry))} is negative: {amount}"
                )
            if code in _LOCKED_CODES and locked_sums.pop(entry, 0) != amount:
                raise LedgerInvariantError(
                    f"restored {_name(_account(entry))} differs from its holds"
                )
        if locked_sums:
            locked = next(iter(locked_sums))
            raise LedgerInvariantError(
                f"restored holds on {_name(_account(locked))} exceed its balance"
            )
        for currency, total in self._totals.items():
            if total:
                raise LedgerInvariantError(f"restored {currency} out of balance by {total}")

    # ------------------------------------------------------------------ queries

    def balance(self, account: Account) -> int:
        """The account's balance in its natural sign (0 for an account never used)."""
        return self._balances.get((account.code, account.currency, account.wallet_id), 0)

    def hold_remaining(self, hold_id: int) -> int:
        """What hold `hold_id` still has; 0 when unknown or fully used."""
        return self._hold_remaining.get(hold_id, 0)

    def hold_account(self, hold_id: int) -> Account | None:
        """The locked account of a live hold; None when unknown or fully used."""
        locked = self._hold_accounts.get(hold_id)
        return None if locked is None else _account(locked)

    def release_postings(self, hold_id: int) -> tuple[Posting, ...]:
        """The postings returning a live hold's remainder to its wallet's main account.

        Empty when nothing remains. Not applied: the caller puts them in a transfer
        (possibly with others, e.g. the last fill of an order).
        """
        remaining = self._hold_remaining.get(hold_id, 0)
        if remaining <= 0:
            return ()
        code, currency, wallet_id = self._hold_accounts[hold_id]
        return (
            Posting(
                debit=Account(AccountCode(code), currency, wallet_id),
                credit=Account(_MAIN_OF_LOCKED[code], currency, wallet_id),
                amount=remaining,
                hold_id=hold_id,
            ),
        )

    def totals(self, currency: str) -> int:
        """Assets + expenses - liabilities - revenues of `currency`: always 0."""
        return self._totals.get(currency, 0)

    def accounts(self) -> Iterator[tuple[Account, int]]:
        """Every nonzero balance (a snapshot, in first-use order)."""
        return iter([(_account(account), balance) for account, balance in self._balances.items()])

    # ------------------------------------------------------------------ validation

    def _posting_problem(self, posting: Posting) -> str | None:
        """Why `posting` can never be applied, whatever the state; None if it can."""
        amount = posting.amount
        if type(amount) is not int or not 0 < amount <= AMOUNT_MAX:
            return f"amount {amount!r} is not an integer in 1..2**62"
        debit = posting.debit
        credit = posting.credit
        if _key(debit) == _key(credit):
            return "debit and credit are the same account"
        if debit.currency != credit.currency:
            return f"mixed currencies {debit.currency} and {credit.currency}"
        problem = self._account_problem(debit) or self._account_problem(credit)
        if problem is not None:
            return problem
        debit_locked = debit.code in _LOCKED_CODES
        credit_locked = credit.code in _LOCKED_CODES
        hold_id = posting.hold_id
        if hold_id is None:
            if debit_locked or credit_locked:
                return "a posting touching a locked account needs a hold_id"
        elif type(hold_id) is not int:
            return f"hold_id {hold_id!r} is not an integer"
        elif not (debit_locked or credit_locked):
            return f"hold {hold_id} on a posting that touches no locked account"
        elif debit_locked and credit_locked:
            return f"hold {hold_id} would span two locked accounts"
        return None

    def _account_problem(self, account: Account) -> str | None:
        """Why `account` is malformed; None (and remembered as valid) if it is not."""
        codes = self._codes.get(account.currency)
        if codes is None:
            return f"unknown currency {account.currency!r}"
        code = account.code
        if code not in codes:
            return f"account code {code!r} does not suit currency {account.currency}"
        if code in _MEMBER_CODES:
            if not account.wallet_id or type(account.wallet_id) is not str:
                return f"member account {code!r} without a wallet_id"
        elif account.wallet_id is not None:
            return f"system account {code!r} with wallet_id {account.wallet_id!r}"
        if len(self._valid_accounts) >= VALID_ACCOUNTS_MAX:
            self._valid_accounts.clear()  # a cache: forgetting costs a re-check, no more
        self._valid_accounts.add(_key(account))
        return None


def _name(account: Account) -> str:
    code = int(account.code)
    if account.wallet_id is None:
        return f"account {code} {account.currency}"
    return f"account {code} {account.currency} of wallet {account.wallet_id}"
