"""Idempotent submits: ``POST /flask/predict`` with an ``Idempotency-Key`` header.

A repeat of a key with the same body (measurements and ``model_version``)
answers the key's job (200, the submit's body with the job's current state,
``Idempotent-Replayed: true``); with another body it is a 422. The key's row is written in the job's
PENDING transaction (store.create_pending_with_key), so of several concurrent
submits of one key, in any number of processes, exactly one records a job.

A key stays "in flight" until the broker has confirmed the job's message: a
repeat arriving meanwhile waits for that confirm rather than answer a job that
a refused publish may still discard (the first request then gets a 503, frees
the key, and so does the repeat: a later retry can succeed). The README's
"Idempotent submits" section is the contract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from flask import Response, jsonify, url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import Headers

from . import reports
from .errors import RETRY_AFTER_SECONDS, ApiError, json_error, unavailable
from .registry import MODEL_VERSION
from .store import (
    IdempotencyKey,
    StatusStore,
    confirm_idempotency_key,
    create_pending_with_key,
    get_idempotency_key,
    release_idempotency_key,
    utcnow,
)
from .validation import is_idempotency_key

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

# How long a repeat waits for the request holding its key to get the publish
# confirmed: longer than a publish takes with the publish retry policy and the
# default BROKER_CONNECT_TIMEOUT (three tries of 2 s), well inside gunicorn's
# timeout. Beyond it the repeat gets a 409 to retry.
WAIT_SECONDS = 10.0
# A key still unconfirmed after this long was held by a request that died
# (gunicorn kills a request after its timeout, 30 s by default): its job is
# answered as it is, since it may have been published, and a second job for
# one key is what the header exists to prevent.
ABANDONED_SECONDS = 60.0
_FIRST_POLL, _LONGEST_POLL = 0.01, 0.2


def key_of(headers: Headers) -> str | None:
    """The request's Idempotency-Key, None without the header; a 400 if it is malformed."""
    key = headers.get(HEADER)
    if key is None:
        return None
    if not is_idempotency_key(key):
        raise ApiError(
            400,
            f"the {HEADER} header must be 1 to 128 visible ASCII characters (no spaces)",
            header=HEADER,
        )
    return key


def body_sha256(values: dict[str, float], model_version: str | None = None) -> str:
    """The fingerprint of a submit's validated body: its measurements and the
    ``model_version`` it names, if any (as sent: a body that names none matches
    only bodies that name none, whichever model is the default by then).

    Taken of the values, not of the bytes sent: the same body as JSON in any
    key order or spacing, or as a form, is the same body. A body naming no
    version has the fingerprint keys recorded before versions existed had.
    """
    body: dict[str, object] = dict(values)
    if model_version is not None:
        body[MODEL_VERSION] = model_version
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(store: StatusStore, held: IdempotencyKey) -> Response:
    job = store.get(held.task_id)
    if job is None:
        # The key outlived its job (nothing in normal operation: keys are
        # purged first): free it, so that the retry this asks for records anew.
        release_idempotency_key(store, held.key, held.task_id)
        return _failed()
    status_url = url_for("api.status", task_id=job.task_id)
    response = jsonify(
        task_id=job.task_id,
        state=job.state,
        status_url=status_url,
        report_url=reports.url(job.task_id),
    )
    response.headers["Location"] = status_url
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _failed() -> Response:
    return unavailable(f"the first request with this {HEADER} failed; try again later")


def claim(
    store: StatusStore, key: str, task_id: str, inputs: dict[str, Any], digest: str
) -> Response | None:
    """Record the job (its ``inputs``) under ``key``, or answer the repeat of a key.

    ``digest`` is the request body's :func:`body_sha256`. None: this request
    holds the key and the job is PENDING; it must publish, then call
    :func:`published` or :func:`publish_failed`. A Response: the answer to a
    repeat (the job's, a 422, a 409 or a 503).
    """
    held = create_pending_with_key(store, task_id, inputs, key, digest)
    deadline = time.monotonic() + WAIT_SECONDS
    pause = _FIRST_POLL
    while True:
        if held is None:
            return _failed()
        if held.task_id == task_id:
            return None
        if held.body_sha256 != digest:
            return _conflict(key)
        age = (utcnow() - held.created_at).total_seconds()
        if held.confirmed_at is not None or age > ABANDONED_SECONDS:
            return _replay(store, held)
        if time.monotonic() >= deadline:
            return _in_flight()
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_POLL)
        held = get_idempotency_key(store, key)


def _conflict(key: str) -> Response:
    return json_error(
        422,
        f"this {HEADER} was already used with different measurements or model_version; "
        "send the same body again, or use a new key for a new job",
        header=HEADER,
        idempotency_key=key,
    )


def _in_flight() -> Response:
    response = json_error(
        409,
        f"a request with this {HEADER} is still being processed; try again later",
        header=HEADER,
        retry_after=RETRY_AFTER_SECONDS,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def published(store: StatusStore, key: str, task_id: str) -> None:
    """The broker confirmed the job: repeats may answer it now."""
    try:
        confirm_idempotency_key(store, key, task_id)
    except SQLAlchemyError:
        # The job is queued and its client gets the 202 regardless; repeats of
        # the key wait, then answer it once the key counts as abandoned.
        log.exception("could not confirm idempotency key of job %s", task_id)


def publish_failed(store: StatusStore, key: str, task_id: str) -> None:
    """Free the key before the job is discarded, so the client's retry can record it."""
    release_idempotency_key(store, key, task_id)
