"""The report and the PNG chart of a job run by the real worker, through nginx and the app."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
import requests
from PIL import Image

from iris_service import create_app
from iris_service.report_style import SPECIES_COLOURS
from iris_service.store import StatusStore

from support.pdf import count_near, pdf_text
from support.samples import NEAR_TIE, SETOSA
from support.stack import Stack

pytestmark = pytest.mark.stack


def test_real_job_report_and_png(stack: Stack, tmp_path: Path) -> None:
    """A job run by the real worker: its PDF names the times and the model card,
    and its chart is served as a PNG through nginx and by the app itself."""
    body = stack.submit(NEAR_TIE)
    task_id = body["task_id"]
    done = stack.wait_done(task_id, timeout=60)
    assert done["state"] == "SUCCESS"

    pdf = requests.get(f"{stack.base_url}{body['report_url']}", timeout=10)
    assert pdf.status_code == 200
    text = pdf_text(pdf.content)
    assert task_id in text and "Close call" in text
    assert "not recorded" not in text  # submission time and the model card reached the report
    assert done["submitted_at"][:23].replace("T", " ") in text
    # One job, one completion time: the report's is the status's, to the millisecond.
    assert done["finished_at"][:23].replace("T", " ") in text

    url = f"{stack.base_url}/flask/result/{task_id}.png"
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(r.content)).convert("RGB")
    for colour in SPECIES_COLOURS.values():
        # Even a near-zero probability gets a visible sliver (2 px wide).
        assert count_near(image, colour, 2) > 40

    # The same route through the Flask test client, on the stack's database.
    client = create_app({"TESTING": True}, settings=stack.settings()).test_client()
    direct = client.get(f"/flask/result/{task_id}.png")
    assert direct.status_code == 200 and direct.mimetype == "image/png"
    assert direct.data == r.content

    pending = str(uuid.uuid4())
    StatusStore(stack.database_url, stack.settings().sqlite_busy_timeout_ms).create_pending(
        pending, SETOSA
    )
    assert (
        requests.get(f"{stack.base_url}/flask/result/{pending}.png", timeout=10).status_code == 409
    )
    unknown = requests.get(f"{stack.base_url}/flask/result/{uuid.uuid4()}.png", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]
    bad = requests.get(f"{stack.base_url}/flask/result/not-a-uuid.png", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]
    other = requests.get(f"{stack.base_url}/flask/result/{task_id}.gif", timeout=10)
    assert other.status_code == 404
