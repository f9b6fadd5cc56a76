"""Tools for the fault, overload and retention tests: break a private stack for real.

Processes are found through the pid files ``build.sh`` writes in
``$VAR_DIR/run``; roles are restarted with the same start scripts and the same
environment (``scripts/common.sh``'s ``load_local_env``) that ``build.sh`` uses.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any

import requests

from support.stack import ROOT, Stack, ThroughNginx

FINISHED = ("SUCCESS", "FAILURE")


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> float:
    """Poll ``check`` until true; return the seconds it took (bounds hangs; no speed check)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


def run_local_env(
    stack: Stack, body: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in bash with the stack's environment loaded as build.sh loads it.

    Unchecked: the caller looks at the return code and output.
    """
    script = (
        "set -o errexit -o nounset -o pipefail\n"
        f'. "{ROOT}/scripts/common.sh"\nload_local_env\n{body}\n'
    )
    return subprocess.run(
        ["bash", "-c", script],
        env=stack.env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def local_env_shell(stack: Stack, body: str, timeout: float = 120) -> str:
    """:func:`run_local_env`, which must succeed; return its standard output."""
    done = run_local_env(stack, body, timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- processes


def role_pid(stack: Stack, role: str) -> int:
    return int((stack.var_dir / "run" / f"{role}.pid").read_text().strip())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def kill_group(pid: int, sig: signal.Signals = signal.SIGKILL, timeout: float = 30) -> None:
    """Signal a role's whole process group (build.sh starts each role with setsid)."""
    os.killpg(os.getpgid(pid), sig)
    wait_until(lambda: not alive(pid), timeout, f"process {pid} to exit")


def worker_log_lines(stack: Stack) -> list[str]:
    return (stack.var_dir / "log" / "worker.log").read_text(errors="replace").splitlines()


def start_worker(stack: Stack, timeout: float = 90) -> float:
    """Start the worker role as build.sh does; return the seconds until it is ready."""
    before = sum(" ready." in line for line in worker_log_lines(stack))
    local_env_shell(
        stack,
        'cd "$ROOT"\n'
        'setsid nohup "$ROOT/flask/bin/start-worker.sh" >>"$LOG_DIR/worker.log" 2>&1 </dev/null &\n'
        'echo $! >"$RUN_DIR/worker.pid"',
    )
    return wait_until(
        lambda: sum(" ready." in line for line in worker_log_lines(stack)) > before,
        timeout,
        "the worker to be ready",
    )


def stop_rabbitmq(stack: Stack) -> None:
    """Kill the broker node outright: confirmed messages must survive even that."""
    kill_group(role_pid(stack, "rabbitmq"), signal.SIGKILL, timeout=60)


def start_rabbitmq(stack: Stack, timeout: float = 120) -> float:
    """Start the broker role as build.sh does; return the seconds until it is up."""
    start = time.monotonic()
    local_env_shell(
        stack,
        'setsid nohup env HOME="$RABBITMQ_HOME_DIR" "$ROOT/rabbitmq/start-rabbitmq.sh" '
        '>>"$LOG_DIR/rabbitmq.log" 2>&1 </dev/null &\n'
        'echo $! >"$RUN_DIR/rabbitmq.pid"',
    )
    # await_startup fails at once while the node is not yet registered: retry it.
    local_env_shell(
        stack,
        f"for _ in $(seq {int(timeout / 2)}); do\n"
        "  local_rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1 && exit 0\n"
        "  sleep 1\n"
        "done\n"
        "exit 1",
        timeout=timeout * 4,
    )
    return time.monotonic() - start


def queue_depth(stack: Stack) -> int:
    """Messages ready plus unacknowledged in the prediction queue."""
    out = local_env_shell(
        stack,
        'local_rabbitmqctl -q list_queues -p "$RABBITMQ_VHOST" --no-table-headers name messages',
    )
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == stack.env.get("QUEUE_NAME", "predictions"):
            return int(parts[1])
    return 0


# ---------------------------------------------------------------- database


def db(stack: Stack) -> sqlite3.Connection:
    path = stack.database_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def states(stack: Stack, task_ids: Iterable[str]) -> dict[str, str]:
    ids = list(task_ids)
    found: dict[str, str] = {}
    with db(stack) as conn:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(
                    f"SELECT task_id, status FROM celery_taskmeta WHERE task_id IN ({marks})",
                    chunk,
                ).fetchall()
            )
    return found


def job_row(stack: Stack, task_id: str) -> dict[str, Any]:
    with db(stack) as conn:
        row = conn.execute(
            "SELECT m.status, m.result, j.attempts FROM iris_jobs j "
            "LEFT JOIN celery_taskmeta m ON m.task_id = j.task_id WHERE j.task_id = ?",
            (task_id,),
        ).fetchone()
    assert row is not None, f"no row for {task_id}"
    return {"state": row[0], "result": json.loads(row[1]) if row[1] else None, "attempts": row[2]}


def wait_all_finished(stack: Stack, task_ids: Iterable[str], timeout: float) -> float:
    ids = list(task_ids)

    def done() -> bool:
        found = states(stack, ids)
        return len(found) == len(ids) and all(s in FINISHED for s in found.values())

    return wait_until(done, timeout, f"{len(ids)} jobs to finish", step=0.25)


def reports_for(stack: Stack, task_id: str) -> list[str]:
    """Every file in the reports folder that belongs to this job (PDF or temporary)."""
    return sorted(p.name for p in stack.reports_dir.iterdir() if task_id in p.name)


# ---------------------------------------------------------------- traffic


@dataclass
class Tally:
    """What a burst of submits got back."""

    accepted: list[str] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)
    unavailable: list[requests.Response] = field(default_factory=list)
    other: list[requests.Response] = field(default_factory=list)
    lock: Lock = field(default_factory=Lock)

    def record(self, response: requests.Response) -> None:
        with self.lock:
            self.codes[response.status_code] = self.codes.get(response.status_code, 0) + 1
            if response.status_code == 202:
                self.accepted.append(response.json()["task_id"])
            elif response.status_code == 503:
                self.unavailable.append(response)
            else:
                self.other.append(response)


def submit_many(
    stack: ThroughNginx,
    count: int,
    features: dict[str, float],
    threads: int = 8,
    tally: Tally | None = None,
    pause: float = 0.0,
) -> Tally:
    """Send ``count`` submits from ``threads`` threads through nginx; record every answer."""
    tally = tally or Tally()
    local = threading.local()

    def one(_: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        session: requests.Session = local.session
        response = session.post(f"{stack.base_url}/flask/predict", json=features, timeout=60)
        tally.record(response)
        if pause:
            time.sleep(pause)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return tally


def assert_clean_503(response: requests.Response) -> None:
    """A refused submit: 503, JSON, a Retry-After header, and no job left behind."""
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]
