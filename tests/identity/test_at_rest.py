from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.identity.at_rest import SealBroken, ServerSealer


@given(st.text(), st.text(max_size=50))
def test_what_is_sealed_opens_with_the_same_key_and_context(secret: str, context: str) -> None:
    sealer = ServerSealer(b"k" * 32)
    sealed = sealer.seal(secret, context)
    assert sealer.open(sealed, context) == secret
    if len(secret) >= 8:  # shorter ones may turn up in any base64 text by chance
        assert secret not in sealed


def test_another_key_context_or_a_flipped_byte_does_not_open() -> None:
    sealer = ServerSealer(b"k" * 32)
    sealed = sealer.seal("JBSWY3DPEHPK3PXP", "user:1")
    with pytest.raises(SealBroken):
        ServerSealer(b"j" * 32).open(sealed, "user:1")
    with pytest.raises(SealBroken):
        sealer.open(sealed, "user:2")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(SealBroken):
        sealer.open(flipped, "user:1")
    with pytest.raises(SealBroken):
        sealer.open("v0:" + sealed[3:], "user:1")
    assert "k" * 32 not in repr(sealer)
