"""GET /flask/metrics without services: names, bounded labels, job metrics, access rules,
and prometheus-client's multiprocess mode across real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from iris_service import create_app, metrics

from support.settings import given_settings, make_settings

SAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
OUTSIDE = {"REMOTE_ADDR": "203.0.113.7"}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """A scrape's samples by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client: FlaskClient, **kwargs: Any) -> Samples:
    response = client.get("/flask/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return parse(response.get_data(as_text=True))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_rule_method_and_status(client: FlaskClient) -> None:
    before = scrape(client)
    for _ in range(2):
        client.get(f"/flask/status/{uuid.uuid4()}")  # 404: unknown id
    client.get("/flask/status/not-a-uuid")
    client.get(f"/no/such/{uuid.uuid4()}")
    client.open("/flask/model", method="BREW")
    after = scrape(client)

    route = "/flask/status/<task_id>"
    key = "iris_http_requests_total"
    assert (
        value(after, key, route=route, method="GET", status="404")
        - value(before, key, route=route, method="GET", status="404")
        == 2
    )
    assert (
        value(after, key, route=route, method="GET", status="400")
        - value(before, key, route=route, method="GET", status="400")
        == 1
    )
    assert (
        value(after, key, route="other", method="GET", status="404")
        - value(before, key, route="other", method="GET", status="404")
        == 1
    )
    assert (
        value(after, key, route="other", method="other", status="405")
        - value(before, key, route="other", method="other", status="405")
        == 1
    )
    count = "iris_http_request_duration_seconds_count"
    assert (
        value(after, count, route=route, method="GET")
        - value(before, count, route=route, method="GET")
        == 3
    )


def test_label_values_are_bounded(app: Flask, client: FlaskClient) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for task_id in ids:
        client.get(f"/flask/status/{task_id}")
        client.get(f"/flask/result/{task_id}.pdf")
        client.get(f"/{task_id}")
    body = client.get("/flask/metrics").get_data(as_text=True)
    assert not any(task_id in body for task_id in ids)
    # The metrics are the process's: other tests' apps (the bench endpoint) count too.
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-", re.IGNORECASE)
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            assert not any(uuid_like.search(v) for v in sample.labels.values())
            assert sample.labels.get("method", "GET") in metrics._HTTP_METHODS | {"other"}
    seen = {
        labels
        for (name, labels) in parse(body)
        if name == "iris_http_requests_total" and dict(labels)["status"] == "404"
    }
    rules = {rule.rule for rule in app.url_map.iter_rules()} | {"other"}
    assert {dict(labels)["route"] for labels in seen} <= rules


def test_only_accepted_submits_are_counted(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = scrape(client)
    # The fixture's broker is a closed port: this submit is refused with 503.
    assert client.post("/flask/predict", json=SAMPLE).status_code == 503
    committer = app.extensions["iris_committer"]
    monkeypatch.setattr(committer, "publish", lambda jobs: [None for _ in jobs])
    assert client.post("/flask/predict", json=SAMPLE).status_code == 202
    after = scrape(client)
    submitted = "iris_jobs_submitted_total"
    assert value(after, submitted) - value(before, submitted) == 1


def test_job_metrics_from_the_pool_process_helpers(client: FlaskClient) -> None:
    before = scrape(client)
    submitted_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=3)
    for state in ("SUCCESS", "FAILURE", "RETRY", "IGNORED", "SUCCESS"):
        task_id = str(uuid.uuid4())
        metrics.job_started(task_id)
        metrics.job_submitted_at(task_id, submitted_at)
        metrics.report_written(1000)
        running = scrape(client)
        assert value(running, "iris_queue_messages", state="unacked") == 1
        metrics.job_ended(task_id, state)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("iris_jobs_finished_total", state="SUCCESS") == 2
    assert delta("iris_jobs_finished_total", state="FAILURE") == 1
    assert not any(
        name == "iris_jobs_finished_total" and dict(labels)["state"] not in ("SUCCESS", "FAILURE")
        for name, labels in after
    )
    # Every attempt is timed; only finished jobs have a submit-to-done time.
    assert delta("iris_job_run_duration_seconds_count") == 5
    assert delta("iris_job_submit_to_done_seconds_count") == 3
    # Submitted 3 s ago: above the 2.5 s bucket, within the 5 s one.
    assert delta("iris_job_submit_to_done_seconds_bucket", le="2.5") == 0
    assert delta("iris_job_submit_to_done_seconds_bucket", le="5.0") == 3
    assert delta("iris_report_bytes_total") == 5000
    assert value(after, "iris_queue_messages", state="unacked") == 0


def test_a_job_not_started_here_is_not_counted(client: FlaskClient) -> None:
    before = scrape(client)
    metrics.job_ended(str(uuid.uuid4()), "SUCCESS")
    after = scrape(client)
    assert value(after, "iris_jobs_finished_total", state="SUCCESS") == value(
        before, "iris_jobs_finished_total", state="SUCCESS"
    )


def test_cancel_and_retry_helpers(client: FlaskClient) -> None:
    before = scrape(client)
    metrics.job_cancelled()
    metrics.job_retried()
    metrics.job_retried()
    after = scrape(client)
    assert (
        value(after, "iris_jobs_cancelled_total") - value(before, "iris_jobs_cancelled_total") == 1
    )
    assert value(after, "iris_jobs_retried_total") - value(before, "iris_jobs_retried_total") == 2


def test_scrape_time_figures_and_a_broker_that_is_down(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["iris_store"]
    for _ in range(3):
        store.create_pending(str(uuid.uuid4()), SAMPLE)
    samples = scrape(client)
    assert value(samples, "iris_result_backend_jobs") == 3
    assert value(samples, "iris_result_backend_bytes") > 0
    # The fixture's broker does not answer: the queue's figures are left out, not faked.
    assert ("iris_queue_consumers", ()) not in samples
    assert ("iris_queue_messages", (("state", "ready"),)) not in samples


def test_queue_figures_come_from_the_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = create_app({"TESTING": True}, settings=make_settings(tmp_path))
    monkeypatch.setattr("iris_service.views._broker_queue_state", lambda: (2, 7))
    samples = scrape(app.test_client())
    assert value(samples, "iris_queue_consumers") == 2
    assert value(samples, "iris_queue_messages", state="ready") == 7


def test_refused_outside_the_allow_list_with_json(client: FlaskClient) -> None:
    response = client.get("/flask/metrics", environ_base=OUTSIDE)
    assert response.status_code == 403
    assert "METRICS_ALLOW" in response.get_json()["error"]
    assert client.get("/flask/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_a_forwarded_address_is_the_one_nginx_set(client: FlaskClient) -> None:
    # ProxyFix trusts one hop: the address nginx set, not what the client put before it.
    spoofed = {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}
    response = client.get("/flask/metrics", headers=spoofed)
    assert response.status_code == 403
    # A listed address forwarded by nginx (REMOTE_ADDR is nginx's) is allowed.
    ok = client.get("/flask/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert ok.status_code == 200
    outside = client.get("/flask/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert outside.status_code == 403


def test_allow_list_of_networks(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_allow="10.0.0.0/8, 2001:db8::/32")
    client = create_app({"TESTING": True}, settings=settings).test_client()
    assert client.get("/flask/metrics", environ_base={"REMOTE_ADDR": "10.2.3.4"}).status_code == 200
    v6 = {"REMOTE_ADDR": "2001:db8::1"}
    assert client.get("/flask/metrics", environ_base=v6).status_code == 200
    # Loopback is not implied once the list is given.
    assert client.get("/flask/metrics").status_code == 403
    assert client.get("/flask/metrics", environ_base=OUTSIDE).status_code == 403


def test_the_token_opens_it_from_anywhere(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_token="s3cret-token", metrics_allow="none")
    client = create_app({"TESTING": True}, settings=settings).test_client()
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.get("/flask/metrics", headers=good, environ_base=OUTSIDE).status_code == 200
    for bad in ("Bearer s3cret", "Basic s3cret-token", "s3cret-token", ""):
        response = client.get("/flask/metrics", headers={"Authorization": bad})
        assert response.status_code == 403, bad
        assert response.is_json
    # "none": not even loopback without the token.
    assert client.get("/flask/metrics").status_code == 403


@pytest.mark.parametrize("bad", ["10.0.0.300", "localhost", "10.0.0.0/33", "127.0.0.1,"])
def test_a_bad_allow_list_stops_the_process(bad: str) -> None:
    with pytest.raises(ValidationError, match="METRICS_ALLOW"):
        given_settings(METRICS_ALLOW=bad)


def _python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    """Counters written by several processes add up at the scrape, and a process that
    died mid-job no longer counts as running one. The children are forked after the
    import, as gunicorn's workers and Celery's pool processes are."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    text = _python(
        f"""
        import os, sys
        from sqlalchemy import create_engine
        from iris_service import metrics
        from iris_service.store import init_schema

        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                for _ in range(3):
                    metrics.job_submitted()
                metrics.job_started("a")
                metrics.job_ended("a", "SUCCESS")
                metrics.job_started("dies-running-this")
                os._exit(0)
            os.waitpid(pid, 0)
        engine = create_engine("sqlite:///{tmp_path / "results.sqlite"}")
        init_schema(engine)
        before = metrics.exposition(lambda: (1, 0), engine).decode()
        metrics.forget_dead_processes()
        after = metrics.exposition(lambda: (1, 0), engine).decode()
        sys.stdout.write(before + "=====" + after)
        """,
        env,
    )
    before, after = (parse(part) for part in text.split("====="))
    assert value(before, "iris_jobs_submitted_total") == 6
    assert value(before, "iris_jobs_finished_total", state="SUCCESS") == 2
    assert value(before, "iris_job_run_duration_seconds_count") == 2
    assert value(before, "iris_queue_messages", state="unacked") == 2
    assert value(after, "iris_queue_messages", state="unacked") == 0
    assert value(after, "iris_jobs_submitted_total") == 6
