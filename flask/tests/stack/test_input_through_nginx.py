"""Bad input through nginx and gunicorn's worker threads, not only the test client:
deep JSON, repeated and multipart forms, and task ids in upper case."""

from __future__ import annotations

import json

import pytest
import requests

from support.samples import SETOSA
from support.stack import ThroughNginx

pytestmark = pytest.mark.stack


def _predict(stack: ThroughNginx, body: bytes | str, content_type: str) -> requests.Response:
    return requests.post(
        f"{stack.base_url}/flask/predict",
        data=body,
        headers={"Content-Type": content_type},
        timeout=10,
    )


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        json.dumps(SETOSA)[:-1] + ', "x": ' + "[" * 8000 + "]" * 8000 + "}",
    ],
    ids=["bare", "extra-field"],
)
def test_deep_json_is_a_json_400(any_stack: ThroughNginx, body: str) -> None:
    r = _predict(any_stack, body, "application/json")
    assert r.status_code == 400, r.text[:300]
    assert r.json() == {"error": "the body is nested too deeply"}


def test_repeated_form_field_is_a_400(any_stack: ThroughNginx) -> None:
    form = "&".join(f"{k}={v}" for k, v in SETOSA.items()) + "&sepal_width=3.6"
    r = _predict(any_stack, form, "application/x-www-form-urlencoded")
    assert r.status_code == 400, r.text[:300]
    assert r.json()["fields"] == {"sepal_width": "is given more than once"}


def test_multipart_is_a_415(any_stack: ThroughNginx) -> None:
    r = requests.post(
        f"{any_stack.base_url}/flask/predict",
        files={k: (None, str(v)) for k, v in SETOSA.items()},
        timeout=10,
    )
    assert r.status_code == 415, r.text[:300]
    assert "application/x-www-form-urlencoded" in r.json()["error"]


def test_upper_case_task_id_is_answered_by_the_app(any_stack: ThroughNginx) -> None:
    """nginx's status-file location takes lower-case ids only; the app reads the rest."""
    task_id = any_stack.submit(SETOSA)["task_id"]
    done = any_stack.wait_done(task_id)
    for url in (f"/flask/status/{task_id.upper()}", f"/flask/status?task_id={task_id.upper()}"):
        r = requests.get(f"{any_stack.base_url}{url}", timeout=10)
        assert r.status_code == 200, (url, r.text[:300])
        assert r.json()["task_id"] == task_id
        assert r.json()["state"] == done["state"]
