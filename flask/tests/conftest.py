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

from support.settings import make_settings
from support.stack import Stack, running_stack


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
