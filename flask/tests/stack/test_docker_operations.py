"""The operator scripts and build.sh's life cycle in Docker mode, on real containers."""

from __future__ import annotations

import re

import pytest
import requests

from support.docker_stack import DockerStack
from support.samples import SETOSA

pytestmark = pytest.mark.docker


def test_list_and_monitor_queues(docker_stack: DockerStack) -> None:
    ready, unacked, consumers = docker_stack.queue()
    assert consumers >= 1 and ready >= 0 and unacked >= 0
    monitored = docker_stack.script("monitor_queue.sh", "-n", "2", "-i", "0.5")
    assert monitored.returncode == 0, monitored.stderr
    rounds = [line for line in monitored.stdout.splitlines() if " predictions " in f" {line} "]
    assert len(rounds) == 2, monitored.stdout


def test_launched_workers_consume_when_the_script_returns(docker_stack: DockerStack) -> None:
    """./launch_celery_worker.sh N returns only once each new worker consumes the queue."""
    before = docker_stack.queue()[2]
    launched = docker_stack.script("launch_celery_worker.sh", "2")
    assert launched.returncode == 0, launched.stderr
    # At once, no waiting: the two new containers are consumers of the queue.
    assert docker_stack.queue()[2] == before + 2
    listed = docker_stack.script("launch_celery_worker.sh", "--list")
    assert listed.returncode == 0, listed.stderr
    names = re.findall(rf"{docker_stack.project}-celery-(worker\d+)", listed.stdout)
    assert {"worker1", "worker2", "worker3"} <= set(names), listed.stdout
    health = requests.get(f"{docker_stack.base_url}/flask/health", timeout=10).json()
    assert health["workers"] == before + 2


def test_web_container_logs_no_control_socket_error(docker_stack: DockerStack) -> None:
    """gunicorn's control socket is off: the app user cannot write its home (/app)."""
    assert docker_stack.submit(SETOSA)
    log = docker_stack.web_log()
    assert "Booting worker" in log
    assert "Control server error" not in log and "Permission denied" not in log


@pytest.mark.docker_last
def test_rebuild_stop_and_purge(docker_stack: DockerStack) -> None:
    """A second ./build.sh replaces every container (the added workers too) and serves;
    --stop removes the containers, --stop --purge the network and the volume too.
    It ends the session's Docker stack, so it runs after every other test."""
    old_ids = {name: docker_stack.inspect(name, "{{.Id}}") for name in docker_stack.containers()}
    assert len(old_ids) >= 5, old_ids  # broker, web, nginx, worker1 and the launched ones
    task_id = docker_stack.submit(SETOSA)["task_id"]

    docker_stack.start()
    new_ids = {name: docker_stack.inspect(name, "{{.Id}}") for name in docker_stack.containers()}
    assert new_ids.keys() == old_ids.keys()
    assert not set(new_ids.values()) & set(old_ids.values())
    assert docker_stack.wait_done(task_id, timeout=60)["state"] == "SUCCESS"
    again = docker_stack.submit(SETOSA)["task_id"]
    assert docker_stack.wait_done(again, timeout=60)["state"] == "SUCCESS"

    network = f"{docker_stack.project}-net"
    volume = f"{docker_stack.project}-rabbitmq-data"
    stopped = docker_stack.script("build.sh", "--stop")
    assert stopped.returncode == 0, stopped.stderr
    assert docker_stack.containers() == []
    assert docker_stack.docker("network", "inspect", network).returncode == 0
    assert docker_stack.docker("volume", "inspect", volume).returncode == 0

    purged = docker_stack.script("build.sh", "--stop", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert docker_stack.docker("network", "inspect", network).returncode != 0
    assert docker_stack.docker("volume", "inspect", volume).returncode != 0
