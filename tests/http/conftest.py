from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.http.partners import Receiver
from tests.support import deposit, new_wallet

Fund = Callable[..., str]


@pytest.fixture
def fund(admin: httpx.Client) -> Iterator[Fund]:
    """`fund(BTC="1", USDT="10")`: a fresh wallet with accepted deposits.

    At teardown every open or pending order of the wallets made here is canceled, so the
    books are left as they were found.
    """
    made: list[str] = []

    def make(**amounts: str) -> str:
        wallet_id = new_wallet(admin, "funded")
        made.append(wallet_id)
        for currency, amount in amounts.items():
            deposit(admin, wallet_id, currency, amount)
        return wallet_id

    yield make
    for wallet_id in made:
        for status in ("open", "pending"):
            listed = admin.get("/orders/", params={"wallet_id": wallet_id, "status": status})
            for listed_order in listed.json():
                admin.delete(f"/orders/{listed_order['id']}/")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A partner's webhook endpoint for the test, stopped after it."""
    started = Receiver().start()
    yield started
    started.stop()
