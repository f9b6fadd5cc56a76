"""Faults in Docker mode, on the session's containers: a worker container killed
mid-job, the broker container restarted during submits, a container whose
process dies. Each test leaves the stack as it found it."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support.docker_stack import DockerStack
from support.faults import FINISHED, Tally, assert_clean_503, submit_many, wait_until
from support.samples import SETOSA, VIRGINICA

pytestmark = pytest.mark.docker


def final_states(stack: DockerStack, task_ids: list[str], timeout: float) -> dict[str, str]:
    """Each job's state once all are finished (through nginx: the host never opens the
    containers' database)."""
    found: dict[str, str] = {}

    def all_finished() -> bool:
        for task_id in task_ids:
            if found.get(task_id) not in FINISHED:
                url = f"{stack.base_url}/flask/status/{task_id}"
                found[task_id] = requests.get(url, timeout=10).json()["state"]
        return all(state in FINISHED for state in found.values())

    wait_until(all_finished, timeout, f"{len(task_ids)} jobs to finish", step=0.5)
    return found


def test_worker_killed_mid_job_loses_nothing(docker_stack: DockerStack) -> None:
    """docker pause freezes the worker holding jobs, docker kill lands mid-job; after
    a relaunch every accepted job ends SUCCESS."""
    worker = docker_stack.container("celery-worker1")
    tally = Tally()
    with ThreadPoolExecutor(1) as background:
        burst = background.submit(submit_many, docker_stack, 60, VIRGINICA, 4, tally)
        wait_until(lambda: len(tally.accepted) >= 15, 60, "15 accepted submits")
        assert docker_stack.docker("pause", worker).returncode == 0
        burst.result()
    assert set(tally.codes) == {202}, tally.codes
    # The frozen worker holds messages it has not acknowledged: jobs in its hands.
    _, unacked, _ = docker_stack.queue()
    assert unacked > 0
    assert docker_stack.docker("kill", worker).returncode == 0
    assert docker_stack.inspect(worker, "{{.State.Running}}") == "false"

    relaunched = docker_stack.script("launch_celery_worker.sh", "--restart", "worker1")
    assert relaunched.returncode == 0, relaunched.stderr
    states = final_states(docker_stack, tally.accepted, timeout=300)
    assert set(states.values()) == {"SUCCESS"}, states
    for task_id in tally.accepted:
        assert (docker_stack.reports_dir / f"{task_id}.pdf").is_file()


def test_broker_restarted_during_submits(docker_stack: DockerStack) -> None:
    """The RabbitMQ container stopped and started again while clients submit: 503 with
    Retry-After during the outage, never a 500, and every 202 completes."""
    broker = docker_stack.container("rabbitmq")
    tally = Tally()
    stop = threading.Event()

    def keep_submitting() -> None:
        while not stop.is_set():
            submit_many(docker_stack, 4, SETOSA, threads=2, tally=tally)
            time.sleep(0.05)

    health = f"{docker_stack.base_url}/flask/health"
    with ThreadPoolExecutor(1) as background:
        burst = background.submit(keep_submitting)
        try:
            wait_until(lambda: len(tally.accepted) >= 20, 60, "20 accepted submits")
            assert docker_stack.docker("stop", "--time", "30", broker).returncode == 0
            down = requests.get(health, timeout=30)
            assert down.status_code == 503 and down.headers["Retry-After"]
            assert "broker" in down.json()["error"]
            wait_until(lambda: len(tally.unavailable) >= 10, 120, "503s during the outage")
            assert docker_stack.docker("start", broker).returncode == 0
            # App and workers reconnect by themselves: nothing else is restarted.
            wait_until(lambda: requests.get(health, timeout=30).status_code == 200, 180, "200")
            after = len(tally.accepted)
            wait_until(lambda: len(tally.accepted) >= after + 20, 120, "accepted again")
        finally:
            stop.set()
            burst.result()

    assert set(tally.codes) <= {202, 503}, tally.codes  # never a 500
    for response in tally.unavailable:
        assert_clean_503(response)
    states = final_states(docker_stack, tally.accepted, timeout=300)
    assert set(states.values()) == {"SUCCESS"}, states


@pytest.mark.parametrize("role", ["flask", "celery-worker1"])
def test_restart_policy_brings_back_a_dead_process(docker_stack: DockerStack, role: str) -> None:
    """--restart unless-stopped: the container whose main process dies starts again."""
    container = docker_stack.container(role)
    restarts = int(docker_stack.inspect(container, "{{.RestartCount}}"))
    pid = int(docker_stack.inspect(container, "{{.State.Pid}}"))
    os.kill(pid, signal.SIGKILL)  # from the host: the engine did not stop it
    wait_until(
        lambda: int(docker_stack.inspect(container, "{{.RestartCount}}")) > restarts,
        60,
        f"{container} restarted",
    )
    wait_until(
        lambda: docker_stack.inspect(container, "{{.State.Health.Status}}") == "healthy",
        180,
        f"{container} healthy again",
        step=1,
    )
    task_id = docker_stack.submit(SETOSA)["task_id"]
    assert docker_stack.wait_done(task_id, timeout=60)["state"] == "SUCCESS"
