"""Locust: a short headless run of locust/run.sh against the real stack, and its verdict logic."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from support.stack import ROOT, Stack

# The locust folder, not the repository root: nothing there can shadow a library.
sys.path.insert(0, str(ROOT / "locust"))
import check_results


def _rows(stats_csv: Path) -> dict[tuple[str, str], dict[str, str]]:
    with stats_csv.open(newline="") as f:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}


@pytest.mark.stack
def test_headless_run_completes_jobs_without_failures(stack: Stack, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            str(ROOT / "locust" / "run.sh"),
            *("-u", "4", "-r", "4", "-t", "6s", "-H", stack.base_url),
            *("-o", str(tmp_path), "--prefix", "ci"),
            *("--max-fail-ratio", "0", "--max-job-p95-ms", "60000"),
        ],
        env=stack.env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert (tmp_path / "ci.html").stat().st_size > 0
    rows = _rows(tmp_path / "ci_stats.csv")
    jobs = rows[("JOB", "submit-to-done")]
    assert int(jobs["Request Count"]) > 0
    assert int(jobs["Failure Count"]) == 0
    assert int(rows[("GET", "GET /flask/result/[id].pdf")]["Request Count"]) > 0
    assert int(rows[("GET", "GET /flask/status/[id]")]["Request Count"]) > 0
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0


@pytest.mark.stack
def test_the_waiting_user_reads_with_wait(stack: Stack, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            str(ROOT / "locust" / "run.sh"),
            *("-c", "WaitingPredictingUser", "-u", "4", "-r", "4", "-t", "6s"),
            *("-H", stack.base_url, "-o", str(tmp_path), "--prefix", "ci"),
            *("--max-fail-ratio", "0", "--max-job-p95-ms", "60000"),
        ],
        env=stack.env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    rows = _rows(tmp_path / "ci_stats.csv")
    assert int(rows[("JOB", "submit-to-done")]["Request Count"]) > 0
    assert int(rows[("GET", "GET /flask/status/[id]?wait=")]["Request Count"]) > 0
    assert ("GET", "GET /flask/status/[id]") not in rows  # no polls
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0


def _summary(**overrides: float) -> check_results.Summary:
    values: dict[str, float] = {
        "requests": 100,
        "failures": 0,
        "jobs": 10,
        "job_failures": 0,
        "job_p50_ms": 40,
        "job_p95_ms": 90,
    }
    values.update(overrides)
    return check_results.Summary(**values)


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (_summary(), []),
        (_summary(failures=2), ["failure ratio 2.00% > 1.00%"]),
        (_summary(job_p95_ms=2500), ["job p95 2500 ms > 1000 ms"]),
        (_summary(jobs=0, job_p50_ms=None, job_p95_ms=None), ["no job completed"]),
        (
            _summary(requests=0, jobs=0, job_p95_ms=None),
            ["no request was made", "no job completed"],
        ),
    ],
)
def test_thresholds(summary: check_results.Summary, expected: list[str]) -> None:
    assert check_results.problems(summary, 0.01, 1000, expect_jobs=True) == expected


def test_exit_status_follows_the_thresholds(tmp_path: Path) -> None:
    stats = tmp_path / "x_stats.csv"
    header = "Type,Name,Request Count,Failure Count,50%,95%\n"
    stats.write_text(header + "JOB,submit-to-done,20,0,45,300\n" + ",Aggregated,200,1,8,120\n")
    assert check_results.main([str(stats), "--max-fail-ratio", "0.01"]) == 0
    assert check_results.main([str(stats), "--max-fail-ratio", "0.001"]) == 1
    assert check_results.main([str(stats), "--max-job-p95-ms", "200"]) == 1
