"""Benchmark of the PDF report alone: build time per report, file size, PNG chart time.

Run it with the project's venv from the repository root::

    .venv/bin/python bench/report_bench.py            # 5 rounds of 400 reports
    .venv/bin/python bench/report_bench.py --rounds 3 --count 1000

It trains the model in memory, then times ``report.render`` on a rotating set
of inputs (a confident prediction, a near tie, an input far outside the
training data), which is exactly what a worker does per job between
predicting and writing the file. The first report of a process pays for
parsing the fonts, subsetting them and recording the static charts; it is
reported apart ("cold"). Each round prints its median and 90th percentile, so
the spread on a shared machine is visible; the summary is the median of the
round medians. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flask" / "src"))

from iris_service import model, report, training
from iris_service.probability_png import probability_png

INPUTS = (
    {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5},
    {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 5.0, "petal_width": 1.6},
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 40.0, "petal_width": 0.2},
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400, help="reports per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    card = training.train()
    iris = model.IrisModel(card)
    data = []
    for features in INPUTS:
        prediction = iris.predict(features)
        now = datetime.now(UTC)
        data.append(
            report.ReportData(
                task_id=str(uuid.uuid4()),
                created_at=now,
                submitted_at=now,
                features=features,
                label=prediction.label,
                probabilities=prediction.probabilities,
                model_version=iris.version,
                model_card=card,
            )
        )

    start = time.perf_counter()
    first = report.render(data[0])
    cold_ms = (time.perf_counter() - start) * 1000
    sizes = [len(report.render(d)) for d in data]
    print(f"cold first report: {cold_ms:.1f} ms (font parsing, subsetting, recording)")
    print(f"file size: {min(sizes) / 1024:.1f} to {max(sizes) / 1024:.1f} KiB ({len(first)} bytes)")

    # Wall time is what a job waits; CPU time is what a report costs, and stays
    # honest when other processes share the cores.
    medians, cpu_medians = [], []
    for round_no in range(1, args.rounds + 1):
        times, cpu = [], []
        for i in range(args.count):
            item = data[i % len(data)]
            t0, c0 = time.perf_counter(), time.thread_time()
            report.render(item)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
        times.sort()
        medians.append(statistics.median(times))
        cpu_medians.append(statistics.median(cpu))
        print(
            f"round {round_no}: {args.count} reports, wall median {medians[-1]:.2f} ms, "
            f"p90 {times[int(len(times) * 0.9)]:.2f} ms, min {times[0]:.2f} ms; "
            f"CPU median {cpu_medians[-1]:.2f} ms"
        )
    print(
        f"report build time, median of round medians: wall {statistics.median(medians):.2f} ms, "
        f"CPU {statistics.median(cpu_medians):.2f} ms"
    )

    png_times = []
    png = b""
    for i in range(args.count):
        p = data[i % len(data)]
        t0 = time.perf_counter()
        png = probability_png(p.probabilities, p.label)
        png_times.append((time.perf_counter() - t0) * 1000)
    print(
        f"PNG probability chart: median {statistics.median(png_times):.2f} ms, "
        f"{len(png) / 1024:.1f} KiB"
    )


if __name__ == "__main__":
    main()
