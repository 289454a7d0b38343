"""JSON error responses: every error carries an ``error`` code and a ``message``."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger("ray.serve")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


MAX_REQUEST_ID_LENGTH = 128
MAX_ECHO_LENGTH = 64


def shorten(text: str) -> str:
    """Cut a client-supplied name to ``MAX_ECHO_LENGTH`` characters for a message."""
    if len(text) <= MAX_ECHO_LENGTH:
        return text
    return text[:MAX_ECHO_LENGTH] + "..."


class ServiceError(Exception):
    """An error with the HTTP status and code it maps to."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _location(loc: tuple) -> str:
    parts = [str(part) for part in loc if part not in ("body",)]
    return ".".join(parts) or "body"


def error_body(error: str, message: str) -> dict[str, str]:
    return {"error": error, "message": message}


def validation_body(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the 422 body for pydantic errors: each field and its problem."""
    details = [
        {"field": _location(item["loc"]), "problem": item["msg"]} for item in errors
    ]
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    return {"error": "invalid_request", "message": summary, "details": details}


async def _on_validation_error(request: Request, error: RequestValidationError):
    return ORJSONResponse(validation_body(error.errors()), status_code=422)


def _body_problem(error: HTTPException) -> str | None:
    """Name what FastAPI's "error parsing the body" 400 was about, if known."""
    cause = error.__cause__
    if isinstance(cause, RecursionError):
        return "request body is JSON nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "request body is not valid UTF-8"
    if isinstance(cause, ValueError):
        return f"request body is not valid JSON: {cause}"
    return None


async def _on_http_error(request: Request, error: HTTPException):
    # FastAPI returns 400 when its JSON decoder raises something other than
    # a decode error. Such a body is as invalid as any other, so 422.
    if error.status_code == 400 and (problem := _body_problem(error)):
        return ORJSONResponse(error_body("invalid_request", problem), status_code=422)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    return ORJSONResponse(
        error_body(code, str(error.detail)),
        status_code=error.status_code,
        headers=getattr(error, "headers", None),
    )


async def _on_service_error(request: Request, error: ServiceError):
    return ORJSONResponse(
        error_body(error.error, error.message), status_code=error.status
    )


async def _on_unexpected_error(request: Request, error: Exception):
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return ORJSONResponse(
        {"error": "internal_error", "message": "internal error; see the server log"},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
