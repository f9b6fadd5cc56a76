"""End to end through real nginx in front of gunicorn, with the worker and broker behind,
in local mode and (``any_stack``) as containers."""

from __future__ import annotations

import io
import uuid

import pytest
import requests
from pypdf import PdfReader

from iris_service.store import StatusStore

from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, ThroughNginx

pytestmark = pytest.mark.stack


def test_health_through_nginx(any_stack: ThroughNginx) -> None:
    r = requests.get(f"{any_stack.base_url}/flask/health", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["workers"] >= 1
    assert body == {
        "status": "ok",
        "broker": "ok",
        "database": "ok",
        "workers": body["workers"],
        "queue": {"ready": body["queue"]["ready"]},
    }
    assert r.headers["Server"] == "nginx"  # no version number


def test_submit_poll_download(any_stack: ThroughNginx) -> None:
    r = requests.post(f"{any_stack.base_url}/flask/predict", json=VIRGINICA, timeout=10)
    assert r.status_code == 202
    body = r.json()
    assert body["state"] == "PENDING"
    assert r.headers["Location"] == body["status_url"] == f"/flask/status/{body['task_id']}"
    done = any_stack.wait_done(body["task_id"])
    assert done["state"] == "SUCCESS"
    assert done["result"]["label"] == "virginica"

    pdf = requests.get(any_stack.base_url + done["result"]["report_url"], timeout=10)
    assert pdf.status_code == 200
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment")
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "virginica" in text and body["task_id"] in text

    listed = requests.get(f"{any_stack.base_url}/flask/tasks?limit=100", timeout=10).json()["tasks"]
    assert any(t["task_id"] == body["task_id"] and t["label"] == "virginica" for t in listed)


def test_form_submit(any_stack: ThroughNginx) -> None:
    form = {k: str(v) for k, v in SETOSA.items()}
    r = requests.post(f"{any_stack.base_url}/flask/predict", data=form, timeout=10)
    assert r.status_code == 202
    assert any_stack.wait_done(r.json()["task_id"])["result"]["label"] == "setosa"


def test_errors_through_nginx(any_stack: ThroughNginx) -> None:
    unknown = str(uuid.uuid4())
    assert (
        requests.get(f"{any_stack.base_url}/flask/status/{unknown}", timeout=10).status_code == 404
    )
    assert requests.get(f"{any_stack.base_url}/flask/status/abc", timeout=10).status_code == 400
    r = requests.post(
        f"{any_stack.base_url}/flask/predict",
        data="x" * 40_000,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 413
    assert r.json()["error"]


def test_result_before_ready_is_409(stack: Stack) -> None:
    # A job recorded but never published stays PENDING: a deterministic "not ready".
    task_id = str(uuid.uuid4())
    StatusStore(stack.database_url, stack.settings().sqlite_busy_timeout_ms).create_pending(
        task_id, SETOSA
    )
    r = requests.get(f"{stack.base_url}/flask/result/{task_id}.pdf", timeout=10)
    assert r.status_code == 409
    assert r.json()["state"] == "PENDING"


def raw_get(stack: ThroughNginx, path: str) -> tuple[int, bytes]:
    """GET the path byte for byte, without any client-side normalisation."""
    return stack.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), 10)


@pytest.mark.parametrize(
    "path",
    [
        "/flask/result/../../../../etc/passwd",
        "/flask/result/..%2f..%2f..%2f..%2fetc%2fpasswd.pdf",
        "/flask/result/%2e%2e/%2e%2e/etc/passwd.pdf",
        "/flask/result/....//....//etc/passwd.pdf",
        "/_reports/../../../../etc/passwd",
        "/reports/../../../../etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/flask/../../../../etc/passwd",
    ],
)
def test_no_traversal(any_stack: ThroughNginx, path: str) -> None:
    status, data = raw_get(any_stack, path)
    assert 400 <= status < 500, (path, status)
    assert b"root:" not in data
    # Whoever refuses it (nginx or the app), the answer is JSON, never an HTML page.
    headers, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), (path, headers)
    assert b'"error"' in body


def test_reports_only_through_the_app(any_stack: ThroughNginx) -> None:
    body = any_stack.submit(SETOSA)
    any_stack.wait_done(body["task_id"])
    name = f"{body['task_id']}.pdf"
    assert (any_stack.reports_dir / name).exists()
    assert raw_get(any_stack, f"/reports/{name}")[0] == 404
    assert raw_get(any_stack, f"/_reports/{name}")[0] == 404
    assert raw_get(any_stack, f"/flask/result/{name}")[0] == 200
