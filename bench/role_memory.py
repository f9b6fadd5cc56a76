"""Resident memory of each role of a local stack, at rest and after many jobs: does anything grow?

Starts a private stack (``build.sh --local``), runs a few jobs so every process
has done its work once ("at rest"), then ``--jobs`` more (default 10,000) with
``--clients`` clients (submit, poll, download, as bench/benchmark.py does),
sampling halfway and at the end. For each process by role (nginx master and
workers, gunicorn's master and workers, the Celery worker's main process and
its pool processes, RabbitMQ's processes) it prints the resident set size
(VmRSS) at each point, and the size of what the service keeps on disk beside
the data (status files, metrics files, logs). Memory that still grows between
the halfway point and the end is what the run is for: a bounded process has
stopped growing by then. Run it through ``bench/run_benchmark.sh --memory``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import benchmark
import localstack
from benchmark import Bench, Recorder

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("nginx", "web", "worker", "rabbitmq")
KINDS = {"web": "gunicorn worker", "worker": "pool process", "nginx": "worker"}
# A process is counted as growing when it gained more than this between the
# halfway sample and the last one (allocator noise is a few hundred KiB).
GROWTH_MIB = 2.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(c) for c in text)
    return found


def _kib(path: str, field: str) -> float:
    try:
        lines = Path(path).read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for line in lines:
        if line.startswith(field):
            return int(line.split()[1])
    return 0.0


def _rss_mib(pid: int) -> float:
    return _kib(f"/proc/{pid}/status", "VmRSS:") / 1024


def _pss_mib(pid: int) -> float:
    """The process's share of its pages: forked children share their parent's,
    so the sum of PSS, not of RSS, is what the stack takes."""
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024


def processes(var_dir: Path) -> list[tuple[str, int]]:
    """(name, pid) of every process of the stack, by role."""
    found: list[tuple[str, int]] = []
    for role in ROLES:
        pidfile = var_dir / "run" / f"{role}.pid"
        if not pidfile.is_file():
            continue
        pid = int(pidfile.read_text())
        found.append((f"{role} main", pid))
        todo, n = _children(pid), 0
        while todo:
            child = todo.pop(0)
            n += 1
            found.append((f"{role} {KINDS.get(role, 'child')} {n}", child))
            todo.extend(_children(child))
    return found


def _folder(path: Path) -> dict[str, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def _environ(pid: int) -> dict[str, str]:
    """The environment a process of the stack runs with (where its folders are)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    return {key: value for key, value in pairs}


def sample(var_dir: Path) -> dict[str, Any]:
    env = _environ(int((var_dir / "run" / "worker.pid").read_text()))
    found = processes(var_dir)
    return {
        "rss_mib": {name: round(_rss_mib(pid), 1) for name, pid in found},
        "pss_mib": round(sum(_pss_mib(pid) for _, pid in found), 1),
        "disk": {
            # On tmpfs when there is one: memory too.
            "status files": _folder(Path(env.get("STATUS_DIR", var_dir / "run" / "status"))),
            "metrics files": _folder(Path(env.get("PROMETHEUS_MULTIPROC_DIR", var_dir / "run"))),
            "logs": _folder(var_dir / "log"),
        },
    }


async def run_jobs(bench: Bench, count: int, clients: int) -> Recorder:
    """``count`` whole jobs (submit, poll, download) with ``clients`` clients."""
    rec = Recorder(0.0, float("inf"))

    async def client(rng: random.Random) -> None:
        while rec.ops < count:
            try:
                await bench.queue_job(session, rec, rng)
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                rec.error(type(exc).__name__)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(random.Random(i)) for i in range(clients)))  # noqa: S311
    return rec


def print_table(samples: dict[str, dict[str, Any]]) -> list[str]:
    """The table of RSS per process at each point; returns the processes still growing."""
    points = list(samples)
    names = list(samples[points[-1]]["rss_mib"])
    print(f"{'process':<28}" + "".join(f"{p:>14}" for p in points) + f"{'growth':>10}")
    growing = []
    for name in names:
        values = [samples[p]["rss_mib"].get(name) for p in points]
        cells = "".join(f"{'-' if v is None else f'{v:.1f} MiB':>14}" for v in values)
        half, last = values[-2], values[-1]
        grew = half is not None and last is not None and last - half > GROWTH_MIB
        if grew:
            growing.append(name)
        print(f"{name:<28}{cells}{'GROWS' if grew else '':>10}")
    for point in points:
        total, pss = sum(samples[point]["rss_mib"].values()), samples[point]["pss_mib"]
        print(
            f"{'total ' + point:<28}{total:>10.1f} MiB RSS, {pss:.1f} MiB PSS (shared pages once)"
        )
    print()
    for what in samples[points[-1]]["disk"]:
        cells = ", ".join(
            f"{p}: {samples[p]['disk'][what]['files']} files "
            f"{samples[p]['disk'][what]['bytes'] / 2**20:.1f} MiB"
            for p in points
        )
        print(f"{what:<14} {cells}")
    return growing


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run_benchmark.sh --memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs after the rest point")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra stack environment",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    started = datetime.now(UTC)
    # As in service: no benchmark-only endpoint (it would load the report in
    # the web workers); all the load comes from one address, so no rate limit.
    env = {"SUBMIT_RATE_LIMIT": "off", **dict(item.split("=", 1) for item in args.env)}
    stack = localstack.start(env, prefix="iris-mem-", timeout=600)
    bench = Bench(stack.base_url, 0.02)
    samples: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    errors: dict[str, int] = {}
    try:
        asyncio.run(run_jobs(bench, 50, 2))
        samples["at rest"] = sample(stack.var_dir)
        for label, count in ((f"+{args.jobs // 2:,}", args.jobs // 2),
                             (f"+{args.jobs:,}", args.jobs - args.jobs // 2)):  # fmt: skip
            rec = asyncio.run(run_jobs(bench, count, args.clients))
            for kind, n in rec.errors.items():
                errors[kind] = errors.get(kind, 0) + n
            time.sleep(2)  # the last status writes and log lines
            samples[label] = sample(stack.var_dir)
            print(f"  {label} jobs done", file=sys.stderr)
    finally:
        stack.stop()
    growing = print_table(samples)
    seconds = round(time.monotonic() - t0)
    print(f"\n{args.jobs:,} jobs in {seconds} s; errors: {errors or 0}")
    print("still growing after the halfway point: " + (", ".join(growing) or "nothing"))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"memory-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": benchmark.machine_info(),
        "jobs": args.jobs,
        "clients": args.clients,
        "run_seconds": seconds,
        "errors": errors,
        "samples": samples,
        "growing": growing,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"JSON: {path}")
    return 1 if errors or growing else 0


if __name__ == "__main__":
    sys.exit(main())
