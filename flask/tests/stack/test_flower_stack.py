"""Flower (FLOWER=1) on a real local stack of its own, through nginx.

/flower/ refuses a request without the generated password (and with a wrong
one), and with it shows the workers and a job the test submitted, finished;
Flower's own port asks for the password too and listens on loopback only;
Flower is read-only; the worker sends task events. Then a re-run of build.sh
without FLOWER stops Flower and turns the events off, a re-run with it starts
Flower again, and ``--stop`` stops it. The session's default stack has no Flower at all.
The tests run in file order on one stack.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from support.faults import alive, role_pid, wait_until
from support.samples import VIRGINICA
from support.stack import ROOT, Stack, running_stack


@pytest.fixture(scope="module")
def flower_stack() -> Iterator[Stack]:
    with running_stack({"FLOWER": "1"}) as stack:
        yield stack


def credentials(stack: Stack) -> tuple[str, str]:
    lines = (stack.var_dir / "secrets.env").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines)
    return values["FLOWER_USER"], values["FLOWER_PASSWORD"]


def flower_port(stack: Stack) -> int:
    lines = (stack.var_dir / "local.env").read_text().splitlines()
    return int(dict(line.split("=", 1) for line in lines)["FLOWER_PORT"])


def api(stack: Stack, path: str) -> Any:
    r = requests.get(f"{stack.base_url}/flower/api/{path}", auth=credentials(stack), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def worker_log(stack: Stack) -> str:
    return (stack.var_dir / "log" / "worker.log").read_text()


def test_flower_refuses_without_the_password(flower_stack: Stack) -> None:
    for path in ("/flower/", "/flower/api/workers", "/flower/static/js/flower.js"):
        r = requests.get(f"{flower_stack.base_url}{path}", timeout=10)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
        assert r.headers["Content-Type"] == "application/json"
        assert "error" in r.json()
    user, _ = credentials(flower_stack)
    wrong = requests.get(f"{flower_stack.base_url}/flower/", auth=(user, "guess"), timeout=10)
    assert wrong.status_code == 401


def test_flower_logs_in_and_shows_the_workers(flower_stack: Stack) -> None:
    page = requests.get(
        f"{flower_stack.base_url}/flower/", auth=credentials(flower_stack), timeout=30
    )
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "/flower/static/" in page.text  # its assets under the prefix nginx proxies
    # refresh=1: ask the workers now (inspect), not Flower's last answer.
    workers = api(flower_stack, "workers?refresh=1")
    assert any(name.startswith("worker1@") for name in workers), workers


def test_flower_shows_a_finished_task(flower_stack: Stack) -> None:
    task_id = flower_stack.submit(VIRGINICA)["task_id"]
    assert flower_stack.wait_done(task_id)["state"] == "SUCCESS"
    seen: dict[str, Any] = {}

    def finished_in_flower() -> bool:
        seen.update(api(flower_stack, "tasks"))
        return seen.get(task_id, {}).get("state") == "SUCCESS"

    wait_until(finished_in_flower, 30, f"Flower to show {task_id} as SUCCESS", step=0.5)
    task = seen[task_id]
    assert task["name"] == "iris.predict"
    assert task["worker"].startswith("worker1@")


def test_the_worker_sends_task_events(flower_stack: Stack) -> None:
    assert "task events: ON" in worker_log(flower_stack)


def test_flower_is_read_only(flower_stack: Stack) -> None:
    task_id = flower_stack.submit(VIRGINICA)["task_id"]
    flower_stack.wait_done(task_id)
    r = requests.post(
        f"{flower_stack.base_url}/flower/api/task/revoke/{task_id}",
        auth=credentials(flower_stack),
        timeout=30,
    )
    assert r.status_code == 403, r.text


def test_flowers_own_port_asks_for_the_password_and_is_loopback_only(
    flower_stack: Stack,
) -> None:
    port = flower_port(flower_stack)
    direct = requests.get(f"http://127.0.0.1:{port}/flower/api/workers", timeout=10)
    assert direct.status_code == 401
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=30, check=True
    )
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.stdout.splitlines()}
    assert addresses == {"127.0.0.1"}, listening.stdout


def test_a_rerun_without_flower_stops_it_and_the_events(flower_stack: Stack) -> None:
    flower_pid = role_pid(flower_stack, "flower")
    log_size = len(worker_log(flower_stack))
    rebuilt = subprocess.run(
        [str(ROOT / "build.sh"), "--local"],
        env={**flower_stack.env, "FLOWER": "0"},
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert not alive(flower_pid)
    assert not (flower_stack.var_dir / "run" / "flower.pid").exists()
    r = requests.get(f"{flower_stack.base_url}/flower/", auth=credentials(flower_stack), timeout=10)
    assert r.status_code == 404
    assert "task events: OFF" in worker_log(flower_stack)[log_size:]


def test_a_rerun_with_flower_starts_it_again_and_stop_stops_it(flower_stack: Stack) -> None:
    rebuilt = flower_stack.script("build.sh", "--local", timeout=300)  # FLOWER=1 again
    assert rebuilt.returncode == 0, rebuilt.stderr
    pid = role_pid(flower_stack, "flower")
    assert alive(pid)
    workers = api(flower_stack, "workers?refresh=1")
    assert any(name.startswith("worker1@") for name in workers), workers
    stopped = flower_stack.script("build.sh", "--stop", timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped flower" in stopped.stderr
    assert not alive(pid)


def test_the_default_stack_has_no_flower(stack: Stack) -> None:
    r = requests.get(f"{stack.base_url}/flower/", timeout=10)
    assert r.status_code == 404
    assert r.json() == {"error": "not found"}
    assert not (stack.var_dir / "run" / "flower.pid").exists()
    assert "task events: OFF" in worker_log(stack)
