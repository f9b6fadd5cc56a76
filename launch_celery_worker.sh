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

mode="$(running_mode)"
[[ -n "$mode" ]] || die "no running system found for this checkout (VAR_DIR=$VAR_DIR); start it with ./build.sh"

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
  local name pidfile state
  printf '%-10s %-8s %-8s %s\n' NAME PID STATE LOG
  while read -r name; do
    if [[ "$name" == worker1 ]]; then pidfile="$RUN_DIR/worker.pid" log="$LOG_DIR/worker.log"
    else pidfile="$RUN_DIR/worker-$name.pid" log="$LOG_DIR/worker-$name.log"; fi
    if pid_alive "$pidfile"; then state=running; else state=stopped; fi
    printf '%-10s %-8s %-8s %s\n' "$name" "$(cat "$pidfile" 2>/dev/null || echo -)" "$state" "$log"
  done < <(local_names)
}

start_local() {  # name
  local name="$1" pidfile="$RUN_DIR/worker-$1.pid" log="$LOG_DIR/worker-$1.log" pid i
  info "starting worker $name (log: $log)"
  (
    cd "$ROOT"
    WORKER_NAME="$name" setsid nohup "$ROOT/flask/bin/start-worker.sh" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  )
  pid="$(cat "$pidfile")"
  # Ready means consuming: Celery logs "<name>@<host> ready." once it is.
  for ((i = 0; i < 600; i++)); do
    grep -q "$name@.* ready\." "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "error: worker $name did not come up; last lines of $log:" >&2
  tail -n 25 "$log" >&2 || true
  exit 1
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
    if ((list)); then
      docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" \
        --format 'table {{.Names}}\t{{.Status}}\t{{.RunningFor}}'
      exit 0
    fi
    for ((n = 0; n < count; n++)); do
      name="$(docker_names | next_name)"
      info "starting worker $name (container $DOCKER_PROJECT-celery-$name)"
      docker_run_worker "$name" >/dev/null
    done
    docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" \
      --format 'table {{.Names}}\t{{.Status}}\t{{.RunningFor}}'
    ;;
esac
