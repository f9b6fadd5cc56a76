"""What each container may do: non-root, no capabilities, a read-only document root for
nginx, the bind-mounted files the invoking user's, one published port."""

from __future__ import annotations

import json
import os

import pytest

from support.docker_stack import DockerStack
from support.samples import SETOSA

pytestmark = pytest.mark.docker

ROLES = ["rabbitmq", "flask", "celery-worker1", "nginx"]


@pytest.mark.parametrize("role", ROLES)
def test_non_root_without_capabilities(docker_stack: DockerStack, role: str) -> None:
    container = docker_stack.container(role)
    uid = docker_stack.docker("exec", container, "id", "-u")
    assert uid.returncode == 0 and uid.stdout.strip() not in ("", "0"), uid
    # The main process: no effective or bounding capability, no privilege gain.
    status = docker_stack.docker("exec", container, "cat", "/proc/1/status").stdout
    caps = dict(line.split(":\t", 1) for line in status.splitlines() if line.startswith("Cap"))
    assert int(caps["CapEff"], 16) == 0 and int(caps["CapBnd"], 16) == 0, caps
    assert status.split("NoNewPrivs:\t")[1][0] == "1"
    assert json.loads(docker_stack.inspect(container, "{{json .HostConfig.CapDrop}}")) == ["ALL"]


def test_nginx_document_root_is_read_only(docker_stack: DockerStack) -> None:
    nginx = docker_stack.container("nginx")
    mounts = json.loads(docker_stack.inspect(nginx, "{{json .Mounts}}"))
    assert [m["RW"] for m in mounts if m["Destination"] == "/srv/document_root"] == [False]
    # Even root in the container cannot write there: the mount, not the modes, refuses.
    touched = docker_stack.docker("exec", "--user", "0", nginx, "touch", "/srv/document_root/x")
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr, touched


def test_written_files_belong_to_the_invoking_user(docker_stack: DockerStack) -> None:
    task_id = docker_stack.submit(SETOSA)["task_id"]
    assert docker_stack.wait_done(task_id)["state"] == "SUCCESS"
    # build.sh gives the containers' user the invoking user's uid (root's: 10001).
    owner = os.getuid() or 10001
    written = [
        docker_stack.db_dir / "results.sqlite",
        docker_stack.reports_dir / f"{task_id}.pdf",
        *docker_stack.reports_dir.glob("status/*.json"),
    ]
    assert {path.stat().st_uid for path in written} == {owner}, written


def test_only_nginx_publishes_a_port(docker_stack: DockerStack) -> None:
    published = {
        name: json.loads(docker_stack.inspect(name, "{{json .NetworkSettings.Ports}}"))
        for name in docker_stack.containers()
    }
    bound = {
        name: [b for bindings in ports.values() if bindings for b in bindings]
        for name, ports in published.items()
    }
    port = docker_stack.base_url.rsplit(":", 1)[1]
    nginx = docker_stack.container("nginx")
    assert bound.pop(nginx) == [{"HostIp": "127.0.0.1", "HostPort": port}]
    assert all(not bindings for bindings in bound.values()), bound
