"""Idempotent submits (issue 14 part B): POST /flask/predict with an Idempotency-Key.

The in-process app's broker is a closed port, so every test that needs a
publish to succeed replaces the Celery app's ``send_task`` with a recorder.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, inspect, select, update
from werkzeug.test import TestResponse

from iris_service import create_app, group_commit, idempotency
from iris_service.retention import purge
from iris_service.store import (
    IDEMPOTENCY_KEYS,
    JOBS,
    StatusStore,
    create_pending_with_key,
    get_idempotency_key,
    init_schema,
    utcnow,
)

from support.models import register_forest, registry_of
from support.samples import SETOSA, VIRGINICA
from support.settings import make_settings

KEY = "order-7f3a:2026/11/21"


def store_of(app: Flask) -> StatusStore:
    store: StatusStore = app.extensions["iris_store"]
    return store


def record_publishes(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make publishing succeed; the list gets the task id of every publish."""
    published: list[str] = []

    def send_task(name: str, **options: Any) -> None:
        published.append(options["task_id"])

    # Submits without a key go through the group commit (group_commit.py).
    def publish(jobs: Sequence[group_commit.Job]) -> list[None]:
        published.extend(job.task_id for job in jobs)
        return [None for _ in jobs]

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    monkeypatch.setattr(app.extensions["iris_committer"], "publish", publish)
    return published


def count(app: Flask, table: Any) -> int:
    with store_of(app).engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def submit(client: FlaskClient, body: Any = SETOSA, key: str | None = KEY) -> TestResponse:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post("/flask/predict", json=body, headers=headers)


@pytest.fixture
def published(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return record_publishes(app, monkeypatch)


def test_a_repeat_answers_the_first_job(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    first = submit(client)
    assert first.status_code == 202
    assert idempotency.REPLAYED_HEADER not in first.headers
    task_id = first.get_json()["task_id"]

    again = submit(client)
    assert again.status_code == 200
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert again.headers["Location"] == f"/flask/status/{task_id}"
    assert again.get_json() == {
        "task_id": task_id,
        "state": "PENDING",
        "status_url": f"/flask/status/{task_id}",
        "report_url": f"/flask/result/{task_id}.pdf",
    }
    assert published == [task_id]
    assert count(app, JOBS) == 1


def test_a_repeat_shows_the_jobs_current_state(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    task_id = submit(client).get_json()["task_id"]
    with store_of(app).engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE celery_taskmeta SET status = 'SUCCESS', date_done = datetime('now') "
            "WHERE task_id = ?",
            (task_id,),
        )
    again = submit(client)
    assert again.status_code == 200
    assert again.get_json()["state"] == "SUCCESS"
    assert published == [task_id]


def test_the_same_measurements_in_another_spelling_are_the_same_body(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    task_id = submit(client).get_json()["task_id"]
    reordered = json.dumps(dict(reversed(list(SETOSA.items()))), indent=2)
    as_json = client.post(
        "/flask/predict",
        data=reordered,
        content_type="application/json",
        headers={"Idempotency-Key": KEY},
    )
    # A form of the same numbers, one written differently ("5.10" is 5.1).
    form = {name: str(value) for name, value in SETOSA.items()} | {"sepal_length": "5.10"}
    as_form = client.post("/flask/predict", data=form, headers={"Idempotency-Key": KEY})
    for answer in (as_json, as_form):
        assert answer.status_code == 200
        assert answer.get_json()["task_id"] == task_id
    assert published == [task_id]


def test_the_same_key_with_other_measurements_is_a_422(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    task_id = submit(client).get_json()["task_id"]
    other = submit(client, VIRGINICA)
    assert other.status_code == 422
    body = other.get_json()
    assert "Idempotency-Key" in body["error"]
    assert "different measurements" in body["error"]
    assert body["header"] == "Idempotency-Key"
    assert body["idempotency_key"] == KEY
    assert task_id not in json.dumps(body)
    assert published == [task_id]
    assert count(app, JOBS) == 1


def test_the_same_key_with_another_model_version_is_a_422(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    """model_version is part of the body (issue 16): a repeat must not answer a job that
    predicts with another model than the one it names."""
    default = registry_of(app).default_version()
    forest = register_forest(app)
    task_id = submit(client, {**SETOSA, "model_version": default}).get_json()["task_id"]
    for other in ({**SETOSA, "model_version": forest}, SETOSA):
        answer = submit(client, other)
        assert answer.status_code == 422, other
        assert answer.get_json()["idempotency_key"] == KEY
    # The same body again, as a form this time, is the repeat.
    form = {name: str(value) for name, value in SETOSA.items()} | {"model_version": default}
    again = client.post("/flask/predict", data=form, headers={"Idempotency-Key": KEY})
    assert again.status_code == 200 and again.get_json()["task_id"] == task_id
    assert published == [task_id]
    assert count(app, JOBS) == 1


@pytest.mark.parametrize(
    "bad",
    ["", "two words", "x" * 129, "tab\there", "caf\xe9", "del\x7f"],
    ids=["empty", "space", "129-chars", "tab", "latin-1", "del"],
)
def test_a_malformed_key_is_a_400_naming_the_header(
    app: Flask, client: FlaskClient, published: list[str], bad: str
) -> None:
    r = submit(client, key=bad)
    assert r.status_code == 400
    body = r.get_json()
    assert "Idempotency-Key" in body["error"] and body["header"] == "Idempotency-Key"
    assert published == []
    assert count(app, JOBS) == 0


@pytest.mark.parametrize("good", ["x" * 128, "!", "~", str(uuid.uuid4()).upper()])
def test_keys_at_the_edges_are_accepted(
    client: FlaskClient, published: list[str], good: str
) -> None:
    assert submit(client, key=good).status_code == 202
    assert submit(client, key=good).status_code == 200
    assert len(published) == 1


def test_bad_measurements_with_a_key_are_a_400_and_record_nothing(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    bad = submit(client, {**SETOSA, "petal_width": 0})
    assert bad.status_code == 400
    assert bad.get_json()["fields"] == {"petal_width": "must be greater than 0"}
    assert count(app, JOBS) == 0 and count(app, IDEMPOTENCY_KEYS) == 0
    # The key is still free: the corrected body records the job.
    assert submit(client).status_code == 202
    assert len(published) == 1


def test_without_the_header_nothing_changes(
    app: Flask, client: FlaskClient, published: list[str]
) -> None:
    answers = [submit(client, key=None) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    ids = [a.get_json()["task_id"] for a in answers]
    assert ids[0] != ids[1]
    assert published == ids
    assert count(app, IDEMPOTENCY_KEYS) == 0
    assert all(idempotency.REPLAYED_HEADER not in a.headers for a in answers)


def test_a_refused_publish_frees_the_key(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app's broker is a closed port: the publish fails.
    refused = submit(client)
    assert refused.status_code == 503
    assert count(app, IDEMPOTENCY_KEYS) == 0 and count(app, JOBS) == 0

    published = record_publishes(app, monkeypatch)
    retried = submit(client)
    assert retried.status_code == 202
    assert published == [retried.get_json()["task_id"]]


def test_a_repeat_during_a_publish_that_fails_gets_a_503_not_a_discarded_job(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repeat must not answer the PENDING job the failing publish then deletes."""
    repeat_waits = threading.Event()
    real_get = idempotency.get_idempotency_key

    def get_key(store: StatusStore, key: str) -> Any:
        repeat_waits.set()
        return real_get(store, key)

    def send_task(name: str, **options: Any) -> None:
        # Fail only once the repeat has seen the key in flight.
        assert repeat_waits.wait(timeout=30)
        raise OSError("connection refused")

    monkeypatch.setattr(idempotency, "get_idempotency_key", get_key)
    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    answers: dict[str, TestResponse] = {}
    first = threading.Thread(target=lambda: answers.__setitem__("first", submit(client)))
    first.start()
    # Wait until the first request holds the key, then repeat it.
    while get_idempotency_key(store_of(app), KEY) is None:
        assert first.is_alive()
        threading.Event().wait(0.01)
    repeat = app.test_client()
    answers["repeat"] = submit(repeat)
    first.join()

    assert answers["first"].status_code == 503
    assert answers["repeat"].status_code == 503
    assert "Idempotency-Key" in answers["repeat"].get_json()["error"]
    assert answers["repeat"].headers["Retry-After"]
    assert count(app, IDEMPOTENCY_KEYS) == 0 and count(app, JOBS) == 0


def test_a_key_held_too_long_is_a_409_to_retry(
    app: Flask, client: FlaskClient, published: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(app)
    # Another request holds the key and has not had its publish confirmed yet.
    holder = str(uuid.uuid4())
    create_pending_with_key(store, holder, SETOSA, KEY, idempotency.body_sha256(SETOSA))
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.0)
    r = submit(client)
    assert r.status_code == 409
    assert "still being processed" in r.get_json()["error"]
    assert r.headers["Retry-After"]
    assert published == []

    # Its request died (it would have been killed long ago): the job is answered.
    with store.engine.begin() as conn:
        conn.execute(update(IDEMPOTENCY_KEYS).values(created_at=utcnow() - timedelta(minutes=5)))
    r = submit(client)
    assert r.status_code == 200 and r.get_json()["task_id"] == holder
    assert published == []


def _race(client_of: Callable[[], FlaskClient], n: int) -> list[TestResponse]:
    barrier = threading.Barrier(n)
    answers: list[TestResponse] = []
    lock = threading.Lock()

    def one() -> None:
        client = client_of()
        barrier.wait()
        answer = submit(client)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_concurrent_repeats_in_threads_make_one_job(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[str] = []

    def slow_send_task(name: str, **options: Any) -> None:
        # A publish that takes a while, so that repeats find the key in flight.
        threading.Event().wait(0.05)
        published.append(options["task_id"])

    monkeypatch.setattr(app.extensions["celery"], "send_task", slow_send_task)
    answers = _race(app.test_client, 12)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 11 + [202], [a.get_json() for a in answers]
    ids = {a.get_json()["task_id"] for a in answers}
    assert len(ids) == 1
    assert published == list(ids)
    assert count(app, JOBS) == 1 and count(app, IDEMPOTENCY_KEYS) == 1


def _submit_in_a_process(
    tmp: Path, barrier: Any, results: Any
) -> None:  # runs in a forked child process
    app = create_app({"TESTING": True}, settings=make_settings(tmp))
    published: list[str] = []

    def send_task(name: str, **options: Any) -> None:
        threading.Event().wait(0.05)
        published.append(options["task_id"])

    app.extensions["celery"].send_task = send_task
    client = app.test_client()
    barrier.wait()
    answers = [submit(client) for _ in range(3)]
    results.put(([(a.status_code, a.get_json().get("task_id")) for a in answers], published))


def test_concurrent_repeats_in_processes_make_one_job(tmp_path: Path) -> None:
    """As under gunicorn: several processes, each with its own engine, on one SQLite file."""
    init_schema(StatusStore(make_settings(tmp_path).database_url, 10_000).engine)
    processes = 4
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    children = [
        ctx.Process(target=_submit_in_a_process, args=(tmp_path, barrier, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0

    answers = [answer for answered, _ in outcomes for answer in answered]
    publishes = [task_id for _, published in outcomes for task_id in published]
    assert sorted(code for code, _ in answers) == [200] * (3 * processes - 1) + [202]
    assert len({task_id for _, task_id in answers}) == 1
    assert publishes == [answers[0][1]]
    store = StatusStore(make_settings(tmp_path).database_url, 10_000)
    page, _ = store.list(limit=10)
    assert [job.task_id for job in page] == publishes


def test_keys_expire_with_their_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path, retention_seconds=0)
    app = create_app({"TESTING": True}, settings=settings)
    published = record_publishes(app, monkeypatch)
    client = app.test_client()
    first = submit(client).get_json()["task_id"]

    report = purge(settings, store_of(app))
    assert (report.rows, report.keys) == (1, 1)
    assert count(app, IDEMPOTENCY_KEYS) == 0
    again = submit(client)
    assert again.status_code == 202
    assert again.get_json()["task_id"] != first
    assert len(published) == 2


def test_init_schema_adds_the_key_table_to_an_existing_database(tmp_path: Path) -> None:
    store = StatusStore(f"sqlite:///{tmp_path / 'old.sqlite'}", 10_000)
    init_schema(store.engine)
    IDEMPOTENCY_KEYS.drop(store.engine)
    assert "iris_idempotency_keys" not in inspect(store.engine).get_table_names()
    init_schema(store.engine)
    assert "iris_idempotency_keys" in inspect(store.engine).get_table_names()


def test_openapi_documents_the_header_and_its_answers(client: FlaskClient) -> None:
    post = client.get("/flask/openapi.json").get_json()["paths"]["/flask/predict"]["post"]
    (header,) = post["parameters"]
    assert header["name"] == "Idempotency-Key" and header["in"] == "header"
    assert not header["required"]
    assert {"200", "202", "409", "422"} <= set(post["responses"])
    assert "Idempotent-Replayed" in post["responses"]["200"]["headers"]
