#!/usr/bin/env bash
# The worker role: one Celery worker consuming the prediction queue. The same
# command runs in the celery container and in local mode.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-worker.sh   (env: WORKER_NAME, CELERY_CONCURRENCY, QUEUE_NAME, LOG_LEVEL)" >&2
  exit 0
fi
exec celery --app iris_service.worker worker \
  --hostname "${WORKER_NAME:-worker1}@%h" \
  --queues "${QUEUE_NAME:-predictions}" \
  --concurrency "${CELERY_CONCURRENCY:-2}" \
  --loglevel "${LOG_LEVEL:-INFO}" \
  --without-gossip --without-mingle
