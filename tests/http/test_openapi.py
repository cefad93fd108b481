"""The OpenAPI document is made from the served routes: it names every responder, each with
the security its resource enforces, and nothing that is not served."""

from __future__ import annotations

from typing import Any

import pytest

from strongroom.http import openapi
from strongroom.http.app import routes
from strongroom.http.auth import required_scope

SERVED = routes(None)  # type: ignore[arg-type]  # resources only keep `services` for later


def test_every_responder_is_described_with_the_security_it_enforces() -> None:
    document = openapi.document(SERVED)
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    responders = {
        (path, method)
        for path, resource in SERVED
        for method in openapi.METHODS
        if hasattr(resource, f"on_{method}")
    }
    assert described == responders
    for path, resource in SERVED:
        for method, operation in document["paths"].get(path, {}).items():
            scope = required_scope(resource, method.upper())
            security: list[dict[str, list[str]]] | None = operation.get("security")
            if scope is None:
                assert security is None, (method, path)
                continue
            assert security, (method, path)
            assert all(
                scopes == [scope] for alternative in security for scopes in alternative.values()
            )
            schemes = {name for alternative in security for name in alternative}
            assert ("userToken" in schemes) == bool(getattr(resource, "users", False))
            assert ("oauth2" in schemes) == getattr(resource, "partners", True)


def test_request_bodies_have_schemas() -> None:
    document = openapi.document(SERVED)
    schemas: dict[str, Any] = document["components"]["schemas"]
    body = document["paths"]["/orders/"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/OrderIn"}
    assert {"wallet_id", "market", "side"} <= set(schemas["OrderIn"]["properties"])
    assert schemas["RegisterIn"]["required"] == ["email", "password"]


def test_a_route_without_words_or_words_without_a_route_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openapi, "OPERATIONS", openapi.OPERATIONS[1:])
    with pytest.raises(openapi.DocumentError, match="has no entry"):
        openapi.document(SERVED)
    monkeypatch.setattr(
        openapi, "OPERATIONS", (*openapi.OPERATIONS, ("/nowhere/", "get", "lost", 200))
    )
    with pytest.raises(openapi.DocumentError):
        openapi.document(SERVED)
