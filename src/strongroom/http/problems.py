"""RFC 9457 problem details: the one error shape of the REST edge, serialized in one place."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import msgspec
from loguru import logger

from strongroom.errors import StrongroomError, ValidationError

PROBLEM_TYPE_BASE = "https://strongroom.dev/problems/"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def invalid(field: str, message: str, code: str = "validation_error") -> Problem:
    return Problem(422, code, f"{field}: {message}", errors=[{"field": field, "message": message}])


def not_found(what: str) -> Problem:
    return Problem(404, "not_found", f"{what} not found")


def render(resp: falcon.asgi.Response, problem: Problem, instance: str) -> None:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        "instance": instance,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    resp.status = problem.status
    resp.content_type = "application/problem+json"
    resp.data = msgspec.json.encode(body)
    for name, value in problem.headers.items():
        resp.set_header(name, value)


async def handle_problem(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Problem, params: dict[str, Any]
) -> None:
    render(resp, error, req.path)


async def handle_validation(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    error: ValidationError,
    params: dict[str, Any],
) -> None:
    render(resp, invalid(error.field, error.message), req.path)


STATUS_BY_CODE = {"service_unavailable": 503}


async def handle_domain_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    error: StrongroomError,
    params: dict[str, Any],
) -> None:
    status = STATUS_BY_CODE.get(error.code, 500)
    if status == 500:
        logger.opt(exception=error).error("unmapped domain error", path=req.path)
    render(resp, Problem(status, error.code, str(error)), req.path)


async def handle_http_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    error: falcon.HTTPError,
    params: dict[str, Any],
) -> None:
    status = error.status_code
    code = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}.get(
        status, "http_error"
    )
    detail = error.description or error.title or TITLES.get(status, "Error")
    problem = Problem(status, code, str(detail), headers=dict(error.headers or {}))
    render(resp, problem, req.path)


async def handle_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Exception, params: dict[str, Any]
) -> None:
    if isinstance(error, falcon.HTTPError):
        await handle_http_error(req, resp, error, params)
        return
    logger.opt(exception=error).error("unhandled error", path=req.path)
    render(resp, Problem(500, "internal_error", "an unexpected error occurred"), req.path)


def install(app: falcon.asgi.App[Any, Any]) -> None:
    # Falcon picks the most specific handler by the exception's class hierarchy.
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(StrongroomError, handle_domain_error)
    app.add_error_handler(ValidationError, handle_validation)
    app.add_error_handler(Problem, handle_problem)
