"""GET /flask/metrics through nginx on the real stack: the counters match what the test did.

The session stack scrapes from loopback (allowed by default) around a run of
real jobs: the submits are counted by gunicorn's workers and the finished jobs
by the worker's pool processes, so the figures are right only if the scrape
merges every process's (prometheus-client's multiprocess mode). A private
stack that allows another address only checks the 403s, that a client cannot
claim an allowed address through nginx, the token, and the jobs held
unacknowledged while a slow job runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from iris_service.testhooks import SLOW_JOB_SEPAL_LENGTH

from support.faults import wait_until
from support.samples import SETOSA, VERSICOLOR, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TOKEN = "metrics-test-token-0123456789"


def scrape(stack: Stack, **headers: str) -> Samples:
    response = requests.get(f"{stack.base_url}/flask/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_match_a_real_run(stack: Stack) -> None:
    before = scrape(stack)
    jobs = 6
    task_ids = [stack.submit(flower)["task_id"] for flower in (SETOSA, VERSICOLOR, VIRGINICA) * 2]
    for task_id in task_ids:
        assert stack.wait_done(task_id)["state"] == "SUCCESS"

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    # A client sees SUCCESS as soon as it is written; the pool process counts
    # the job right after, as the task returns.
    after: Samples = {}

    def all_counted() -> bool:
        nonlocal after
        after = scrape(stack)
        return delta(after, "iris_jobs_finished_total", state="SUCCESS") >= jobs

    wait_until(all_counted, timeout=30, what="the finished jobs to be counted")
    assert delta(after, "iris_jobs_submitted_total") == jobs
    assert delta(after, "iris_jobs_finished_total", state="SUCCESS") == jobs
    assert delta(after, "iris_jobs_finished_total", state="FAILURE") == 0
    assert delta(after, "iris_job_run_duration_seconds_count") == jobs
    assert delta(after, "iris_job_submit_to_done_seconds_count") == jobs
    assert delta(after, "iris_job_submit_to_done_seconds_bucket", le="+Inf") == jobs
    # A report is about 32 KB.
    assert 20_000 * jobs < delta(after, "iris_report_bytes_total") < 100_000 * jobs
    predict = {"route": "/flask/predict", "method": "POST", "status": "202"}
    assert delta(after, "iris_http_requests_total", **predict) == jobs
    assert (
        delta(
            after, "iris_http_request_duration_seconds_count", route="/flask/predict", method="POST"
        )
        == jobs
    )
    # Read at the scrape, from the broker and the database.
    assert value(after, "iris_queue_consumers") >= 1
    assert ("iris_queue_messages", (("state", "ready"),)) in after
    assert value(after, "iris_queue_messages", state="unacked") == 0
    assert value(after, "iris_result_backend_jobs") >= jobs
    assert value(after, "iris_result_backend_bytes") > 0
    text = requests.get(f"{stack.base_url}/flask/metrics", timeout=10).text
    assert not any(task_id in text for task_id in task_ids)


@pytest.fixture(scope="module")
def guarded_stack() -> Iterator[Stack]:
    """Metrics allowed from a documentation address only (not loopback), or with a token;
    a slow test job to hold a message unacknowledged."""
    env = {
        "METRICS_ALLOW": "192.0.2.10",
        "METRICS_TOKEN": TOKEN,
        "IRIS_TEST_HOOKS": "1",
        "TEST_TASK_DELAY_SECONDS": "3",
    }
    with running_stack(env) as stack:
        folder = stack.var_dir / "run" / "prometheus"
        assert any(folder.glob("*.db"))
        yield stack
    # The processes' metric files go with them: the next run counts from zero.
    assert not Path(folder).exists()


def test_refused_to_other_addresses_with_json(guarded_stack: Stack) -> None:
    url = f"{guarded_stack.base_url}/flask/metrics"
    for headers in (
        {},
        # nginx sets the address for this route; what the client claims is dropped.
        {"X-Forwarded-For": "192.0.2.10"},
        {"X-Forwarded-For": "192.0.2.10, 192.0.2.10", "X-Real-IP": "192.0.2.10"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 403, headers
        assert response.headers["Content-Type"] == "application/json"
        assert "METRICS_ALLOW" in response.json()["error"]


def test_the_token_opens_it(guarded_stack: Stack) -> None:
    samples = scrape(guarded_stack, Authorization=f"Bearer {TOKEN}")
    assert value(samples, "iris_queue_consumers") >= 1


def test_a_running_job_is_held_unacknowledged(guarded_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    slow = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}
    task_id = guarded_stack.submit(slow)["task_id"]

    def running() -> bool:
        return value(scrape(guarded_stack, **auth), "iris_queue_messages", state="unacked") == 1

    wait_until(running, timeout=30, what="the slow job to be counted as running")
    assert guarded_stack.wait_done(task_id)["state"] == "SUCCESS"
    wait_until(
        lambda: value(scrape(guarded_stack, **auth), "iris_queue_messages", state="unacked") == 0,
        timeout=30,
        what="the slow job to be counted as done",
    )
