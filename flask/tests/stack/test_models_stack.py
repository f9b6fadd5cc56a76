"""The model registry and training jobs on a private stack (issue 16), through nginx.

The stack runs with ``IRIS_TEST_HOOKS=1`` (testhooks.py): a random forest of
13 trees stalls after its second fold, one of 17 trees kills its worker process
between writing its artifact and registering it (first attempt only), and a
prediction with sepal_length 99.25 stays running for a few seconds. No training
worker runs until the first test starts one, so that test also sees a training
job wait.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from iris_service.testhooks import (
    KILL_BEFORE_REGISTERING_N_ESTIMATORS,
    SLOW_JOB_SEPAL_LENGTH,
    SLOW_TRAINING_N_ESTIMATORS,
)
from iris_service.training import builtin_data

from support.faults import db, job_row, wait_until
from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

IRIS_CSV = builtin_data().canonical_csv()


@pytest.fixture(scope="module")
def hooked() -> Iterator[Stack]:
    with running_stack({"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "3"}) as stack:
        yield stack


def _train_csv(stack: Stack, estimator: str, params: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(
        f"{stack.base_url}/flask/models",
        params={"estimator": estimator, "params": json.dumps(params)},
        data=IRIS_CSV,
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


def _status(stack: Stack, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(
        f"{stack.base_url}/flask/status/{task_id}", timeout=10
    ).json()
    return body


def _card(stack: Stack, version: str) -> dict[str, Any]:
    r = requests.get(f"{stack.base_url}/flask/models/{version}", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _predict(stack: Stack, features: dict[str, Any]) -> requests.Response:
    return requests.post(f"{stack.base_url}/flask/predict", json=features, timeout=10)


def _queue_line(stack: Stack, name: str) -> list[str]:
    result = stack.script("list_queues.sh")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    return next(line for line in lines if line and line[0] == name)


def _jobs_count(stack: Stack) -> int:
    with db(stack) as conn:
        count: int = conn.execute("SELECT count(*) FROM iris_jobs").fetchone()[0]
    return count


def _models(stack: Stack) -> list[tuple[str, str, str, str]]:
    with db(stack) as conn:
        rows = conn.execute(
            "SELECT version, state, artifact, artifact_sha256 FROM iris_models"
        ).fetchall()
    return [tuple(r) for r in rows]


def test_a_training_job_waits_for_a_training_worker_then_trains_fold_by_fold(
    hooked: Stack,
) -> None:
    # Today's model is the default, as before the registry.
    default = requests.get(f"{hooked.base_url}/flask/model", timeout=10).json()
    listed = requests.get(f"{hooked.base_url}/flask/models", timeout=10).json()["models"]
    assert [(m["version"], m["default"]) for m in listed] == [(default["version"], True)]

    job = _train_csv(hooked, "random_forest", {"n_estimators": SLOW_TRAINING_N_ESTIMATORS})
    status = _status(hooked, job["task_id"])
    assert status["state"] == "PENDING"
    assert "no training worker consumes it" in status["stage"], status
    # The operator sees the job waiting in its own queue, with no consumer.
    assert _queue_line(hooked, "training")[1:] == ["1", "0", "0"]

    started = hooked.script("launch_celery_worker.sh", "--queue", "training", timeout=180)
    assert started.returncode == 0, started.stderr
    assert "trainer1" in started.stdout
    # The hook holds the job after its second fold: the status names that fold.
    wait_until(
        lambda: _status(hooked, job["task_id"])["stage"] == "cross-validation fold 2 of 5 done",
        60,
        "the second fold's progress",
    )
    done = hooked.wait_done(job["task_id"], timeout=120)
    assert done["state"] == "SUCCESS", done
    version = done["result"]["model_version"]
    assert done["result"]["model_url"] == f"/flask/models/{version}"
    card = _card(hooked, version)
    assert card["state"] == "READY" and card["default"] is False
    assert card["estimator"] == "random_forest" and card["task_id"] == job["task_id"]
    assert card["card"]["training_data"]["source"] == "upload"
    assert card["card"]["hyperparameters"]["n_estimators"] == SLOW_TRAINING_N_ESTIMATORS
    assert set(card["card"]["cv_per_class"]) == {"setosa", "versicolor", "virginica"}
    pdf = requests.get(f"{hooked.base_url}{done['result']['report_url']}", timeout=10)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # Newest first.
    listed = requests.get(f"{hooked.base_url}/flask/models", timeout=10).json()["models"]
    assert [m["version"] for m in listed] == [version, default["version"]]


def _trained(stack: Stack, estimator: str, params: dict[str, Any]) -> str:
    job = _train_csv(stack, estimator, params)
    done = stack.wait_done(job["task_id"], timeout=120)
    assert done["state"] == "SUCCESS", done
    version: str = done["result"]["model_version"]
    return version


def test_predict_by_version_and_promote(hooked: Stack) -> None:
    old = requests.get(f"{hooked.base_url}/flask/model", timeout=10).json()["version"]
    forest = _trained(hooked, "random_forest", {"n_estimators": 20, "max_depth": 4})

    r = _predict(hooked, {**SETOSA, "model_version": forest})
    assert r.status_code == 202 and r.json()["model_version"] == forest
    done = hooked.wait_done(r.json()["task_id"])
    assert done["state"] == "SUCCESS" and done["result"]["model_version"] == forest
    assert done["result"]["label"] == "setosa"
    png = requests.get(f"{hooked.base_url}/flask/result/{done['task_id']}.png", timeout=10)
    assert png.status_code == 200

    # A job submitted before the promotion, still running when it happens,
    # predicts with the version it was submitted with.
    slow = _predict(hooked, {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH})
    assert slow.status_code == 202 and slow.json()["model_version"] == old
    wait_until(
        lambda: isinstance(job_row(hooked, slow.json()["task_id"])["result"], dict),
        60,
        "the slow job to start",
    )
    promoted = requests.post(f"{hooked.base_url}/flask/models/{forest}/default", timeout=10)
    assert promoted.status_code == 200 and promoted.json()["default"] is True
    assert hooked.wait_done(slow.json()["task_id"])["result"]["model_version"] == old

    # New predictions use the new default within seconds, no worker restarted.
    def uses_forest() -> bool:
        r = _predict(hooked, SETOSA)
        return bool(r.json()["model_version"] == forest)

    wait_until(uses_forest, 30, "new predictions to use the promoted model", step=0.5)
    assert requests.get(f"{hooked.base_url}/flask/model", timeout=10).json()["version"] == forest
    job = _predict(hooked, SETOSA).json()
    assert hooked.wait_done(job["task_id"])["result"]["model_version"] == forest

    # Back to the first model, so the other tests see it as the default.
    back = requests.post(f"{hooked.base_url}/flask/models/{old}/default", timeout=10)
    assert back.status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expected"),
    [
        (b"sepal_length,species\n1,setosa\n", "text/csv", 400, "is missing"),
        (IRIS_CSV.replace(b",setosa\n", b",rose\n", 1), "text/csv", 400, "unknown species"),
        (IRIS_CSV + b"abc,1,1,1,setosa\n", "text/csv", 400, "must be a number"),
        (b"x" * (10 * 1024 * 1024 + 1), "text/csv", 413, "too large"),
        (b"<a/>", "application/xml", 415, "text/csv"),
    ],
)
def test_refused_training_data_queues_nothing(
    hooked: Stack, body: bytes, content_type: str, status: int, expected: str
) -> None:
    jobs = _jobs_count(hooked)
    r = requests.post(
        f"{hooked.base_url}/flask/models?estimator=random_forest",
        data=body,
        headers={"Content-Type": content_type},
        timeout=60,
    )
    assert r.status_code == status, r.text
    assert expected in r.text
    assert _jobs_count(hooked) == jobs
    assert _queue_line(hooked, "training")[1] == "0"


def test_a_tampered_artifact_is_refused_and_the_job_fails_cleanly(hooked: Stack) -> None:
    version = _trained(hooked, "gradient_boosting", {"n_estimators": 5})
    artifact = next(a for v, _, a, _ in _models(hooked) if v == version)
    path = hooked.var_dir / "models" / artifact
    path.write_bytes(path.read_bytes() + b"\0")

    r = _predict(hooked, {**SETOSA, "model_version": version})
    assert r.status_code == 202
    done = hooked.wait_done(r.json()["task_id"])
    assert done["state"] == "FAILURE"
    assert "was changed after it was registered" in done["error"]
    assert _card(hooked, version)["state"] == "FAILED"
    again = _predict(hooked, {**SETOSA, "model_version": version})
    assert again.status_code == 400 and "FAILED" in again.json()["error"]


def test_a_worker_killed_before_registering_leaves_no_half_model(hooked: Stack) -> None:
    before = _models(hooked)
    job = _train_csv(
        hooked, "random_forest", {"n_estimators": KILL_BEFORE_REGISTERING_N_ESTIMATORS}
    )
    done = hooked.wait_done(job["task_id"], timeout=180)
    # The first run wrote its artifact and died; the redelivered run registered the model.
    assert done["state"] == "SUCCESS", done
    assert job_row(hooked, job["task_id"])["attempts"] == 2
    version = done["result"]["model_version"]
    added = [m for m in _models(hooked) if m not in before]
    assert [(v, state) for v, state, _, _ in added] == [(version, "READY")]
    _, _, artifact, sha256 = added[0]
    content = (hooked.var_dir / "models" / artifact).read_bytes()
    assert hashlib.sha256(content).hexdigest() == sha256
    # And the model serves.
    r = _predict(hooked, {**SETOSA, "model_version": version})
    assert hooked.wait_done(r.json()["task_id"])["result"]["model_version"] == version
