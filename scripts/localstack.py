"""Start and stop a private local-mode stack from Python: the tests and the benchmark.

A thin wrapper over ``build.sh --local`` and ``--stop`` with its own VAR_DIR,
result database, reports folder and a free HTTP port, so it never collides with
another stack or a service already on the machine. ``python3 localstack.py
free-port`` is also how ``scripts/common.sh`` picks the private RabbitMQ node's
ports: one rule for every port this project picks. Standard library only.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on now, in 20000..29989.

    Below the ephemeral range, so an outgoing connection cannot take it before
    the server binds it; below 30000, because RabbitMQ's CLI tools listen on
    RABBITMQ_DIST_PORT+10000..+10010 (30000 and up for our dist ports), which
    must never be another server's port.
    """
    for _ in range(500):
        port = random.randint(20000, 29989)  # noqa: S311 (not a secret)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def read_env_files(var_dir: Path) -> dict[str, str]:
    """The generated ``secrets.env`` and ``local.env`` of a VAR_DIR (the later wins)."""
    env: dict[str, str] = {}
    for name in ("secrets.env", "local.env"):
        path = var_dir / name
        if path.is_file():
            pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
            env.update((k.strip(), v.strip()) for k, v in pairs)
    return env


@dataclass
class LocalStack:
    """A stack started by :func:`start`: its state folder, environment and URL."""

    var_dir: Path
    env: dict[str, str]
    base_url: str

    @property
    def reports_dir(self) -> Path:
        return Path(self.env["REPORTS_DIR"])

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def stop(self, keep_logs_in: Path | None = None) -> None:
        """Stop every process of this stack and remove its state folder."""
        subprocess.run(
            [str(ROOT / "build.sh"), "--stop"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            timeout=300,
            check=False,
        )
        if keep_logs_in is not None and (self.var_dir / "log").exists():
            shutil.copytree(self.var_dir / "log", keep_logs_in, dirs_exist_ok=True)
        shutil.rmtree(self.var_dir, ignore_errors=True)


def start(
    extra_env: dict[str, str] | None = None, prefix: str = "iris-stack-", timeout: float = 300
) -> LocalStack:
    """Run ``build.sh --local`` in a fresh VAR_DIR on a free port; raise if it fails."""
    var_dir = Path(tempfile.mkdtemp(prefix=prefix))
    # nginx's workers may run as another user: they must reach sockets and reports.
    var_dir.chmod(0o755)
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "HTTP_PORT": str(port),
        "DATABASE_URL": f"sqlite:///{var_dir / 'results.sqlite'}",
        "REPORTS_DIR": str(var_dir / "reports"),
        **(extra_env or {}),
    }
    stack = LocalStack(var_dir, env, f"http://127.0.0.1:{port}")
    started = subprocess.run(
        [str(ROOT / "build.sh"), "--local"],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if started.returncode != 0 or started.stdout.strip() != f"{stack.base_url}/":
        stack.stop()
        raise RuntimeError(f"build.sh --local failed:\n{started.stdout}\n{started.stderr}")
    return stack


if __name__ == "__main__":
    if sys.argv[1:] != ["free-port"]:
        sys.exit("usage: localstack.py free-port")
    print(free_port())
