#!/usr/bin/env bash
# Container health checks (the images' HEALTHCHECK), also runnable in local mode:
#   web     GET /flask/health from gunicorn at GUNICORN_BIND (host:port or unix:path)
#   worker  a Celery ping to this worker (WORKER_NAME@hostname) answers
# The checks live in iris_service/healthcheck.py; this is its launcher.
set -o errexit -o nounset -o pipefail
usage() { echo "usage: healthcheck.sh web|worker   (env: GUNICORN_BIND, WORKER_NAME)" >&2; }
case "${1:-}" in
  web|worker) ;;
  -h|--help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac
# By path, not "python -m iris_service.healthcheck": -m would first import the
# package, and Flask, Celery and SQLAlchemy with it, at every check. -I keeps the
# file's own folder (and PYTHON* variables) off the interpreter's import path.
exec python -I "$(dirname "${BASH_SOURCE[0]}")/../src/iris_service/healthcheck.py" "$1"
