"""Docker mode, checked without a Docker engine.

``./build.sh --docker --dry-run`` prints every docker command it would run; these
tests read that plan (one network, four builds, the containers on that network,
the bind mounts, one published port, no guest credentials, one env file) and the
Dockerfiles themselves, and check that the containers run the same start scripts
as local mode, so the suite's local stack exercises what the images run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = {
    "rabbitmq": ROOT / "rabbitmq" / "Dockerfile",
    "flask": ROOT / "flask" / "Dockerfile",
    "nginx": ROOT / "nginx" / "Dockerfile",
}
# Role -> the shared start script (repository path) local mode and the image both run.
START_SCRIPTS = {
    "rabbitmq": "rabbitmq/start-rabbitmq.sh",
    "web": "flask/bin/start-web.sh",
    "worker": "flask/bin/start-worker.sh",
    "nginx": "nginx/start-nginx.sh",
    # The optional role (FLOWER=1): its own image target, its own script.
    "flower": "flask/bin/start-flower.sh",
    # The web image, its command given on the docker run line.
    "waiter": "flask/bin/start-waiter.sh",
}


# --- the plan ---------------------------------------------------------------


def run_build(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run build.sh with a fake ``docker`` first on PATH that records any call."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    fake = fake_bin / "docker"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "docker-calls"}\nexit 1\n')
    fake.chmod(0o755)
    full_env = {
        **os.environ,
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "VAR_DIR": str(tmp_path / "var"),
        "HTTP_PORT": "8123",
    }
    for name in ("DOCKER_PROJECT", "FLOWER"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run(
        [str(ROOT / "build.sh"), *args],
        env=full_env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


@dataclass
class Run:
    """One ``docker run`` of the plan, its options parsed."""

    name: str
    image: str
    command: list[str]
    options: dict[str, list[str]] = field(default_factory=dict)

    def get(self, option: str) -> list[str]:
        return self.options.get(option, [])


FLAGS = {"--detach", "-d", "--rm", "--init", "--read-only"}


def parse_run(argv: list[str]) -> Run:
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        opt = argv[i]
        if opt in FLAGS:
            options.setdefault(opt, []).append("")
            i += 1
        elif "=" in opt:
            key, value = opt.split("=", 1)
            options.setdefault(key, []).append(value)
            i += 1
        else:
            options.setdefault(opt, []).append(argv[i + 1])
            i += 2
    return Run(options["--name"][0], argv[i], argv[i + 1 :], options)


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plan")


@pytest.fixture(scope="module")
def plan(plan_dir: Path) -> list[list[str]]:
    tmp = plan_dir
    result = run_build(tmp, "--docker", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not (tmp / "docker-calls").exists(), "the dry run ran docker"
    assert not (tmp / "var" / "secrets.env").exists(), "the dry run wrote credentials"
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    commands = [shlex.split(line) for line in lines]
    assert commands, result.stdout
    assert all(c[0] == "docker" for c in commands), result.stdout
    return [c[1:] for c in commands]


@pytest.fixture(scope="module")
def runs(plan: list[list[str]]) -> dict[str, Run]:
    """The first container of each role (worker: worker1, build.sh's own)."""
    by_role: dict[str, Run] = {}
    for run in all_runs(plan):
        by_role.setdefault(run.get("--label")[0].split("=", 1)[1], run)
    assert len(by_role) == 5, by_role
    return by_role


def all_runs(plan: list[list[str]]) -> list[Run]:
    return [parse_run(c[1:]) for c in plan if c[0] == "run"]


def test_one_network_four_builds(plan: list[list[str]]) -> None:
    creates = [c for c in plan if c[:2] == ["network", "create"]]
    assert len(creates) == 1
    assert creates[0][2:] == ["--driver", "bridge", "iris-net"]
    builds = [c for c in plan if c[0] == "build"]
    assert len(builds) == 4
    files = sorted(c[c.index("--file") + 1] for c in builds)
    assert files == sorted(str(p) for p in [*DOCKERFILES.values(), DOCKERFILES["flask"]])
    targets = sorted(c[c.index("--target") + 1] for c in builds if "--target" in c)
    assert targets == ["celery", "web"]
    assert all(c[-1] == str(ROOT) for c in builds)  # the context is the repository
    assert len({c[c.index("--tag") + 1] for c in builds}) == 4


def test_order_builds_network_replace_then_start(plan: list[list[str]]) -> None:
    kinds = [c[0] if c[0] != "network" else "network " + c[1] for c in plan]
    first_run = kinds.index("run")
    assert kinds.index("network create") < first_run
    assert max(i for i, k in enumerate(kinds) if k == "build") < first_run
    # Containers of an earlier run are removed before new ones start.
    assert kinds.index("rm") < first_run
    removed = set(plan[kinds.index("rm")][1:])
    started = [parse_run(c[1:]) for c in plan if c[0] == "run"]
    assert {r.name for r in started} <= removed
    roles = [r.get("--label")[0].split("=", 1)[1] for r in started]
    assert roles[0] == "rabbitmq" and roles[-1] == "nginx"


def test_a_rerun_starts_the_added_workers_again(
    plan: list[list[str]], runs: dict[str, Run], plan_dir: Path
) -> None:
    """Defect 10: the dry run supposes an earlier run with worker2 (launch_celery_worker.sh's).

    The re-run removes it with the rest and starts it again, as worker1 is
    started, and waits until it is healthy (consumes).
    """
    removed = set(next(c for c in plan if c[0] == "rm")[1:])
    assert "iris-celery-worker2" in removed
    workers = [r for r in all_runs(plan) if r.get("--label") == ["iris.role=worker"]]
    assert [r.name for r in workers] == ["iris-celery-worker1", "iris-celery-worker2"]
    worker2 = workers[1]
    assert worker2.get("--env") == ["WORKER_NAME=worker2"]
    assert worker2.get("--hostname") == ["celery-worker2"]
    assert worker2.image == runs["worker"].image and worker2.command == []
    ignore = ("--name", "--env", "--hostname")
    same = {k: v for k, v in worker2.options.items() if k not in ignore}
    assert same == {k: v for k, v in runs["worker"].options.items() if k not in ignore}

    result = run_build(plan_dir, "--docker", "--dry-run")
    assert "# wait until iris-celery-worker2 is healthy" in result.stdout.splitlines()
    assert "==> restarted workers worker2" in result.stderr.splitlines()


def test_every_container_on_the_network_with_restart_policy(runs: dict[str, Run]) -> None:
    built = set()
    for role, run in runs.items():
        assert run.get("--network") == ["iris-net"], role
        assert run.get("--restart") == ["unless-stopped"], role
        assert "--detach" in run.options, role
        # Bounded logs: the engine's default json-file log never rotates.
        assert run.get("--log-opt") == ["max-size=10m", "max-file=3"], role
        # The waiter alone runs another role's image (web's) with its own script.
        expected = ["/app/flask/bin/start-waiter.sh"] if role == "waiter" else []
        assert run.command == expected, f"{role} overrides the image's start script"
        built.add(run.image)
    assert built == {
        "iris-rabbitmq:latest",
        "iris-flask:latest",
        "iris-celery:latest",
        "iris-nginx:latest",
    }


def test_only_nginx_publishes_one_port(runs: dict[str, Run]) -> None:
    published = {role: run.get("--publish") + run.get("-p") for role, run in runs.items()}
    assert published.pop("nginx") == ["127.0.0.1:8123:8080"]
    assert all(p == [] for p in published.values()), published
    assert dockerfile_env("nginx")["NGINX_LISTEN"] == "8080"


def test_bind_mounts(runs: dict[str, Run]) -> None:
    app_mounts = {f"{ROOT}/db:/app/db", f"{ROOT}/document_root/reports:/app/document_root/reports"}
    assert set(runs["web"].get("--volume")) == app_mounts
    assert set(runs["worker"].get("--volume")) == app_mounts
    assert runs["nginx"].get("--volume") == [f"{ROOT}/document_root:/srv/document_root:ro"]
    # The broker keeps its data (durable queues) in a named volume, not in the tree.
    assert runs["rabbitmq"].get("--volume") == ["iris-rabbitmq-data:/var/lib/rabbitmq"]
    # The images' paths agree with the mounts.
    env = dockerfile_env("flask")
    assert env["DATABASE_URL"] == "sqlite:////app/db/results.sqlite"
    assert env["REPORTS_DIR"] == "/app/document_root/reports"
    assert dockerfile_env("nginx")["REPORTS_DIR"] == "/srv/document_root/reports"


def test_names_resolve_between_containers(runs: dict[str, Run]) -> None:
    flask_host, _, flask_port = dockerfile_env("nginx")["FLASK_UPSTREAM"].partition(":")
    assert flask_host in runs["web"].get("--network-alias") + runs["web"].get("--hostname")
    assert dockerfile_env("flask")["GUNICORN_BIND"] == f"0.0.0.0:{flask_port}"
    broker = dockerfile_env("flask")["RABBITMQ_HOST"]
    assert broker in runs["rabbitmq"].get("--network-alias")
    # A fixed hostname keeps the node name, so its data survives a replacement.
    assert runs["rabbitmq"].get("--hostname") == ["rabbitmq"]


def test_one_env_file_and_no_guest_credentials(
    plan: list[list[str]], runs: dict[str, Run], plan_dir: Path
) -> None:
    secrets = str(plan_dir / "var" / "secrets.env")
    env_files = {role: run.get("--env-file") for role, run in runs.items()}
    # The roles that talk to the broker read the one generated file; nginx holds
    # no credentials at all.
    assert env_files.pop("nginx") == []
    assert {tuple(f) for f in env_files.values()} == {(secrets,)}, env_files
    text = " ".join(" ".join(c) for c in plan).lower()
    assert "guest" not in text
    assert "password" not in text  # never on a command line, only in the env file
    for run in runs.values():
        assert not any(e.startswith("RABBITMQ_") for e in run.get("--env") + run.get("-e"))


def test_the_default_plan_has_no_flower(plan: list[list[str]]) -> None:
    """Flower is off unless FLOWER=1: no image, container or nginx setting of it."""
    text = " ".join(" ".join(c) for c in plan).replace(str(ROOT), "<root>")
    assert "flower" not in text.lower()


def test_stop_and_purge_plan(tmp_path: Path) -> None:
    result = run_build(tmp_path, "--docker", "--stop", "--purge", "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = [shlex.split(x)[1:] for x in result.stdout.splitlines() if x.startswith("docker")]
    kinds = [c[0] for c in commands]
    assert "stop" in kinds and "rm" in kinds
    assert ["network", "rm", "iris-net"] in commands
    assert ["volume", "rm", "iris-rabbitmq-data"] in commands
    assert not (tmp_path / "docker-calls").exists()


def test_builds_take_the_base_images_index_and_network_from_the_environment(
    tmp_path: Path,
) -> None:
    """A mirror or proxy (README: air-gapped builds): the pip settings reach the Python
    builds only; the base images and the build network reach each build."""
    env = {
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_TRUSTED_HOST": "mirror.example",
        "PYTHON_IMAGE": "local/python:1",
        "NGINX_IMAGE": "local/nginx:1",
        "RABBITMQ_IMAGE": "local/rabbitmq:1",
        "DOCKER_BUILD_NETWORK": "host",
    }
    result = run_build(tmp_path, "--docker", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    builds = [
        shlex.split(x)[2:] for x in result.stdout.splitlines() if x.startswith("docker build")
    ]
    assert len(builds) == 4
    for build in builds:
        args = [build[i + 1] for i, a in enumerate(build) if a == "--build-arg"]
        assert build[build.index("--network") + 1] == "host"
        dockerfile = build[build.index("--file") + 1]
        if dockerfile.endswith("flask/Dockerfile"):
            assert {
                "PIP_INDEX_URL=https://mirror.example/simple",
                "PIP_TRUSTED_HOST=mirror.example",
                "PYTHON_IMAGE=local/python:1",
            } <= set(args)
        else:
            assert not [a for a in args if a.startswith("PIP_")]
            role = "NGINX" if dockerfile.endswith("nginx/Dockerfile") else "RABBITMQ"
            assert args == [f"{role}_IMAGE=local/{role.lower()}:1"]


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_dockerfiles_build_with_the_classic_builder_and_buildkit(image: str) -> None:
    """No "# syntax=" line (BuildKit would fetch a frontend image from a registry) and
    nothing only BuildKit knows (COPY --chmod, RUN --mount)."""
    text = DOCKERFILES[image].read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text)
    assert "--chmod" not in text and "--mount" not in text
    # Each base image is a build argument: the Docker tests' stand-ins replace it.
    assert re.search(rf"(?m)^ARG {'PYTHON' if image == 'flask' else image.upper()}_IMAGE=", text)


def test_docker_mode_without_engine_says_so(tmp_path: Path) -> None:
    result = run_build(tmp_path, "--docker")
    assert result.returncode != 0
    assert "no Docker engine answers" in result.stderr


def test_dry_run_is_for_docker_mode_only(tmp_path: Path) -> None:
    result = run_build(tmp_path, "--local", "--dry-run")
    assert result.returncode != 0
    assert "--dry-run applies to Docker mode only" in result.stderr


# --- the Dockerfiles --------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        pending += " " + line.removesuffix("\\").strip()
        if line.endswith("\\"):
            continue
        keyword, _, rest = pending.strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by stage name."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            current = []
            out[match.group(1) if match else f"stage{len(out)}"] = current
        current.append((keyword, rest))
    return out


def dockerfile_env(image: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in instructions(DOCKERFILES[image]):
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def final_setting(path: Path, stage: str, keyword: str) -> str | None:
    """The last KEYWORD in effect in STAGE, following FROM <earlier stage>."""
    all_stages = stages(path)
    chain = [stage]
    while True:
        base = all_stages[chain[-1]][0][1].split()[0]
        if base not in all_stages:
            break
        chain.append(base)
    for name in chain:
        values = [rest for k, rest in all_stages[name] if k == keyword]
        if values:
            return values[-1]
    return None


IMAGES = [
    ("rabbitmq", "stage0"),
    ("flask", "web"),
    ("flask", "celery"),
    ("flask", "flower"),
    ("nginx", "runtime"),
]


def resolved_from(path: Path, image_ref: str) -> str:
    args = dict(rest.split("=", 1) for k, rest in instructions(path) if k == "ARG" and "=" in rest)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image_ref)


@pytest.mark.parametrize(("image", "stage"), IMAGES)
def test_image_basics(image: str, stage: str) -> None:
    path = DOCKERFILES[image]
    assert stage in stages(path)
    user = final_setting(path, stage, "USER")
    assert user is not None
    assert resolved_from(path, user).split(":")[0] not in ("root", "0"), user
    health = final_setting(path, stage, "HEALTHCHECK")
    assert health is not None and "CMD" in health and "NONE" not in health
    for name, body in stages(path).items():
        base = resolved_from(path, body[0][1].split()[0])
        if base in stages(path):
            continue
        # Pinned: an exact version tag, never "latest" or a bare major.
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?", base), (name, base)


def test_flask_image_is_multi_stage_without_compilers() -> None:
    path = DOCKERFILES["flask"]
    flask_stages = stages(path)
    assert len(flask_stages) >= 3
    text = path.read_text()
    for tool in ("gcc", "build-essential", "g++", "make "):
        assert tool not in text
    # Only the venv and the trained model come from the build stage.
    copies = [rest for k, rest in flask_stages["runtime"] if k == "COPY" and "--from=" in rest]
    assert len(copies) == 2 and all("--from=build" in c for c in copies)
    assert "PYTHONUNBUFFERED=1" in text
    # The model is trained at build time by the same script local mode uses.
    build_runs = " ".join(rest for k, rest in flask_stages["build"] if k == "RUN")
    assert "/app/flask/bin/train-model.sh" in build_runs
    assert dockerfile_env("flask")["MODEL_PATH"] == "/opt/model/iris_model.json"


def test_rabbitmq_image_has_no_guest_and_drops_the_base_defaults() -> None:
    text = DOCKERFILES["rabbitmq"].read_text()
    assert "rm -f /etc/rabbitmq/conf.d/*.conf" in text
    template = (ROOT / "rabbitmq" / "rabbitmq.conf.template").read_text()
    assert "default_user = ${RABBITMQ_USER}" in template
    assert "default_pass = ${RABBITMQ_PASSWORD}" in template
    assert "guest" not in template.replace('"guest" user is never created', "")


# --- one source of truth for what the roles run ---------------------------


def container_start_script(image: str, stage: str) -> str:
    """The repository path of the script the image's CMD/ENTRYPOINT runs."""
    path = DOCKERFILES[image]
    entry = final_setting(path, stage, "ENTRYPOINT")
    cmd = final_setting(path, stage, "CMD")
    argv = [*_exec_form(entry), *_exec_form(cmd)]
    assert argv, (image, stage)
    in_container = argv[0]
    # Map the container path back to the repository file COPY put there.
    for keyword, rest in instructions(path):
        if keyword != "COPY" or "--from=" in rest:
            continue
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        *sources, dest = parts
        for source in sources:
            name = Path(source).name
            if dest.endswith("/") and in_container == dest + name:
                return source
            if Path(in_container).is_relative_to(dest) and (ROOT / source).is_dir():
                return str(Path(source) / Path(in_container).relative_to(dest))
    raise AssertionError(f"{image}/{stage}: {in_container} does not come from the repository")


def _exec_form(value: str | None) -> list[str]:
    if not value:
        return []
    assert value.startswith("["), f"shell-form command: {value}"
    parsed: list[str] = json.loads(value)
    return parsed


def local_start_scripts() -> dict[str, str]:
    """role -> script, from build.sh's ``start_role ROLE ... "$ROOT/<script>"`` lines."""
    found: dict[str, str] = {}
    for match in re.finditer(
        r'start_role (\w+) [^\n]*?"\$ROOT/([\w/.-]+\.sh)"', (ROOT / "build.sh").read_text()
    ):
        found[match.group(1)] = match.group(2)
    return found


def test_containers_and_local_mode_run_the_same_start_scripts(runs: dict[str, Run]) -> None:
    assert local_start_scripts() == START_SCRIPTS
    in_images = {
        "rabbitmq": container_start_script("rabbitmq", "stage0"),
        "web": container_start_script("flask", "web"),
        "worker": container_start_script("flask", "celery"),
        "nginx": container_start_script("nginx", "runtime"),
        "flower": container_start_script("flask", "flower"),
        "waiter": runs["waiter"].command[0].removeprefix("/app/"),
    }
    assert in_images == START_SCRIPTS
    # Extra workers (launch_celery_worker.sh's, and build.sh's when it restarts
    # them) run the same script as well, through start_worker.
    processes = (ROOT / "scripts" / "lib" / "processes.sh").read_text()
    start_worker = processes[processes.index("start_worker() {") :]
    assert '"$ROOT/flask/bin/start-worker.sh"' in start_worker.split("\n}\n")[0]
    assert "start_worker " in (ROOT / "launch_celery_worker.sh").read_text()
    assert "start_worker " in (ROOT / "build.sh").read_text()
    for script in START_SCRIPTS.values():
        text = (ROOT / script).read_text()
        # The long-running process replaces the script, so signals reach it.
        assert re.search(r"^exec ", text, re.MULTILINE), script


def test_health_check_scripts_come_from_the_repository() -> None:
    for image, stage in IMAGES:
        health = final_setting(DOCKERFILES[image], stage, "HEALTHCHECK") or ""
        for script in re.findall(r"/app/flask/bin/[\w.-]+", health):
            assert (ROOT / "flask" / "bin" / Path(script).name).is_file()
    # healthcheck.sh runs iris_service/healthcheck.py by its path from the
    # script's folder: the image has flask/bin and flask/src side by side too.
    wrapper = (ROOT / "flask" / "bin" / "healthcheck.sh").read_text()
    relative = re.search(r'"\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/([\w./-]+\.py)"', wrapper)
    assert relative, "healthcheck.sh no longer runs a file next to it"
    module = (ROOT / "flask" / "bin" / relative[1]).resolve()
    assert module == ROOT / "flask" / "src" / "iris_service" / "healthcheck.py"
    copies = {
        tuple(p for p in shlex.split(rest) if not p.startswith("--"))
        for k, rest in stages(DOCKERFILES["flask"])["runtime"]
        if k == "COPY" and "--from=" not in rest
    }
    assert {("flask/src", "/app/flask/src"), ("flask/bin", "/app/flask/bin")} <= copies


# --- Docker-mode branches of the operating scripts ---------------------------

FAKE_DOCKER = r"""#!/bin/bash
# Stands in for a Docker engine with this project's four containers running.
echo "$*" >> "$CALLS"
case "$1" in
  info) exit 0 ;;
  ps)
    if [[ "$*" == *"role=worker"* ]]; then
      printf 'iris-celery-worker1\n'
      if [[ -f "$CALLS.w2" ]]; then printf 'iris-celery-worker2\n'; fi
    else
      printf 'c1\nc2\nc3\nc4\n'
    fi
    ;;
  exec)
    if [[ "$*" == *healthcheck.sh* ]]; then
      # The image's health check run by hand: fails the first $FAILING_CHECKS times.
      echo x >> "$CALLS.checked"
      (($(wc -l < "$CALLS.checked") > ${FAILING_CHECKS:-0}))
      exit
    fi
    printf 'predictions\t7\t2\t1\nworker1@celery-worker1.celery.pidbox\t0\t0\t1\n'
    ;;
  run)
    if [[ "$*" == *worker2* ]]; then touch "$CALLS.w2"; fi
    echo 0123abcd
    ;;
  restart) echo "${*: -1}" ;;
  inspect)
    if [[ "$*" == *Healthcheck.Test* ]]; then
      printf 'CMD\n/app/flask/bin/healthcheck.sh\nworker\n'
      exit 0
    fi
    # "starting" for the first $STARTING inspections, then $HEALTH.
    echo x >> "$CALLS.inspected"
    if (($(wc -l < "$CALLS.inspected") <= ${STARTING:-0})); then
      echo starting
    else
      echo "${HEALTH:-healthy}"
    fi
    ;;
  logs) echo "celery: consumer: Cannot connect to amqp://rabbitmq:5672" ;;
  *) exit 1 ;;
esac
"""


def fake_engine(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    calls = tmp_path / "calls"
    var = tmp_path / "var"
    var.mkdir()
    (var / "secrets.env").write_text(
        "RABBITMQ_USER=iris\nRABBITMQ_PASSWORD=x\nRABBITMQ_VHOST=iris\n"
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VAR_DIR": str(var),
        "CALLS": str(calls),
    }
    return env, calls


def test_list_queues_in_docker_mode_asks_the_broker_container(tmp_path: Path) -> None:
    env, calls = fake_engine(tmp_path)
    result = subprocess.run(
        [str(ROOT / "list_queues.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^predictions\s+7\s+2\s+1$", result.stdout, re.MULTILINE), result.stdout
    execs = [line.split() for line in calls.read_text().splitlines() if line.startswith("exec")]
    assert len(execs) == 1
    assert execs[0][:5] == ["exec", "iris-rabbitmq", "rabbitmqctl", "-q", "list_queues"]
    assert execs[0][execs[0].index("-p") + 1] == "iris"


def test_launched_docker_workers_match_the_first(tmp_path: Path, runs: dict[str, Run]) -> None:
    env, calls = fake_engine(tmp_path)
    result = subprocess.run(
        [str(ROOT / "launch_celery_worker.sh"), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    started = [
        parse_run(shlex.split(line)[1:])
        for line in calls.read_text().splitlines()
        if line.startswith("run ")
    ]
    assert [r.name for r in started] == ["iris-celery-worker2", "iris-celery-worker3"]
    first = runs["worker"]
    for i, run in enumerate(started, start=2):
        assert run.image == first.image and run.command == []
        assert run.get("--env") == [f"WORKER_NAME=worker{i}"]
        assert run.get("--hostname") == [f"celery-worker{i}"]
        # Everything else (network, restart, mounts, env file) as build.sh's worker1.
        same = {k: v for k, v in run.options.items() if k not in ("--name", "--env", "--hostname")}
        ref = {k: v for k, v in first.options.items() if k not in ("--name", "--env", "--hostname")}
        ref["--env-file"] = [str(tmp_path / "var" / "secrets.env")]
        assert same == ref


def launch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "launch_celery_worker.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_launched_docker_workers_are_waited_for(tmp_path: Path) -> None:
    """The README's promise: the script returns once each new worker consumes (healthy)."""
    env, calls = fake_engine(tmp_path)
    result = launch({**env, "STARTING": "2"}, "2")
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    inspected = [
        line.split()[-1] for line in lines if line.startswith(f"inspect --format {HEALTH_FORMAT}")
    ]
    # Two "starting" answers for worker2, then healthy; worker3 healthy at once.
    assert inspected[-2:] == ["iris-celery-worker2", "iris-celery-worker3"]
    last_run = max(i for i, line in enumerate(lines) if line.startswith("run "))
    first_inspect = min(i for i, line in enumerate(lines) if line.startswith("inspect "))
    assert last_run < first_inspect  # all started, then waited for
    assert "iris-celery-worker3 is healthy" in result.stderr


def test_launch_runs_the_health_check_until_it_passes(tmp_path: Path) -> None:
    """While the engine says "starting" (its first check comes after an interval),
    the script runs the image's health check itself, and returns once it passes."""
    env, calls = fake_engine(tmp_path)
    result = launch({**env, "STARTING": "99", "FAILING_CHECKS": "1"}, "2")
    assert result.returncode == 0, result.stderr
    checks = [
        line.split()[1] for line in calls.read_text().splitlines() if "healthcheck.sh" in line
    ]
    assert checks == ["iris-celery-worker2"] * 2 + ["iris-celery-worker3"]
    assert "exec iris-celery-worker2 /app/flask/bin/healthcheck.sh worker" in calls.read_text()
    assert "iris-celery-worker2 is healthy" in result.stderr


def test_a_launched_docker_worker_that_stops_is_reported(tmp_path: Path) -> None:
    env, calls = fake_engine(tmp_path)
    result = launch({**env, "HEALTH": "exited"}, "1")
    assert result.returncode != 0
    assert "error: container iris-celery-worker2 did not become healthy" in result.stderr
    # Its last log lines, from docker logs --tail, say why.
    assert "Cannot connect to amqp://rabbitmq:5672" in result.stderr
    assert "logs --tail 25 iris-celery-worker2" in calls.read_text().splitlines()


def test_docker_worker_restarted_by_name(tmp_path: Path) -> None:
    env, calls = fake_engine(tmp_path)
    (tmp_path / "calls.w2").touch()  # worker2 exists (the fake lists it)
    result = launch(env, "--restart", "worker2")
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    restart = lines.index("restart --time 30 iris-celery-worker2")
    assert f"inspect --format {HEALTH_FORMAT} iris-celery-worker2" in lines[restart:]
    assert "restarted workers worker2" in result.stderr

    unknown = launch(env, "--restart", "worker9")
    assert unknown.returncode != 0
    assert "no worker named 'worker9'" in unknown.stderr
    assert "worker1 worker2" in unknown.stderr  # the names that exist
    assert calls.read_text().count("restart ") == 1


HEALTH_FORMAT = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"


def test_nginx_config_renders_with_the_images_settings(tmp_path: Path) -> None:
    # What the nginx image's check stage does, with the runtime stage's ENV:
    # the shared template must stay valid for Docker mode too.
    env = {**os.environ, **dockerfile_env("nginx")}
    env.update(FLASK_UPSTREAM="127.0.0.1:8000", NGINX_RUN_DIR=str(tmp_path / "nginx"))
    env["WAITER_UPSTREAM"] = "127.0.0.1:8002"  # as the image's check stage has it
    env["DOCUMENT_ROOT"] = str(ROOT / "document_root")
    env["REPORTS_DIR"] = str(tmp_path / "reports")
    result = subprocess.run(
        [str(ROOT / "nginx" / "start-nginx.sh"), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    conf = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert re.search(r"^\s*listen 8080;", conf, re.MULTILINE)
    assert "error_log stderr" in conf
