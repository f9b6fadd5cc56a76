"""The HTTP API under /flask, exactly as docs/architecture.md and the README describe it.

No view ever waits on a task: submits publish and return 202, every other
route reads the status store. The one wait is the status read's ``?wait=``,
which nginx hands to the waiter process (waiter.py); straight from gunicorn a
few are held in threads (job_ends.InAppWaits).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Any

from amqp.exceptions import MessageNacked
from celery import Celery
from flask import Blueprint, Response, current_app, jsonify, request, send_file, url_for
from kombu.connection import Connection
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from . import group_commit, idempotency, job_ends, logs, metrics, probability_png, reports
from .celery_app import PREDICT_TASK
from .config import Settings
from .errors import ApiError, unavailable
from .openapi import openapi_document
from .registry import MODEL_VERSION, registry_of_app, requested_version
from .status_body import CANCELLED_BY_RE, encode, iso, status_body
from .store import TASK_STATES, JobStatus, StatusStore
from .validation import (
    InvalidWaitError,
    MalformedBodyError,
    Measurements,
    decode_json,
    normalise_task_id,
    validate_form,
    validate_json,
    wait_seconds,
)

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/flask")

# The states POST /flask/tasks/<id>/retry submits again.
_RETRYABLE = ("FAILURE", "REVOKED")

# multipart/form-data is refused (415) as the README and the message say: a
# form of four numbers has no files, and multipart is one more parser to trust.
_FORM_TYPES = ("application/x-www-form-urlencoded",)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["iris_settings"]
    return settings


def _store() -> StatusStore:
    store: StatusStore = current_app.extensions["iris_store"]
    return store


def _committer() -> group_commit.GroupCommitter:
    committer: group_commit.GroupCommitter = current_app.extensions["iris_committer"]
    return committer


def _celery() -> Celery:
    celery_app: Celery = current_app.extensions["celery"]
    return celery_app


def _parse_json() -> tuple[Measurements, object]:
    """The request's JSON body, validated, and its model_version if any (issue 16);
    raises InvalidInputError for bad measurements."""
    try:
        payload = decode_json(request.get_data(cache=False))
    except MalformedBodyError as exc:
        raise ApiError(400, str(exc)) from None
    version = payload.pop(MODEL_VERSION, None) if isinstance(payload, dict) else None
    return validate_json(payload), version


def _parse_body() -> tuple[Measurements, object]:
    mimetype = request.mimetype
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _parse_json()
    if mimetype in _FORM_TYPES:
        # Every value of each field, so that a repeated one is refused, not
        # silently read as its first.
        fields = [(k, v) for k, v in request.form.items(multi=True) if k != MODEL_VERSION]
        versions = request.form.getlist(MODEL_VERSION)
        return validate_form(fields), versions if len(versions) > 1 else next(iter(versions), None)
    raise ApiError(
        415,
        "send application/json or a form (application/x-www-form-urlencoded)",
        content_type=request.content_type or None,
    )


@bp.post("/predict")
def predict() -> Response:
    # Bad measurements raise InvalidInputError: errors.py answers it with a 400.
    measurements, version = _parse_body()
    # Issue 16: a READY version the client names (else a 400), or the default.
    return _submit(measurements.model_dump(), model_version=requested_version(version))


def _submit(
    values: dict[str, float], retry_of: str | None = None, model_version: str | None = None
) -> Response:
    """Record a new job, publish it, and answer 202 (or 503): a submit and a retry alike."""
    task_id = str(uuid.uuid4())
    store = _store()
    requested_version = model_version  # part of the body an Idempotency-Key repeat must match
    try:
        # Chosen now: a job queued before a promotion keeps the version it was submitted with.
        model_version = model_version or registry_of_app().default_version()
    except SQLAlchemyError:
        log.exception("could not read the default model")
        return unavailable("the result backend is unavailable; try again later")
    # Recorded with the measurements, so that a retry predicts with the same model.
    inputs = {**values, MODEL_VERSION: model_version}
    # Issue 14 part B: Idempotency-Key (idempotency.py), on submits only. None without it.
    key = idempotency.key_of(request.headers) if retry_of is None else None
    if key is None:
        # Recorded and confirmed together with the submits that arrive with it.
        try:
            _committer().submit(
                group_commit.Job(
                    task_id, values, retry_of, logs.current().request_id, model_version
                )
            )
        except group_commit.RefusedError as exc:
            return unavailable(str(exc))
        return _accepted(task_id, model_version)
    try:
        # Part B: the key's row joins the PENDING transaction, or a repeat is answered.
        if (
            answer := idempotency.claim(
                store, key, task_id, inputs, idempotency.body_sha256(values, requested_version)
            )
        ) is not None:
            return answer
    except SQLAlchemyError:
        log.exception("could not record job %s", task_id)
        return unavailable(group_commit.DATABASE_DOWN)
    try:
        # The reprs Celery logs and shows in monitors, given here: deriving them
        # (saferepr) was a sixth of a submit's CPU.
        _celery().send_task(
            PREDICT_TASK,
            args=[values],
            kwargs={MODEL_VERSION: model_version},
            task_id=task_id,
            argsrepr=repr([values]),
            kwargsrepr=repr({MODEL_VERSION: model_version}),
            # The worker logs its lines of this job with the request's id (logs.py).
            headers={logs.TASK_HEADER: logs.current().request_id},
        )
    except group_commit.BROKER_ERRORS as exc:
        # Part B: free the key first, so a retry can succeed.
        idempotency.publish_failed(store, key, task_id)
        store.discard(task_id)
        nacked = isinstance(exc, MessageNacked) or isinstance(exc.__cause__, MessageNacked)
        log.warning("publish of %s refused: %r", task_id, exc)
        return unavailable(group_commit.QUEUE_FULL if nacked else group_commit.BROKER_DOWN)
    # Part B: repeats of the key may answer this job from now on.
    idempotency.published(store, key, task_id)
    return _accepted(task_id, model_version)


def _accepted(task_id: str, model_version: str) -> Response:
    """The 202 of a job recorded and confirmed by the broker."""
    log.info("job queued", extra={"task_id": task_id})

    metrics.job_submitted()
    return accepted(task_id, model_version=model_version)


def accepted(task_id: str, **extra: Any) -> Response:
    """A 202 for a queued job of any kind, with a Location header to its status."""
    status_url = url_for("api.status", task_id=task_id)
    response = jsonify(
        task_id=task_id,
        state="PENDING",
        status_url=status_url,
        report_url=reports.url(task_id),
        **extra,
    )
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


def publish_recorded(
    store: StatusStore, task_id: str, name: str, kwargs: dict[str, Any], queue: str | None = None
) -> Response | None:
    """Publish a recorded training or batch job's message (confirmed by the broker); if
    it is refused, discard the job's row and answer 503. None once it is queued."""
    # No queue: the task's route (a queue=None would override it).
    routing = {} if queue is None else {"queue": queue}
    try:
        _celery().send_task(
            name,
            kwargs=kwargs,
            task_id=task_id,
            headers={logs.TASK_HEADER: logs.current().request_id},
            **routing,
        )
    except group_commit.BROKER_ERRORS as exc:
        store.discard(task_id)
        log.warning("publish of %s job %s refused: %r", name, task_id, exc)
        return unavailable(
            "the message broker is unreachable or the queue is full; try again later"
        )
    return None


def _lookup(task_id: str) -> JobStatus:
    """The job ``task_id`` names, in either case; 400 if it is no UUID, 404 if unknown."""
    canonical = normalise_task_id(task_id)
    if canonical is None:
        raise ApiError(400, "task_id must be a UUID", task_id=task_id[:64])
    job = _store().get(canonical)
    if job is None:
        raise ApiError(404, "no task with this id", task_id=canonical)
    return job


def _wait_seconds() -> float | None:
    """The request's ``?wait=`` in seconds (None without one); 400 when it is not valid."""
    try:
        return wait_seconds(request.args.getlist("wait"))
    except InvalidWaitError as exc:
        raise ApiError(400, str(exc)) from None


@bp.get("/status/<task_id>")
def status(task_id: str) -> Response:
    # The same checks, in the same order, as the waiter process's (waiter.py).
    seconds = _wait_seconds()
    job = _lookup(task_id)
    if seconds is not None and not job_ends.is_final(job):
        waits: job_ends.InAppWaits = current_app.extensions["iris_waits"]
        job = waits.wait(_store(), job.task_id, seconds) or job
    # The same bytes as the job's status file, which nginx answers polls from.
    body = encode(status_body(job))
    return Response(body, mimetype="application/json")


def _behind_nginx() -> bool:
    return request.headers.get("X-Sendfile-Type") == "X-Accel-Redirect"


@bp.get("/status")
def status_query() -> Response:
    task_id = request.args.get("task_id")
    if not task_id:
        raise ApiError(400, "the task_id query parameter is required")
    return status(task_id)


def _probability_png(job: JobStatus) -> Response:
    """The class probabilities as a PNG bar chart, drawn from the stored result."""
    stored = job.result if isinstance(job.result, dict) else {}
    probabilities, label = stored.get("probabilities"), stored.get("label")
    if not isinstance(probabilities, dict) or not isinstance(label, str):
        raise ApiError(404, "this task has no probabilities to draw", task_id=job.task_id)
    version = stored.get("model_version")
    png = probability_png.probability_png(
        {str(k): float(v) for k, v in probabilities.items()},
        label,
        version if isinstance(version, str) else None,
    )
    response = Response(png, mimetype="image/png")
    response.headers["Content-Disposition"] = (
        f'inline; filename="iris-probabilities-{job.task_id}.png"'
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/result/<filename>")
def result(filename: str) -> Response:
    task_id, dot, extension = filename.rpartition(".")
    if not dot or extension not in ("pdf", "png"):
        raise ApiError(
            404, "reports are served as /flask/result/<task_id>.pdf (probability chart: .png)"
        )
    job = _lookup(task_id)
    task_id = job.task_id  # the stored, lower-case spelling names the files
    if job.state != "SUCCESS":
        message = (
            "the task failed; it has no report"
            if job.state == "FAILURE"
            else "the report is not ready yet"
        )
        raise ApiError(
            409, message, state=job.state, status_url=url_for("api.status", task_id=task_id)
        )
    if extension == "png":
        return _probability_png(job)
    # The path is built from the validated UUID alone, never from the request.
    path = reports.path(_settings().reports_dir, task_id)
    if not path.is_file():
        raise ApiError(404, "the report has expired or was removed", task_id=task_id)
    download_name = reports.download_name(task_id)
    # ?inline=1 lets the web UI preview the PDF in a frame; the default stays a download.
    inline = request.args.get("inline") == "1"
    if _behind_nginx():
        # Behind nginx: let nginx send the bytes from its internal location.
        response = Response(status=200, mimetype="application/pdf")
        response.headers["X-Accel-Redirect"] = reports.accel_redirect(task_id)
        disposition = "inline" if inline else "attachment"
        response.headers["Content-Disposition"] = f'{disposition}; filename="{download_name}"'
        return response
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=not inline,
        download_name=download_name,
        max_age=0,
    )


def _cancelled_by() -> str:
    """Who cancels: the body's ``by``, else the request id nginx or the client gave, else "api"."""
    data = request.get_data(cache=False)
    if data.strip():
        mimetype = request.mimetype
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise ApiError(415, 'send no body, or application/json {"by": "<who>"}')
        try:
            payload = decode_json(data)
        except MalformedBodyError as exc:
            raise ApiError(400, str(exc)) from None
        if not isinstance(payload, dict) or set(payload) - {"by"}:
            raise ApiError(400, 'the body must be {"by": "<who>"}, or none')
        by = payload.get("by")
        if by is not None:
            if not isinstance(by, str) or not CANCELLED_BY_RE.fullmatch(by):
                message = "must be 1 to 64 printable ASCII characters"
                raise ApiError(400, "invalid input", fields={"by": message})
            return by
    request_id = request.headers.get("X-Request-ID", "")
    return request_id if CANCELLED_BY_RE.fullmatch(request_id) else "api"


def _revoke_in_workers(task_id: str) -> None:
    """Tell the workers to drop the job's message unrun; best effort, never an error.

    The database is the authority (a worker forgets revokes when it restarts,
    and one started later never hears of it): this only spares a queued job
    its start. Bounded like the health probe, so a dead broker costs seconds.
    """
    celery_app = _celery()
    timeouts = {"read_timeout": _HEALTH_BROKER_TIMEOUT, "write_timeout": _HEALTH_BROKER_TIMEOUT}
    try:
        with celery_app.connection_for_write(transport_options=timeouts) as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, timeout=_settings().broker_connect_timeout
            )
            celery_app.control.revoke(task_id, connection=conn)
    except Exception as exc:  # the cancel is recorded; workers still honour it at start
        log.warning("could not tell the workers to revoke %s: %r", task_id, exc)


@bp.post("/tasks/<task_id>/cancel")
def cancel(task_id: str) -> Response:
    """Cancel a job that has not finished: it becomes REVOKED and is never run or finished."""
    job = _lookup(task_id)
    by = _cancelled_by()
    cancelled, revoked = _store().cancel(job.task_id, by)
    if cancelled is None:  # purged between the lookup and the cancel
        raise ApiError(404, "no task with this id", task_id=job.task_id)
    if not revoked:
        raise ApiError(
            409,
            "the task has already finished",
            state=cancelled.state,
            status_url=url_for("api.status", task_id=job.task_id),
        )
    job_ends.announce(_celery(), job.task_id)  # wakes the waits on it (?wait=)
    _revoke_in_workers(job.task_id)
    metrics.job_cancelled()
    # A run that passed its last check before the cancel may have written the
    # PDF; its SUCCESS can no longer be recorded, so its PDF must not stay.
    reports.path(_settings().reports_dir, job.task_id).unlink(missing_ok=True)
    log.info("job %s cancelled by %s", job.task_id, by)
    return Response(encode(status_body(cancelled)), status=202, mimetype="application/json")


@bp.post("/tasks/<task_id>/retry")
def retry(task_id: str) -> Response:
    """Submit a failed or cancelled job's measurements again, as a new job naming it,
    with the job's model version (jobs recorded before versions: the default)."""
    job = _lookup(task_id)
    if job.state not in _RETRYABLE:
        raise ApiError(
            409,
            "only a FAILURE or REVOKED task can be retried",
            state=job.state,
            status_url=url_for("api.status", task_id=job.task_id),
        )
    inputs = _store().inputs_of(job.task_id) or {}
    version = inputs.pop(MODEL_VERSION, None)
    try:
        values = Measurements.model_validate(inputs, strict=True).model_dump()
    except ValidationError:
        # Never from a prediction this app recorded; say so rather than fail.
        raise ApiError(
            409, "the task's measurements cannot be submitted again", task_id=job.task_id
        ) from None
    answer = _submit(values, retry_of=job.task_id, model_version=version)
    if answer.status_code == 202:
        metrics.job_retried()
    return answer


def _require_tasks_token() -> None:
    token = _settings().tasks_api_token
    if token is None:
        return
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    # Constant-time comparison: the answer time must not leak the token.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        raise ApiError(401, "a valid API token is required (Authorization: Bearer <token>)")


@bp.get("/tasks")
def tasks() -> Response:
    _require_tasks_token()
    args = request.args
    try:
        limit = int(args.get("limit", "20"))
        before = int(args["before"]) if args.get("before") else None
    except ValueError:
        raise ApiError(400, "limit and before must be integers") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "limit must be between 1 and 100", limit=limit)
    state = args.get("state") or None
    if state is not None and state not in TASK_STATES:
        raise ApiError(400, "unknown state", state=state[:32], states=list(TASK_STATES))
    page, cursor = _store().list(limit=limit, before=before, state=state)
    items = []
    for job in page:
        label = (
            job.result.get("label")
            if job.state == "SUCCESS" and isinstance(job.result, dict)
            else None
        )
        items.append(
            {
                "task_id": job.task_id,
                "state": job.state,
                "submitted_at": iso(job.submitted_at),
                "finished_at": iso(job.finished_at),
                "label": label,
            }
        )
    return jsonify(tasks=items, next=None if cursor is None else str(cursor))


@bp.get("/model")
def model_card() -> Response:
    # Issue 16: the default model's card (model_views.py serves every version's).
    return jsonify(registry_of_app().default_card())


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


# The health probe's own bound on each broker round trip (connect, declare):
# a broker that accepts the connection and then stalls must not hang the probe.
_HEALTH_BROKER_TIMEOUT = 2


def _queue_state(conn: Connection, name: str | None = None) -> tuple[int, int]:
    """How many consumers a queue (the prediction queue by default) has, and how many
    messages are ready in it.

    A passive declare is one AMQP round trip and changes nothing. It counts
    ready messages only: the unacknowledged ones (jobs being worked on) are
    known only to the management API or rabbitmqctl, neither of which the web
    app may use, so the health body leaves them out rather than guess.
    """
    name = name or _settings().queue_name
    try:
        # kombu's channels are not annotated.
        declared = conn.default_channel.queue_declare(  # type: ignore[no-untyped-call]
            queue=name, passive=True
        )
        _, ready, consumers = declared
    except conn.channel_errors:
        # NOT_FOUND: the queue does not exist yet (a worker declares it as it
        # starts), so nothing waits in it and nothing consumes it.
        return 0, 0
    return int(consumers), int(ready)


def _broker_queue_state(name: str | None = None) -> tuple[int, int]:
    """A queue's consumers and ready messages (the prediction queue's by default), asked
    of the broker now."""
    timeouts = {"read_timeout": _HEALTH_BROKER_TIMEOUT, "write_timeout": _HEALTH_BROKER_TIMEOUT}
    with _celery().connection_for_write(transport_options=timeouts) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=_HEALTH_BROKER_TIMEOUT)
        return _queue_state(conn, name)


@bp.get("/health")
def health() -> Response:
    """200 while the database and the broker answer: "ok" when a worker consumes the
    prediction queue, "degraded" when none does (jobs would wait); 503 naming what
    is down. Never a 500: every failure is reported in the body."""
    checks: dict[str, str] = {}
    try:
        _store().ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure at all means "down", reported below
        checks["database"] = f"down: {type(exc).__name__}"
    workers, ready = 0, 0
    try:
        workers, ready = _broker_queue_state()
        checks["broker"] = "ok"
    except Exception as exc:  # any failure at all means "down", reported below
        checks["broker"] = f"down: {type(exc).__name__}"
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return unavailable(f"unavailable: {', '.join(down)}", **checks)
    return jsonify(
        status="ok" if workers else "degraded",
        **checks,
        workers=workers,
        queue={"ready": ready},
    )


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    """The Prometheus metrics, for a listed address or the token holder; 403 otherwise."""
    settings = _settings()
    if not metrics.allowed(request, settings.metrics_allow, settings.metrics_token):
        raise ApiError(
            403,
            "the metrics are readable only from an allowed address (METRICS_ALLOW) "
            "or with the token (Authorization: Bearer <METRICS_TOKEN>)",
        )
    body = metrics.exposition(_broker_queue_state, _store().engine)
    response = Response(body, content_type=metrics.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
