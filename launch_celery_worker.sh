#!/usr/bin/env bash
# Start N more Celery workers (default 1), each with a unique name, in whichever
# mode the system is running: local processes of the stack (pid files in
# $VAR_DIR/run, logs in $VAR_DIR/log, stopped by ./build.sh --stop) or
# containers on the project's network. --list shows the running workers.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

usage() {
  echo "usage: ./launch_celery_worker.sh [N | --list]   (N more workers, default 1; env: VAR_DIR, CELERY_CONCURRENCY)" >&2
}

count=1 list=0
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --list) list=1 ;;
  "") ;;
  *)
    if ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || (($1 > 32)); then
      usage; die "N must be a whole number from 1 to 32, got '$1'"
    fi
    count="$1"
    ;;
esac
(($# <= 1)) || { usage; die "too many arguments"; }

mode="$(require_running_mode)" || exit

# Names in use: worker1 (build.sh's) and worker<K> for every extra one.
local_names() {
  local f
  [[ -e "$RUN_DIR/worker.pid" ]] && echo worker1
  for f in "$RUN_DIR"/worker-*.pid; do
    [[ -e "$f" ]] || continue
    f="${f##*/worker-}"
    echo "${f%.pid}"
  done
}

# A local worker's role (scripts/common.sh's start_role): build.sh's worker1 is
# "worker" (worker.pid, worker.log), an added one "worker-<name>".
worker_role() {  # name
  if [[ "$1" == worker1 ]]; then echo worker; else echo "worker-$1"; fi
}

docker_names() {
  docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" --format '{{.Names}}' \
    | sed "s/^$DOCKER_PROJECT-celery-//"
}

next_name() {  # the lowest worker<K> not in the names on stdin
  local used k
  used="$(cat)"
  for ((k = 2; ; k++)); do
    grep -qx "worker$k" <<<"$used" || { echo "worker$k"; return 0; }
  done
}

list_local() {
  local name role pidfile state
  printf '%-10s %-8s %-8s %s\n' NAME PID STATE LOG
  while read -r name; do
    role="$(worker_role "$name")"
    pidfile="$RUN_DIR/$role.pid"
    if pid_alive "$pidfile"; then state=running; else state=stopped; fi
    printf '%-10s %-8s %-8s %s\n' "$name" "$(cat "$pidfile" 2>/dev/null || echo -)" "$state" "$LOG_DIR/$role.log"
  done < <(local_names)
}

list_docker() {
  docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" \
    --format 'table {{.Names}}\t{{.Status}}\t{{.RunningFor}}'
}

start_local() {  # name
  local name="$1" role
  role="$(worker_role "$name")"
  (cd "$ROOT" && start_role "$role" env WORKER_NAME="$name" "$ROOT/flask/bin/start-worker.sh")
  # Ready means consuming: Celery logs "<name>@<host> ready." once it is.
  wait_for "$role" 120 grep -q "$name@.* ready\." "$LOG_DIR/$role.log"
}

case "$mode" in
  local)
    load_local_env
    if ((list)); then list_local; exit 0; fi
    for ((n = 0; n < count; n++)); do
      start_local "$(local_names | next_name)"
    done
    list_local
    ;;
  docker)
    if ((list)); then list_docker; exit 0; fi
    for ((n = 0; n < count; n++)); do
      name="$(docker_names | next_name)"
      info "starting worker $name (container $DOCKER_PROJECT-celery-$name)"
      docker_run_worker "$name" >/dev/null
    done
    list_docker
    ;;
esac
