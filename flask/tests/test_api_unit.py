"""Reads of the API against a real SQLite store, without a broker."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iris_service.store import StatusStore

from conftest import SETOSA


def store_of(app: Flask) -> StatusStore:
    store: StatusStore = app.extensions["iris_store"]
    return store


def test_status_of_pending_job(app: Flask, client: FlaskClient) -> None:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    body = client.get(f"/flask/status/{task_id}").get_json()
    assert body["state"] == "PENDING"
    assert body["progress"] == 0.0
    assert body["stage"] == "queued"
    assert body["result"] is None and body["error"] is None and body["finished_at"] is None
    assert body["submitted_at"].endswith("Z")
    same = client.get(f"/flask/status?task_id={task_id}").get_json()
    assert same == body


@pytest.mark.parametrize(
    "bad", ["123", "not-a-uuid", "6FA5A799-21E9-49D0-8268-BE5827D5315F", "x" * 300]
)
def test_malformed_id_is_400(client: FlaskClient, bad: str) -> None:
    assert client.get(f"/flask/status/{bad}").status_code == 400
    assert client.get(f"/flask/result/{bad}.pdf").status_code == 400


def test_unknown_id_is_404(client: FlaskClient) -> None:
    unknown = str(uuid.uuid4())
    assert client.get(f"/flask/status/{unknown}").status_code == 404
    assert client.get(f"/flask/result/{unknown}.pdf").status_code == 404


def test_status_query_needs_task_id(client: FlaskClient) -> None:
    r = client.get("/flask/status")
    assert r.status_code == 400
    assert "task_id" in r.get_json()["error"]


def test_result_before_done_is_409(app: Flask, client: FlaskClient) -> None:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    r = client.get(f"/flask/result/{task_id}.pdf")
    assert r.status_code == 409
    assert r.get_json()["state"] == "PENDING"


def test_tasks_pagination_and_filter(app: Flask, client: FlaskClient) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for task_id in ids:
        store_of(app).create_pending(task_id, SETOSA)
    first = client.get("/flask/tasks?limit=2").get_json()
    assert [t["task_id"] for t in first["tasks"]] == ids[::-1][:2]
    second = client.get(f"/flask/tasks?limit=2&before={first['next']}").get_json()
    assert [t["task_id"] for t in second["tasks"]] == ids[::-1][2:4]
    third = client.get(f"/flask/tasks?limit=2&before={second['next']}").get_json()
    assert [t["task_id"] for t in third["tasks"]] == ids[:1]
    assert third["next"] is None
    assert len(client.get("/flask/tasks?state=PENDING").get_json()["tasks"]) == 5
    assert client.get("/flask/tasks?state=SUCCESS").get_json()["tasks"] == []


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "before=x", "state=DONE", "state=pending"]
)
def test_tasks_bad_query_is_400(client: FlaskClient, query: str) -> None:
    r = client.get(f"/flask/tasks?{query}")
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_model_card(client: FlaskClient) -> None:
    card = client.get("/flask/model").get_json()
    assert card["classes"] == ["setosa", "versicolor", "virginica"]
    assert card["feature_names"] == list(SETOSA)
    assert card["cv_accuracy"] >= 0.93
    assert len(card["version"]) == 16
    assert {"scikit-learn", "numpy", "python"} <= set(card["library_versions"])
    assert "parameters" not in card


def test_health_names_the_broker(client: FlaskClient) -> None:
    r = client.get("/flask/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("down")
    assert "broker" in body["error"]


BEHIND_NGINX = {"X-Sendfile-Type": "X-Accel-Redirect"}


def _finish(app: Flask, task_id: str, state: str, submitted_hours_ago: float = 0) -> None:
    store = store_of(app)
    store.create_pending(task_id, SETOSA)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE celery_taskmeta SET status = ?, date_done = datetime('now') WHERE task_id = ?",
            (state, task_id),
        )
        conn.exec_driver_sql(
            "UPDATE iris_jobs SET submitted_at = datetime('now', ?) WHERE task_id = ?",
            (f"-{submitted_hours_ago * 3600:.0f} seconds", task_id),
        )


@pytest.mark.parametrize(
    ("state", "hours_ago", "expected"),
    [
        ("PENDING", 0, None),
        ("STARTED", 0, None),
        ("PROGRESS", 0, None),
        ("SUCCESS", 0, "60"),
        ("FAILURE", 0, "60"),
        # Within a minute of its expiry (7 days): kept only until then.
        ("SUCCESS", 7 * 24 - 0.25 / 60, "15"),
        # Past its expiry, waiting for the purge: never kept.
        ("SUCCESS", 7 * 24 + 1, None),
    ],
)
def test_nginx_may_keep_only_finished_unexpired_statuses(
    app: Flask, client: FlaskClient, state: str, hours_ago: float, expected: str | None
) -> None:
    task_id = str(uuid.uuid4())
    _finish(app, task_id, state, hours_ago)
    r = client.get(f"/flask/status/{task_id}", headers=BEHIND_NGINX)
    assert r.status_code == 200 and r.get_json()["state"] == state
    if expected is None:
        assert "X-Accel-Expires" not in r.headers
    else:
        # A second or two may pass between the update and the read.
        assert abs(int(r.headers["X-Accel-Expires"]) - int(expected)) <= 2
    assert r.headers["Cache-Control"] == "no-store"
    # Straight from gunicorn (no nginx in front) the header is never sent.
    assert "X-Accel-Expires" not in client.get(f"/flask/status/{task_id}").headers
