"""Judge a Locust run from its ``*_stats.csv``: failure ratio and job latency thresholds.

``python check_results.py STATS_CSV --max-fail-ratio 0.01 --max-job-p95-ms 10000``
prints a short summary and exits 1 when a threshold is passed (or the run
completed no job while predicting users ran), 0 otherwise. ``locust/run.sh``
calls it after the run.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

JOB_TYPE, JOB_NAME = "JOB", "submit-to-done"


@dataclass(frozen=True)
class Summary:
    requests: int
    failures: int
    jobs: int
    job_failures: int
    job_p50_ms: float | None
    job_p95_ms: float | None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _number(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)


def summarize(stats_csv: Path) -> Summary:
    with stats_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    job = next((r for r in rows if r["Type"] == JOB_TYPE and r["Name"] == JOB_NAME), None)
    return Summary(
        requests=int(total["Request Count"]) if total else 0,
        failures=int(total["Failure Count"]) if total else 0,
        jobs=int(job["Request Count"]) if job else 0,
        job_failures=int(job["Failure Count"]) if job else 0,
        job_p50_ms=_number(job["50%"]) if job else None,
        job_p95_ms=_number(job["95%"]) if job else None,
    )


def problems(
    summary: Summary, max_fail_ratio: float, max_job_p95_ms: float, expect_jobs: bool
) -> list[str]:
    found = []
    if summary.requests == 0:
        found.append("no request was made")
    if summary.failure_ratio > max_fail_ratio:
        found.append(f"failure ratio {summary.failure_ratio:.2%} > {max_fail_ratio:.2%}")
    if expect_jobs and summary.jobs == 0:
        found.append("no job completed")
    if summary.job_p95_ms is not None and summary.job_p95_ms > max_job_p95_ms:
        found.append(f"job p95 {summary.job_p95_ms:.0f} ms > {max_job_p95_ms:.0f} ms")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stats_csv", type=Path)
    parser.add_argument("--max-fail-ratio", type=float, default=0.01)
    parser.add_argument("--max-job-p95-ms", type=float, default=10_000)
    parser.add_argument("--expect-jobs", action="store_true", help="fail when no job completed")
    args = parser.parse_args(argv)
    summary = summarize(args.stats_csv)
    p50 = "-" if summary.job_p50_ms is None else f"{summary.job_p50_ms:.0f}"
    p95 = "-" if summary.job_p95_ms is None else f"{summary.job_p95_ms:.0f}"
    print(
        f"requests {summary.requests}, failures {summary.failures} "
        f"({summary.failure_ratio:.2%}); jobs done {summary.jobs} "
        f"(failed {summary.job_failures}), job latency p50 {p50} ms, p95 {p95} ms"
    )
    found = problems(summary, args.max_fail_ratio, args.max_job_p95_ms, args.expect_jobs)
    for problem in found:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
