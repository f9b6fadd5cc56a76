"""The report and the PNG chart of a job run by the real worker, through nginx and the app."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
import requests
from PIL import Image

from iris_service import create_app
from iris_service.report_style import SPECIES_COLOURS
from iris_service.store import StatusStore

from support.pdf import count_near, pdf_text
from support.samples import NEAR_TIE, SETOSA
from support.stack import Stack, ThroughNginx

pytestmark = pytest.mark.stack


def finished_job(stack: ThroughNginx) -> tuple[str, dict[str, Any], bytes]:
    """A near tie run by the real worker: its id, final status and PNG through nginx."""
    task_id = stack.submit(NEAR_TIE)["task_id"]
    done = stack.wait_done(task_id, timeout=60)
    assert done["state"] == "SUCCESS"
    png = requests.get(f"{stack.base_url}/flask/result/{task_id}.png", timeout=10)
    assert png.status_code == 200
    assert png.headers["Content-Type"] == "image/png"
    return task_id, done, png.content


def test_real_job_report_and_png(any_stack: ThroughNginx) -> None:
    """A job run by the real worker: its PDF names the times and the model card,
    and its chart is served as a PNG through nginx."""
    task_id, done, png = finished_job(any_stack)
    pdf = requests.get(f"{any_stack.base_url}{done['result']['report_url']}", timeout=10)
    assert pdf.status_code == 200
    text = pdf_text(pdf.content)
    assert task_id in text and "Close call" in text
    assert "not recorded" not in text  # submission time and the model card reached the report
    assert done["submitted_at"][:23].replace("T", " ") in text
    # One job, one completion time: the report's is the status's, to the millisecond.
    assert done["finished_at"][:23].replace("T", " ") in text

    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colour in SPECIES_COLOURS.values():
        # Even a near-zero probability gets a visible sliver (2 px wide).
        assert count_near(image, colour, 2) > 40

    unknown = requests.get(f"{any_stack.base_url}/flask/result/{uuid.uuid4()}.png", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]
    bad = requests.get(f"{any_stack.base_url}/flask/result/not-a-uuid.png", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]
    other = requests.get(f"{any_stack.base_url}/flask/result/{task_id}.gif", timeout=10)
    assert other.status_code == 404


def test_png_is_the_apps_own_and_409_while_pending(stack: Stack) -> None:
    task_id, _, png = finished_job(stack)
    # The same route through the Flask test client, on the stack's database.
    client = create_app({"TESTING": True}, settings=stack.settings()).test_client()
    direct = client.get(f"/flask/result/{task_id}.png")
    assert direct.status_code == 200 and direct.mimetype == "image/png"
    assert direct.data == png

    pending = str(uuid.uuid4())
    StatusStore(stack.database_url, stack.settings().sqlite_busy_timeout_ms).create_pending(
        pending, SETOSA
    )
    assert (
        requests.get(f"{stack.base_url}/flask/result/{pending}.png", timeout=10).status_code == 409
    )
