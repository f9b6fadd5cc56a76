"""The PDF report: its text names the task, inputs, species and model version."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from pypdf import PdfReader

from iris_service import report

from conftest import SETOSA

DATA = report.ReportData(
    task_id="6fa5a799-21e9-49d0-8268-be5827d5315f",
    created_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    features=SETOSA,
    label="setosa",
    probabilities={"setosa": 0.98, "versicolor": 0.02, "virginica": 0.0},
    model_version="7374c733a009b9bb",
)


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_report_content() -> None:
    content = report.render(DATA)
    assert content.startswith(b"%PDF-")
    text = pdf_text(content)
    assert DATA.task_id in text
    assert "setosa" in text
    assert DATA.model_version in text
    for label in ("Sepal length", "Sepal width", "Petal length", "Petal width"):
        assert label in text
    assert "5.1 cm" in text and "0.2 cm" in text
    assert "98.0 %" in text
    assert "2026-11-21" in text


def test_write_atomically_replaces(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "x.pdf"
    report.write_atomically(b"first", target)
    report.write_atomically(b"second", target)
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["x.pdf"]
    assert target.stat().st_mode & 0o644 == 0o644
