"""The HTTP edges of the app, in process: OPTIONS, the health body, the shared JSON errors."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection

from iris_service import create_app, errors
from iris_service.validation import InvalidInputError

from support.settings import make_settings
from support.stack import ROOT

_ARGUMENTS = {
    "task_id": "00000000-0000-4000-8000-000000000000",
    "filename": "x.pdf",
    "version": "0123456789abcdef",
}


def _api_rules(app: Flask) -> list[tuple[str, set[str]]]:
    """Every /flask route with its arguments filled in, and the methods it serves
    (a path with a rule per method, as /flask/models, counted once)."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/flask"):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", _ARGUMENTS[name])
        found.setdefault(path, set()).update(rule.methods or ())
    return list(found.items())


def test_options_answers_204_with_allow_on_every_route(app: Flask, client: FlaskClient) -> None:
    rules = _api_rules(app)
    assert len(rules) >= 7
    for path, methods in rules:
        r = client.options(path)
        assert r.status_code == 204, (path, r.status_code, r.data[:200])
        assert r.data == b"", path
        assert "Content-Type" not in r.headers, path
        allowed = {m.strip() for m in r.headers["Allow"].split(",")}
        assert allowed == methods and "OPTIONS" in allowed, path


def test_options_on_an_unknown_path_is_a_json_404(client: FlaskClient) -> None:
    r = client.options("/flask/no-such-route")
    assert r.status_code == 404
    assert r.get_json() == {"error": "not found"}


def test_health_names_the_broker_with_retry_after(client: FlaskClient) -> None:
    r = client.get("/flask/health")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
    body = r.get_json()
    assert body["error"] == "unavailable: broker"
    assert body["broker"].startswith("down") and body["database"] == "ok"
    assert body["retry_after"] == errors.RETRY_AFTER_SECONDS
    assert "workers" not in body  # nothing is known about them with the broker down


def test_health_names_the_database(tmp_path: Path) -> None:
    app = create_app({"TESTING": True}, settings=make_settings(tmp_path))
    db = tmp_path / "results.sqlite"
    app.extensions["iris_store"].engine.dispose()
    db.unlink()
    db.mkdir()  # SQLite cannot open a folder: the database is down for real
    body = app.test_client().get("/flask/health").get_json()
    assert body["database"].startswith("down")
    assert "database" in body["error"]


@pytest.fixture
def memory_app(tmp_path: Path) -> Flask:
    """An app on kombu's in-process broker, on a queue of its own: up, and nothing consumes."""
    settings = make_settings(tmp_path, broker_url="memory://", queue_name=f"q-{uuid.uuid4()}")
    return create_app({"TESTING": True}, settings=settings)


def test_health_is_degraded_when_nothing_consumes(memory_app: Flask) -> None:
    settings = memory_app.extensions["iris_settings"]
    client = memory_app.test_client()
    # Before anything was published the queue may not exist yet: still no consumer.
    empty = client.get("/flask/health")
    assert empty.status_code == 200
    assert empty.get_json() == {
        "status": "degraded",
        "broker": "ok",
        "database": "ok",
        "workers": 0,
        "queue": {"ready": 0},
    }
    with Connection("memory://") as conn:
        queue = conn.SimpleQueue(settings.queue_name)
        for i in range(3):
            queue.put({"n": i})
    body = client.get("/flask/health").get_json()
    assert body["status"] == "degraded" and body["workers"] == 0
    assert body["queue"] == {"ready": 3}


def test_one_json_error_builder() -> None:
    app = Flask(__name__)
    with app.app_context():
        r = errors.json_error(409, "busy", state="PENDING")
        assert r.status_code == 409 and r.mimetype == "application/json"
        assert r.get_json() == {"error": "busy", "state": "PENDING"}
        down = errors.unavailable("the queue is full; try again later")
        assert down.status_code == 503
        assert down.headers["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
        assert down.get_json() == {
            "error": "the queue is full; try again later",
            "retry_after": errors.RETRY_AFTER_SECONDS,
        }


def test_invalid_input_raised_anywhere_is_a_json_400(app: Flask) -> None:
    @app.get("/flask/_test_invalid")
    def _raises() -> str:
        raise InvalidInputError({"petal_width": "must be a number"})

    r = app.test_client().get("/flask/_test_invalid")
    assert r.status_code == 400
    assert r.get_json() == {"error": "invalid input", "fields": {"petal_width": "must be a number"}}


# Every status nginx itself answers with a page (not the app's), by the nginx source:
# request parsing, static files, limits, and the upstream failing.
NGINX_OWN_ERRORS = {400, 403, 404, 405, 408, 411, 412, 413, 414, 416, 429, 494}
NGINX_OWN_ERRORS |= {500, 501, 502, 503, 504, 505}


def test_nginx_has_a_json_page_for_each_of_its_own_errors() -> None:
    """The ones the stack tests cannot provoke (a 403 on an unreadable file, a 500)
    included: without an error_page nginx answers its default HTML page."""
    template = (ROOT / "nginx" / "nginx.conf.template").read_text()
    covered = {
        int(code)
        for line in re.findall(r"^\s*error_page\s+([^;]+);", template, re.MULTILINE)
        for code in line.split()
        if code.isdigit()
    }
    missing = NGINX_OWN_ERRORS - covered
    assert not missing, sorted(missing)
