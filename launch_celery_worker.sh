#!/usr/bin/env bash
# Start N more Celery workers (default 1), each with a unique name, in whichever
# mode the system is running: local processes of the stack (pid files in
# $VAR_DIR/run, logs in $VAR_DIR/log, stopped by ./build.sh --stop) or
# containers on the project's network. Returns once each new worker consumes.
# --list shows the workers; --restart NAME... starts named workers again (one
# that died, or one to restart), under the same name. --queue training starts
# training workers (trainer1, trainer2, ...) instead, which consume training jobs only.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

usage() {
  cat >&2 <<EOF
usage: ./launch_celery_worker.sh [N] [--queue predictions|training] | --list | --restart NAME...
  N                 start N more workers (default 1, at most 32), named worker2, worker3, ...;
                    returns once each consumes
  --queue training  start training workers instead (trainer1, trainer2, ...): they take the
                    training jobs of POST /flask/models, one at a time each
  --list            the workers of the running system (local: pid, state, log; Docker: containers)
  --restart NAME... stop (if running) and start the named workers again, e.g. one that died;
                    returns once each consumes
env: VAR_DIR (default ./var), CELERY_CONCURRENCY, TRAINING_CONCURRENCY (default 1),
     DOCKER_PROJECT (default iris)
EOF
}

count=1 action=start restart=() prefix=worker first=2
# --queue may come first or last beside N.
args=()
while (($#)); do
  case "$1" in
    --queue)
      (($# >= 2)) || { usage; die "--queue needs a queue: predictions or training"; }
      case "$2" in
        predictions) ;;
        training) prefix=trainer first=1 ;;
        *) usage; die "--queue must be predictions or training, got '$2'" ;;
      esac
      shift 2
      ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --list)
    action=list
    (($# <= 1)) || { usage; die "too many arguments"; }
    ;;
  --restart)
    action=restart
    shift
    (($#)) || { usage; die "--restart needs the names of the workers (see --list)"; }
    restart=("$@")
    ;;
  "") ;;
  *)
    if ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || (($1 > 32)); then
      usage; die "N must be a whole number from 1 to 32, got '$1'"
    fi
    count="$1"
    (($# <= 1)) || { usage; die "too many arguments"; }
    ;;
esac

mode="$(require_running_mode)" || exit

next_name() {  # the lowest <prefix><K> not in the names on stdin
  local used k
  used="$(cat)"
  for ((k = first; ; k++)); do
    grep -qx "$prefix$k" <<<"$used" || { echo "$prefix$k"; return 0; }
  done
}

# Refuse names that are not workers of the running system, before touching any.
check_names() {  # known names (one per line), names to restart...
  local known="$1" name; shift
  for name in "$@"; do
    grep -qx -- "$name" <<<"$known" \
      || die "no worker named '$name' in this system (workers: $(echo "$known" | xargs)); see ./launch_celery_worker.sh --list"
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
  done < <(local_workers)
}

list_docker() {
  docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" \
    --format 'table {{.Names}}\t{{.Status}}\t{{.RunningFor}}'
}

# How long a new worker container may take to pass its first health check
# (the image checks every 30 s).
DOCKER_WORKER_TIMEOUT=120

case "$mode/$action" in
  local/list) load_local_env; list_local ;;
  docker/list) list_docker ;;
  local/start)
    load_local_env
    for ((n = 0; n < count; n++)); do
      start_worker "$(local_workers | next_name)"
    done
    list_local
    ;;
  local/restart)
    load_local_env
    check_names "$(local_workers)" "${restart[@]}"
    for name in "${restart[@]}"; do
      # The same role: the same pid file (so --stop stops it) and log.
      stop_role "$(worker_role "$name")"
      start_worker "$name"
    done
    info "restarted workers ${restart[*]}"
    list_local
    ;;
  docker/start)
    started=()
    for ((n = 0; n < count; n++)); do
      name="$(docker_workers | next_name)"
      info "starting worker $name (container $(docker_worker_container "$name"))"
      docker_run_worker "$name" >/dev/null
      started+=("$name")
    done
    for name in "${started[@]}"; do
      docker_wait_healthy "$(docker_worker_container "$name")" "$DOCKER_WORKER_TIMEOUT"
    done
    list_docker
    ;;
  docker/restart)
    check_names "$(docker_workers)" "${restart[@]}"
    for name in "${restart[@]}"; do
      info "restarting worker $name (container $(docker_worker_container "$name"))"
      # Graceful first, as build.sh --stop: the worker finishes or requeues its job.
      docker restart --time 30 "$(docker_worker_container "$name")" >/dev/null
    done
    for name in "${restart[@]}"; do
      docker_wait_healthy "$(docker_worker_container "$name")" "$DOCKER_WORKER_TIMEOUT"
    done
    info "restarted workers ${restart[*]}"
    list_docker
    ;;
esac
