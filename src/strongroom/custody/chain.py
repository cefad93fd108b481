"""Chains that withdrawals are sent to: the `Chain` protocol and a deterministic simulation.

A background worker (later) takes an accepted withdrawal through `process`, submits it
(`Chain.submit` gives the txid), applies `dispatch` with that txid, then polls the
transaction (`Chain.poll`) and hands what it sees to `reconcile`, which turns it into
the withdrawal's next value: more confirmations, `success` once the chain's required
count is reached, or `fail` when the transaction failed on chain. Incoming transfers
(deposits) are out of scope here.

`SimulatedChain` is in memory and deterministic. Time is the injected clock's; each
network mines a block every `block_time_ns` from `genesis_ns`. A transaction submitted
at time t goes in the next block, gains one confirmation per block from then on, and is
confirmed at the required count (per network, or per currency when configured). Whether
it fails is drawn at submission, with probability `failure_per_million` / 10⁶, from a
`random.Random` seeded by (seed, chain, withdrawal id): a withdrawal's txid and fate do
not depend on the order in which submissions arrive, which a simulation that reorders
messages needs. A failing transaction shows as failed once its block is mined.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from msgspec.structs import replace

from strongroom.actors.messages import Message
from strongroom.custody.errors import ChainError, InvalidEventDetails, UnknownTransaction
from strongroom.custody.withdrawals import (
    MoneyEffect,
    Withdrawal,
    WithdrawalEvent,
    WithdrawalState,
    apply,
    observe_confirmations,
)
from strongroom.errors import ConfigurationError
from strongroom.identity.vault_keys import BITCOIN, ETHEREUM, TRON

PER_MILLION = 1_000_000
TRANSACTIONS_MAX = 1_000_000
"""The most transactions one simulated chain remembers (a limit on everything)."""

_SECOND_NS = 1_000_000_000
FAILED_ON_CHAIN = "transaction failed on chain"


class TransactionStatus(StrEnum):
    PENDING = "pending"  # broadcast, in no block yet
    CONFIRMING = "confirming"  # in a block, fewer confirmations than required
    CONFIRMED = "confirmed"
    FAILED = "failed"


class ChainTransaction(Message, frozen=True):
    """What a chain says of one transaction at `observed_ns`."""

    txid: str
    withdrawal_id: int
    chain: str
    status: TransactionStatus
    confirmations: int
    confirmations_required: int
    block_height: int | None  # the block holding it; None while pending
    observed_ns: int


class Chain(Protocol):
    """Where withdrawals go out. Implementations: a node client (later), `SimulatedChain`."""

    def submit(self, withdrawal: Withdrawal) -> str:
        """Broadcast the transaction paying `withdrawal`; its txid.

        Idempotent by withdrawal id: submitting the same withdrawal again (a worker's retry
        after a crash) broadcasts nothing new and answers the same txid.
        """
        ...

    def poll(self, txid: str) -> ChainTransaction:
        """The transaction as the chain sees it now; `UnknownTransaction` if never submitted."""
        ...

    def resume(self, withdrawal: Withdrawal) -> str:
        """Broadcast a confirming withdrawal's transaction again when the chain does not
        know it (a node that lost its mempool, or a simulation restarted); its txid."""
        ...


@dataclass(frozen=True, slots=True)
class NetworkParameters:
    block_time_ns: int
    confirmations_required: int
    failure_per_million: int = 0
    genesis_ns: int = 0

    def __post_init__(self) -> None:
        if type(self.block_time_ns) is not int or self.block_time_ns <= 0:
            raise ConfigurationError("block_time_ns must be a positive integer")
        if type(self.confirmations_required) is not int or self.confirmations_required < 1:
            raise ConfigurationError("confirmations_required must be an integer ≥ 1")
        if (
            type(self.failure_per_million) is not int
            or not 0 <= self.failure_per_million <= PER_MILLION
        ):
            raise ConfigurationError(f"failure_per_million must be 0 to {PER_MILLION}")
        if type(self.genesis_ns) is not int:
            raise ConfigurationError("genesis_ns must be an integer")


DEFAULT_NETWORKS: Mapping[str, NetworkParameters] = MappingProxyType(
    {
        BITCOIN: NetworkParameters(block_time_ns=600 * _SECOND_NS, confirmations_required=3),
        ETHEREUM: NetworkParameters(block_time_ns=12 * _SECOND_NS, confirmations_required=12),
        TRON: NetworkParameters(block_time_ns=3 * _SECOND_NS, confirmations_required=19),
    }
)


@dataclass(frozen=True, slots=True)
class _Submitted:
    txid: str
    withdrawal_id: int
    chain: str
    currency: str
    address: str
    amount: int
    block_height: int  # the block that includes it
    confirmations_required: int
    fails: bool


class SimulatedChain:
    """An in-memory chain per network of `networks`, deterministic for a given seed.

    `clock()` gives nanoseconds; if it ever goes back, the chain keeps the latest time it
    saw, so a confirmation once counted is never taken back. `confirmations_required`
    overrides the network's count per currency (e.g. more for USDT than for ETH).
    """

    __slots__ = (
        "_by_txid",
        "_by_withdrawal",
        "_clock",
        "_confirmations_required",
        "_networks",
        "_now_ns",
        "_seed",
        "_transactions_max",
    )

    def __init__(
        self,
        *,
        seed: int,
        clock: Callable[[], int],
        networks: Mapping[str, NetworkParameters] = DEFAULT_NETWORKS,
        confirmations_required: Mapping[str, int] | None = None,
        transactions_max: int = TRANSACTIONS_MAX,
    ) -> None:
        overrides = dict(confirmations_required or {})
        for currency, count in overrides.items():
            if type(count) is not int or count < 1:
                raise ConfigurationError(f"confirmations_required of {currency} must be ≥ 1")
        self._seed = seed
        self._clock = clock
        self._networks = dict(networks)
        self._confirmations_required = overrides
        self._transactions_max = transactions_max
        self._by_txid: dict[str, _Submitted] = {}
        self._by_withdrawal: dict[tuple[str, int], _Submitted] = {}
        self._now_ns: int | None = None

    def _now(self) -> int:
        now = self._clock()
        if self._now_ns is None or now > self._now_ns:
            self._now_ns = now
        return self._now_ns

    def _network(self, chain: str) -> NetworkParameters:
        network = self._networks.get(chain)
        if network is None:
            raise ChainError(f"no simulated network {chain[:32]!r}")
        return network

    def height(self, chain: str) -> int:
        """The height of the network's latest block now (0 before its genesis)."""
        network = self._network(chain)
        return max(0, (self._now() - network.genesis_ns) // network.block_time_ns)

    def submit(self, withdrawal: Withdrawal) -> str:
        if withdrawal.state is not WithdrawalState.PROCESSING:
            raise ChainError(
                f"withdrawal {withdrawal.withdrawal_id} is {withdrawal.state}, not processing"
            )
        network = self._network(withdrawal.chain)
        existing = self._by_withdrawal.get((withdrawal.chain, withdrawal.withdrawal_id))
        if existing is not None:
            if (existing.currency, existing.address, existing.amount) != (
                withdrawal.currency,
                withdrawal.address,
                withdrawal.amount,
            ):
                raise ChainError(
                    f"withdrawal {withdrawal.withdrawal_id} was submitted with other terms"
                )
            return existing.txid
        if len(self._by_txid) >= self._transactions_max:
            raise ChainError(f"more than {self._transactions_max} transactions")
        draw = random.Random(f"{self._seed}:{withdrawal.chain}:{withdrawal.withdrawal_id}")
        fails = draw.randrange(PER_MILLION) < network.failure_per_million
        txid = _txid(withdrawal.chain, draw)
        while txid in self._by_txid:  # 256 random bits: only a seed chosen to collide
            txid = _txid(withdrawal.chain, draw)
        submitted = _Submitted(
            txid=txid,
            withdrawal_id=withdrawal.withdrawal_id,
            chain=withdrawal.chain,
            currency=withdrawal.currency,
            address=withdrawal.address,
            amount=withdrawal.amount,
            block_height=self.height(withdrawal.chain) + 1,
            confirmations_required=self._confirmations_required.get(
                withdrawal.currency, network.confirmations_required
            ),
            fails=fails,
        )
        self._by_txid[txid] = submitted
        self._by_withdrawal[(withdrawal.chain, withdrawal.withdrawal_id)] = submitted
        return txid

    def resume(self, withdrawal: Withdrawal) -> str:
        """Know again a confirming withdrawal's transaction after this (in-memory) chain
        was lost with its process: it is broadcast again and confirms from the next block.
        The txid is the one `submit` drew for the withdrawal, so it must match."""
        if withdrawal.state is not WithdrawalState.CONFIRMING or withdrawal.txid is None:
            raise ChainError(f"withdrawal {withdrawal.withdrawal_id} is not confirming")
        known = self._by_withdrawal.get((withdrawal.chain, withdrawal.withdrawal_id))
        if known is not None:
            return known.txid
        txid = self.submit(replace(withdrawal, state=WithdrawalState.PROCESSING))
        if txid != withdrawal.txid:
            raise ChainError(f"withdrawal {withdrawal.withdrawal_id} has another chain's txid")
        return txid

    def poll(self, txid: str) -> ChainTransaction:
        submitted = self._by_txid.get(txid)
        if submitted is None:
            raise UnknownTransaction(txid)
        height = self.height(submitted.chain)
        mined = height >= submitted.block_height
        confirmations = height - submitted.block_height + 1 if mined else 0
        if not mined:
            status = TransactionStatus.PENDING
        elif submitted.fails:
            status, confirmations = TransactionStatus.FAILED, 0
        elif confirmations >= submitted.confirmations_required:
            status = TransactionStatus.CONFIRMED
        else:
            status = TransactionStatus.CONFIRMING
        return ChainTransaction(
            txid=txid,
            withdrawal_id=submitted.withdrawal_id,
            chain=submitted.chain,
            status=status,
            confirmations=confirmations,
            confirmations_required=submitted.confirmations_required,
            block_height=submitted.block_height if mined else None,
            observed_ns=self._now(),
        )

    def txid_of(self, chain: str, withdrawal_id: int) -> str | None:
        found = self._by_withdrawal.get((chain, withdrawal_id))
        return None if found is None else found.txid

    def poll_all(self) -> tuple[ChainTransaction, ...]:
        """Every transaction as seen now, in submission order."""
        return tuple(self.poll(txid) for txid in self._by_txid)


def _txid(chain: str, draw: random.Random) -> str:
    digits = f"{draw.getrandbits(256):064x}"
    return "0x" + digits if chain == ETHEREUM else digits


def reconcile(
    withdrawal: Withdrawal, transaction: ChainTransaction, at_ns: int
) -> tuple[Withdrawal, MoneyEffect]:
    """The confirming withdrawal after what the chain says of its transaction.

    Confirmed: `success` (effect SEND). Failed: `fail` (RELEASE). Otherwise only its
    confirmations change (NONE); the same withdrawal comes back when nothing changed.
    """
    if withdrawal.state is not WithdrawalState.CONFIRMING:
        raise InvalidEventDetails(
            f"withdrawal {withdrawal.withdrawal_id} is {withdrawal.state}, not confirming"
        )
    if transaction.txid != withdrawal.txid or transaction.chain != withdrawal.chain:
        raise InvalidEventDetails(
            f"transaction {transaction.txid[:80]!r} is not withdrawal {withdrawal.withdrawal_id}'s"
        )
    if transaction.status is TransactionStatus.CONFIRMED:
        return apply(
            withdrawal,
            WithdrawalEvent.SUCCESS,
            at_ns,
            confirmations=transaction.confirmations,
        )
    if transaction.status is TransactionStatus.FAILED:
        return apply(withdrawal, WithdrawalEvent.FAIL, at_ns, reason=FAILED_ON_CHAIN)
    return observe_confirmations(withdrawal, transaction.confirmations, at_ns), MoneyEffect.NONE
