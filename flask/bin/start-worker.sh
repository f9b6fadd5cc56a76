#!/usr/bin/env bash
# The worker role: one Celery worker consuming the prediction queue, or the
# training queue for a training worker (WORKER_QUEUES=training). The same
# command runs in the celery container and in local mode.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-worker.sh   (env: WORKER_NAME, CELERY_CONCURRENCY, QUEUE_NAME, WORKER_QUEUES, LOG_LEVEL, FLOWER)" >&2
  exit 0
fi
# Task events (a message to the broker at each state of each job) have one
# reader, Flower: they are on only when it runs (FLOWER=1). Flower also turns
# them on, every few seconds, in a worker started without them.
events=()
if [[ "${FLOWER:-0}" == 1 ]]; then events=(--task-events); fi
exec celery --app iris_service.worker worker \
  --hostname "${WORKER_NAME:-worker1}@%h" \
  --queues "${WORKER_QUEUES:-${QUEUE_NAME:-predictions}}" \
  --concurrency "${CELERY_CONCURRENCY:-2}" \
  --loglevel "${LOG_LEVEL:-INFO}" \
  --without-gossip --without-mingle \
  "${events[@]}"
