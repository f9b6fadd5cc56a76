# shellcheck shell=bash
# Local mode's process supervision: each process of the stack runs detached
# under a role name, with its pid file $RUN_DIR/<role>.pid and its log
# $LOG_DIR/<role>.log; starting, waiting for, stopping roles, and the Celery
# workers among them (worker1 is role "worker", an added worker <name> is role
# "worker-<name>"). Part of scripts/common.sh; sourced, never executed; the
# functions expect load_local_env to have run.

# A killed process stays a zombie until its parent reaps it, and kill -0
# still reaches a zombie: its state (after the ") " in /proc/PID/stat) says.
pid_alive() {
  [[ -s "$1" ]] || return 1
  local pid stat
  pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "${stat##*) }" != Z* ]]
}

# A local process of the stack, detached, under a role name.
start_role() {  # role, command...
  local role="$1"; shift
  info "starting $role (log: $LOG_DIR/$role.log)"
  setsid nohup "$@" >>"$LOG_DIR/$role.log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/$role.pid"
}

fail_role() {  # role
  local role="$1" log="$LOG_DIR/$1.log"
  echo "error: $role did not come up; last lines of $log:" >&2
  tail -n 25 "$log" >&2 || true
  exit 1
}

# Until the command succeeds; fails the role when its process dies or time runs out.
wait_for() {  # role, timeout seconds, command...
  local role="$1" limit="$2" i; shift 2
  for ((i = 0; i < limit * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    pid_alive "$RUN_DIR/$role.pid" || fail_role "$role"
    sleep 0.2
  done
  fail_role "$role"
}

# Stop a role, graceful first (a worker finishes its running job), then forced
# after 30 s; forget its pid file either way.
stop_role() {  # role
  local role="$1" pidfile="$RUN_DIR/$1.pid" pid i
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid="$(cat "$pidfile")"
  if [[ "$role" == rabbitmq ]]; then
    local_rabbitmqctl stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  info "stopped $role"
}

# --- Celery workers ---------------------------------------------------------

# Issue 16: a worker named trainer<K> consumes the training queue, one job at a
# time (TRAINING_CONCURRENCY); the others consume predictions. The name says
# which, so a restart (launch_celery_worker.sh --restart, build.sh) keeps it.
worker_env() {  # worker name: the env assignments that start it
  if [[ "$1" == trainer* ]]; then
    echo "WORKER_QUEUES=${TRAINING_QUEUE_NAME:-training}"
    echo "CELERY_CONCURRENCY=${TRAINING_CONCURRENCY:-1}"
  fi
}

worker_role() {  # worker name
  if [[ "$1" == worker1 ]]; then echo worker; else echo "worker-$1"; fi
}

# Every worker this checkout started and did not stop (it has a pid file, its
# process may have died since): worker1 first, then the added ones.
local_workers() {
  local f
  if [[ -e "$RUN_DIR/worker.pid" ]]; then echo worker1; fi
  for f in "$RUN_DIR"/worker-*.pid; do
    [[ -e "$f" ]] || continue
    f="${f##*/worker-}"
    echo "${f%.pid}"
  done
}

# Whether the file has a line matching the pattern from byte offset FROM on
# (tail -c +FROM). Not a pipe into grep -q: under pipefail, tail killed by
# SIGPIPE after an early match would turn the match into a failure.
_log_has_since() {  # file, from, pattern
  grep -q -- "$3" < <(tail -c "+$2" "$1")
}

# Start a worker under its role and return once it consumes: Celery logs
# "<name>@<host> ready." then. The log is appended to across restarts, so only
# what this start writes counts.
start_worker() {  # worker name
  local name="$1" role log from
  role="$(worker_role "$name")"
  log="$LOG_DIR/$role.log"
  from=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))
  local queue_env
  mapfile -t queue_env < <(worker_env "$name")
  (cd "$ROOT" && start_role "$role" env WORKER_NAME="$name" "${queue_env[@]}" "$ROOT/flask/bin/start-worker.sh")
  wait_for "$role" 120 _log_has_since "$log" "$from" "$name@.* ready\."
}
