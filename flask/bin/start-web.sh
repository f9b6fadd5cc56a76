#!/usr/bin/env bash
# The web role: gunicorn serving the Flask app. The same command runs in the
# flask container and in local mode (build.sh), so the tests exercise it.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-web.sh   (env: GUNICORN_BIND, WEB_CONCURRENCY, GUNICORN_THREADS, and config.py's)" >&2
  exit 0
fi
exec gunicorn --config python:iris_service.gunicorn_conf 'iris_service:create_app()'
