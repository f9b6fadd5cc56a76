"""The HTTP edges through real nginx: no nginx HTML page anywhere, OPTIONS reaching the
app, and a health body that tells whether any worker consumes the queue."""

from __future__ import annotations

import signal

import pytest
import requests

from support.faults import kill_group, role_pid, wait_until
from support.samples import SETOSA
from support.stack import ThroughNginx, running_stack

pytestmark = pytest.mark.stack


def _is_json(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    return b"content-type: application/json" in head.lower() and body.lstrip().startswith(b"{")


@pytest.mark.parametrize(
    "request_bytes",
    [
        # nginx's HTML 301 to /flask/: every answer under /flask is JSON.
        b"GET /flask HTTP/1.1\r\nHost: x\r\n",
        b"OPTIONS /flask HTTP/1.1\r\nHost: x\r\n",
        # Folders: nginx's HTML 403 (no listing) and its HTML 301 (add a slash).
        b"GET /static/ HTTP/1.1\r\nHost: x\r\n",
        b"GET /static HTTP/1.1\r\nHost: x\r\n",
        b"GET /reports HTTP/1.1\r\nHost: x\r\n",
        # nginx's own refusals on the UI's paths.
        b"GET /index.html HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999-\r\n",
        b'GET /index.html HTTP/1.1\r\nHost: x\r\nIf-Match: "nope"\r\n',
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n",
    ],
)
def test_nginx_never_answers_its_html_pages(any_stack: ThroughNginx, request_bytes: bytes) -> None:
    status, data = any_stack.raw(request_bytes + b"Connection: close\r\n\r\n")
    assert status >= 400, data[:300]
    assert _is_json(data), data[:300]
    assert b"<html" not in data


def test_options_through_nginx_is_the_apps_204(any_stack: ThroughNginx) -> None:
    done = any_stack.wait_done(any_stack.submit(SETOSA)["task_id"])
    task_id = done["task_id"]
    # The finished job's status file exists: nginx must still let the app answer OPTIONS.
    paths = {
        "/flask/predict": {"POST", "OPTIONS"},
        f"/flask/status/{task_id}": {"GET", "HEAD", "OPTIONS"},
        "/flask/status": {"GET", "HEAD", "OPTIONS"},
        f"/flask/result/{task_id}.pdf": {"GET", "HEAD", "OPTIONS"},
        "/flask/tasks": {"GET", "HEAD", "OPTIONS"},
        "/flask/health": {"GET", "HEAD", "OPTIONS"},
    }
    for path, methods in paths.items():
        r = requests.options(any_stack.base_url + path, timeout=10)
        assert r.status_code == 204, (path, r.status_code, r.text[:200])
        assert r.content == b"", path
        assert {m.strip() for m in r.headers["Allow"].split(",")} == methods, path
    # A wrong method on a job with a status file gets the app's 405 and Allow too.
    wrong = requests.post(f"{any_stack.base_url}/flask/status/{task_id}", timeout=10)
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method not allowed"
    assert {m.strip() for m in wrong.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_health_counts_the_consuming_worker(any_stack: ThroughNginx) -> None:
    r = requests.get(f"{any_stack.base_url}/flask/health", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["workers"] >= 1
    assert body["queue"]["ready"] >= 0


def test_health_is_degraded_with_no_worker() -> None:
    """Jobs queue up with nothing consuming: health still answers 200 (broker and
    database are up) but says "degraded", with no worker and the jobs waiting."""
    with running_stack() as stack:
        health = f"{stack.base_url}/flask/health"
        kill_group(role_pid(stack, "worker"), signal.SIGKILL)
        # The broker drops the dead worker's consumer when its connection closes.
        wait_until(lambda: requests.get(health, timeout=10).json()["workers"] == 0, 60, "0")
        for _ in range(4):
            stack.submit(SETOSA)
        r = requests.get(health, timeout=10)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "degraded"
        assert body["workers"] == 0
        assert body["queue"]["ready"] >= 4
        assert body["broker"] == "ok" and body["database"] == "ok"
