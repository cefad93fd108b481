"""(being written)"""

from __future__ import annotations

import msgspec

from strongroom.http.context import Services

OPERATIONS: tuple[tuple[str, str, str, int], ...] = ()
REQUESTS: dict[tuple[str, str], type[msgspec.Struct]] = {}


def routes(services: Services) -> list[tuple[str, object]]:
    return []
