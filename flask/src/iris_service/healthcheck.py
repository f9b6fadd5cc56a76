"""Health checks of the web and worker roles, for Docker's HEALTHCHECK and for local mode.

``python -m iris_service.healthcheck web|worker`` (``flask/bin/healthcheck.sh`` is
the wrapper the images' HEALTHCHECK runs); exit status 0 means healthy.

``web``
    ``GET /flask/health`` straight from gunicorn at ``GUNICORN_BIND`` (its first
    address: ``host:port`` or ``unix:path``); healthy on a 200.
``worker``
    this worker (``WORKER_NAME@hostname``) answers a Celery ping
    (``celery inspect ping``, which replaces this process).

This module uses the standard library only and imports nothing of the package:
a check runs every few seconds in every container, and importing the app
(Flask, Celery, SQLAlchemy) costs most of a second of CPU. ``-m`` still runs the
package's ``__init__``, so the wrapper runs this file by path (``python -I``).
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
from collections.abc import Sequence

HEALTH_PATH = "/flask/health"
# gunicorn_conf.py's default, for a GUNICORN_BIND left unset.
DEFAULT_BIND = "127.0.0.1:8001"
TIMEOUT_SECONDS = 4.0
USAGE = "usage: python -m iris_service.healthcheck web|worker   (env: GUNICORN_BIND, WORKER_NAME)"


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (gunicorn's ``unix:`` bind)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection_for(bind: str, timeout: float = TIMEOUT_SECONDS) -> http.client.HTTPConnection:
    """A connection to the first address of a gunicorn bind setting.

    A wildcard host (``0.0.0.0``, ``::`` or none) is reached on the loopback.
    Raises ValueError for a setting that names no address.
    """
    first = bind.split(",")[0].strip()
    if first.startswith("unix:"):
        return _UnixHTTPConnection(first.removeprefix("unix:"), timeout)
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"GUNICORN_BIND names no host:port or unix:path: {bind!r}")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def check_web(bind: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when gunicorn answers ``GET /flask/health`` with a 200, else why not."""
    try:
        conn = connection_for(bind, timeout)
    except ValueError as exc:
        return str(exc)
    try:
        conn.request("GET", HEALTH_PATH)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"{HEALTH_PATH} at {bind}: {exc or type(exc).__name__}"
    finally:
        conn.close()
    return None if status == 200 else f"{HEALTH_PATH} at {bind} answered {status}"


def worker_ping_command(worker_name: str, hostname: str) -> list[str]:
    """The Celery ping of one worker, by its node name (start-worker.sh's ``NAME@%h``)."""
    return [
        "celery",
        "--app",
        "iris_service.worker",
        "inspect",
        "ping",
        "--destination",
        f"{worker_name}@{hostname}",
        "--timeout",
        "10",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(USAGE, file=sys.stderr)
        return 0
    if args == ["web"]:
        problem = check_web(os.environ.get("GUNICORN_BIND", DEFAULT_BIND))
        if problem is None:
            return 0
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    if args == ["worker"]:
        name = os.environ.get("WORKER_NAME", "worker1")
        command = worker_ping_command(name, socket.gethostname())
        os.execvp(command[0], command)  # noqa: S606 - a fixed command, no shell
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
