"""The OpenAPI 3.1 description served at ``/flask/openapi.json``.

The request body schema is :class:`~iris_service.validation.Measurements`'s own
JSON schema, so the document and the validation cannot drift apart; the rest
mirrors the routes in ``views.py`` (the API table in the README).
"""

from __future__ import annotations

from typing import Any

from .model import FEATURES
from .registry import MODEL_STATES, MODEL_VERSION
from .status_body import CANCELLED_BY_RE
from .store import TASK_STATES as _STATES
from .training_request import BUILTIN_DATA, COLUMNS, ESTIMATORS, MAX_BATCH_ROWS
from .validation import IDEMPOTENCY_KEY_RE, MAX_WAIT_SECONDS, TASK_ID_RE, Measurements

TASK_STATES = list(_STATES)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, **headers: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
_TASK_ID = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": TASK_ID_RE.pattern},
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
# Issue 14 part B: idempotent submits (idempotency.py).
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-128 visible ASCII characters. A repeat with the same key and the same "
    "measurements within the retention answers the key's job (200) and never makes a second "
    "one; the same key with other measurements is a 422.",
    "schema": {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY_RE.pattern}$"},
}
_REPLAYED = {
    "Idempotent-Replayed": {"schema": {"const": "true"}, "description": "a repeat's answer"},
    "Location": {"schema": {"type": "string"}},
}
_HEALTH = {
    "type": "object",
    "required": ["status", "broker", "database", "workers", "queue"],
    "properties": {
        "status": {"enum": ["ok", "degraded"]},
        "broker": {"const": "ok"},
        "database": {"const": "ok"},
        "workers": {"type": "integer", "minimum": 0, "description": "consumers of the queue"},
        "queue": {
            "type": "object",
            "required": ["ready"],
            "properties": {"ready": {"type": "integer", "minimum": 0}},
        },
    },
}


def _schemas() -> dict[str, Any]:
    measurements = Measurements.model_json_schema()
    return {
        "Measurements": measurements,
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Accepted": {
            "type": "object",
            "required": ["task_id", "state", "status_url", "report_url"],
            "properties": {
                "task_id": {"type": "string", "format": "uuid"},
                "state": {"const": "PENDING"},
                "status_url": {"type": "string"},
                "report_url": {"type": "string"},
            },
        },
        "Replayed": {
            "type": "object",
            "required": ["task_id", "state", "status_url", "report_url"],
            "properties": {
                "task_id": {"type": "string", "format": "uuid"},
                "state": {"enum": TASK_STATES, "description": "the job's current state"},
                "status_url": {"type": "string"},
                "report_url": {"type": "string"},
            },
        },
        "Status": {
            "type": "object",
            "required": [
                "task_id",
                "state",
                "progress",
                "stage",
                "result",
                "error",
                "retry_of",
                "cancelled",
            ],
            "properties": {
                "task_id": {"type": "string", "format": "uuid"},
                "state": {"enum": TASK_STATES},
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "stage": {"type": "string"},
                "result": {
                    "type": ["object", "null"],
                    "properties": {
                        "label": {"type": "string"},
                        "probabilities": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                        "model_version": {"type": "string"},
                        "report_url": {"type": "string"},
                    },
                },
                "error": {"type": ["string", "null"]},
                "submitted_at": _NULLABLE_TIME,
                "finished_at": _NULLABLE_TIME,
                "retry_of": {
                    "type": ["string", "null"],
                    "description": "the task this one submitted again (POST .../retry)",
                },
                "cancelled": {
                    "type": ["object", "null"],
                    "description": "who cancelled the task and when (POST .../cancel)",
                    "required": ["at", "by"],
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "by": {"type": "string"},
                    },
                },
            },
        },
        "CancelRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "by": {
                    "type": "string",
                    "pattern": f"^{CANCELLED_BY_RE.pattern}$",
                    "description": 'who cancels; default: the X-Request-ID header, else "api"',
                }
            },
        },
        "Conflict": {
            "type": "object",
            "required": ["error", "state"],
            "properties": {"error": {"type": "string"}, "state": {"enum": TASK_STATES}},
        },
        "TaskList": {
            "type": "object",
            "required": ["tasks", "next"],
            "properties": {
                "tasks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "task_id": {"type": "string"},
                            "state": {"enum": TASK_STATES},
                            "submitted_at": _NULLABLE_TIME,
                            "finished_at": _NULLABLE_TIME,
                            "label": {"type": ["string", "null"]},
                        },
                    },
                },
                "next": {"type": ["string", "null"]},
            },
        },
    }


# ?wait= on the status (job_ends.py, waiter.py).
_WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Wait up to this many seconds for the job to end (SUCCESS, FAILURE or "
    "REVOKED): the answer comes as soon as it has, or when the wait runs out, with the "
    "same body as without it (then the state is not final yet: ask again). Without it "
    "the read never blocks.",
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT_SECONDS},
}


_VERSION_SCHEMA = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": _VERSION_SCHEMA}
_MODEL_SUMMARY = {
    "type": "object",
    "required": ["version", "estimator", "state", "default", "url"],
    "properties": {
        "version": {"type": "string"},
        "estimator": {"enum": list(ESTIMATORS)},
        "state": {"enum": list(MODEL_STATES)},
        "default": {"type": "boolean"},
        "created_at": _NULLABLE_TIME,
        "cv_accuracy": {"type": ["number", "null"]},
        "training_rows": {"type": ["integer", "null"]},
        "url": {"type": "string"},
    },
}


def _model_paths() -> dict[str, Any]:
    """Issue 16: the model registry and training jobs (model_views.py)."""
    spec = {
        "type": "object",
        "additionalProperties": False,
        "required": ["estimator"],
        "properties": {
            "estimator": {"enum": list(ESTIMATORS)},
            "params": {
                "type": "object",
                "description": "the estimator's parameters, bounded; see x-estimator-params",
            },
            "data": {"const": BUILTIN_DATA, "description": "the built-in iris data (default)"},
        },
        "x-estimator-params": {
            name: params.model_json_schema() for name, params in ESTIMATORS.items()
        },
    }
    csv_columns = ", ".join(COLUMNS)
    return {
        "/flask/models": {
            "get": {
                "summary": "The registered models, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "before", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["models", "next"],
                            "properties": {
                                "models": {"type": "array", "items": _MODEL_SUMMARY},
                                "next": {"type": ["string", "null"]},
                            },
                        },
                        "a page; pass next as before for the next one",
                    ),
                    "400": _error("bad limit or before"),
                },
            },
            "post": {
                "summary": "Queue a training job",
                "description": "JSON trains on the built-in data; a CSV (columns "
                f"{csv_columns}; at most 10 MB) comes as text/csv with estimator and params "
                "(JSON text) in the query, or as multipart/form-data with fields estimator "
                "and params and the file in the part named data. The job runs on the "
                "training queue; its status reports each cross-validation fold, and on "
                "SUCCESS links the model (model_url) and the training report (report_url).",
                "parameters": [
                    {"name": "estimator", "in": "query", "schema": {"enum": list(ESTIMATORS)}},
                    {"name": "params", "in": "query", "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": spec},
                        "text/csv": {"schema": {"type": "string"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "estimator": {"enum": list(ESTIMATORS)},
                                    "params": {"type": "string"},
                                    "data": {"type": "string", "format": "binary"},
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "202": _json(
                        _ref("Accepted"), "queued", Location={"schema": {"type": "string"}}
                    ),
                    "400": _error(
                        "invalid estimator or parameters (fields), or training data with "
                        "problems (problems: row, column and message of the first 20; "
                        "problem_count)"
                    ),
                    "413": _error("body over 10 MB"),
                    "415": _error("unsupported content type"),
                    "429": _error("too many submits from this address (nginx)"),
                    "503": _json(_ref("Error"), "broker unreachable or queue full", **_RETRY_AFTER),
                },
            },
        },
        "/flask/models/{version}": {
            "get": {
                "summary": "A model's card",
                "parameters": [_VERSION],
                "responses": {
                    "200": _json(_MODEL_SUMMARY, "the model, with task_id and card"),
                    "400": _error("malformed version"),
                    "404": _error("no model with this version"),
                },
            }
        },
        "/flask/models/{version}/default": {
            "post": {
                "summary": "Make a READY model the default for new predictions",
                "parameters": [_VERSION],
                "responses": {
                    "200": _json(_MODEL_SUMMARY, "the model, now the default"),
                    "400": _error("malformed version"),
                    "404": _error("no model with this version"),
                    "409": _error("the model is not READY"),
                    "429": _error("too many submits from this address (nginx)"),
                },
            }
        },
    }


def _batch_paths() -> dict[str, Any]:
    """Issue 16: batch predictions from a CSV (batch_views.py)."""
    return {
        "/flask/batch": {
            "post": {
                "summary": "Queue a batch of predictions from a CSV of measurements",
                "description": f"Columns {', '.join(FEATURES)} (any order), at most "
                f"{MAX_BATCH_ROWS} rows, as text/csv (model_version in the query) or "
                "multipart/form-data (the file in the part data, a field model_version). "
                "One job on the prediction queue; its status reports each chunk; on "
                "SUCCESS the result has rows, counts, model_version, csv_url and report_url.",
                "parameters": [{"name": MODEL_VERSION, "in": "query", "schema": _VERSION_SCHEMA}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "data": {"type": "string", "format": "binary"},
                                    MODEL_VERSION: _VERSION_SCHEMA,
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "202": _json(
                        _ref("Accepted"),
                        "queued (also rows, csv_url, model_version)",
                        Location={"schema": {"type": "string"}},
                    ),
                    "400": _error(
                        "a CSV with problems (problems: row, column and message of the "
                        "first 20; problem_count), or an unknown or not-READY model_version"
                    ),
                    "413": _error("body over 10 MB"),
                    "415": _error("unsupported content type"),
                    "429": _error("too many submits from this address (nginx)"),
                    "503": _json(_ref("Error"), "broker unreachable or queue full", **_RETRY_AFTER),
                },
            }
        },
        "/flask/result/{task_id}.csv": {
            "get": {
                "summary": "A finished batch's rows with label and class probabilities",
                "parameters": [_TASK_ID],
                "responses": {
                    "200": {"description": "the result CSV", "content": {"text/csv": {}}},
                    "400": _error("malformed task id"),
                    "404": _error("unknown job, no CSV, or expired"),
                    "409": _error("not finished, or failed"),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """Build the document; cheap enough to build per request, and never stale."""
    status_answers = {
        "200": _json(_ref("Status"), "the job's state"),
        "400": _error("malformed task id; wait not a number with 0 < wait <= 30"),
        "404": _error("no job with this id"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Iris prediction service",
            "version": "1.0.0",
            "description": "Submit four iris measurements; a worker predicts the species "
            "and writes a PDF report; read the status URL with ?wait= (or poll it), "
            "then download the PDF. "
            "OPTIONS on any path answers 204 with Allow listing its methods.",
        },
        "paths": {
            "/flask/predict": {
                "post": {
                    "summary": "Queue a prediction",
                    "description": "Optional model_version (a JSON field or form field, "
                    "besides the measurements): a READY model's version to predict with; "
                    "unknown or not READY is a 400. Without it, the default model at submit.",
                    "parameters": [_IDEMPOTENCY_KEY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("Measurements")},
                            "application/x-www-form-urlencoded": {"schema": _ref("Measurements")},
                        },
                    },
                    "responses": {
                        "200": _json(
                            _ref("Replayed"),
                            "a repeat of an Idempotency-Key: the key's job, nothing queued",
                            **_REPLAYED,
                        ),
                        "202": _json(
                            _ref("Accepted"),
                            "queued",
                            Location={"schema": {"type": "string"}},
                        ),
                        "400": _error(
                            "invalid input, with one message per field; malformed Idempotency-Key"
                        ),
                        "409": _json(
                            _ref("Error"),
                            "the first request with this Idempotency-Key is still in progress",
                            **_RETRY_AFTER,
                        ),
                        "413": _error("body too large"),
                        "415": _error("unsupported content type"),
                        "422": _error("the Idempotency-Key was used with other measurements"),
                        "429": _error("too many submits from this address (nginx)"),
                        "503": _json(
                            _ref("Error"),
                            "broker unreachable or queue full (or, for a repeat, the first "
                            "request with its Idempotency-Key failed)",
                            **_RETRY_AFTER,
                        ),
                    },
                }
            },
            "/flask/status/{task_id}": {
                "get": {
                    "summary": "A job's state",
                    "parameters": [_TASK_ID, _WAIT],
                    "responses": status_answers,
                }
            },
            "/flask/status": {
                "get": {
                    "summary": "A job's state (id in the query)",
                    "parameters": [{**_TASK_ID, "in": "query"}, _WAIT],
                    "responses": status_answers,
                }
            },
            "/flask/result/{task_id}.pdf": {
                "get": {
                    "summary": "The PDF report of a finished job",
                    "parameters": [
                        _TASK_ID,
                        {
                            "name": "inline",
                            "in": "query",
                            "description": "1: Content-Disposition inline (preview)",
                            "schema": {"enum": ["1"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the report",
                            "content": {"application/pdf": {}},
                        },
                        "400": _error("malformed task id"),
                        "404": _error("unknown job, or report expired"),
                        "409": _error("not finished, or failed"),
                    },
                }
            },
            "/flask/result/{task_id}.png": {
                "get": {
                    "summary": "The class probabilities of a finished job as a bar chart",
                    "parameters": [_TASK_ID],
                    "responses": {
                        "200": {"description": "the chart", "content": {"image/png": {}}},
                        "400": _error("malformed task id"),
                        "404": _error("unknown job"),
                        "409": _error("not finished, or failed"),
                    },
                }
            },
            "/flask/tasks": {
                "get": {
                    "summary": "Jobs, newest first",
                    "security": [{}, {"bearer": []}],
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        },
                        {"name": "before", "in": "query", "schema": {"type": "string"}},
                        {"name": "state", "in": "query", "schema": {"enum": TASK_STATES}},
                    ],
                    "responses": {
                        "200": _json(_ref("TaskList"), "a page of jobs"),
                        "400": _error("bad paging or filter"),
                        "401": _error("TASKS_API_TOKEN is set and the bearer token is wrong"),
                    },
                }
            },
            "/flask/tasks/{task_id}/cancel": {
                "post": {
                    "summary": "Cancel a task that has not finished",
                    "description": "The task becomes REVOKED: a queued one never runs, a "
                    "running one stops at its next safe point (or its time limit) and keeps "
                    "no PDF, and it never ends SUCCESS.",
                    "parameters": [_TASK_ID],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("CancelRequest")}},
                    },
                    "responses": {
                        "202": _json(_ref("Status"), "cancelled: the task's status"),
                        "400": _error("malformed task id or body"),
                        "404": _error("no job with this id"),
                        "409": _json(_ref("Conflict"), "the task has already finished"),
                        "415": _error("a body that is not JSON"),
                    },
                }
            },
            "/flask/tasks/{task_id}/retry": {
                "post": {
                    "summary": "Submit a failed or cancelled task again, as a new task",
                    "description": "The new task has the same measurements and its status "
                    "names the original in retry_of.",
                    "parameters": [_TASK_ID],
                    "responses": {
                        "202": _json(
                            _ref("Accepted"),
                            "queued as a new task",
                            Location={"schema": {"type": "string"}},
                        ),
                        "400": _error("malformed task id"),
                        "404": _error("no job with this id"),
                        "409": _json(_ref("Conflict"), "the task is not FAILURE or REVOKED"),
                        "503": _json(
                            _ref("Error"), "broker unreachable or queue full", **_RETRY_AFTER
                        ),
                    },
                }
            },
            "/flask/model": {
                "get": {
                    "summary": "The model card",
                    "responses": {"200": _json({"type": "object"}, "the card")},
                }
            },
            "/flask/health": {
                "get": {
                    "summary": "Broker and database reachability, workers and queue depth",
                    "description": "200 while the broker and the database answer: status "
                    '"ok" when at least one worker consumes the prediction queue, "degraded" '
                    "when none does (submits are accepted but wait). queue.ready counts the "
                    "jobs waiting for a worker; those being worked on are not counted. 503 "
                    "names what is down.",
                    "responses": {
                        "200": _json(_HEALTH, "broker and database up"),
                        "503": _json(_ref("Error"), "broker or database down", **_RETRY_AFTER),
                    },
                }
            },
            "/flask/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format 0.0.4)",
                    "description": "Requests, jobs, queue depth and consumers, result-backend "
                    "size, report bytes (README: Metrics). Readable from the addresses in "
                    "METRICS_ALLOW (default loopback) or with Authorization: Bearer "
                    "<METRICS_TOKEN>; 403 otherwise.",
                    "security": [{}, {"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "every metric",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "403": _error("neither an allowed address nor the token"),
                    },
                }
            },
            **_model_paths(),
            **_batch_paths(),
            "/flask/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
