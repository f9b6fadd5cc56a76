"""Fixtures: an in-process app on a temporary SQLite file, and the real local stack.

The ``stack`` fixture runs ``build.sh --local`` with a private state folder and
free ports (support/stack.py), so the tests exercise the very commands a user
runs, and stops it at the end of the session. Helpers live in ``support/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iris_service import create_app

from support.docker_stack import DockerStack, engine_env, running_docker_stack, stop_engine
from support.settings import make_settings
from support.stack import Stack, ThroughNginx, running_stack


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked docker_last after all others (after pytest's grouping by fixture)."""
    items.sort(key=lambda item: item.get_closest_marker("docker_last") is not None)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """An app whose broker is a closed port: enough for everything but publishing."""
    return create_app({"TESTING": True}, settings=make_settings(tmp_path))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[dict[str, str]]:
    """The Docker engine and base images of the Docker tests (support/docker_stack.py)."""
    engine = engine_env()
    try:
        yield engine
    finally:
        stop_engine()


@pytest.fixture(scope="session")
def docker_stack(docker_engine: dict[str, str]) -> Iterator[DockerStack]:
    """``build.sh --docker`` once for the session: the images are built once."""
    with running_docker_stack(docker_engine) as running:
        yield running


@pytest.fixture(scope="session", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def any_stack(request: pytest.FixtureRequest) -> ThroughNginx:
    """The session's stack in each mode: the tests through nginx run on both
    (``-m docker`` selects the Docker runs, ``-m "not docker"`` the local ones)."""
    name = "stack" if request.param == "local" else "docker_stack"
    running: ThroughNginx = request.getfixturevalue(name)
    return running
