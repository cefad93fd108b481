"""Reading request bodies: bounded, strictly typed, unknown fields refused."""

from __future__ import annotations

import re
from typing import TypeVar
from urllib.parse import parse_qsl

import falcon.asgi
import msgspec

from strongroom.http.problems import Problem

BODY_SIZE_MAX = 64 * 1024
T = TypeVar("T")
_PATH = re.compile(r" - at `\$(?:\.(?P<field>[^`\[]+))?[^`]*`$")
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `(?P<field>[^`]+)`")


async def read_bytes(req: falcon.asgi.Request, size_max: int = BODY_SIZE_MAX) -> bytes:
    """The body, at most `size_max` bytes (the auth middleware may have read it already to
    check a signature: it is kept in `req.context.body`)."""
    read: bytes | None = req.context.get("body")
    if read is not None:
        return read
    length = req.content_length
    if length is not None and length > size_max:
        raise Problem(413, "body_too_large", f"request body is limited to {size_max} bytes")
    data = await req.stream.read(size_max + 1)
    if len(data) > size_max:
        raise Problem(413, "body_too_large", f"request body is limited to {size_max} bytes")
    return data


def decode(data: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=kind, strict=True)
    except msgspec.ValidationError as error:
        message = str(error)
        text = _PATH.sub("", message)
        match = _PATH.search(message)
        named = _NAMED_FIELD.search(text)
        field = match.group("field") if match and match.group("field") else None
        if named is not None:
            field = f"{field}.{named.group('field')}" if field else named.group("field")
        raise Problem(
            422,
            "validation_error",
            message,
            errors=[{"field": field or "body", "message": text}],
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise Problem(400, "malformed_json", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise Problem(400, "malformed_json", "the body is nested too deeply") from None


async def read_json(req: falcon.asgi.Request, kind: type[T]) -> T:
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json":
        raise Problem(415, "unsupported_media_type", "send application/json")
    return decode(await read_bytes(req), kind)


async def read_form_or_json(req: falcon.asgi.Request) -> dict[str, str]:
    """A flat object of strings from JSON or application/x-www-form-urlencoded."""
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type not in ("", "application/json", "application/x-www-form-urlencoded"):
        raise Problem(415, "unsupported_media_type", "send application/json or a form")
    data = await read_bytes(req)
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(data.decode(), keep_blank_values=True, strict_parsing=bool(data))
        except (UnicodeDecodeError, ValueError):
            raise Problem(400, "malformed_form", "the body is not a valid form") from None
        return dict(pairs)
    document = decode(data, dict[str, object])
    for field, value in document.items():
        if not isinstance(value, str):
            message = f"Expected `str`, got `{type(value).__name__}`"
            raise Problem(
                422, "validation_error", f"{field}: {message}",
                errors=[{"field": field, "message": message}],
            )  # fmt: skip
    return {field: str(value) for field, value in document.items()}
