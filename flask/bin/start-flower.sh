#!/usr/bin/env bash
# The optional flower role (FLOWER=1): Flower, Celery's monitor, on the broker
# the workers use, serving its pages under /flower/ for nginx to proxy. The
# same command runs in the flower container and in local mode.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-flower.sh   (env: FLOWER_USER, FLOWER_PASSWORD, FLOWER_ADDRESS, FLOWER_PORT, and config.py's broker settings)" >&2
  exit 0
fi
: "${FLOWER_USER:?the generated secrets file sets it}" "${FLOWER_PASSWORD:?the generated secrets file sets it}"
# nginx asks for the password at /flower/; Flower asks for it as well, so its
# own port (loopback locally, the private network in Docker mode) is no way
# round it. Flower reads FLOWER_<OPTION> variables: the password never
# appears on a command line.
export FLOWER_BASIC_AUTH="$FLOWER_USER:$FLOWER_PASSWORD"
# --read_only: jobs are cancelled and retried through the service's API, which
# keeps its records; Flower's revoke, apply and worker shutdown would not.
# --max_tasks bounds the task history Flower keeps in memory.
exec celery --app iris_service.flower_app flower \
  --address="${FLOWER_ADDRESS:-127.0.0.1}" \
  --port="${FLOWER_PORT:-5555}" \
  --url_prefix=flower \
  --read_only=true \
  --max_tasks=10000
