"""Request ids through the real stack: one id from the client's request to the worker's lines.

nginx keeps a client's well-formed ``X-Request-ID`` (else assigns its own),
passes it to the app, writes it in its access log and returns it on every
answer, its own included; the app logs it with the task id and sends it with
the task; the worker logs it. With ``LOG_FORMAT=json`` every line of the web
and worker logs is a JSON object.
"""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support.faults import kill_group, role_pid, wait_until
from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

NGINX_ID = re.compile(r"[0-9a-f]{32}")
JSON_FIELDS = {"timestamp", "level", "logger", "message", "request_id", "task_id"}


def _log(stack: Stack, name: str) -> list[str]:
    path = stack.var_dir / "log" / name
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _lines_with(stack: Stack, name: str, needle: str) -> list[str]:
    return [line for line in _log(stack, name) if needle in line]


def _wait_for_line(stack: Stack, name: str, *needles: str) -> list[str]:
    """The lines of a log that hold every needle, once there is one (logs are written
    after the answer or the state the test saw)."""
    wait_until(
        lambda: any(all(n in line for n in needles) for line in _log(stack, name)),
        30,
        f"a line in {name} with {needles}",
    )
    return [line for line in _log(stack, name) if all(n in line for n in needles)]


def _request_ids(answer: bytes) -> list[str]:
    """Every X-Request-ID header of a raw HTTP answer."""
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
    return [
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")[1:]
        if line.lower().startswith("x-request-id:")
    ]


def _raw(stack: Stack, request: bytes) -> tuple[int, list[str]]:
    status, answer = stack.raw(request + b"Connection: close\r\n\r\n")
    return status, _request_ids(answer)


def _submit(stack: Stack, request_id: str, features: dict[str, float]) -> requests.Response:
    return requests.post(
        f"{stack.base_url}/flask/predict",
        json=features,
        headers={"X-Request-ID": request_id},
        timeout=10,
    )


def test_one_grep_finds_the_nginx_web_and_worker_lines_of_a_job(stack: Stack) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    r = _submit(stack, request_id, VIRGINICA)
    assert r.status_code == 202, r.text
    assert r.headers["X-Request-ID"] == request_id
    task_id = r.json()["task_id"]
    assert stack.wait_done(task_id)["state"] == "SUCCESS"

    (access,) = _wait_for_line(stack, "nginx-access.log", request_id)
    assert '"POST /flask/predict HTTP/1.1" 202' in access
    (queued,) = _lines_with(stack, "web.log", request_id)
    assert task_id in queued and "job queued" in queued
    # Celery's own line of the job's end comes after the state the test saw.
    _wait_for_line(stack, "worker.log", request_id, "succeeded")
    # Written by the pool process, each with both ids.
    job = _lines_with(stack, "worker.log", request_id)
    assert all(f"[request_id={request_id} task_id={task_id}]" in line for line in job), job
    assert job[0].split("]: ", 1)[1] == "job started, attempt 1"
    assert any(f"Task iris.predict[{task_id}] succeeded" in line for line in job), job
    # The worker's main process logs the receipt outside the job: its task id, at least.
    (received,) = _lines_with(stack, "worker.log", f"Task iris.predict[{task_id}] received")
    assert f"task_id={task_id}" in received


@pytest.mark.parametrize(
    "given", ["two words", "x" * 129, "semi;colon", 'quote"d', "ünïcode".encode().decode("latin-1")]
)
def test_a_malformed_client_id_is_replaced_by_nginxs_own(stack: Stack, given: str) -> None:
    r = _submit(stack, given, SETOSA)
    assert r.status_code == 202, r.text
    request_id = r.headers["X-Request-ID"]
    assert NGINX_ID.fullmatch(request_id), request_id
    # The app logged the id nginx gave it, not one of its own.
    (queued,) = _wait_for_line(stack, "web.log", request_id)
    assert r.json()["task_id"] in queued
    assert not _lines_with(stack, "web.log", given)


@pytest.fixture(scope="module")
def finished_job(stack: Stack) -> str:
    task_id = stack.submit(SETOSA)["task_id"]
    assert stack.wait_done(task_id)["state"] == "SUCCESS"
    return task_id


def _answers(task_id: str) -> dict[str, bytes]:
    """A request for each kind of answer: the app's, nginx's files and nginx's errors."""
    return {
        "the page (location = /)": b"GET / HTTP/1.1\r\nHost: x\r\n",
        "a static file": b"GET /static/app.css HTTP/1.1\r\nHost: x\r\n",
        "a status file": f"GET /flask/status/{task_id} HTTP/1.1\r\nHost: x\r\n".encode(),
        "a report (internal /_reports/)": f"GET /flask/result/{task_id}.pdf HTTP/1.1\r\n"
        "Host: x\r\n".encode(),
        "the app's JSON": b"GET /flask/health HTTP/1.1\r\nHost: x\r\n",
        "the app's 404": b"GET /flask/nowhere HTTP/1.1\r\nHost: x\r\n",
        "the app's 405 for a status file": f"POST /flask/status/{task_id} HTTP/1.1\r\n"
        "Host: x\r\nContent-Length: 0\r\n".encode(),
        "nginx's 404": b"GET /nowhere.txt HTTP/1.1\r\nHost: x\r\n",
        "nginx's 404 for /reports/": b"GET /reports/a.pdf HTTP/1.1\r\nHost: x\r\n",
        "nginx's 405 (own Allow)": b"TRACE / HTTP/1.1\r\nHost: x\r\n",
        # nginx refuses on the header, before any body.
        "nginx's 413": b"POST /flask/predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 20000\r\n",
        "nginx's 416": b"GET /index.html HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999-\r\n",
    }


@pytest.mark.parametrize("kind", list(_answers("")))
def test_every_answer_carries_the_clients_id_once(
    stack: Stack, finished_job: str, kind: str
) -> None:
    request_id = f"edge-{uuid.uuid4().hex}"
    request = _answers(finished_job)[kind]
    head, sep, rest = request.partition(b"\r\n")
    request = head + sep + f"X-Request-ID: {request_id}\r\n".encode() + rest
    status, ids = _raw(stack, request)
    assert status, kind
    if kind == "nginx's 416":
        # nginx repeats every header add_header set (the security headers too)
        # when a range it cannot satisfy turns the file's 200 into its 416.
        ids = ids[:1]
    assert ids == [request_id], (kind, status, ids)


def test_the_status_file_answer_comes_from_nginx(stack: Stack, finished_job: str) -> None:
    # What the case above relies on: the poll never reached the app.
    request_id = f"poll-{uuid.uuid4().hex}"
    r = requests.get(
        f"{stack.base_url}/flask/status/{finished_job}",
        headers={"X-Request-ID": request_id},
        timeout=10,
    )
    assert r.status_code == 200 and r.headers["X-Request-ID"] == request_id
    (access,) = _wait_for_line(stack, "nginx-access.log", request_id)
    assert access.split(" rid=")[0].endswith("urt=-"), access


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NONSENSE\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n",
        # A request line too long: nginx reads no header after it, the client's id included.
        b"GET /?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nX-Request-ID: mine\r\n",
    ],
)
def test_a_request_nginx_cannot_parse_still_gets_an_id(stack: Stack, request_bytes: bytes) -> None:
    status, ids = _raw(stack, request_bytes)
    assert status >= 400
    assert len(ids) == 1 and NGINX_ID.fullmatch(ids[0]), ids


@pytest.fixture(scope="module")
def json_stack() -> Iterator[Stack]:
    # A submit limit of one a minute (and a burst of one, nginx's least), to see
    # nginx's 429 carry the id too.
    env = {"LOG_FORMAT": "json", "SUBMIT_RATE_LIMIT": "1r/m", "SUBMIT_RATE_BURST": "1"}
    with running_stack(env) as stack:
        yield stack


def _json_lines(path: Path) -> list[dict[str, object]]:
    objects, not_json = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        try:
            obj = json.loads(line)
        except ValueError:
            not_json.append(f"{number}: {line}")
            continue
        assert isinstance(obj, dict) and set(obj) >= JSON_FIELDS, f"{path.name}:{number}: {line}"
        objects.append(obj)
    assert not not_json, f"{path.name} has lines that are not JSON:\n" + "\n".join(not_json)
    return objects


def test_json_logs_one_object_per_line_with_the_ids(json_stack: Stack) -> None:
    request_id = f"json-{uuid.uuid4().hex}"
    r = _submit(json_stack, request_id, VIRGINICA)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert json_stack.wait_done(task_id)["state"] == "SUCCESS"
    _wait_for_line(json_stack, "worker.log", request_id, "succeeded")

    logs = json_stack.var_dir / "log"
    web = _json_lines(logs / "web.log")
    worker = _json_lines(logs / "worker.log")
    # gunicorn's own lines are JSON too, and Celery's banner is one record.
    assert any(
        o["logger"] == "gunicorn.error" and "Booting worker" in str(o["message"]) for o in web
    )
    assert any(".> transport:" in str(o["message"]) for o in worker)
    assert any("ready." in str(o["message"]) for o in worker)
    assert [o["task_id"] for o in web if o["request_id"] == request_id] == [task_id]
    job = [o for o in worker if o["request_id"] == request_id]
    assert {o["task_id"] for o in job} == {task_id}
    assert {"job started, attempt 1"} <= {str(o["message"]) for o in job}
    assert any("succeeded" in str(o["message"]) for o in job)


def test_nginxs_429_and_503_carry_the_id(json_stack: Stack) -> None:
    # Two submits a minute pass (the test above may have used one), the next does not.
    for attempt in range(3):
        limited = _submit(json_stack, f"limited-{attempt}", SETOSA)
        if limited.status_code == 429:
            break
    assert limited.status_code == 429
    assert limited.headers["X-Request-ID"] == f"limited-{attempt}"
    kill_group(role_pid(json_stack, "web"), signal.SIGTERM)
    down = requests.get(
        f"{json_stack.base_url}/flask/health", headers={"X-Request-ID": "down-1"}, timeout=10
    )
    assert down.status_code == 503
    assert down.headers["X-Request-ID"] == "down-1"
    assert down.headers["Retry-After"] == "5"
