"""Resident memory of each role of a local stack: nginx, gunicorn, RabbitMQ, the worker.

Starts a private stack (``build.sh --local``), runs a few jobs so every process
has done its work once, and prints the resident set size (VmRSS) of each
process by role: gunicorn's master and its workers, the Celery worker's main
process and its pool processes. ``--jobs N`` runs N jobs first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import localstack

SAMPLE = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(c) for c in text)
    return found


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _run_jobs(base_url: str, count: int) -> None:
    for _ in range(count):
        request = urllib.request.Request(  # noqa: S310 (a loopback URL we built)
            f"{base_url}/flask/predict",
            data=json.dumps(SAMPLE).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            task_id = json.load(answer)["task_id"]
        for _ in range(500):
            with urllib.request.urlopen(f"{base_url}/flask/status/{task_id}", timeout=10) as r:  # noqa: S310
                if json.load(r)["state"] in ("SUCCESS", "FAILURE"):
                    break
            time.sleep(0.02)
        with urllib.request.urlopen(f"{base_url}/flask/result/{task_id}.png", timeout=10) as r:  # noqa: S310
            r.read()
        with urllib.request.urlopen(f"{base_url}/flask/model", timeout=10) as r:  # noqa: S310
            r.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    stack = localstack.start(prefix="iris-mem-")
    try:
        _run_jobs(stack.base_url, args.jobs)
        run = stack.var_dir / "run"
        rows: list[tuple[str, float]] = []
        for role in ("web", "worker", "nginx", "rabbitmq"):
            pid = int((run / f"{role}.pid").read_text())
            rows.append((f"{role} main", _rss_mib(pid)))
            for n, child in enumerate(_children(pid), 1):
                kind = {"web": "gunicorn worker", "worker": "pool process"}.get(role, "child")
                rows.append((f"{role} {kind} {n}", _rss_mib(child)))
        for name, mib in rows:
            print(f"{name:28s} {mib:8.1f} MiB")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
