"""The operating scripts against a real local stack of their own.

list_queues.sh and monitor_queue.sh read the private RabbitMQ node;
launch_celery_worker.sh adds a second worker, which must consume (the consumer
count rises) and take a share of a burst of jobs; killed, it comes back with
``--restart worker2``, and a re-run of ``build.sh`` keeps it; the containers'
health-check script is run against the same processes; then the broker is
stopped (the scripts say so) and ``build.sh --stop`` must stop the added worker too.
The tests run in file order on one stack: it is started for this module because
they add workers and stop the broker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from iris_service import create_app

from support.faults import alive, kill_group, run_local_env, states, wait_all_finished, wait_until
from support.samples import SETOSA, VIRGINICA
from support.stack import ROOT, Stack, running_stack

QUEUE_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<ready>\d+)\s+(?P<unacked>\d+)\s+(?P<consumers>\d+)$")
MONITOR_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) predictions +ready= *(?P<ready>\d+) "
    r"unacked= *(?P<unacked>\d+) consumers= *(?P<consumers>\d+) "
    r"\|(?P<bar>[# ]{40})\| (?P<depth>\d+)$"
)
RECEIVED = re.compile(r"Task iris\.predict\[([0-9a-f-]{36})\] received")


@pytest.fixture(scope="module")
def ops_stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


def queues(stack: Stack) -> dict[str, dict[str, int]]:
    result = stack.script("list_queues.sh")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["QUEUE", "READY", "UNACKED", "CONSUMERS"]
    found: dict[str, dict[str, int]] = {}
    for line in lines[1:]:
        match = QUEUE_LINE.match(line)
        assert match, line
        found[match["name"]] = {k: int(match[k]) for k in ("ready", "unacked", "consumers")}
    return found


def consumers(stack: Stack) -> int:
    return queues(stack)["predictions"]["consumers"]


def worker_states(stack: Stack) -> dict[str, str]:
    """``launch_celery_worker.sh --list``: worker name -> running or stopped."""
    listed = stack.script("launch_celery_worker.sh", "--list")
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}


def shell(stack: Stack, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A bash command with the stack's local-mode environment loaded, run from the root."""
    return run_local_env(stack, f'cd "$ROOT"\n{command}', timeout)


def test_list_queues_shows_the_prediction_queue(ops_stack: Stack) -> None:
    found = queues(ops_stack)
    assert found["predictions"] == {"ready": 0, "unacked": 0, "consumers": 1}
    # Celery's remote-control queue of the one worker is a queue like any other.
    assert any(name.startswith("worker1@") for name in found)


def test_monitor_prints_timestamped_rounds(ops_stack: Stack) -> None:
    result = ops_stack.script("monitor_queue.sh", "-i", "0.5", "-n", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout  # Celery's internal queues are left out
    matches = [MONITOR_LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [m["consumers"] for m in matches if m] == ["1", "1"]
    # Everything was idle: an empty bar and a depth of 0.
    assert all(m["bar"] == " " * 40 and m["depth"] == "0" for m in matches if m)


def test_monitor_stops_cleanly_on_ctrl_c(ops_stack: Stack) -> None:
    watcher = subprocess.Popen(
        [str(ROOT / "monitor_queue.sh"), "-i", "0.5"],
        env=ops_stack.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()  # running: one round printed
        assert MONITOR_LINE.match(first.rstrip("\n")), first
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
        watcher.wait()
    assert watcher.returncode == 0, err
    assert err.strip().endswith("stopped")
    assert all(MONITOR_LINE.match(line) for line in out.splitlines())


def test_health_check_script_on_the_local_processes(ops_stack: Stack) -> None:
    # The containers' HEALTHCHECK runs this script; here against local mode.
    assert shell(ops_stack, "flask/bin/healthcheck.sh web").returncode == 0
    nowhere = shell(ops_stack, "GUNICORN_BIND=unix:/nonexistent flask/bin/healthcheck.sh web")
    assert nowhere.returncode != 0 and "unhealthy" in nowhere.stderr
    worker = shell(ops_stack, "WORKER_NAME=worker1 flask/bin/healthcheck.sh worker")
    assert worker.returncode == 0, worker.stderr
    assert "pong" in worker.stdout
    nobody = shell(ops_stack, "WORKER_NAME=nosuchworker flask/bin/healthcheck.sh worker")
    assert nobody.returncode != 0


def test_launched_worker_consumes_and_shares_a_burst(ops_stack: Stack) -> None:
    before = queues(ops_stack)["predictions"]["consumers"]
    launched = ops_stack.script("launch_celery_worker.sh", "1", timeout=180)
    assert launched.returncode == 0, launched.stderr
    assert re.search(r"^worker2\s+\d+\s+running\s", launched.stdout, re.MULTILINE), launched.stdout
    assert queues(ops_stack)["predictions"]["consumers"] == before + 1

    listed = ops_stack.script("launch_celery_worker.sh", "--list")
    assert listed.returncode == 0
    assert {line.split()[0] for line in listed.stdout.splitlines()[1:]} == {"worker1", "worker2"}

    # A burst of 40 jobs, published straight to the broker (the rate limit in
    # front of /flask/predict is not what this test is about).
    client = create_app({"TESTING": True}, settings=ops_stack.settings()).test_client()
    ids = []
    for i in range(40):
        r = client.post("/flask/predict", json=SETOSA if i % 2 else VIRGINICA)
        assert r.status_code == 202, r.get_json()
        ids.append(r.get_json()["task_id"])
    wait_all_finished(ops_stack, ids, timeout=120)
    assert set(states(ops_stack, ids).values()) == {"SUCCESS"}

    # Which worker ran each job: each worker logs the ids it received.
    logs = ops_stack.var_dir / "log"
    received = {
        name: set(RECEIVED.findall((logs / log).read_text())) & set(ids)
        for name, log in (("worker1", "worker.log"), ("worker2", "worker-worker2.log"))
    }
    assert received["worker1"] | received["worker2"] == set(ids)
    assert received["worker1"] and received["worker2"], {k: len(v) for k, v in received.items()}
    print(
        f"\nburst of 40: worker1 ran {len(received['worker1'])}, worker2 {len(received['worker2'])}"
    )


def test_a_dead_worker_is_restarted_by_name(ops_stack: Stack) -> None:
    pidfile = ops_stack.var_dir / "run" / "worker-worker2.pid"
    killed = int(pidfile.read_text())
    kill_group(killed)
    wait_until(lambda: consumers(ops_stack) == 1, 60, "the broker to drop worker2's consumer")
    wait_until(
        lambda: worker_states(ops_stack) == {"worker1": "running", "worker2": "stopped"},
        30,
        "--list to show worker2 stopped",
    )

    unknown = ops_stack.script("launch_celery_worker.sh", "--restart", "worker9")
    assert unknown.returncode != 0
    assert "no worker named 'worker9'" in unknown.stderr, unknown.stderr

    restarted = ops_stack.script("launch_celery_worker.sh", "--restart", "worker2", timeout=180)
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted workers worker2" in restarted.stderr
    # The same role: the same pid file (build.sh --stop finds it), a new process.
    pid = int(pidfile.read_text())
    assert pid != killed and alive(pid)
    # It returned once the new process consumes.
    assert consumers(ops_stack) == 2
    assert worker_states(ops_stack) == {"worker1": "running", "worker2": "running"}


def test_rerunning_build_keeps_the_added_worker(ops_stack: Stack) -> None:
    """Defect 10: a re-run of build.sh used to stop the added workers for good."""
    pidfile = ops_stack.var_dir / "run" / "worker-worker2.pid"
    before = int(pidfile.read_text())
    rebuilt = ops_stack.script("build.sh", "--local", timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == f"{ops_stack.base_url}/"
    assert "restarted workers worker2" in rebuilt.stderr
    assert pidfile.exists(), rebuilt.stderr
    assert int(pidfile.read_text()) != before and alive(int(pidfile.read_text()))
    assert consumers(ops_stack) == 2
    assert worker_states(ops_stack) == {"worker1": "running", "worker2": "running"}


def test_broker_down_is_reported(ops_stack: Stack) -> None:
    stopped = shell(ops_stack, "local_rabbitmqctl stop")
    assert stopped.returncode == 0, stopped.stderr
    listed = ops_stack.script("list_queues.sh")
    assert listed.returncode != 0
    assert "the broker (local node" in listed.stderr and "is not answering" in listed.stderr
    assert listed.stdout == ""
    watched = ops_stack.script("monitor_queue.sh", "-i", "0.5", "-n", "1")
    assert watched.returncode == 0, watched.stderr
    assert re.match(r"^\S+Z broker not answering: ", watched.stdout), watched.stdout


def test_stop_also_stops_the_added_workers(ops_stack: Stack) -> None:
    run = ops_stack.var_dir / "run"
    pids = [int((run / name).read_text()) for name in ("worker.pid", "worker-worker2.pid")]
    result = ops_stack.script("build.sh", "--stop", timeout=180)
    assert result.returncode == 0, result.stderr
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list(run.glob("*.pid"))
