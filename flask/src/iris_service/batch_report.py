"""The PDF report of a batch of predictions (POST /flask/batch): one page of
counts per species, the distribution of confidence and the least confident
rows, then the model card page the prediction reports carry (report.py)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .model import FEATURES
from .report import LEFT, SERVICE_NAME, model_card_page
from .report_document import ReportPDF
from .report_style import MUTED, NAVY, WHITE
from .report_text import set_text, text
from .training_report import heading, table

# The confidence (the highest class probability) is counted in these bins.
CONFIDENCE_BINS = (0.5, 0.7, 0.9, 0.99)
LEAST_CONFIDENT_SHOWN = 15


def _bin(confidence: float) -> str:
    lower = 0.0
    for upper in CONFIDENCE_BINS:
        if confidence < upper:
            return f"{lower:.0%} to {upper:.0%}"
        lower = upper
    return f"{lower:.0%} or more"


def _bins() -> list[str]:
    edges = (0.0, *CONFIDENCE_BINS)
    return [f"{a:.0%} to {b:.0%}" for a, b in itertools.pairwise(edges)] + [
        f"{edges[-1]:.0%} or more"
    ]


def render(
    task_id: str,
    created_at: datetime,
    rows: Sequence[tuple[float, ...]],
    labels: Sequence[str],
    confidences: Sequence[float],
    card: Mapping[str, Any],
) -> bytes:
    """The batch's report: a summary page, then the model's card."""
    pdf = ReportPDF()
    pdf.set_title(f"Batch report: {len(rows)} predictions")
    pdf.set_subject(f"{SERVICE_NAME} batch report")
    pdf.set_creator(SERVICE_NAME)
    pdf.set_creation_date(created_at)
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_fill_color(*NAVY)
    pdf.rect(0, 0, 210, 16, style="F")
    set_text(pdf, 13, "B", WHITE)
    text(pdf, LEFT, 10.5, f"Batch of {len(rows)} predictions, model {card.get('version')}")

    total = len(rows)
    y = heading(pdf, 26, "Predictions per species")
    counts = Counter(labels)
    y = table(
        pdf,
        y,
        [("Species", 50), ("Rows", 30), ("Share", 30)],
        [[name, str(n), f"{n / total:.1%}"] for name, n in sorted(counts.items())],
    )
    y = heading(pdf, y + 4, "Confidence (the predicted species' probability)")
    spread = Counter(_bin(c) for c in confidences)
    y = table(
        pdf,
        y,
        [("Confidence", 50), ("Rows", 30), ("Share", 30)],
        [[name, str(spread[name]), f"{spread[name] / total:.1%}"] for name in _bins()],
    )
    y = heading(pdf, y + 4, f"The {min(total, LEAST_CONFIDENT_SHOWN)} least confident rows")
    least = sorted(range(total), key=lambda i: (confidences[i], i))[:LEAST_CONFIDENT_SHOWN]
    table(
        pdf,
        y,
        [
            ("Row", 18),
            *((name.replace("_", " "), 28) for name in FEATURES),
            ("Label", 28),
            ("Confidence", 24),
        ],
        [
            [str(i + 1), *(f"{v:g}" for v in rows[i]), labels[i], f"{confidences[i]:.1%}"]
            for i in least
        ],
    )
    set_text(pdf, 7, colour=MUTED)
    text(
        pdf,
        LEFT,
        282,
        "Row: the row's number in the result CSV (1: the first row under the header).",
    )
    text(pdf, LEFT, 288.5, f"{SERVICE_NAME} · batch job {task_id}")
    model_card_page(pdf, card)
    return pdf.output_bytes()
