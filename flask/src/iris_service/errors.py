"""Every error answer is JSON: ``{"error": message, ...details}``; never HTML, never a traceback.

:func:`json_error` and :func:`unavailable` are the one way to build such an
answer; :func:`register_error_handlers` turns what views raise into them.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from .validation import InvalidInputError

log = logging.getLogger(__name__)

# What a 503 tells clients to wait, in the Retry-After header and the body.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error the client caused or must act on, with its HTTP status."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def json_error(status: int, message: str, **details: Any) -> Response:
    """The answer ``{"error": message, **details}`` with this status."""
    response = jsonify(error=message, **details)
    response.status_code = status
    return response


def unavailable(message: str, **details: Any) -> Response:
    """A 503 the client should retry: Retry-After in the header and in the body."""
    response = json_error(503, message, retry_after=RETRY_AFTER_SECONDS, **details)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return json_error(exc.status, exc.message, **exc.details)

    @app.errorhandler(InvalidInputError)
    def _invalid_input(exc: InvalidInputError) -> Response:
        return json_error(400, "invalid input", fields=exc.fields)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            404: "not found",
            405: "method not allowed",
            413: f"the body is too large (at most {app.config['MAX_CONTENT_LENGTH']} bytes)",
        }
        response = json_error(status, messages.get(status, exc.description or exc.name))
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Logged with its traceback for the operator; the client gets no internals.
        log.exception("unhandled error")
        return json_error(500, "internal error")
