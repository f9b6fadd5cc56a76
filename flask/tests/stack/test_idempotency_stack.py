"""Idempotent submits through nginx and gunicorn's several processes (issue 14 part B)."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from iris_service.store import JOBS, StatusStore

from support.samples import SETOSA, VIRGINICA
from support.stack import Stack

pytestmark = pytest.mark.stack


def _unique_setosa() -> dict[str, float]:
    # Measurements no other test sends, so that their rows can be counted.
    return {**SETOSA, "sepal_length": round(4.5 + uuid.uuid4().int % 10**6 / 10**7, 7)}


def _jobs_with_inputs(stack: Stack, values: dict[str, float]) -> list[str]:
    store = StatusStore(stack.database_url, stack.settings().sqlite_busy_timeout_ms)
    with store.engine.connect() as conn:
        rows = conn.execute(select(JOBS.c.task_id, JOBS.c.inputs)).all()
    # A job's inputs are its measurements and the model version chosen at submit.
    return [
        task_id
        for task_id, inputs in rows
        if {k: v for k, v in json.loads(inputs).items() if k != "model_version"} == values
    ]


def test_concurrent_repeats_of_one_key_make_one_job(stack: Stack) -> None:
    values = _unique_setosa()
    key = f"stack-{uuid.uuid4()}"
    n = 20
    barrier = threading.Barrier(n)

    def submit(_: int) -> requests.Response:
        with requests.Session() as session:
            barrier.wait()
            return session.post(
                f"{stack.base_url}/flask/predict",
                json=values,
                headers={"Idempotency-Key": key},
                timeout=30,
            )

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(submit, range(n)))

    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * (n - 1) + [202], [a.text for a in answers]
    task_ids = {a.json()["task_id"] for a in answers}
    assert len(task_ids) == 1
    (task_id,) = task_ids
    assert [a.headers.get("Idempotent-Replayed") for a in answers if a.status_code == 200] == [
        "true"
    ] * (n - 1)
    assert _jobs_with_inputs(stack, values) == [task_id]
    assert stack.wait_done(task_id)["state"] == "SUCCESS"

    # Once done, a repeat still answers the same job, now with its state.
    again = requests.post(
        f"{stack.base_url}/flask/predict", json=values, headers={"Idempotency-Key": key}, timeout=10
    )
    assert again.status_code == 200
    assert again.json()["task_id"] == task_id and again.json()["state"] == "SUCCESS"
    assert _jobs_with_inputs(stack, values) == [task_id]


def test_key_conflicts_and_bad_keys_through_nginx(stack: Stack) -> None:
    key = f"stack-{uuid.uuid4()}"
    url = f"{stack.base_url}/flask/predict"
    first = requests.post(url, json=SETOSA, headers={"Idempotency-Key": key}, timeout=10)
    assert first.status_code == 202
    other = requests.post(url, json=VIRGINICA, headers={"Idempotency-Key": key}, timeout=10)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["error"]
    bad = requests.post(url, json=SETOSA, headers={"Idempotency-Key": "x" * 129}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["header"] == "Idempotency-Key"
