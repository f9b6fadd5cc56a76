"""``flask --app iris_service init-db``: the command build.sh runs to create the schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask

TABLES = {"iris_jobs", "celery_taskmeta", "celery_tasksetmeta"}


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def test_init_db_creates_the_tables(app: Flask, tmp_path: Path) -> None:
    database = tmp_path / "results.sqlite"
    # create_app already made them: start from a database without them.
    app.extensions["iris_store"].engine.dispose()
    with sqlite3.connect(database) as conn:
        for table in TABLES:
            conn.execute(f"DROP TABLE {table}")
    assert not tables(database) & TABLES

    result = app.test_cli_runner().invoke(args=["init-db"])

    assert result.exit_code == 0, result.output
    assert tables(database) >= TABLES
    assert result.stdout == ""
    assert result.stderr == f"initialized the database sqlite:///{database}\n"


def test_init_db_keeps_existing_rows(app: Flask, tmp_path: Path) -> None:
    store = app.extensions["iris_store"]
    store.create_pending("0" * 36, {"sepal_length": 5.1})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        assert conn.execute("SELECT task_id FROM iris_jobs").fetchall() == [("0" * 36,)]
