"""The operating scripts with no system running: help, refusals, and the package check."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.stack import ROOT

SCRIPTS = [
    "list_queues.sh",
    "monitor_queue.sh",
    "launch_celery_worker.sh",
    "build.sh",
    "run_tests.sh",
    "flask/bin/healthcheck.sh",
    "flask/bin/start-web.sh",
    "flask/bin/start-worker.sh",
    "nginx/start-nginx.sh",
    "rabbitmq/start-rabbitmq.sh",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help(script: str) -> None:
    result = subprocess.run(
        [str(ROOT / script), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert result.stderr.startswith("usage:"), result.stderr
    text = (ROOT / script).read_text()
    assert "set -o errexit -o nounset -o pipefail" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list_queues.sh"], "no running system found"),
        (["monitor_queue.sh", "-n", "1"], "no running system found"),
        (["launch_celery_worker.sh", "1"], "no running system found"),
        (["launch_celery_worker.sh", "0"], "N must be a whole number"),
        (["launch_celery_worker.sh", "--restart"], "--restart needs the names of the workers"),
        (["launch_celery_worker.sh", "--restart", "worker2"], "no running system found"),
        (["launch_celery_worker.sh", "--list", "worker2"], "too many arguments"),
        (["flask/bin/healthcheck.sh", "db"], "usage: healthcheck.sh web|worker"),
        (["monitor_queue.sh", "-i", "0"], "-i needs a positive number"),
        (["monitor_queue.sh", "-n", "two"], "-n needs a whole number"),
    ],
)
def test_scripts_without_a_running_system(args: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / args[0]), *args[1:]],
        env={**os.environ, "VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_ensure_debs_is_not_fooled_by_a_folder_of_the_same_name(tmp_path: Path) -> None:
    """A missing command whose name is also a folder here (like nginx/) is still installed."""
    (tmp_path / "iris-no-such-command").mkdir()
    script = (
        f". {ROOT}/scripts/common.sh\n"
        # Stand-ins: the test sees what would be installed and never runs apt.
        'id() { echo 0; }; apt-get() { echo "apt-get $*"; }\n'
        "ensure_debs iris-no-such-command iris-no-such-package bash bash /bin/sh dash\n"
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stderr.splitlines() if line.startswith("apt-get install")]
    assert len(installs) == 1, result.stderr
    assert installs[0].split()[-1] == "iris-no-such-package"


def test_common_sh_sources_every_part_and_each_says_what_it_holds() -> None:
    common = (ROOT / "scripts" / "common.sh").read_text()
    parts = sorted((ROOT / "scripts" / "lib").glob("*.sh"))
    assert parts
    for part in parts:
        assert f'. "$ROOT/scripts/lib/{part.name}"' in common, part.name
        lines = part.read_text().splitlines()
        # A library: no shebang and no shell options of its own (the caller's apply).
        assert lines[0] == "# shellcheck shell=bash", part.name
        assert lines[1].startswith("# ") and len(lines[1]) > 20, part.name
        assert "set -o" not in part.read_text(), part.name
