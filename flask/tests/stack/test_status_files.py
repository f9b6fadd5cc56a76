"""nginx answers polls from the status files, and they always agree with the database.

Each state write also writes the job's status body to a file that nginx serves
at ``/flask/status/<id>`` (``status_files.py``); ``/flask/status?task_id=`` is
always answered by the app from the result backend. On a stack with a slow test
job: a job is seen through nginx in each state it passes, the bytes nginx sends
are the app's, and nginx answers even when the app cannot (the rows deleted
behind its back), so it is the file being served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from iris_service.testhooks import SLOW_JOB_SEPAL_LENGTH

from support.faults import db, local_env_shell, wait_until
from support.samples import VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

SLOW = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}


@pytest.fixture(scope="module")
def slow_stack() -> Iterator[Stack]:
    with running_stack({"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "2"}) as stack:
        folder = status_dir(stack)
        yield stack
    # The copies are a cache of the database: build.sh --stop removes them.
    assert not folder.exists()


def status_dir(stack: Stack) -> Path:
    """The stack's STATUS_DIR, as scripts/common.sh picks it."""
    return Path(local_env_shell(stack, 'echo "$STATUS_DIR"', timeout=60).strip())


def test_copies_live_on_tmpfs(slow_stack: Stack) -> None:
    task_id = slow_stack.submit(VIRGINICA)["task_id"]
    slow_stack.wait_done(task_id)
    copy = status_dir(slow_stack) / f"{task_id}.json"
    assert copy.read_bytes() == _status(slow_stack, task_id, query=True).content
    # Creating and renaming files costs far less on tmpfs than on this disk.
    assert str(copy).startswith("/dev/shm/")


def _status(stack: Stack, task_id: str, query: bool = False) -> requests.Response:
    path = f"/flask/status?task_id={task_id}" if query else f"/flask/status/{task_id}"
    return requests.get(stack.base_url + path, timeout=10, allow_redirects=False)


def test_polls_see_every_state_and_the_apps_bytes(slow_stack: Stack) -> None:
    task_id = slow_stack.submit(SLOW)["task_id"]
    seen: list[str] = []

    def finished() -> bool:
        r = _status(slow_stack, task_id)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Frame-Options"] == "DENY"
        seen.append(r.json()["state"])
        return seen[-1] == "SUCCESS"

    wait_until(finished, 30, "the slow job to finish", step=0.05)
    # The test delay (2 s) runs in the PROGRESS state; each poll read it afresh.
    assert seen[0] in ("PENDING", "STARTED", "PROGRESS")
    assert "PROGRESS" in seen and seen.count("SUCCESS") == 1
    assert _status(slow_stack, task_id).content == _status(slow_stack, task_id, query=True).content


def test_nginx_answers_from_the_file(slow_stack: Stack) -> None:
    task_id = slow_stack.submit(VIRGINICA)["task_id"]
    done = slow_stack.wait_done(task_id)
    assert done["state"] == "SUCCESS"
    with db(slow_stack) as conn:
        conn.execute("DELETE FROM celery_taskmeta WHERE task_id = ?", (task_id,))
        conn.execute("DELETE FROM iris_jobs WHERE task_id = ?", (task_id,))
    assert _status(slow_stack, task_id).json() == done
    assert _status(slow_stack, task_id, query=True).status_code == 404


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/flask/status/00000000-0000-4000-8000-000000000000", 404),
        # An upper-case spelling has no file (they are named in lower case): the app
        # answers, from the database.
        ("/flask/status/00000000-0000-4000-8000-00000000000A", 404),
        ("/flask/status/not-a-uuid", 400),
        ("/flask/status/../status/00000000-0000-4000-8000-000000000000", 404),
        ("/status/00000000-0000-4000-8000-000000000000.json", 404),
        ("/reports/status/00000000-0000-4000-8000-000000000000.json", 404),
    ],
)
def test_ids_without_a_file_reach_the_app(slow_stack: Stack, path: str, expected: int) -> None:
    r = requests.get(slow_stack.base_url + path, timeout=10, allow_redirects=False)
    assert r.status_code == expected
    assert "error" in r.json()
