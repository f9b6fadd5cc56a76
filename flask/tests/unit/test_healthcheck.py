"""iris_service.healthcheck and its wrapper flask/bin/healthcheck.sh, against tiny HTTP servers.

The web check must answer healthy only on a 200 from ``/flask/health``, over TCP
and over gunicorn's unix socket, and unhealthy (never hang, never crash) when
nothing listens; the wrapper must run it without importing the app.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from iris_service import healthcheck

from support.stack import ROOT

WRAPPER = ROOT / "flask" / "bin" / "healthcheck.sh"


class Handler(BaseHTTPRequestHandler):
    """Answers /flask/health with the server's ``health_status``, anything else 404."""

    def do_GET(self) -> None:
        status = getattr(self.server, "health_status", 500)
        self.send_response(status if self.path == "/flask/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # a unix socket's client address has no host to log


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    health_status = 200


def serve(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def tcp_bind() -> Iterator[str]:
    """A running TCP server that answers 200; its GUNICORN_BIND form."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.health_status = 200  # type: ignore[attr-defined]
    for _ in serve(server):
        yield f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket path must fit in 108 bytes: pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="hc") as folder:
        yield Path(folder)


@pytest.mark.parametrize("status", [200, 503])
def test_web_check_over_tcp(status: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.health_status = status  # type: ignore[attr-defined]
    for _ in serve(server):
        problem = healthcheck.check_web(f"127.0.0.1:{server.server_address[1]}")
    if status == 200:
        assert problem is None
    else:
        assert problem is not None and "answered 503" in problem


@pytest.mark.parametrize("status", [200, 503])
def test_web_check_over_a_unix_socket(status: int, short_dir: Path) -> None:
    path = short_dir / "gunicorn.sock"
    server = UnixHTTPServer(str(path), Handler)
    server.health_status = status
    for _ in serve(server):
        problem = healthcheck.check_web(f"unix:{path}")
    assert (problem is None) == (status == 200), problem


def test_web_check_with_nothing_listening(short_dir: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    server.server_close()  # the port is free again: nobody answers
    tcp = healthcheck.check_web(f"127.0.0.1:{port}")
    assert tcp is not None and "refused" in tcp.lower()
    unix = healthcheck.check_web(f"unix:{short_dir / 'none.sock'}")
    assert unix is not None and "No such file" in unix


def test_web_check_of_a_server_that_never_answers() -> None:
    # Accepts connections (the listen backlog) but never reads: the timeout ends it.
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as mute:
        problem = healthcheck.check_web(f"127.0.0.1:{mute.server_address[1]}", timeout=0.5)
    assert problem is not None and "timed out" in problem


@pytest.mark.parametrize(
    ("bind", "host", "port"),
    [
        ("0.0.0.0:8000", "127.0.0.1", 8000),
        (":8001", "127.0.0.1", 8001),
        ("[::]:8002", "::1", 8002),
        ("10.0.0.5:8003,unix:/run/x.sock", "10.0.0.5", 8003),
    ],
)
def test_the_first_bound_address_is_checked(bind: str, host: str, port: int) -> None:
    conn = healthcheck.connection_for(bind)
    assert (conn.host, conn.port) == (host, port)


@pytest.mark.parametrize("bind", ["localhost", "host:port", ""])
def test_a_bind_without_an_address_is_unhealthy_not_a_crash(bind: str) -> None:
    problem = healthcheck.check_web(bind)
    assert problem is not None and "GUNICORN_BIND" in problem


def test_main_web_reads_gunicorn_bind(
    tcp_bind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GUNICORN_BIND", tcp_bind)
    assert healthcheck.main(["web"]) == 0
    monkeypatch.setenv("GUNICORN_BIND", "unix:/nonexistent/gunicorn.sock")
    assert healthcheck.main(["web"]) == 1
    assert capsys.readouterr().err.startswith("unhealthy: ")


def test_main_worker_pings_this_worker_by_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake_exec(file: str, args: list[str]) -> None:
        calls.append((file, args))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execvp", fake_exec)
    monkeypatch.setattr(socket, "gethostname", lambda: "celery-worker3")
    monkeypatch.setenv("WORKER_NAME", "worker3")
    with pytest.raises(SystemExit):
        healthcheck.main(["worker"])
    (file, args), *_ = calls
    assert file == "celery"
    assert args[args.index("--destination") + 1] == "worker3@celery-worker3"
    assert args[args.index("--app") + 1] == "iris_service.worker"


@pytest.mark.parametrize(("args", "code"), [([], 2), (["db"], 2), (["--help"], 0)])
def test_main_usage(args: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck.main(args) == code
    assert capsys.readouterr().err.startswith("usage:")


def test_wrapper_checks_without_importing_the_app(tcp_bind: str, tmp_path: Path) -> None:
    """What the images' HEALTHCHECK runs: the check passes and Flask and Celery stay unloaded."""
    # A stand-in python first on PATH that reports every import (-X importtime).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "python"
    stub.write_text(f'#!/bin/sh\nexec "{sys.executable}" -X importtime "$@"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GUNICORN_BIND": tcp_bind}
    result = subprocess.run(
        [str(WRAPPER), "web"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "http.client" in imported  # the report is there: the check ran under it
    app_packages = {"flask", "celery", "sqlalchemy", "iris_service"}
    heavy = {m for m in imported if m.split(".")[0] in app_packages}
    assert not heavy, sorted(heavy)


def test_wrapper_reports_an_unhealthy_web(tmp_path: Path) -> None:
    env = {**os.environ, "GUNICORN_BIND": f"unix:{tmp_path / 'none.sock'}"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    result = subprocess.run(
        [str(WRAPPER), "web"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: ")
