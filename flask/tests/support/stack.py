"""A private local stack for the tests: ``build.sh --local`` in its own VAR_DIR on free ports.

Tests that break things (kill workers, stop the broker) start their own with
:func:`running_stack`; everything else shares the session's ``stack`` fixture.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import localstack
import requests

from iris_service.config import Settings

from support.settings import given_settings

ROOT = Path(__file__).resolve().parents[3]


class ThroughNginx:
    """What a test does through a stack's nginx, in either mode: submit, wait, send raw bytes."""

    base_url: str

    @property
    def reports_dir(self) -> Path:
        """The host folder the worker writes the PDFs to."""
        raise NotImplementedError

    def web_log(self) -> str:
        """What gunicorn and the app logged."""
        raise NotImplementedError

    def raw(self, request: bytes, timeout: float = 30) -> tuple[int, bytes]:
        """Send bytes exactly as given to nginx; return the status (0 if no answer) and
        the whole answer, without any client-side normalisation."""
        host, port = self.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return (int(data.split(b" ", 2)[1]) if data else 0), data

    def submit(self, features: dict[str, float]) -> dict[str, Any]:
        r = requests.post(f"{self.base_url}/flask/predict", json=features, timeout=10)
        assert r.status_code == 202, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait_done(self, task_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = requests.get(
                f"{self.base_url}/flask/status/{task_id}", timeout=10
            ).json()
            if body["state"] in ("SUCCESS", "FAILURE"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {body['state']} after {timeout}s")
            time.sleep(0.02)


class Stack(localstack.LocalStack, ThroughNginx):
    """A running local stack (private RabbitMQ node, worker, gunicorn, nginx), for tests."""

    @property
    def broker_url(self) -> str:
        e = localstack.read_env_files(self.var_dir)
        return (
            f"amqp://{e['RABBITMQ_USER']}:{e['RABBITMQ_PASSWORD']}"
            f"@127.0.0.1:{e['RABBITMQ_PORT']}/{e['RABBITMQ_VHOST']}"
        )

    def settings(self) -> Settings:
        return given_settings(
            broker_url=self.broker_url,
            database_url=self.database_url,
            reports_dir=self.reports_dir,
            model_path=self.var_dir / "model" / "iris_model.json",
            models_dir=self.var_dir / "models",
        )

    def script(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one of the repository's scripts against this stack."""
        return subprocess.run(
            [str(ROOT / args[0]), *args[1:]],
            env=self.env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def stop(self, keep_logs_in: Path | None = None) -> None:
        if keep_logs_in is None and os.environ.get("KEEP_STACK_LOGS"):
            keep_logs_in = ROOT / "test-artifacts" / "stack-logs" / self.var_dir.name
        super().stop(keep_logs_in)

    def web_log(self) -> str:
        return (self.var_dir / "log" / "web.log").read_text()


def start_stack(extra_env: dict[str, str] | None = None) -> Stack:
    """Start a private local stack with ``build.sh --local`` (own VAR_DIR, free ports).

    Tests that break things (kill workers, stop the broker) start their own with
    :func:`running_stack`; everything else shares the session's ``stack``.
    """
    started = localstack.start(extra_env)
    return Stack(started.var_dir, started.env, started.base_url)


@contextmanager
def running_stack(extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A private stack (:func:`start_stack`), stopped when the block ends, however it ends."""
    stack = start_stack(extra_env)
    try:
        yield stack
    finally:
        stack.stop()
