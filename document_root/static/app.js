/* The iris service's page: validates and submits the form, follows the job
 * (a status read with ?wait=, which answers when the job ends; polling with
 * backoff if a wait is refused), shows the answer and keeps the
 * recent-jobs list fresh. Plain script, no framework, no build step; it only
 * talks to the JSON API under /flask. */
"use strict";

(function () {
  const FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
  const DONE = ["SUCCESS", "FAILURE", "REVOKED"];
  // The finished states a job can be submitted again from (POST /flask/tasks/<id>/retry).
  const RETRYABLE = ["FAILURE", "REVOKED"];
  const IN_FLIGHT = ["PENDING", "STARTED", "PROGRESS"];
  const POLL_FIRST_MS = 200;
  const POLL_MAX_MS = 2000;
  const POLL_FACTOR = 1.5;
  // Each status read waits up to this long for the job to end (?wait=, at most 30).
  // Only a job's end is announced, so a short wait also shows a running job's
  // stage within 2 s (and its Cancel button), while the end still shows at once.
  const WAIT_SECONDS = 2;
  // Give up (with a message) after three minutes; tests shorten it before the page loads.
  const POLL_TIMEOUT_MS = Number(window.IRIS_POLL_TIMEOUT_MS) || 180000;
  const SUBMIT_RETRIES = 5; // automatic resubmits after a 503
  const RECENT_LIMIT = 10;
  const RECENT_EVERY_MS = 2000; // while a listed job is still running
  const RECENT_IDLE_MS = 20000; // otherwise, to pick up other people's jobs
  const STAGE_NAMES = {
    queued: "Queued, waiting for a worker",
    started: "Started",
    predicting: "Predicting the species",
    "writing report": "Writing the PDF report",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  // The number syntax the server accepts (validation.py): ASCII digits with at
  // most one point, an optional sign and exponent; spaces and tabs around it.
  const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
  const BLANKS_RE = /^[ \t]+|[ \t]+$/g;

  const $ = (id) => document.getElementById(id);
  const form = $("measurements");
  const submitButton = $("submit");

  /* ---------- validation: the same rules and messages as validation.py ---------- */

  function check(text) {
    const value = text.replace(BLANKS_RE, "");
    if (value === "") return { error: "is required" };
    if (!NUMBER_RE.test(value)) return { error: "must be a number" };
    // Past a double's range Number() gives Infinity or 0, which the bounds
    // below name as the server does ("at most 100", "greater than 0").
    const number = Number(value);
    if (number <= 0) return { error: "must be greater than 0" };
    if (number > 100) return { error: "must be at most 100" };
    return { value: number };
  }

  function setFieldError(name, message) {
    const input = form.elements[name];
    const slot = $(name + "-error");
    if (message) {
      slot.textContent = message;
      slot.hidden = false;
      input.setAttribute("aria-invalid", "true");
    } else {
      slot.textContent = "";
      slot.hidden = true;
      input.removeAttribute("aria-invalid");
    }
  }

  function labelOf(name) {
    return form.querySelector('label[for="' + name + '"]').textContent;
  }

  /* Show a field's check outcome: its labelled error, or none. */
  function showOutcome(name, outcome) {
    setFieldError(name, outcome.error ? labelOf(name) + " " + outcome.error : "");
  }

  /* Show per-field errors; returns the values when every field is valid. */
  function validate() {
    const values = {};
    let first = null;
    for (const name of FIELDS) {
      const outcome = check(form.elements[name].value);
      showOutcome(name, outcome);
      if (outcome.error && first === null) first = name;
      values[name] = outcome.value;
    }
    if (first !== null) {
      form.elements[first].focus();
      return null;
    }
    return values;
  }

  function showServerErrors(fields) {
    let first = null;
    const unplaced = [];
    for (const [name, message] of Object.entries(fields || {})) {
      if (FIELDS.includes(name)) {
        setFieldError(name, labelOf(name) + " " + message);
        if (first === null) first = name;
      } else {
        unplaced.push(name + ": " + message);
      }
    }
    showNotice($("form-message"), "The service refused the input." +
      (unplaced.length ? " " + unplaced.join("; ") : " See the marked fields."), "error");
    if (first !== null) form.elements[first].focus();
  }

  /* ---------- small helpers ---------- */

  function showNotice(element, text, kind) {
    element.textContent = text;
    element.className = "notice " + (kind || "info");
    element.hidden = !text;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (err) {
      return {};
    }
  }

  function retryAfterSeconds(response, body) {
    const header = Number(response.headers.get("Retry-After"));
    if (Number.isFinite(header) && header > 0) return Math.min(header, 60);
    if (body && Number.isFinite(body.retry_after)) return Math.min(body.retry_after, 60);
    return 5;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
  }

  function reportUrl(taskId) {
    return "/flask/result/" + encodeURIComponent(taskId) + ".pdf";
  }

  /* ---------- submitting ---------- */

  let current = null; // the job being followed: { id, controller }

  async function submit(values) {
    submitButton.disabled = true;
    showNotice($("form-message"), "");
    try {
      for (let attempt = 0; ; attempt += 1) {
        let response;
        try {
          response = await fetch("/flask/predict", {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify(values),
          });
        } catch (err) {
          // The request may or may not have arrived: do not resend it behind the user's back.
          showNotice($("form-message"),
            "Network error: the service could not be reached. Check the connection and press Predict again.",
            "error");
          return;
        }
        const body = await readJson(response);
        if (response.status === 202 && body.task_id) {
          showNotice($("form-message"), "");
          follow(body.task_id, body.status_url);
          refreshRecent();
          return;
        }
        if (response.status === 400 && body.fields) {
          showServerErrors(body.fields);
          return;
        }
        if (response.status === 503 && attempt < SUBMIT_RETRIES) {
          // Nothing was accepted, so sending again is safe.
          const wait = retryAfterSeconds(response, body);
          for (let left = wait; left > 0; left -= 1) {
            showNotice($("form-message"), "The service is busy or its queue is unavailable (" +
              (body.error || "503") + "). Retrying in " + left + " s (attempt " + (attempt + 2) +
              " of " + (SUBMIT_RETRIES + 1) + ")…", "warning");
            await new Promise((resolve) => setTimeout(resolve, 1000));
          }
          continue;
        }
        showNotice($("form-message"), "The service answered " + response.status + ": " +
          (body.error || response.statusText || "unexpected answer") +
          (response.status === 503 ? " Please try again later." : ""), "error");
        return;
      }
    } finally {
      submitButton.disabled = false;
    }
  }

  /* ---------- following a job ---------- */

  function resetJobView(taskId) {
    $("job-empty").hidden = true;
    $("progress-block").hidden = false;
    $("job-id").textContent = taskId;
    $("result-body").hidden = true;
    $("preview").hidden = true;
    $("preview").open = false;
    $("preview-frame").removeAttribute("src");
    $("job-actions").hidden = true;
    $("retry-actions").hidden = true;
    $("retry-of").hidden = true;
    $("cancel-job").hidden = false;
    $("cancel-job").disabled = false;
    showNotice($("job-message"), "");
    setProgress(0, "queued", "PENDING");
  }

  function setProgress(fraction, stage, state) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
    const bar = $("progress");
    bar.value = pct;
    bar.dataset.state = state;
    $("progress-pct").textContent = pct + "%";
    $("stage").textContent = STAGE_NAMES[stage] || stage || state;
  }

  function follow(taskId, statusUrl) {
    if (current) current.controller.abort();
    const controller = new AbortController();
    current = { id: taskId, controller };
    resetJobView(taskId);
    poll(taskId, statusUrl || "/flask/status/" + encodeURIComponent(taskId), controller.signal);
  }

  async function poll(taskId, statusUrl, signal) {
    const started = Date.now();
    let delay = POLL_FIRST_MS;
    // Read with ?wait= (the answer comes when the job ends, or when the wait
    // runs out); once a wait is refused (an error or no answer), poll with backoff.
    let waiting = true;
    const waitUrl = statusUrl + (statusUrl.includes("?") ? "&" : "?") + "wait=" + WAIT_SECONDS;
    while (!signal.aborted) {
      let problem = "";
      try {
        const response = await fetch(waiting ? waitUrl : statusUrl,
          { headers: { Accept: "application/json" }, signal });
        const body = await readJson(response);
        if (waiting && !response.ok) {
          waiting = false;
          continue;
        }
        if (response.ok) {
          showNotice($("job-message"), "");
          setProgress(body.progress, body.stage, body.state);
          if (body.retry_of) {
            $("retry-of-id").textContent = body.retry_of;
            $("retry-of").hidden = false;
          }
          if (DONE.includes(body.state)) {
            finish(body);
            return;
          }
        } else if (response.status === 404 || response.status === 400) {
          showNotice($("job-message"), "This job is unknown to the service (" +
            (body.error || response.status) + ").", "error");
          $("progress-block").hidden = true;
          return;
        } else {
          problem = "The service answered " + response.status +
            (body.error ? " (" + body.error + ")" : "") + "; still trying…";
          if (response.status === 503) delay = Math.max(delay, retryAfterSeconds(response, body) * 1000);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (waiting) {
          waiting = false;
          continue;
        }
        problem = "Network error while checking the job; still trying…";
      }
      if (problem) showNotice($("job-message"), problem, "warning");
      if (Date.now() - started > POLL_TIMEOUT_MS) {
        showNotice($("job-message"), "Still not finished after " +
          Math.round(POLL_TIMEOUT_MS / 1000) + " s, so this page stopped checking. " +
          "The job may be waiting behind others: keep waiting, or look for it in the recent jobs below.",
          "error");
        $("job-actions").hidden = false;
        return;
      }
      if (waiting) {
        // The wait ran out: ask again, after a pause in case a server answered at once.
        await sleep(POLL_FIRST_MS, signal);
        continue;
      }
      await sleep(delay, signal);
      delay = Math.min(POLL_MAX_MS, delay * POLL_FACTOR);
    }
  }

  function finish(body) {
    if (current && current.id === body.task_id) current.finished = true;
    refreshRecent();
    $("cancel-job").hidden = true;
    if (RETRYABLE.includes(body.state)) $("retry-actions").hidden = false;
    if (body.state === "REVOKED") {
      $("stage").textContent = "Cancelled";
      const by = body.cancelled ? " by " + body.cancelled.by + " at " + formatTime(body.cancelled.at) : "";
      showNotice($("job-message"), "The job was cancelled" + by + ". Retry submits the same measurements again.",
        "warning");
      return;
    }
    if (body.state === "FAILURE") {
      $("stage").textContent = "Failed";
      showNotice($("job-message"), "The job failed: " + (body.error || "no reason given") +
        ". You can submit the measurements again.", "error");
      return;
    }
    const result = body.result || {};
    $("species").textContent = result.label || "unknown";
    $("model-version").textContent = result.model_version || "unknown";
    drawChart(result.probabilities || {}, result.label);
    const url = result.report_url || reportUrl(body.task_id);
    const link = $("download");
    link.href = url;
    link.setAttribute("download", "iris-report-" + body.task_id + ".pdf");
    // Only browsers that can show a PDF get the inline preview (the rest keep the link).
    if (navigator.pdfViewerEnabled) {
      $("preview").hidden = false;
      $("preview-frame").dataset.src = url + "?inline=1";
    }
    $("result-body").hidden = false;
  }

  /* ---------- the probability chart: inline SVG built here (no inline styles needed) ---------- */

  const SVG = "http://www.w3.org/2000/svg";

  function svg(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawChart(probabilities, label) {
    const entries = Object.entries(probabilities);
    const rowHeight = 30;
    const labelWidth = 96;
    const barWidth = 180;
    const width = labelWidth + barWidth + 56;
    const height = entries.length * rowHeight;
    const summary = entries.map(([name, p]) => name + " " + (p * 100).toFixed(1) + "%").join(", ");
    const chart = svg("svg", {
      viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
      "aria-labelledby": "chart-caption chart-desc", class: "bars",
    });
    chart.appendChild(svg("desc", { id: "chart-desc" }, summary));
    entries.forEach(([name, p], index) => {
      const y = index * rowHeight;
      const klass = "bar" + (name === label ? " winner" : "") + " species-" + name;
      chart.appendChild(svg("text", { x: 0, y: y + 19, class: "bar-label" }, name));
      chart.appendChild(svg("rect", { x: labelWidth, y: y + 6, width: barWidth, height: 18, rx: 3, class: "track" }));
      chart.appendChild(svg("rect", {
        x: labelWidth, y: y + 6, width: Math.max(1, p * barWidth).toFixed(1), height: 18, rx: 3, class: klass,
      }));
      chart.appendChild(svg("text", { x: labelWidth + barWidth + 6, y: y + 19, class: "bar-value" },
        (p * 100).toFixed(1) + "%"));
    });
    $("chart").replaceChildren(chart);
  }

  /* ---------- recent jobs ---------- */

  let recentTimer = null;
  let recentBusy = false;

  function cell(content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content || "";
    return td;
  }

  function renderRecent(tasks) {
    const rows = tasks.map((task) => {
      const tr = document.createElement("tr");
      tr.dataset.taskId = task.task_id;
      const when = document.createElement("button");
      when.type = "button";
      when.className = "link";
      when.textContent = formatTime(task.submitted_at);
      when.title = "Show job " + task.task_id;
      when.setAttribute("aria-label", "Show job submitted at " + formatTime(task.submitted_at));
      when.addEventListener("click", () => follow(task.task_id));
      const state = document.createElement("span");
      state.className = "state state-" + task.state.toLowerCase();
      state.textContent = task.state;
      let report = "";
      if (task.state === "SUCCESS") {
        report = document.createElement("a");
        report.href = reportUrl(task.task_id);
        report.textContent = "PDF";
        report.setAttribute("download", "");
        report.setAttribute("aria-label", "PDF report of job " + task.task_id);
      }
      tr.append(cell(when), cell(state), cell(task.label || ""), cell(report));
      return tr;
    });
    $("recent-rows").replaceChildren(...rows);
  }

  async function refreshRecent() {
    if (recentBusy) return;
    clearTimeout(recentTimer);
    if (document.hidden) {
      // A background tab does not need a fresh list; look again later.
      recentTimer = setTimeout(refreshRecent, RECENT_IDLE_MS);
      return;
    }
    recentBusy = true;
    let again = false;
    try {
      const response = await fetch("/flask/tasks?limit=" + RECENT_LIMIT, { headers: { Accept: "application/json" } });
      const body = await readJson(response);
      if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
      const tasks = body.tasks || [];
      renderRecent(tasks);
      again = tasks.some((task) => IN_FLIGHT.includes(task.state));
      $("recent-status").textContent = tasks.length ? "" : "No jobs yet.";
    } catch (err) {
      $("recent-status").textContent = "Could not load the recent jobs (" + err.message + "); retrying.";
      again = true;
    } finally {
      recentBusy = false;
    }
    // Refresh quickly while something is still running (or the list failed), slowly otherwise.
    recentTimer = setTimeout(refreshRecent, again ? RECENT_EVERY_MS : RECENT_IDLE_MS);
  }

  /* ---------- wiring ---------- */

  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", () => {
      const values = button.dataset.values.split(" ");
      FIELDS.forEach((name, i) => {
        form.elements[name].value = values[i];
        setFieldError(name, "");
      });
      showNotice($("form-message"), "");
      submitButton.focus();
    });
  }

  for (const name of FIELDS) {
    // Re-check a field once the user leaves it, and clear its error as soon as it is fixed.
    form.elements[name].addEventListener("blur", (event) => {
      if (event.target.value.trim() !== "") {
        showOutcome(name, check(event.target.value));
      }
    });
    form.elements[name].addEventListener("input", (event) => {
      if (event.target.getAttribute("aria-invalid") && !check(event.target.value).error) setFieldError(name, "");
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = validate();
    if (values === null) {
      showNotice($("form-message"), "Please correct the marked fields.", "error");
      return;
    }
    submit(values);
  });

  $("preview").addEventListener("toggle", () => {
    const frame = $("preview-frame");
    // Load the PDF only when asked for: it is the heaviest thing on the page.
    if ($("preview").open && frame.dataset.src && frame.getAttribute("src") !== frame.dataset.src) {
      frame.src = frame.dataset.src;
    }
  });

  $("keep-waiting").addEventListener("click", () => {
    if (current) follow(current.id);
  });

  /* ---------- job control: cancel a job in flight, retry a failed or cancelled one ---------- */

  $("cancel-job").addEventListener("click", async () => {
    if (!current) return;
    const taskId = current.id;
    $("cancel-job").disabled = true;
    try {
      const response = await fetch("/flask/tasks/" + encodeURIComponent(taskId) + "/cancel", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ by: "web page" }),
      });
      const body = await readJson(response);
      if (response.status === 202) {
        // The running poll sees REVOKED and finishes the view; unless it already
        // has (the answer can come after that poll), say the cancel is on its way.
        if (!(current && current.id === taskId && current.finished)) {
          showNotice($("job-message"), "Cancelling…", "warning");
        }
      } else {
        showNotice($("job-message"), "Could not cancel: " + (body.error || response.status) +
          (body.state ? " (the job is " + body.state + ")" : "") + ".", "warning");
      }
    } catch (err) {
      showNotice($("job-message"), "Network error: the cancel may not have arrived.", "error");
      $("cancel-job").disabled = false;
    }
  });

  $("retry-job").addEventListener("click", async () => {
    if (!current) return;
    const original = current.id;
    $("retry-job").disabled = true;
    try {
      const response = await fetch("/flask/tasks/" + encodeURIComponent(original) + "/retry", {
        method: "POST",
        headers: { Accept: "application/json" },
      });
      const body = await readJson(response);
      if (response.status === 202 && body.task_id) {
        follow(body.task_id, body.status_url);
        refreshRecent();
      } else {
        showNotice($("job-message"), "Could not retry: " + (body.error || response.status) +
          (response.status === 503 ? " Please try again later." : ""), "error");
      }
    } catch (err) {
      showNotice($("job-message"), "Network error: the retry may not have arrived; check the recent jobs.",
        "error");
    } finally {
      $("retry-job").disabled = false;
    }
  });
  $("recent-refresh").addEventListener("click", refreshRecent);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshRecent();
  });

  refreshRecent();
})();
