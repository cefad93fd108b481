"""The wallet transfer's state machine (pending → completed | failed, as a table), its
public representation (`views.transfer`), public ids, and the REST edge's request
fingerprint. Pure: no I/O."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from strongroom.config import DEFAULT
from strongroom.custody import views
from strongroom.custody.errors import IllegalTransition
from strongroom.custody.transfers import (
    PROCESSING_STATUS,
    TRANSITIONS,
    TransferEvent,
    TransferKind,
    TransferStatus,
    WalletTransfer,
    advance,
)
from strongroom.custody.views import TRANSFER_PREFIX, parse_public_id, public_id
from strongroom.http.resources.transfers import fingerprint

CREATED_NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z


def pending(**changes: object) -> WalletTransfer:
    transfer = WalletTransfer(
        transfer_id=12,
        kind=TransferKind.TO_SUB,
        partner_id="partner",
        from_wallet="master",
        to_wallet="sub",
        currency="USDT",
        amount=40_500_000,
        status=TransferStatus.PENDING,
        created_ns=CREATED_NS,
        updated_ns=CREATED_NS,
        key="ext-1",
        fingerprint="f" * 64,
        callback_url="https://partner.example.com/hook",
    )
    return replace(transfer, **changes)


@pytest.mark.parametrize(
    ("status", "event"), list(itertools.product(TransferStatus, TransferEvent))
)
def test_every_pair_of_the_table_moves_or_raises_leaving_the_transfer_as_it_was(
    status: TransferStatus, event: TransferEvent
) -> None:
    transfer = pending(status=status)
    target = TRANSITIONS.get((status, event))
    if target is None:
        with pytest.raises(IllegalTransition):
            advance(transfer, event, CREATED_NS + 1)
        assert transfer.status is status
        return
    changed = advance(transfer, event, CREATED_NS + 5, reason="why", ledger_transfer_id=7)
    assert changed.status is target and changed.final
    assert (changed.updated_ns, changed.reason, changed.ledger_transfer_id) == (
        CREATED_NS + 5, "why", 7,
    )  # fmt: skip
    # Everything the request said stays as it was.
    assert replace(changed, status=status, updated_ns=CREATED_NS, reason="",
                   ledger_transfer_id=None) == transfer  # fmt: skip
    assert transfer.status is status  # immutable


def test_only_pending_moves_and_each_final_state_is_reached_one_way() -> None:
    assert {status for status, _ in TRANSITIONS} == {TransferStatus.PENDING}
    assert sorted(TRANSITIONS.values()) == sorted({TransferStatus.COMPLETED, TransferStatus.FAILED})
    assert not pending().final
    assert set(PROCESSING_STATUS) == set(TransferStatus)
    assert PROCESSING_STATUS == {
        TransferStatus.PENDING: "RECEIVED",  # seed 004's processing statuses
        TransferStatus.COMPLETED: "CREATED",
        TransferStatus.FAILED: "INVALID",
    }


def test_the_view_of_a_pending_and_of_a_failed_transfer() -> None:
    transfer = pending()
    assert views.transfer(transfer, DEFAULT.currencies) == {
        "transfer_id": "t_12",
        "transfer_type": "to_sub",
        "from_wallet_id": "master",
        "to_wallet_id": "sub",
        "currency": "USDT",
        "amount": "40.500000",
        "status": "pending",
        "processing_status": "RECEIVED",
        "reason": None,
        "external_id": "ext-1",
        "created_at": "2026-01-01T00:00:00.123456Z",
        "completed_at": None,
    }
    failed = advance(transfer, TransferEvent.FAIL, CREATED_NS + 2_000_000_000,
                     reason="insufficient_funds")  # fmt: skip
    view = views.transfer(failed, DEFAULT.currencies)
    assert (view["status"], view["processing_status"], view["reason"]) == (
        "failed", "INVALID", "insufficient_funds",
    )  # fmt: skip
    assert view["completed_at"] == "2026-01-01T00:00:02.123456Z"


@given(
    amount=st.integers(1, 2**62),
    currency=st.sampled_from(sorted(DEFAULT.currencies)),
)
def test_the_view_writes_the_amount_exactly_with_the_currencys_places(
    amount: int, currency: str
) -> None:
    decimals = DEFAULT.currencies[currency].decimals
    text = views.transfer(pending(amount=amount, currency=currency), DEFAULT.currencies)["amount"]
    whole, _, fraction = text.partition(".")
    assert len(fraction) == decimals
    assert int(whole + fraction) == amount


@given(st.integers(1, 2**63 - 1))
def test_public_ids_round_trip(number: int) -> None:
    assert parse_public_id(TRANSFER_PREFIX, public_id(TRANSFER_PREFIX, number)) == number


@pytest.mark.parametrize(
    "text",
    ["", "t_", "t_0", "t_-1", "t_+1", "t_1.0", "t_ 1", "T_1", "wd_1", "1", "t_\u0661",
     "t_" + "9" * 20, f"t_{2**63}", None, 12],
)  # fmt: skip
def test_what_is_not_a_transfer_id(text: object) -> None:
    assert parse_public_id(TRANSFER_PREFIX, text) is None


CONTENT = st.tuples(
    st.sampled_from(TransferKind),
    st.text(min_size=1, max_size=8),
    st.text(min_size=1, max_size=8),
    st.sampled_from(sorted(DEFAULT.currencies)),
    st.integers(1, 2**62),
    st.none() | st.text(max_size=12),
)


@given(CONTENT, CONTENT)
def test_the_fingerprint_is_equal_exactly_for_equal_content(
    first: tuple[TransferKind, str, str, str, int, str | None],
    second: tuple[TransferKind, str, str, str, int, str | None],
) -> None:
    digest = fingerprint(*first)
    assert len(digest) == 64 and digest == fingerprint(*first)
    assert (digest == fingerprint(*second)) == (first == second)


def test_the_fingerprint_tells_fields_apart() -> None:
    """No two contents share an encoding: fields cannot run into each other."""
    assert fingerprint(TransferKind.TO_SUB, "ab", "c", "USDT", 1, None) != fingerprint(
        TransferKind.TO_SUB, "a", "bc", "USDT", 1, None
    )
    assert fingerprint(TransferKind.TO_SUB, "a", "b", "USDT", 1, None) != fingerprint(
        TransferKind.TO_SUB, "a", "b", "USDT", 1, ""
    )
