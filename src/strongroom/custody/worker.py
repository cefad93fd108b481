"""The custody worker: the asyncio shell that moves withdrawals along the chain and lets
time act on payments.

Every `interval_s` it asks the desk (in the ledger actor) for the live withdrawals and:

- `accepted` → `process` (queued for the chain);
- `processing` → submits to the `Chain` (idempotent by withdrawal id) → `dispatch` with
  the txid; a chain that refuses → `err` (the hold stays; an operator decides);
- `confirming` → polls the transaction: confirmed → `success` (the amount leaves, the
  fee goes to revenue), failed → `fail` (released), else the new confirmation count.

and tells the desk to confirm or expire the payments that are due. Every change goes
through the desk and is committed before the next step reads it, so a crash at any
point (even kill -9) resumes from the committed state: a withdrawal is submitted again
(the chain answers the same txid) and never sent or released twice, because the desk's
state machine allows each money step once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loguru import logger

from strongroom.actors.messages import Refused
from strongroom.custody.chain import Chain, TransactionStatus
from strongroom.custody.errors import ChainError, UnknownTransaction
from strongroom.custody.withdrawals import (
    TrackedWithdrawal,
    WithdrawalEvent,
    WithdrawalState,
)
from strongroom.service import ServiceUnavailable, Trading

WORKING_STATES = frozenset(
    {WithdrawalState.ACCEPTED, WithdrawalState.PROCESSING, WithdrawalState.CONFIRMING}
)
BATCH_MAX = 500  # withdrawals advanced per round


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    interval_s: float = 0.5


class CustodyWorker:
    def __init__(self, trading: Trading, chain: Chain, settings: WorkerSettings) -> None:
        self.trading = trading
        self.chain = chain
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.rounds = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="custody worker")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.round()
            except ServiceUnavailable as error:
                if self.trading.accepting:  # else: shutting down, nothing to say
                    logger.warning("custody worker waits", reason=str(error))
            except Exception as error:  # the worker must outlive whatever happens here
                logger.opt(exception=error).error("custody worker round failed")
            await asyncio.sleep(self.settings.interval_s)

    async def round(self) -> None:
        """One pass over the payments due and the live withdrawals."""
        self.rounds += 1
        await self.trading.payments_due()
        live = await self.trading.inspect_custody(
            lambda desk: desk.live_withdrawals(WORKING_STATES)[:BATCH_MAX]
        )
        for tracked in live:
            await self._advance(tracked)

    async def _advance(self, tracked: TrackedWithdrawal) -> None:
        withdrawal = tracked.withdrawal
        state = withdrawal.state
        withdrawal_id = withdrawal.withdrawal_id
        if state is WithdrawalState.ACCEPTED:
            changed = await self.trading.withdrawal_change(withdrawal_id, WithdrawalEvent.PROCESS)
            if isinstance(changed, Refused):
                return
            withdrawal = changed.withdrawal
            state = withdrawal.state
        if state is WithdrawalState.PROCESSING:
            try:
                txid = await asyncio.to_thread(self.chain.submit, withdrawal)
            except ChainError as error:
                logger.warning("withdrawal not submitted", withdrawal_id=withdrawal_id,
                               error=str(error))  # fmt: skip
                await self.trading.withdrawal_change(
                    withdrawal_id, WithdrawalEvent.ERROR, reason=str(error)[:500]
                )
                return
            await self.trading.withdrawal_change(withdrawal_id, WithdrawalEvent.DISPATCH, txid=txid)
            return
        if state is not WithdrawalState.CONFIRMING or withdrawal.txid is None:
            return
        try:
            try:
                transaction = await asyncio.to_thread(self.chain.poll, withdrawal.txid)
            except UnknownTransaction:
                await asyncio.to_thread(self.chain.resume, withdrawal)  # after a restart
                transaction = await asyncio.to_thread(self.chain.poll, withdrawal.txid)
        except ChainError as error:
            logger.warning("withdrawal not polled", withdrawal_id=withdrawal_id, error=str(error))
            return
        if transaction.status is TransactionStatus.CONFIRMED:
            await self.trading.withdrawal_change(
                withdrawal_id, WithdrawalEvent.SUCCESS, confirmations=transaction.confirmations
            )
        elif transaction.status is TransactionStatus.FAILED:
            await self.trading.withdrawal_change(
                withdrawal_id, WithdrawalEvent.FAIL, reason="transaction failed on chain"
            )
        elif transaction.confirmations != withdrawal.confirmations:
            await self.trading.withdrawal_change(
                withdrawal_id, None, confirmations=transaction.confirmations
            )
