"""Each role imports what it needs: the web process never loads the PDF or training stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from iris_service import model, training

# Loaded by the worker (reports, training data), never needed to serve HTTP.
HEAVY = ("fpdf", "fontTools", "sklearn", "scipy")


def test_the_web_app_does_not_import_the_pdf_or_training_stack(tmp_path: Path) -> None:
    # The model file exists, as build.sh and the images make sure: the web app
    # only loads it (a first start without one trains, in whichever role).
    model.save(training.train(), tmp_path / "model" / "iris_model.json")
    program = (
        "import sys\n"
        "from iris_service import create_app\n"
        "from support.settings import make_settings\n"
        "from pathlib import Path\n"
        f"app = create_app({{'TESTING': True}}, settings=make_settings(Path({str(tmp_path)!r})))\n"
        "client = app.test_client()\n"
        # A route of each kind, so lazily imported modules load too.
        "for path in ('/flask/health', '/flask/tasks', '/flask/model', '/flask/openapi.json'):\n"
        "    client.get(path)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path)},
    )
    assert result.stdout.strip() == "", f"the web app imported: {result.stdout.strip()}"
