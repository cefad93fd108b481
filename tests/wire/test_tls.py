"""MTF over TLS: the server's certificate, and client certificates naming client ids."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from strongroom.actors.messages import Side
from strongroom.wire.client import MtfClient, MtfError
from strongroom.wire.mtf import Code
from tests.server import ServerProcess
from tests.support import deposit, new_wallet
from tests.wire.conftest import issue_credentials

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(tmp_path: Path, authority: trustme.CA) -> Iterator[ServerProcess]:
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    chain, key, client_ca = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in certificate.cert_chain_pems))
    authority.cert_pem.write_to_path(str(client_ca))
    process = ServerProcess(
        tmp_path / "serve",
        ("--mtf-tls-cert", str(chain), "--mtf-tls-key", str(key),
         "--mtf-tls-client-ca", str(client_ca)),
    )  # fmt: skip
    process.start()
    yield process
    process.close()


def client_context(authority: trustme.CA, common_name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    if common_name is not None:
        authority.issue_cert(common_name=common_name).configure_cert(context)
    return context


async def test_client_certificates_name_the_client_id(
    tls_server: ServerProcess, authority: trustme.CA
) -> None:
    with tls_server.client() as admin:
        wallet_id = new_wallet(admin, "tls member")
        deposit(admin, wallet_id, "BTC", "1")
        client_id, secret = issue_credentials(admin, wallet_id)

    async def login(common_name: str | None) -> tuple[MtfClient, int]:
        client = await MtfClient.connect(
            "127.0.0.1", tls_server.mtf_port, client_id, secret,
            ssl_context=client_context(authority, common_name),
        )  # fmt: skip
        return client, (await client.login()).code

    member, answer = await login(str(client_id))
    assert answer == Code.LOGIN_ACCEPTED
    member.session.new_order(Side.SELL, 1, 1, 0.01, 70000.0)
    member.flush()
    assert (await member.next_frame()).letter == "A"
    await member.close()

    impostor, answer = await login(str(client_id + 1))  # a valid certificate of another id
    assert answer == Code.LOGIN_REJECTED
    await impostor.close()

    # No client certificate: the server ends the TLS handshake (with TLS 1.3 the client
    # may only learn it on its first read).
    with pytest.raises((ssl.SSLError, ConnectionError, MtfError)):
        await login(None)
