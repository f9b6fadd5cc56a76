#!/usr/bin/env bash
# The waiter role: status reads with ?wait=, held in one event loop instead of
# gunicorn's threads (iris_service/waiter.py); nginx routes them here. The
# same command runs in the waiter container and in local mode (build.sh).
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-waiter.sh   (env: WAITER_BIND, and config.py's broker and database settings)" >&2
  exit 0
fi
exec python -m iris_service.waiter
