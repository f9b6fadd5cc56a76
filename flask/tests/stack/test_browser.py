"""The web UI at / in a real headless Chromium (Debian's), through nginx.

Playwright drives /usr/bin/chromium (never a downloaded browser). Every test
talks to the session's real stack; the few that need a fault the stack cannot
produce on demand (a 503, a dropped connection, a failed task) inject it at the
browser's network boundary with ``page.route`` and say so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from iris_service.testhooks import SLOW_JOB_SEPAL_LENGTH as SLOW_SEPAL_LENGTH

from support.samples import SETOSA, VERSICOLOR, VIRGINICA
from support.stack import ROOT, Stack, ThroughNginx, running_stack

pytestmark = pytest.mark.stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
DOCUMENT_ROOT = ROOT / "document_root"
FIELDS = ("sepal_length", "sepal_width", "petal_length", "petal_width")
EXAMPLES = {"setosa": SETOSA, "versicolor": VERSICOLOR, "virginica": VIRGINICA}
# Generous: they bound a hang on a machine shared with other test runs.
JOB_TIMEOUT_MS = 60_000
expect.set_options(timeout=15_000)
PREDICT_URL = re.compile(r"/flask/predict$")
STATUS_URL = re.compile(r"/flask/status/")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: ./run_tests.sh installs it (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, any_stack: ThroughNginx) -> Iterator[Page]:
    """A fresh browser context on the UI; fails the test on script errors or CSP violations."""
    context = browser.new_context(
        base_url=any_stack.base_url, accept_downloads=True, viewport={"width": 1100, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        # Failed fetches (a 400 on purpose) are logged too; only policy breaches count.
        if "Content Security Policy" in message.text or message.type == "assert":
            problems.append(message.text)

    page.on("console", on_console)
    page.goto("/")
    yield page
    context.close()
    assert problems == []


def run_example(page: Page, species: str) -> str:
    """Click an example, submit, wait for the answer; returns the task id."""
    page.get_by_role("button", name=species.capitalize(), exact=True).click()
    with page.expect_response(PREDICT_URL) as submitted:
        page.get_by_role("button", name="Predict").click()
    assert submitted.value.status == 202
    task_id: str = submitted.value.json()["task_id"]
    expect(page.locator("#species")).to_have_text(species, timeout=JOB_TIMEOUT_MS)
    return task_id


@pytest.mark.parametrize("species", list(EXAMPLES))
def test_each_example_predicts_its_species(
    page: Page, any_stack: ThroughNginx, species: str
) -> None:
    # Record every stage the page announces, from before the submit.
    page.evaluate(
        """() => {
            window.__stages = [];
            const stage = document.getElementById("stage");
            new MutationObserver(() => window.__stages.push(stage.textContent))
                .observe(stage, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.get_by_role("button", name=species.capitalize(), exact=True).click()
    for name, value in EXAMPLES[species].items():
        expect(page.locator(f"input[name={name}]")).to_have_value(str(value))
    with page.expect_response(STATUS_URL) as polled:
        page.get_by_role("button", name="Predict").click()
    assert polled.value.status == 200
    expect(page.locator("#progress-block")).to_be_visible()
    expect(page.locator("#species")).to_have_text(species, timeout=JOB_TIMEOUT_MS)

    stages = page.evaluate("window.__stages")
    assert stages[0].startswith("Queued")
    assert stages[-1] == "Done"
    progress = page.locator("#progress")
    assert progress.get_attribute("value") == "100"
    assert progress.get_attribute("data-state") == "SUCCESS"
    # The chart: one bar per class, the predicted one the longest, labelled for screen readers.
    bars = page.locator("#chart rect.bar")
    expect(bars).to_have_count(3)
    widths = {
        re.sub(r".*species-", "", bars.nth(i).get_attribute("class") or ""): float(
            bars.nth(i).get_attribute("width") or 0
        )
        for i in range(3)
    }
    assert max(widths, key=lambda k: widths[k]) == species
    assert species in (page.locator("#chart-desc").text_content() or "")
    model_version = requests.get(f"{any_stack.base_url}/flask/model", timeout=10).json()["version"]
    expect(page.locator("#model-version")).to_have_text(model_version)


def test_download_preview_and_screenshot(page: Page, any_stack: ThroughNginx) -> None:
    task_id = run_example(page, "virginica")
    link = page.get_by_role("link", name="Download the PDF report")
    assert link.get_attribute("href") == f"/flask/result/{task_id}.pdf"
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == f"iris-report-{task_id}.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")

    # Chromium has a PDF viewer, so the page offers the inline preview.
    assert page.evaluate("navigator.pdfViewerEnabled") is True
    with page.expect_response(re.compile(r"\.pdf\?inline=1$")) as preview:
        page.get_by_text("Preview the report").click()
    assert preview.value.status == 200
    assert preview.value.headers["content-type"] == "application/pdf"
    assert preview.value.headers["content-disposition"].startswith("inline")
    expect(page.locator("#preview-frame")).to_be_visible()
    page.wait_for_timeout(1500)  # lets the viewer paint the page for the screenshot only

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-finished.png"), full_page=True)


def test_pdf_inline_flag_only_changes_disposition(any_stack: ThroughNginx) -> None:
    task_id = any_stack.submit(SETOSA)["task_id"]
    assert any_stack.wait_done(task_id)["state"] == "SUCCESS"
    url = f"{any_stack.base_url}/flask/result/{task_id}.pdf"
    attached = requests.get(url, timeout=10)
    inline = requests.get(url, params={"inline": "1"}, timeout=10)
    assert attached.headers["Content-Disposition"].startswith("attachment;")
    assert inline.headers["Content-Disposition"].startswith("inline;")
    assert inline.content == attached.content
    assert inline.content.startswith(b"%PDF")


def test_client_side_errors_block_the_submit(page: Page) -> None:
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    bad = {"sepal_length": "", "sepal_width": "abc", "petal_length": "0", "petal_width": "100.5"}
    for name, text in bad.items():
        page.locator(f"input[name={name}]").fill(text)
    page.get_by_role("button", name="Predict").click()

    expected = {
        "sepal_length": "Sepal length is required",
        "sepal_width": "Sepal width must be a number",
        "petal_length": "Petal length must be greater than 0",
        "petal_width": "Petal width must be at most 100",
    }
    for name, message in expected.items():
        expect(page.locator(f"#{name}-error")).to_have_text(message)
        expect(page.locator(f"input[name={name}]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-message")).to_contain_text("correct the marked fields")
    expect(page.locator("input[name=sepal_length]")).to_be_focused()
    assert posts == []

    # Fixing a field clears its message at once.
    page.locator("input[name=petal_width]").fill("2.5")
    expect(page.locator("#petal_width-error")).to_be_hidden()


@pytest.mark.parametrize(
    "text", ["abc", "0", "-1", "100.01", "1e3", "inf", "nan", "5,1", "1e400", "1_000", "0x10"]
)
def test_client_messages_match_the_server(page: Page, any_stack: ThroughNginx, text: str) -> None:
    page.get_by_role("button", name="Setosa", exact=True).click()
    page.locator("input[name=petal_length]").fill(text)
    page.get_by_role("button", name="Predict").click()
    shown = page.locator("#petal_length-error")
    expect(shown).to_be_visible()

    form = {**{k: str(v) for k, v in SETOSA.items()}, "petal_length": text}
    answer = requests.post(f"{any_stack.base_url}/flask/predict", data=form, timeout=10)
    assert answer.status_code == 400
    assert shown.text_content() == "Petal length " + answer.json()["fields"]["petal_length"]


def test_server_field_errors_are_shown_next_to_fields(page: Page) -> None:
    """Values the page would never send (rewritten in flight) get the server's own 400."""

    def tamper(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body.update(
            petal_width=0, sepal_length="5.1"
        )  # zero, and a string where JSON needs a number
        route.continue_(post_data=json.dumps(body))

    page.route(PREDICT_URL, tamper)
    page.get_by_role("button", name="Versicolor", exact=True).click()
    with page.expect_response(PREDICT_URL) as answer:
        page.get_by_role("button", name="Predict").click()
    assert answer.value.status == 400
    assert answer.value.json()["error"] == "invalid input"
    expect(page.locator("#petal_width-error")).to_have_text("Petal width must be greater than 0")
    expect(page.locator("#sepal_length-error")).to_have_text("Sepal length must be a number")
    expect(page.locator("#sepal_width-error")).to_be_hidden()
    expect(page.locator("#form-message")).to_contain_text("refused the input")
    expect(page.locator("#progress-block")).to_be_hidden()


def test_job_appears_in_recent_list(page: Page) -> None:
    task_id = run_example(page, "setosa")
    row = page.locator(f'#recent-rows tr[data-task-id="{task_id}"]')
    expect(row).to_contain_text("SUCCESS", timeout=JOB_TIMEOUT_MS)
    expect(row).to_contain_text("setosa")
    expect(row.get_by_role("link")).to_have_attribute("href", f"/flask/result/{task_id}.pdf")

    # A row brings its job back into the result panel.
    page.get_by_role("button", name="Virginica", exact=True).click()
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#species")).to_have_text("virginica", timeout=JOB_TIMEOUT_MS)
    row.get_by_role("button").click()
    expect(page.locator("#job-id")).to_have_text(task_id)
    expect(page.locator("#species")).to_have_text("setosa", timeout=JOB_TIMEOUT_MS)


def test_keyboard_only(page: Page) -> None:
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator("a.skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Setosa", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Versicolor; the page then moves focus to Predict
    expect(page.get_by_role("button", name="Predict")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#species")).to_have_text("versicolor", timeout=JOB_TIMEOUT_MS)


def test_503_is_shown_and_retried(page: Page) -> None:
    """The broker being down is injected (one 503 with Retry-After); the retry is real."""
    answered: list[int] = []

    def busy_once(route: Route) -> None:
        if not answered:
            answered.append(503)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body=json.dumps({"error": "the message broker is unreachable; try again later"}),
            )
        else:
            answered.append(0)
            route.continue_()

    page.route(PREDICT_URL, busy_once)
    page.get_by_role("button", name="Virginica", exact=True).click()
    page.get_by_role("button", name="Predict").click()
    notice = page.locator("#form-message")
    expect(notice).to_contain_text("broker is unreachable")
    expect(notice).to_contain_text("Retrying in")
    expect(page.locator("#species")).to_have_text("virginica", timeout=JOB_TIMEOUT_MS)
    assert answered == [503, 0]
    expect(notice).to_be_hidden()


def test_network_errors_are_shown(page: Page) -> None:
    """Dropped connections are injected; the page reports them and keeps polling."""
    page.route(PREDICT_URL, lambda route: route.abort("internetdisconnected"))
    page.get_by_role("button", name="Setosa", exact=True).click()
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#form-message")).to_contain_text("Network error")
    page.unroute(PREDICT_URL)

    dropped: list[str] = []

    def drop_twice(route: Route) -> None:
        if len(dropped) < 2:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(STATUS_URL, drop_twice)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#job-message")).to_contain_text("Network error while checking")
    expect(page.locator("#species")).to_have_text("setosa", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-message")).to_be_hidden()
    assert len(dropped) == 2


def test_the_page_waits_for_the_end_instead_of_polling(page: Page) -> None:
    """Every status read of a job is a ?wait= (the job ends within the first)."""
    asked: list[str] = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if "/flask/status/" in request.url else None,
    )
    run_example(page, "versicolor")
    assert asked, "the page never read the status"
    assert all("?wait=2" in url for url in asked), asked


def test_a_refused_wait_falls_back_to_polling(page: Page) -> None:
    """A refused wait (400) is injected; the polls that follow are real."""
    refused: list[str] = []

    def refuse_waits(route: Route) -> None:
        if "wait=" in route.request.url:
            refused.append(route.request.url)
            route.fulfill(status=400, content_type="application/json", body='{"error": "no"}')
        else:
            route.continue_()

    page.route(STATUS_URL, refuse_waits)
    run_example(page, "setosa")
    assert len(refused) == 1  # refused once, then plain polls
    expect(page.locator("#job-message")).to_be_hidden()


def test_gives_up_after_the_timeout_and_can_resume(
    browser: Browser, any_stack: ThroughNginx
) -> None:
    """A job stuck in the queue is injected (status always PENDING); resuming is real."""
    context = browser.new_context(base_url=any_stack.base_url)
    try:
        context.add_init_script("window.IRIS_POLL_TIMEOUT_MS = 1500;")
        page = context.new_page()
        page.goto("/")

        polled: list[str] = []

        def stuck(route: Route) -> None:
            polled.append(route.request.url)
            task_id = route.request.url.rsplit("/", 1)[1].partition("?")[0]
            body = {"task_id": task_id, "state": "PENDING", "progress": 0.0, "stage": "queued"}
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

        page.route(STATUS_URL, stuck)
        page.get_by_role("button", name="Setosa", exact=True).click()
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#job-message")).to_contain_text("Still not finished after 2 s")
        expect(page.locator("#stage")).to_have_text("Queued, waiting for a worker")
        given_up_after = len(polled)
        page.wait_for_timeout(2500)  # longer than the slowest poll interval
        assert len(polled) == given_up_after, "the page kept polling after giving up"
        assert given_up_after > 1  # it did poll, with backoff, before giving up
        page.unroute(STATUS_URL)
        page.get_by_role("button", name="Keep waiting").click()
        expect(page.locator("#species")).to_have_text("setosa", timeout=JOB_TIMEOUT_MS)
        expect(page.locator("#job-message")).to_be_hidden()
    finally:
        context.close()


def test_failed_task_is_shown_plainly(page: Page) -> None:
    """A FAILURE status is injected with page.route: a real one needs the test hooks
    (IRIS_TEST_HOOKS) and so a stack of its own, which this shared-stack module avoids."""

    def failed(route: Route) -> None:
        task_id = route.request.url.rsplit("/", 1)[1].partition("?")[0]
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps(
                {
                    "task_id": task_id,
                    "state": "FAILURE",
                    "progress": 1.0,
                    "stage": "failed",
                    "result": None,
                    "error": "RuntimeError: the model file is unreadable",
                    "submitted_at": None,
                    "finished_at": None,
                }
            ),
        )

    page.route(STATUS_URL, failed)
    page.get_by_role("button", name="Setosa", exact=True).click()
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#job-message")).to_contain_text(
        "The job failed: RuntimeError: the model file is unreadable"
    )
    expect(page.locator("#stage")).to_have_text("Failed")
    expect(page.locator("#progress")).to_have_attribute("data-state", "FAILURE")
    expect(page.locator("#result-body")).to_be_hidden()


CONTRAST_SCRIPT = """() => {
    const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const c = [r, g, b].map((v) => v / 255)
            .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const worst = [];
    for (const el of document.querySelectorAll("body *")) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.checkVisibility() || el.closest("svg")) continue;
        const style = getComputedStyle(el);
        const fg = rgb(style.color).slice(0, 3);
        const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
        const ratio = (a + 0.05) / (b + 0.05);
        if (ratio < 4.5) worst.push(el.tagName + "." + el.className + " " + ratio.toFixed(2));
    }
    return worst;
}"""


def test_text_contrast(page: Page) -> None:
    """Every visible text (form, errors, result, recent list) has at least 4.5:1 contrast."""
    page.get_by_role("button", name="Predict").click()  # empty: shows the error styles
    expect(page.locator("#sepal_length-error")).to_be_visible()
    assert page.evaluate(CONTRAST_SCRIPT) == []
    run_example(page, "versicolor")
    expect(page.locator("#recent-rows tr").first).to_be_visible()
    assert page.evaluate(CONTRAST_SCRIPT) == []


def test_phone_layout(page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    run_example(page, "versicolor")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    row = page.locator("#recent-rows tr").first
    expect(row).to_be_visible(timeout=JOB_TIMEOUT_MS)
    table_overflow = page.evaluate(
        "(() => { const t = document.querySelector('.table-wrap');"
        " return t.scrollWidth - t.clientWidth; })()"
    )
    assert table_overflow <= 0
    for name in FIELDS:
        box = page.locator(f"input[name={name}]").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-phone.png"), full_page=True)


def test_static_files_headers_and_policy(any_stack: ThroughNginx) -> None:
    index = requests.get(f"{any_stack.base_url}/", timeout=10)
    assert index.status_code == 200
    assert index.headers["Cache-Control"] == "no-cache"
    policy = index.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "style-src 'self';" in policy
    html = index.text
    # No inline script or style for the policy to block.
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert re.search(r"\sstyle=|<style", html) is None
    assets = re.findall(r'(?:href|src)="/static/([\w.]+)\?v=(\w+)"', html)
    assert {name for name, _ in assets} == {"app.css", "app.js", "favicon.svg"}
    for name, version in assets:
        content = (DOCUMENT_ROOT / "static" / name).read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:10]
        # Assets are cached for good, so their reference must change with their content.
        assert version == digest, f"index.html must reference /static/{name}?v={digest}"
        served = requests.get(f"{any_stack.base_url}/static/{name}?v={version}", timeout=10)
        assert served.status_code == 200
        assert served.content == content
        assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
    api = requests.get(f"{any_stack.base_url}/flask/health", timeout=10)
    assert "immutable" not in api.headers.get("Cache-Control", "")


@pytest.fixture(scope="module")
def slow_stack() -> Iterator[Stack]:
    """A private stack whose test hook makes a job with sepal length 99.25 run for seconds,
    so that the page can cancel it while it runs."""
    with running_stack({"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "6"}) as running:
        yield running


def test_cancel_and_retry_from_the_page(browser: Browser, slow_stack: Stack) -> None:
    context = browser.new_context(base_url=slow_stack.base_url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.goto("/")
    for name, value in {**VIRGINICA, "sepal_length": SLOW_SEPAL_LENGTH}.items():
        page.locator(f"input[name={name}]").fill(str(value))
    with page.expect_response(PREDICT_URL) as submitted:
        page.get_by_role("button", name="Predict").click()
    original = submitted.value.json()["task_id"]
    cancel = page.get_by_role("button", name="Cancel this job")
    expect(cancel).to_be_visible()
    # The worker has it (the test hook's stage), so the cancel lands mid-job.
    expect(page.locator("#stage")).to_have_text("test delay", timeout=JOB_TIMEOUT_MS)
    with page.expect_response(re.compile(r"/flask/tasks/.*/cancel$")) as cancelled:
        cancel.click()
    assert cancelled.value.status == 202
    expect(page.locator("#stage")).to_have_text("Cancelled", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-message")).to_contain_text("cancelled by web page")
    expect(cancel).to_be_hidden()
    expect(page.locator("#recent-rows .state-revoked").first).to_have_text("REVOKED")
    status = requests.get(f"{slow_stack.base_url}/flask/status/{original}", timeout=10).json()
    assert status["state"] == "REVOKED" and status["cancelled"]["by"] == "web page"

    retry = page.get_by_role("button", name="Retry this job")
    expect(retry).to_be_visible()
    with page.expect_response(re.compile(r"/flask/tasks/.*/retry$")) as retried:
        retry.click()
    assert retried.value.status == 202
    again = retried.value.json()["task_id"]
    assert again != original
    expect(page.locator("#job-id")).to_have_text(again)
    expect(page.locator("#retry-of-id")).to_have_text(original)
    expect(page.locator("#species")).not_to_be_empty(timeout=JOB_TIMEOUT_MS)
    status = requests.get(f"{slow_stack.base_url}/flask/status/{again}", timeout=10).json()
    assert status["state"] == "SUCCESS" and status["retry_of"] == original
    context.close()
    assert problems == []
