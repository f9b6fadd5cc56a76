"""The Docker-mode stack for the tests: ``build.sh --docker`` from a copy of the checkout.

The engine comes from ``scripts/docker-test-engine.sh``: one that answers and
can pull the official base images, else a private one with locally built
stand-ins (CI's machine has no registry). The checkout is copied (tracked and
new files, as a fresh clone has them), so the containers' ``db/`` and
``document_root/reports/`` bind mounts are the test's own; the images are built
once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import localstack
import pytest

from support.stack import ROOT, ThroughNginx

ENGINE_SCRIPT = ROOT / "scripts" / "docker-test-engine.sh"
# Not the user's "iris": a test run never replaces a stack someone started.
PROJECT = "iristest"


def engine_env() -> dict[str, str]:
    """Start (or find) the engine; its DOCKER_HOST and base-image settings.

    An engine that cannot start fails the Docker tests in CI (CI=true) and skips
    them, with the reason, elsewhere.
    """
    run = subprocess.run(
        [str(ENGINE_SCRIPT), "start"],
        text=True,
        capture_output=True,
        timeout=1800,
        check=False,
    )
    if run.returncode != 0:
        message = f"no Docker engine for the Docker tests:\n{run.stderr[-3000:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pairs = (line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    return {key: value for key, value in pairs if value}


def stop_engine() -> None:
    """Stop the private engine, if one was started (the script knows)."""
    subprocess.run([str(ENGINE_SCRIPT), "stop"], capture_output=True, timeout=300, check=False)


def copy_checkout() -> Path:
    """The checkout's files as a fresh clone has them (plus new files not yet committed)."""
    root = Path(tempfile.mkdtemp(prefix="iris-docker-"))
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    root.chmod(0o755)
    return root


@dataclass
class DockerStack(ThroughNginx):
    """A running Docker-mode stack: the copy it was built from, its environment and URL."""

    root: Path
    env: dict[str, str]
    base_url: str
    project: str = PROJECT

    @property
    def reports_dir(self) -> Path:
        return self.root / "document_root" / "reports"

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    def container(self, role: str) -> str:
        """The container name of a role: rabbitmq, flask, nginx, celery-worker1, ..."""
        return f"{self.project}-{role}"

    def script(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run one of the copy's scripts (build.sh, launch_celery_worker.sh, ...)."""
        return subprocess.run(
            [str(self.root / args[0]), *args[1:]],
            env=self.env,
            cwd=self.root,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def inspect(self, container: str, template: str) -> str:
        return self.docker("inspect", "--format", template, container).stdout.strip()

    def web_log(self) -> str:
        """What gunicorn and the app logged (the web container's output)."""
        logs = self.docker("logs", self.container("flask"))
        return logs.stdout + logs.stderr

    def start(self) -> None:
        """``./build.sh --docker``: build the images (cached layers after the first) and
        start or replace the containers; raise with its output if it fails."""
        started = self.script("build.sh", "--docker", timeout=1800)
        if started.returncode != 0 or started.stdout.strip() != f"{self.base_url}/":
            raise RuntimeError(
                f"build.sh --docker failed:\n{started.stdout}\n{started.stderr[-5000:]}"
            )

    def stop(self) -> None:
        self.script("build.sh", "--docker", "--stop", "--purge")
        shutil.rmtree(self.root, ignore_errors=True)

    def keep_logs(self) -> None:
        """Each container's log into test-artifacts/ (before they are removed)."""
        out = ROOT / "test-artifacts" / "docker-logs" / self.project
        out.mkdir(parents=True, exist_ok=True)
        for name in self.containers():
            logs = self.docker("logs", name)
            (out / f"{name}.log").write_text(logs.stdout + logs.stderr)

    def containers(self) -> list[str]:
        """The project's containers, running or not."""
        listed = self.docker(
            "ps", "--all", "--filter", f"label={self.project}.role", "--format", "{{.Names}}"
        )
        return sorted(listed.stdout.split())

    def queue(self, name: str = "predictions") -> tuple[int, int, int]:
        """Ready, unacknowledged and consumers of a queue, from ./list_queues.sh."""
        listed = self.script("list_queues.sh")
        assert listed.returncode == 0, listed.stderr
        for line in listed.stdout.splitlines():
            fields = line.split()
            if fields and fields[0] == name:
                return int(fields[1]), int(fields[2]), int(fields[3])
        raise AssertionError(f"no queue {name} in:\n{listed.stdout}")


@contextmanager
def running_docker_stack(engine: dict[str, str], project: str = PROJECT) -> Iterator[DockerStack]:
    """``build.sh --docker`` from a fresh copy on a free port; ``--stop --purge`` at the end."""
    root = copy_checkout()
    port = localstack.free_port()
    env = {
        **os.environ,
        **engine,
        "VAR_DIR": str(root / "var"),
        "HTTP_PORT": str(port),
        "DOCKER_PROJECT": project,
        # As local mode: the tests submit bursts from one address.
        "SUBMIT_RATE_LIMIT": "off",
    }
    stack = DockerStack(root, env, f"http://127.0.0.1:{port}", project)
    try:
        stack.start()
        yield stack
    finally:
        if os.environ.get("KEEP_STACK_LOGS"):
            stack.keep_logs()
        stack.stop()
