"""Logging for every Python role: one line per record, with the request and task ids.

A request id follows a job from nginx to the worker: nginx assigns it (or keeps
a client's well-formed ``X-Request-ID``) and passes it to the app, the app
sends it with the task in the message headers (``TASK_HEADER``), and the
worker sets it for the time the task runs. While a request or a task is
handled, :class:`ContextFilter` puts ``request_id`` and ``task_id`` on every
record our handler writes, so one grep for an id finds every line of its job.

``LOG_FORMAT=text`` (the default) writes the usual human-readable line, with
the ids in brackets when there are any; ``LOG_FORMAT=json`` writes one JSON
object per line (python-json-logger) with ``timestamp`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, ``request_id`` and ``task_id``.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask, Response, g, request
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

REQUEST_ID_HEADER = "X-Request-ID"
# The name of the task message header that carries the request id.
TASK_HEADER = "request_id"
# The handler configure() installs, found again by name so that a second
# create_app() in one process (the worker imports it; gunicorn's JSON setup
# installs it first) reconfigures it instead of adding another.
HANDLER_NAME = "iris"

# The same rule as nginx's map in nginx.conf.template: anything else is
# replaced, so no client can put spaces, quotes or a line break into a log line.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,128}")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"
# "timestamp" is filled in by the formatter (timestamp=True); naming it first
# puts it first in each object.
_JSON_FIELDS = ["timestamp", "levelname", "name", "message", "request_id", "task_id"]
_JSON_NAMES = {"levelname": "level", "name": "logger"}


@dataclass(frozen=True)
class Ids:
    """The ids of what the current thread (or pool process) is working on."""

    request_id: str | None = None
    task_id: str | None = None


_NONE = Ids()
_current: ContextVar[Ids] = ContextVar("iris_log_ids", default=_NONE)


def well_formed(value: object) -> bool:
    """Whether ``value`` may be used as a request id as it is."""
    return isinstance(value, str) and _WELL_FORMED.fullmatch(value) is not None


def new_request_id() -> str:
    # 32 hex digits, like nginx's own $request_id.
    return uuid.uuid4().hex


def current() -> Ids:
    return _current.get()


def bind(request_id: str | None = None, task_id: str | None = None) -> Token[Ids]:
    """Set the ids of the work that starts now; :func:`unbind` with the token ends it."""
    return _current.set(Ids(request_id, task_id))


def unbind(token: Token[Ids]) -> None:
    _current.reset(token)


def clear() -> None:
    """Forget the ids: for the end of a task, where no token can be carried across."""
    _current.set(_NONE)


class ContextFilter(logging.Filter):
    """Puts ``request_id`` and ``task_id`` on every record (``None`` outside a request
    or task); ids a caller passed in ``extra`` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _current.get()
        if getattr(record, "request_id", None) is None:
            record.request_id = ids.request_id
        if getattr(record, "task_id", None) is None:
            # Celery's worker logs "Task ... received" from its main process,
            # outside any task, but passes the task's fields as ``extra={"data"}``.
            data = getattr(record, "data", None)
            from_data = data.get("id") if isinstance(data, dict) else None
            record.task_id = ids.task_id or (from_data if isinstance(from_data, str) else None)
        return True


class TextFormatter(logging.Formatter):
    """The human-readable line, with ``[request_id=… task_id=…]`` when either is known."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"{name}={value}"
            for name in ("request_id", "task_id")
            if (value := getattr(record, name, None)) is not None
        ]
        record.ids = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def json_formatter() -> logging.Formatter:
    """One JSON object per record; other ``extra`` fields (Celery's ``data``) are kept."""
    return JsonFormatter(
        _JSON_FIELDS,
        rename_fields=_JSON_NAMES,
        timestamp=True,
        # The text formatter's bracket, were a record formatted by both.
        reserved_attrs=[*RESERVED_ATTRS, "ids"],
    )


def formatter(log_format: LogFormat) -> logging.Formatter:
    return json_formatter() if log_format == "json" else TextFormatter()


def _handler(log_format: LogFormat) -> logging.Handler:
    # One line per event on stdout: what containers and log files want.
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter(log_format))
    return handler


def configure(level: str, log_format: LogFormat, root: logging.Logger | None = None) -> None:
    """Write the records of every logger to stdout in ``log_format``, at ``level``.

    Handlers someone else installed (pytest, an embedding program) are left
    alone and none is added next to them.
    """
    if root is None:
        root = logging.getLogger()
        if log_format == "json":
            # Python's warnings (Celery's about running as root, say) are written
            # to stderr as two plain lines; as records they are JSON too.
            logging.captureWarnings(True)
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if ours:
        for handler in ours:
            handler.setFormatter(formatter(log_format))
    elif not root.handlers:
        root.addHandler(_handler(log_format))
    root.setLevel(level)


def _bind_request() -> None:
    # nginx always sends one (its own, or the client's if well-formed); a request
    # straight to gunicorn may come with none, or with anything.
    given = request.headers.get(REQUEST_ID_HEADER)
    g.iris_log_token = bind(given if well_formed(given) else new_request_id())


def _return_request_id(response: Response) -> Response:
    # Through nginx this copy is hidden (proxy_hide_header) and nginx sends the
    # same id itself, on its own answers too; straight from gunicorn it is the one.
    request_id = _current.get().request_id
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _unbind_request(_: BaseException | None) -> None:
    token = g.pop("iris_log_token", None)
    if token is not None:
        unbind(token)


def init_app(app: Flask) -> None:
    """Give each request its id: logged with every record, returned in ``X-Request-ID``."""
    app.before_request(_bind_request)
    app.after_request(_return_request_id)
    app.teardown_request(_unbind_request)


def gunicorn_logconfig(level: str, log_format: LogFormat) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error and access logs go through our handler,
    so that in JSON mode the master's and the workers' lines are JSON too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"ids": {"()": ContextFilter}},
        "formatters": {"iris": {"()": formatter, "log_format": log_format}},
        "handlers": {
            HANDLER_NAME: {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["ids"],
                "formatter": "iris",
            }
        },
        "root": {"level": level, "handlers": [HANDLER_NAME]},
        "loggers": {
            # Replaces gunicorn's own handlers; the records propagate to ours.
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }
