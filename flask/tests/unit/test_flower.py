"""The optional Flower role (FLOWER=1), checked without services.

The Docker plan with Flower (its image and container, nginx's proxy and
password file, task events in the workers), the start scripts' commands (with a
stand-in ``celery``), the generated credentials and nginx's hash file, and
nginx's /flower/ location in both cases. The real thing runs in
``stack/test_flower_stack.py``.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_docker_plan import ROOT, Run, all_runs, run_build

# ``celery`` stand-in: records its arguments and the Flower variables, one per line.
FAKE_CELERY = """#!/bin/sh
for arg in "$@"; do echo "arg $arg"; done > "$RECORD"
env | grep '^FLOWER_' | sed 's/^/env /' >> "$RECORD"
"""


@pytest.fixture(scope="module")
def flower_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[str]], Path]:
    tmp = tmp_path_factory.mktemp("flower-plan")
    result = run_build(tmp, "--docker", "--dry-run", env={"FLOWER": "1"})
    assert result.returncode == 0, result.stderr
    assert not (tmp / "docker-calls").exists(), "the dry run ran docker"
    assert not (tmp / "var").exists(), "the dry run wrote credentials or the hash file"
    lines = [x for x in result.stdout.splitlines() if x.startswith("docker ")]
    return [shlex.split(x)[1:] for x in lines], tmp


def _role(run: Run) -> str:
    return run.get("--label")[0].split("=", 1)[1]


def test_docker_plan_with_flower(flower_plan: tuple[list[list[str]], Path]) -> None:
    plan, tmp = flower_plan
    builds = [c for c in plan if c[0] == "build"]
    assert len(builds) == 5
    targets = {c[c.index("--target") + 1]: c for c in builds if "--target" in c}
    assert sorted(targets) == ["celery", "flower", "web"]
    flower_build = targets["flower"]
    assert flower_build[flower_build.index("--file") + 1] == str(ROOT / "flask" / "Dockerfile")
    assert flower_build[flower_build.index("--tag") + 1] == "iris-flower:latest"

    runs = all_runs(plan)
    roles = [_role(r) for r in runs]
    assert roles.count("flower") == 1
    # Flower starts (and is waited for) before nginx, which resolves its name at start.
    assert roles.index("flower") < roles.index("nginx")
    flower = runs[roles.index("flower")]
    assert flower.name == "iris-flower" and flower.image == "iris-flower:latest"
    assert flower.command == [], "the image's start script, as local mode runs it"
    assert flower.get("--network") == ["iris-net"]
    assert flower.get("--hostname") == ["flower"] and flower.get("--network-alias") == ["flower"]
    assert flower.get("--publish") == [] and flower.get("-p") == []
    assert flower.get("--volume") == []  # the broker only: no database, no reports
    secrets = str(tmp / "var" / "secrets.env")
    assert flower.get("--env-file") == [secrets]
    assert "--cap-drop" in flower.options and flower.get("--restart") == ["unless-stopped"]

    nginx = runs[roles.index("nginx")]
    assert nginx.get("--env-file") == []  # still no credentials, only the hashes
    assert "FLOWER_UPSTREAM=flower:5555" in nginx.get("--env")
    assert "FLOWER_HTPASSWD=/srv/flower.htpasswd" in nginx.get("--env")
    htpasswd = f"{tmp / 'var' / 'flower.htpasswd'}:/srv/flower.htpasswd:ro"
    assert htpasswd in nginx.get("--volume")
    assert nginx.get("--publish") == ["127.0.0.1:8123:8080"]  # still the only published port

    # Task events on in every worker, the added one too.
    workers = [r for r in runs if _role(r) == "worker"]
    assert len(workers) == 2
    assert all("FLOWER=1" in w.get("--env") for w in workers)
    assert "password" not in " ".join(" ".join(c) for c in plan).lower()


def test_a_rerun_with_flower_replaces_the_flower_container(
    flower_plan: tuple[list[list[str]], Path],
) -> None:
    plan, _ = flower_plan
    removed = next(c for c in plan if c[0] == "rm")[1:]
    assert "iris-flower" in removed
    kinds = [c[0] for c in plan]
    assert kinds.index("rm") < kinds.index("run")


def test_flower_must_be_0_or_1(tmp_path: Path) -> None:
    result = run_build(tmp_path, "--docker", "--dry-run", env={"FLOWER": "yes"})
    assert result.returncode != 0
    assert "FLOWER must be 1" in result.stderr


def test_the_flower_image_is_the_python_image_with_another_script() -> None:
    text = (ROOT / "flask" / "Dockerfile").read_text()
    assert re.search(r"^FROM runtime AS flower$", text, re.MULTILINE)
    flower_stage = text[text.index("FROM runtime AS flower") :]
    assert "FLOWER_ADDRESS=0.0.0.0" in flower_stage
    assert "FLOWER_PORT=5555" in flower_stage
    assert "/flower/healthcheck" in flower_stage


# --- the start scripts -------------------------------------------------------


def run_with_fake_celery(
    tmp_path: Path, script: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[str], dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "celery").write_text(FAKE_CELERY)
    (bin_dir / "celery").chmod(0o755)
    record = tmp_path / "record"
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER")}
    full = {**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record), **env}
    result = subprocess.run(
        [str(ROOT / script)], env=full, capture_output=True, text=True, timeout=30, check=False
    )
    lines = record.read_text().splitlines() if record.exists() else []
    argv = [x.removeprefix("arg ") for x in lines if x.startswith("arg ")]
    seen = dict(x.removeprefix("env ").split("=", 1) for x in lines if x.startswith("env "))
    return result, argv, seen


def test_start_flower_help() -> None:
    result = subprocess.run(
        [str(ROOT / "flask/bin/start-flower.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr.startswith("usage: start-flower.sh")
    text = (ROOT / "flask/bin/start-flower.sh").read_text()
    assert "set -o errexit -o nounset -o pipefail" in text
    assert re.search(r"^exec celery ", text, re.MULTILINE)


def test_start_flower_command(tmp_path: Path) -> None:
    env = {"FLOWER_USER": "admin", "FLOWER_PASSWORD": "s3cret-Value", "FLOWER_PORT": "24555"}
    result, argv, seen = run_with_fake_celery(tmp_path, "flask/bin/start-flower.sh", env)
    assert result.returncode == 0, result.stderr
    assert argv[:3] == ["--app", "iris_service.flower_app", "flower"]
    # Loopback unless told otherwise (the image says 0.0.0.0, its private network).
    assert "--address=127.0.0.1" in argv
    assert "--port=24555" in argv
    assert "--url_prefix=flower" in argv
    assert "--read_only=true" in argv
    # Flower checks the password too, from its environment, never from argv.
    assert seen["FLOWER_BASIC_AUTH"] == "admin:s3cret-Value"
    assert not any("s3cret" in a for a in argv)


def test_start_flower_needs_the_generated_password(tmp_path: Path) -> None:
    result, argv, _ = run_with_fake_celery(
        tmp_path, "flask/bin/start-flower.sh", {"FLOWER_USER": "admin"}
    )
    assert result.returncode != 0
    assert "FLOWER_PASSWORD" in result.stderr
    assert argv == []


@pytest.mark.parametrize(("flower", "events"), [("1", True), ("0", False), (None, False)])
def test_worker_task_events_only_with_flower(
    tmp_path: Path, flower: str | None, events: bool
) -> None:
    env = {} if flower is None else {"FLOWER": flower}
    result, argv, _ = run_with_fake_celery(tmp_path, "flask/bin/start-worker.sh", env)
    assert result.returncode == 0, result.stderr
    assert argv[:3] == ["--app", "iris_service.worker", "worker"]
    assert ("--task-events" in argv) is events


def test_flower_app_has_the_broker_and_nothing_else() -> None:
    code = (
        "from iris_service import flower_app\n"
        "from iris_service.config import load_settings\n"
        "conf = flower_app.app.conf\n"
        "assert conf.broker_url == load_settings().broker_url, conf.broker_url\n"
        "assert conf.result_backend is None, conf.result_backend\n"
        "assert conf.task_default_queue == 'predictions'\n"
        "assert 'iris.predict' not in flower_app.app.tasks\n"
        "import sys; assert 'iris_service.worker' not in sys.modules\n"
    )
    env = {**os.environ, "RABBITMQ_PASSWORD": "pw", "RABBITMQ_PORT": "25672"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- credentials ------------------------------------------------------------


def lib(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` with scripts/common.sh sourced and VAR_DIR in tmp_path."""
    return subprocess.run(
        [
            "bash",
            "-c",
            f"set -o errexit -o nounset -o pipefail\n. {ROOT}/scripts/common.sh\n{body}",
        ],
        env={**os.environ, "VAR_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_lines(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_first_run_generates_a_flower_password(tmp_path: Path) -> None:
    result = lib(tmp_path, "ensure_secrets")
    assert result.returncode == 0, result.stderr
    secrets = tmp_path / "var" / "secrets.env"
    values = env_lines(secrets)
    assert values["FLOWER_USER"] == "admin"
    assert len(values["FLOWER_PASSWORD"]) >= 32
    assert values["FLOWER_PASSWORD"] != values["RABBITMQ_PASSWORD"]
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    # Generated once: a second run keeps everything.
    before = secrets.read_text()
    assert lib(tmp_path, "ensure_secrets").returncode == 0
    assert secrets.read_text() == before


def test_an_old_secrets_file_gains_the_flower_password_and_keeps_its_keys(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    var.mkdir()
    secrets = var / "secrets.env"
    old = (
        "RABBITMQ_USER=iris\nRABBITMQ_PASSWORD=old-broker-pw\nRABBITMQ_VHOST=iris\n"
        "TASKS_API_TOKEN=t\n"
    )
    secrets.write_text(old)
    secrets.chmod(0o600)
    result = lib(tmp_path, "ensure_secrets")
    assert result.returncode == 0, result.stderr
    text = secrets.read_text()
    assert text.startswith(old)
    values = env_lines(secrets)
    assert values["FLOWER_USER"] == "admin" and len(values["FLOWER_PASSWORD"]) >= 32
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert "generated Flower's password" in result.stderr
    assert "generated broker credentials" not in result.stderr


def test_an_old_local_env_gains_a_flower_port(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    old = (
        "RABBITMQ_PORT=21000\nRABBITMQ_DIST_PORT=21001\nERL_EPMD_PORT=21002\n"
        "RABBITMQ_NODENAME=x@localhost\n"
    )
    (var / "local.env").write_text(old)
    assert lib(tmp_path, "ensure_local_env").returncode == 0
    text = (var / "local.env").read_text()
    assert text.startswith(old)
    port = int(env_lines(var / "local.env")["FLOWER_PORT"])
    assert 20000 <= port < 30000
    assert lib(tmp_path, "ensure_local_env").returncode == 0
    assert (var / "local.env").read_text() == text  # chosen once


def test_nginx_gets_a_hash_of_the_password_not_the_password(tmp_path: Path) -> None:
    result = lib(tmp_path, "ensure_secrets\nwrite_flower_htpasswd")
    assert result.returncode == 0, result.stderr
    password = env_lines(tmp_path / "var" / "secrets.env")["FLOWER_PASSWORD"]
    htpasswd = tmp_path / "var" / "flower.htpasswd"
    user, hashed = htpasswd.read_text().strip().split(":", 1)
    assert user == "admin"
    assert password not in htpasswd.read_text()
    salt = hashed.split("$")[2]
    assert hashed.startswith("$apr1$")
    again = subprocess.run(
        ["openssl", "passwd", "-apr1", "-salt", salt, "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert again.stdout.strip() == hashed
    # nginx's workers may be another user (uid 101 in the container): readable by all.
    assert stat.S_IMODE(htpasswd.stat().st_mode) == 0o644


# --- nginx's /flower/ ------------------------------------------------------------


def render_nginx(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER")}
    full = {
        **base,
        "NGINX_LISTEN": "127.0.0.1:8080",
        "FLASK_UPSTREAM": "127.0.0.1:8000",
        "WAITER_UPSTREAM": "127.0.0.1:8002",
        "DOCUMENT_ROOT": str(ROOT / "document_root"),
        "REPORTS_DIR": str(tmp_path / "reports"),
        "NGINX_RUN_DIR": str(tmp_path / "nginx"),
        **env,
    }
    return subprocess.run(
        [str(ROOT / "nginx" / "start-nginx.sh"), "--check"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def flower_location(tmp_path: Path) -> list[str]:
    """The active (uncommented) lines of the rendered /flower/ location."""
    conf = (tmp_path / "nginx" / "nginx.conf").read_text()
    block = conf[conf.index("location ^~ /flower/ {") :].split("\n        }\n")[0]
    lines = [line.strip() for line in block.splitlines()[1:]]
    return [line for line in lines if line and not line.startswith("#")]


def test_without_flower_nginx_answers_404_at_flower(tmp_path: Path) -> None:
    result = render_nginx(tmp_path, {})
    assert result.returncode == 0, result.stderr
    active = flower_location(tmp_path)
    assert "return 404;" in active
    assert not any(x.startswith(("proxy_pass", "auth_basic")) for x in active)


def test_with_flower_nginx_proxies_behind_basic_auth(tmp_path: Path) -> None:
    htpasswd = tmp_path / "flower.htpasswd"
    htpasswd.write_text("admin:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    result = render_nginx(
        tmp_path, {"FLOWER_UPSTREAM": "127.0.0.1:24555", "FLOWER_HTPASSWD": str(htpasswd)}
    )
    assert result.returncode == 0, result.stderr
    active = flower_location(tmp_path)
    assert "return 404;" not in active
    assert 'auth_basic "Flower";' in active
    assert f"auth_basic_user_file {htpasswd};" in active
    assert "proxy_pass http://127.0.0.1:24555;" in active


def test_flower_upstream_without_a_password_file_is_refused(tmp_path: Path) -> None:
    result = render_nginx(
        tmp_path,
        {"FLOWER_UPSTREAM": "127.0.0.1:24555", "FLOWER_HTPASSWD": str(tmp_path / "missing")},
    )
    assert result.returncode == 2
    assert "FLOWER_HTPASSWD" in result.stderr
    assert not (tmp_path / "nginx" / "nginx.conf").exists()
