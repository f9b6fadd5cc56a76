"""The PDF report of a training job: the new model's card, then how it was evaluated.

Page 1 is the model card page the prediction reports carry (report.py): the
estimator, its settings, the cross-validated accuracy and confusion matrix.
Page 2 has the accuracy of each fold, each species' precision and recall, and
the training data's summary (rows and mean measurements per species).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .model import FEATURES
from .report import LEFT, RIGHT, SERVICE_NAME, model_card_page
from .report_document import ReportPDF
from .report_stats import FEATURE_LABELS
from .report_style import INK, MUTED, NAVY, RULE, WHITE
from .report_text import set_text, text


def heading(pdf: ReportPDF, y: float, value: str) -> float:
    set_text(pdf, 7, "B", MUTED)
    text(pdf, LEFT, y, value.upper())
    return y + 6


def table(
    pdf: ReportPDF, y: float, columns: Sequence[tuple[str, float]], rows: list[list[str]]
) -> float:
    """A plain table: header in muted bold, one rule under it; returns the y below it."""
    x = LEFT
    set_text(pdf, 8, "B", MUTED)
    for name, w in columns:
        text(pdf, x, y, name)
        x += w
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.3)
    pdf.line(LEFT, y + 1.8, RIGHT, y + 1.8)
    y += 6
    set_text(pdf, 8.5, colour=INK)
    for row in rows:
        x = LEFT
        for (_, w), value in zip(columns, row, strict=True):
            text(pdf, x, y, value)
            x += w
        y += 5
    return y + 4


def _percent(value: Any) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, int | float) else "-"


def _evaluation_page(pdf: ReportPDF, card: Mapping[str, Any], task_id: str) -> None:
    pdf.add_page()
    pdf.set_fill_color(*NAVY)
    pdf.rect(0, 0, 210, 16, style="F")
    set_text(pdf, 13, "B", WHITE)
    text(pdf, LEFT, 10.5, "How the model was evaluated")

    y = heading(pdf, 26, f"Accuracy of each of the {card.get('cv_folds', '?')} folds")
    folds = card.get("cv_fold_accuracy") or []
    y = table(
        pdf,
        y,
        [("Fold", 30), ("Accuracy on its held-out rows", 80)],
        [[str(i), _percent(a)] for i, a in enumerate(folds, start=1)],
    )
    set_text(pdf, 8.5, colour=INK)
    text(
        pdf,
        LEFT,
        y,
        f"Mean {_percent(card.get('cv_accuracy'))}, standard deviation "
        f"{_percent(card.get('cv_accuracy_std'))}; "
        f"trained in {card.get('training_seconds', '?')} s.",
    )

    y = heading(pdf, y + 10, "Per species (cross-validated)")
    per_class = card.get("cv_per_class") or {}
    y = table(
        pdf,
        y,
        [("Species", 40), ("Precision", 35), ("Recall", 35), ("Rows", 30)],
        [
            [name, _percent(m.get("precision")), _percent(m.get("recall")), str(m.get("rows"))]
            for name, m in per_class.items()
            if isinstance(m, Mapping)
        ],
    )
    set_text(pdf, 7, colour=MUTED)
    text(pdf, LEFT, y - 2, "Precision: of the flowers predicted as a species, the share that were.")
    text(pdf, LEFT, y + 1.6, "Recall: of the flowers of a species, the share predicted as it.")

    data = card.get("training_data") or {}
    y = heading(pdf, y + 12, "The training data")
    set_text(pdf, 8.5, colour=INK)
    source = "uploaded CSV" if data.get("source") == "upload" else "built-in iris data"
    text(pdf, LEFT, y, f"{data.get('rows', '?')} rows, {source}; SHA-256 {data.get('sha256', '?')}")
    summary = card.get("data_summary") or {}
    y = table(
        pdf,
        y + 7,
        [("Species", 34), ("Rows", 20)] + [(f"Mean {FEATURE_LABELS[f]}", 31) for f in FEATURES],
        [
            [name, str(s.get("rows"))] + [f"{s['mean'][f]:.2f} cm" for f in FEATURES]
            for name, s in summary.items()
            if isinstance(s, Mapping) and isinstance(s.get("mean"), Mapping)
        ],
    )
    set_text(pdf, 7, colour=MUTED)
    text(pdf, LEFT, 288.5, f"{SERVICE_NAME} · training job {task_id}")


def render(card: Mapping[str, Any], task_id: str, created_at: datetime) -> bytes:
    """The two-page training report of a registered model's card."""
    pdf = ReportPDF()
    pdf.set_title(f"Training report: model {card.get('version')}")
    pdf.set_subject(f"{SERVICE_NAME} training report")
    pdf.set_creator(SERVICE_NAME)
    pdf.set_creation_date(created_at)
    pdf.set_auto_page_break(False)
    model_card_page(pdf, card)
    _evaluation_page(pdf, card, task_id)
    return pdf.output_bytes()
