"""(being written)"""

from __future__ import annotations

import msgspec

from strongroom.http.context import Services
from strongroom.http.resources.withdrawal_info import WithdrawalInfo

OPERATIONS: tuple[tuple[str, str, str, int], ...] = ()
REQUESTS: dict[tuple[str, str], type[msgspec.Struct]] = {}


def routes(services: Services, info: WithdrawalInfo) -> list[tuple[str, object]]:
    return []
