"""Locust scenarios for the iris prediction service.

- ``PredictingUser``: submits random realistic measurements, polls the status
  URL with backoff until SUCCESS or FAILURE, downloads the PDF. Each job's
  submit-to-done time is its own entry (type ``JOB``, name ``submit-to-done``),
  so the report shows end-to-end job latency next to the request latencies.
- ``WaitingPredictingUser``: the same, but each status read is a
  ``?wait=`` that answers when the job ends (``WAIT_SECONDS``, default 10),
  instead of polls (its reads are named ``GET /flask/status/[id]?wait=``).
- ``StatusWatcher``: reads the task list and the statuses of listed jobs.
- ``BurstUser``: only submits, for queue-growth and back-pressure runs. 503
  (queue full or broker down) and 429 (nginx's per-address submit limit) are
  back-pressure as designed: counted under ``BACKPRESSURE``, not failures.
  Paced (``BURST_RATE`` submits per second per user, default 20), never an
  unbounded flood.

Choose the classes on the command line (``locust -f locustfile.py
PredictingUser StatusWatcher``); ``locust/run.sh`` does that for you.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from locust import FastHttpUser, between, constant_throughput, tag, task

# Typical measurements (cm) of setosa, versicolor and virginica; users jitter around them.
PROTOTYPES = ((5.0, 3.4, 1.5, 0.25), (5.9, 2.8, 4.3, 1.3), (6.6, 3.0, 5.6, 2.0))
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
DONE = ("SUCCESS", "FAILURE")
JOB_TIMEOUT = float(os.environ.get("JOB_TIMEOUT", "60"))
BACKPRESSURE = (429, 503)
WAIT_SECONDS = float(os.environ.get("WAIT_SECONDS", "10"))


def measurements() -> dict[str, float]:
    base = random.choice(PROTOTYPES)  # noqa: S311 (load, not secrets)
    return {
        name: round(max(0.1, value + random.gauss(0, 0.3)), 1)
        for name, value in zip(FEATURES, base, strict=True)
    }


class PredictingUser(FastHttpUser):
    """One person using the service: submit, wait for the job, fetch the report."""

    wait_time = between(0.5, 2.0)
    weight = 3

    @tag("predict")
    @task
    def predict_and_download(self) -> None:
        start = time.perf_counter()
        with self.client.post(
            "/flask/predict",
            json=measurements(),
            name="POST /flask/predict",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"submit answered {response.status_code}: {response.text}")
                return
            job: dict[str, Any] = response.json()
        state, error = self._wait(job["status_url"], start)
        elapsed_ms = (time.perf_counter() - start) * 1000
        self.environment.events.request.fire(
            request_type="JOB",
            name="submit-to-done",
            response_time=elapsed_ms,
            response_length=0,
            exception=error,
            context={"task_id": job["task_id"], "state": state},
        )
        if state != "SUCCESS":
            return
        with self.client.get(
            job["report_url"], name="GET /flask/result/[id].pdf", catch_response=True
        ) as response:
            if response.status_code != 200 or not (response.content or b"").startswith(b"%PDF"):
                response.failure(f"report answered {response.status_code}")

    def _wait(self, status_url: str, start: float) -> tuple[str, Exception | None]:
        """Poll with backoff (50 ms doubling to 1 s) until the job is finished.

        ``time.sleep`` yields to other users: Locust has monkey-patched it for gevent.
        """
        delay = 0.05
        while True:
            with self.client.get(
                status_url, name="GET /flask/status/[id]", catch_response=True
            ) as response:
                if response.status_code != 200:
                    response.failure(f"status answered {response.status_code}")
                    return "UNKNOWN", RuntimeError(f"status answered {response.status_code}")
                body = response.json()
            if body["state"] in DONE:
                if body["state"] == "FAILURE":
                    return "FAILURE", RuntimeError(f"job failed: {body.get('error')}")
                return "SUCCESS", None
            if time.perf_counter() - start > JOB_TIMEOUT:
                return body["state"], TimeoutError(f"job not done after {JOB_TIMEOUT:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class WaitingPredictingUser(PredictingUser):
    """PredictingUser, reading the status with ?wait= (one read per job, usually)."""

    def _wait(self, status_url: str, start: float) -> tuple[str, Exception | None]:
        """Read with ?wait= until the job is finished; each read answers at its end."""
        while True:
            with self.client.get(
                f"{status_url}?wait={WAIT_SECONDS:g}",
                name="GET /flask/status/[id]?wait=",
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"status answered {response.status_code}")
                    return "UNKNOWN", RuntimeError(f"status answered {response.status_code}")
                body = response.json()
            if body["state"] in DONE:
                if body["state"] == "FAILURE":
                    return "FAILURE", RuntimeError(f"job failed: {body.get('error')}")
                return "SUCCESS", None
            if time.perf_counter() - start > JOB_TIMEOUT:
                return body["state"], TimeoutError(f"job not done after {JOB_TIMEOUT:.0f} s")


class StatusWatcher(FastHttpUser):
    """Someone watching the dashboard: the task list, then a few statuses from it."""

    wait_time = between(1.0, 3.0)
    weight = 1

    def on_start(self) -> None:
        # The task list needs the bearer token when the service sets TASKS_API_TOKEN.
        token = os.environ.get("TASKS_API_TOKEN")
        self.list_headers = {"Authorization": f"Bearer {token}"} if token else {}

    @tag("status")
    @task(3)
    def watch_statuses(self) -> None:
        with self.client.get(
            "/flask/tasks?limit=20",
            name="GET /flask/tasks",
            headers=self.list_headers,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"task list answered {response.status_code}")
                return
            tasks = response.json()["tasks"]
        for item in random.sample(tasks, min(3, len(tasks))):
            self.client.get(f"/flask/status/{item['task_id']}", name="GET /flask/status/[id]")

    @tag("status")
    @task(1)
    def finished_jobs(self) -> None:
        self.client.get(
            "/flask/tasks?state=SUCCESS&limit=50",
            name="GET /flask/tasks?state=",
            headers=self.list_headers,
        )


class BurstUser(FastHttpUser):
    """Submits only, at a fixed pace, and never waits for the jobs."""

    wait_time = constant_throughput(float(os.environ.get("BURST_RATE", "20")))
    weight = 1

    @tag("burst")
    @task
    def submit(self) -> None:
        with self.client.post(
            "/flask/predict",
            json=measurements(),
            name="POST /flask/predict (burst)",
            catch_response=True,
        ) as response:
            if response.status_code == 202:
                return
            if response.status_code in BACKPRESSURE:
                # Refused as designed: not a failure, but counted on its own line.
                response.success()
                self.environment.events.request.fire(
                    request_type="BACKPRESSURE",
                    name=f"submit refused {response.status_code}",
                    response_time=0,
                    response_length=0,
                    exception=None,
                    context={},
                )
                retry_after = response.headers.get("Retry-After") or "1"
                time.sleep(min(float(retry_after), 5.0) if retry_after.isdigit() else 1.0)
                return
            response.failure(f"submit answered {response.status_code}")
