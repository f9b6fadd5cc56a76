"""The PDF report a job produces: written with fpdf2, atomically, named by task id."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

from .model import FEATURES

SERVICE_NAME = "Iris prediction service"
_FEATURE_LABELS = {
    "sepal_length": "Sepal length",
    "sepal_width": "Sepal width",
    "petal_length": "Petal length",
    "petal_width": "Petal width",
}


@dataclass(frozen=True)
class ReportData:
    task_id: str
    created_at: datetime
    features: dict[str, float]
    label: str
    probabilities: dict[str, float]
    model_version: str


def render(data: ReportData) -> bytes:
    """Lay out the one-page report and return the PDF bytes."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Iris prediction {data.task_id}")
    pdf.set_creator(SERVICE_NAME)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Iris species prediction", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, f"Task {data.task_id}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(
        0,
        6,
        f"Created {data.created_at.isoformat(timespec='seconds')}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.cell(0, 6, f"Model version {data.model_version}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "Measurements", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for name in FEATURES:
        pdf.cell(60, 7, _FEATURE_LABELS[name])
        pdf.cell(0, 7, f"{data.features[name]:g} cm", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "Predicted species", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 22)
    pdf.cell(0, 14, f"Iris {data.label}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "Class probabilities", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for cls, p in sorted(data.probabilities.items(), key=lambda kv: -kv[1]):
        pdf.cell(60, 7, cls)
        pdf.cell(25, 7, f"{p * 100:.1f} %")
        # A bar so the margin between classes is visible at a glance.
        pdf.set_fill_color(60, 110, 180)
        width = max(p * 90, 0.2)
        pdf.rect(pdf.get_x(), pdf.get_y() + 1.5, width, 4, style="F")
        pdf.ln(7)
    return bytes(pdf.output())


def report_filename(task_id: str) -> str:
    return f"{task_id}.pdf"


def write_atomically(content: bytes, target: Path) -> None:
    """Write to a temporary file in the same folder and rename it into place.

    A redelivered job rewrites the same name, so a retry never leaves two
    reports or a half-written one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        # nginx workers may run as another user: the report must be readable.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
