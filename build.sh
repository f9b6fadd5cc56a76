#!/usr/bin/env bash
# Build and start the whole system: Docker mode when a Docker engine answers,
# local processes otherwise. See README.md.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

HTTP_PORT="${HTTP_PORT:-8000}"
ROLES=(nginx web worker rabbitmq)  # stop order; start order is the reverse

usage() {
  cat >&2 <<EOF
usage: ./build.sh [--local | --docker] [--stop]
  (no option)  start the system: Docker mode if a Docker engine answers, else local mode
  --local      start as local processes (private RabbitMQ node, worker, gunicorn, nginx)
  --docker     start as Docker containers
  --stop       stop what this checkout started
env: HTTP_PORT (default 8000), VAR_DIR (default ./var: logs, pids, credentials)
EOF
}

mode="" action="start"
while (($#)); do
  case "$1" in
    --local) mode=local ;;
    --docker) mode=docker ;;
    --stop) action=stop ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown option: $1" ;;
  esac
  shift
done
if [[ -z "$mode" ]]; then
  if [[ "$action" == stop && -d "$RUN_DIR" ]] && compgen -G "$RUN_DIR/*.pid" >/dev/null; then
    mode=local
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    mode=docker
  else
    mode=local
  fi
fi

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_role() {
  local role="$1" pidfile="$RUN_DIR/$1.pid" pid i
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid="$(cat "$pidfile")"
  if [[ "$role" == rabbitmq ]]; then
    local_rabbitmqctl stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  # Graceful first (a worker finishes its running job), then forced.
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  info "stopped $role"
}

local_stop() {
  [[ -s "$SECRETS_ENV" && -s "$LOCAL_ENV" ]] || { info "nothing to stop"; return 0; }
  load_local_env
  local role
  for role in "${ROLES[@]}"; do stop_role "$role"; done
  # The private epmd started with our node; leave any system one alone.
  epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

start_role() {
  local role="$1"; shift
  info "starting $role (log: $LOG_DIR/$role.log)"
  setsid nohup "$@" >>"$LOG_DIR/$role.log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/$role.pid"
}

fail_role() {
  local role="$1" log="$LOG_DIR/$1.log"
  echo "error: $role did not come up; last lines of $log:" >&2
  tail -n 25 "$log" >&2 || true
  exit 1
}

wait_for() {  # role, timeout seconds, command...
  local role="$1" limit="$2" i; shift 2
  for ((i = 0; i < limit * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    pid_alive "$RUN_DIR/$role.pid" || fail_role "$role"
    sleep 0.2
  done
  fail_role "$role"
}

local_start() {
  ensure_debs rabbitmq-server rabbitmq-server nginx nginx-light envsubst gettext-base curl curl
  ensure_venv requirements.txt
  ensure_secrets
  ensure_local_env
  load_local_env
  # Re-running is safe: what an earlier run started is stopped first.
  local role
  for role in "${ROLES[@]}"; do stop_role "$role"; done
  mkdir -p "$LOG_DIR/rabbitmq" "$RUN_DIR" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_HOME_DIR" \
    "$REPORTS_DIR" "$(dirname "$MODEL_PATH")"
  chmod 755 "$RUN_DIR" "$REPORTS_DIR"
  : > "$RABBITMQ_CONF_ENV_FILE"
  [[ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ]] || echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"

  start_role rabbitmq env HOME="$RABBITMQ_HOME_DIR" "$ROOT/rabbitmq/start-rabbitmq.sh"
  wait_for rabbitmq 90 local_rabbitmqctl -q await_startup --timeout 5

  [[ -f "$MODEL_PATH" ]] || (cd "$ROOT" && "$ROOT/flask/bin/train-model.sh" >&2)
  # The schema is created once here, before several processes race for it.
  (cd "$ROOT" && python -c 'import iris_service.store as s, os; s.init_schema(s.make_engine(os.environ["DATABASE_URL"], immediate=True, busy_timeout_ms=10000))')

  (cd "$ROOT" && start_role worker "$ROOT/flask/bin/start-worker.sh")
  (cd "$ROOT" && start_role web "$ROOT/flask/bin/start-web.sh")
  start_role nginx "$ROOT/nginx/start-nginx.sh"

  local url="http://127.0.0.1:$HTTP_PORT"
  wait_for web 60 test -S "$RUN_DIR/gunicorn.sock"
  wait_for nginx 30 curl -fsS "$url/flask/health"
  pid_alive "$RUN_DIR/worker.pid" || fail_role worker
  echo "$url/"
}

docker_start() {
  die "Docker mode is not implemented yet (issue 3); run ./build.sh --local"
}

case "$mode/$action" in
  local/start) local_start ;;
  local/stop) local_stop ;;
  docker/start) docker_start ;;
  docker/stop) docker_start ;;
esac
