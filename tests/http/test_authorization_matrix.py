"""Every operation of the served OpenAPI document x {no credential, bad credential,
under-scoped, sufficient}, against the real server: generated from the document, so a new
route cannot escape it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess

UNDER = {"read": "write", "write": "read", "admin": "read write"}  # a token short of each


def operations(server: ServerProcess) -> list[tuple[str, str, dict[str, Any]]]:
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def concrete(path: str) -> str:
    """Path parameters that name nothing (a harmless target for a sufficient credential)."""
    return re.sub(r"{\w+}", "0", path)


@pytest.fixture(scope="module")
def tokens(server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    clients = {scope: server.client(scope=scope) for scope in ("read", "write", "read write",
                                                               "read write admin")}  # fmt: skip
    address = f"matrix-{uuid.uuid4().hex[:10]}@example.com"
    password = "Matrix-Password-2026!"
    registered = clients["read write admin"].post(
        "/users/register", json={"email": address, "password": password}
    )
    assert registered.status_code == 201, registered.text
    login = httpx.post(f"{server.base_url}/users/login",
                       json={"email": address, "password": password})  # fmt: skip
    user = httpx.Client(base_url=server.base_url, timeout=30.0)
    user.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    clients["user"] = user
    yield clients
    for client in clients.values():
        client.close()


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    body = {} if method in ("post", "put", "patch") else None
    return client.request(method.upper(), concrete(path), json=body)


def test_the_matrix(server: ServerProcess, tokens: dict[str, httpx.Client]) -> None:
    anonymous = httpx.Client(base_url=server.base_url, timeout=30.0)
    garbage = httpx.Client(base_url=server.base_url, timeout=30.0,
                           headers={"Authorization": "Bearer garbage-token"})  # fmt: skip
    forged = httpx.Client(base_url=server.base_url, timeout=30.0,
                          headers={"Authorization": "Bearer a.b.c"})  # fmt: skip
    checked = 0
    for path, method, operation in operations(server):
        where = f"{method.upper()} {path}"
        security = operation.get("security")
        if security is None:  # public
            assert call(anonymous, method, path).status_code not in (401, 403), where
            continue
        schemes = {
            name: scopes[0] for alternative in security for name, scopes in alternative.items()
        }
        for client in (anonymous, garbage, forged):
            response = call(client, method, path)
            assert response.status_code == 401, (where, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        if "oauth2" in schemes:
            scope = schemes["oauth2"]
            short = call(tokens[UNDER[scope]], method, path)
            assert short.status_code == 403, (where, short.text)
            assert short.json()["code"] == "insufficient_scope"
            enough = call(tokens["read write admin"], method, path)
            assert enough.status_code not in (401, 403), (where, enough.text)
        else:  # a user's own call: a partner with every scope is still refused
            refused = call(tokens["read write admin"], method, path)
            assert refused.status_code == 403 and refused.json()["code"] == "users_only", where
        user = call(tokens["user"], method, path)
        if "userToken" in schemes:
            assert user.status_code not in (401, 403), (where, user.text)
        else:
            assert user.status_code == 403 and user.json()["code"] == "partners_only", where
        checked += 1
    assert checked >= 30
