"""A burst of submits: what 10,000 at once do to the queue, the accept latency and the workers.

It starts its own local stack (as ``benchmark.py`` does; or measures one given
with ``--url`` and ``--var-dir``), sends ``--count`` submits from ``--clients``
concurrent clients as fast as they are answered, samples the queue's depth
(``GET /flask/health``) and the jobs finished (the result database) every half
second, then waits until the workers have finished every accepted job. It
prints and writes (``bench/results/burst-*.json``) the accept rate and latency,
the refusals, the deepest queue, how long the workers took to drain it, and the
CPU of each role during the burst and during the drain. Loopback only; run it
with the venv's Python after ``bench/run_benchmark.sh`` has prepared it::

    .venv/bin/python bench/burst.py --count 10000 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

# The stack helper shared with the tests, as benchmark.py finds it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import localstack
from benchmark import ROOT, CpuMeter, Stack, latency_summary, measurements, start_stack


@dataclass
class Burst:
    """What the clients saw: accepted ids, accept latencies, refusals, queue samples."""

    left: int
    accepted: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    # (seconds since the start, ready messages in the queue, jobs finished)
    samples: list[tuple[float, int, int]] = field(default_factory=list)


async def client(session: aiohttp.ClientSession, url: str, burst: Burst, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 (test data)
    while burst.left > 0:
        burst.left -= 1
        t0 = time.monotonic()
        try:
            async with session.post(f"{url}/flask/predict", json=measurements(rng)) as r:
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            kind = type(exc).__name__
            burst.refused[kind] = burst.refused.get(kind, 0) + 1
            continue
        if r.status == 202:
            burst.accepted.append(body["task_id"])
            burst.latencies.append(time.monotonic() - t0)
        else:
            kind = f"HTTP {r.status}"
            burst.refused[kind] = burst.refused.get(kind, 0) + 1


def finished_jobs(database: Path) -> int:
    with sqlite3.connect(database, timeout=30) as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM celery_taskmeta WHERE status IN ('SUCCESS', 'FAILURE')"
        ).fetchone()[0]
    return count


async def sampler(
    session: aiohttp.ClientSession, url: str, database: Path, burst: Burst, start: float
) -> None:
    while True:
        ready = -1
        try:
            async with session.get(f"{url}/flask/health") as r:
                ready = (await r.json())["queue"]["ready"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            pass  # a sample missed; the next one counts
        finished = await asyncio.to_thread(finished_jobs, database)
        burst.samples.append((round(time.monotonic() - start, 2), ready, finished))
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    database = stack.database()
    if database is None:
        raise SystemExit("the burst reads the SQLite result database: DATABASE_URL=sqlite:///...")
    meter = CpuMeter(stack.pids())
    burst = Burst(left=args.count)
    already = finished_jobs(database)
    connector = aiohttp.TCPConnector(limit=args.clients + 1)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        start = time.monotonic()
        cpu_start = meter.sample()
        watch = asyncio.create_task(sampler(session, stack.base_url, database, burst, start))
        await asyncio.gather(
            *(client(session, stack.base_url, burst, i) for i in range(args.clients))
        )
        accepted_in = time.monotonic() - start
        cpu_accepted = meter.sample()
        target = already + len(burst.accepted)
        while finished_jobs(database) < target:
            if time.monotonic() - start > args.timeout:
                raise SystemExit(f"the workers did not finish the burst in {args.timeout} s")
            await asyncio.sleep(0.5)
        drained_in = time.monotonic() - start
        cpu_drained = meter.sample()
        watch.cancel()
    during = CpuMeter.used(cpu_start, cpu_accepted)
    after = CpuMeter.used(cpu_accepted, cpu_drained)
    drain = drained_in - accepted_in
    return {
        "submits": args.count,
        "clients": args.clients,
        "accepted": len(burst.accepted),
        "refused": burst.refused,
        "accepted_in_s": round(accepted_in, 2),
        "accepted_per_s": round(len(burst.accepted) / accepted_in, 1),
        "accept_latency_ms": {
            **latency_summary(burst.latencies),
            "max": round(max(burst.latencies, default=0) * 1000, 1),
        },
        "deepest_queue": max((ready for _, ready, _ in burst.samples), default=None),
        "all_done_in_s": round(drained_in, 2),
        "drained_after_accepts_s": round(drain, 2),
        "jobs_per_s_overall": round(len(burst.accepted) / drained_in, 1),
        "cpu_cores_while_accepting": {k: round(v / accepted_in, 2) for k, v in during.items()},
        "cpu_cores_while_draining": {k: round(v / drain, 2) for k, v in after.items()}
        if drain > 0
        else {},
        "samples": burst.samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/burst.py", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="submits in the burst (10000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument("--timeout", type=float, default=900, help="bound on the whole run, s")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--url", help="a running stack at this URL (needs --var-dir)")
    parser.add_argument("--var-dir", type=Path)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    if args.url:
        if not args.var_dir:
            parser.error("--url needs --var-dir")
        env = {**localstack.read_env_files(args.var_dir), **extra_env}
        stack = Stack(args.url.rstrip("/"), args.var_dir, env, None)
    else:
        stack = start_stack(extra_env)
    started = datetime.now(UTC)
    try:
        result = asyncio.run(run(args, stack))
    finally:
        stack.stop()
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"burst-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({"started_at": started.isoformat(), **result}, indent=2) + "\n")
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
