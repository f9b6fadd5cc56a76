# shellcheck shell=bash
# Shared helpers for build.sh, run_tests.sh and the operating scripts.
# Sourced, never executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR_DIR="${VAR_DIR:-$ROOT/var}"
VENV="${VENV:-$ROOT/.venv}"
SECRETS_ENV="$VAR_DIR/secrets.env"
LOCAL_ENV="$VAR_DIR/local.env"
LOG_DIR="$VAR_DIR/log"
RUN_DIR="$VAR_DIR/run"

die() { echo "error: $*" >&2; exit 1; }
info() { echo "==> $*" >&2; }

# What local mode needs (build.sh, run_tests.sh, bench/run_benchmark.sh), as
# ensure_debs pairs: command, Debian package.
# shellcheck disable=SC2034  # used by the scripts that source this file
LOCAL_MODE_DEBS=(rabbitmq-server rabbitmq-server nginx nginx-light envsubst gettext-base curl curl)

# Install Debian packages that are missing, or say exactly what to install.
ensure_debs() {
  local missing=() cmd pkg
  while (($#)); do
    cmd="$1" pkg="$2"; shift 2
    # A bare name is looked up on PATH only: "nginx" must not match the
    # checkout's nginx/ folder when the caller runs from the repository root.
    if [[ "$cmd" == */* ]]; then
      [[ -x "$cmd" ]] && continue
    elif command -v "$cmd" >/dev/null 2>&1; then
      continue
    fi
    missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    info "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    die "missing system packages; install them with: sudo apt-get install ${missing[*]}"
  fi
}

# Create the virtual environment and install the pinned requirements once per
# change of the requirement file (a stamp records what was installed).
ensure_venv() {
  local req="$ROOT/flask/${1:-requirements.txt}" stamp sum
  [[ -x "$VENV/bin/python" ]] || { info "creating $VENV"; python3 -m venv "$VENV"; }
  sum="$(cat "$ROOT/flask/requirements.txt" "$req" "$ROOT/flask/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  stamp="$VENV/.installed-$(basename "$req")"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
    info "installing pinned packages from flask/$(basename "$req")"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT/flask" >&2
    echo "$sum" > "$stamp"
  fi
}

# A free TCP port, by the one rule every port of this project is picked with
# (scripts/localstack.py says why it is below 30000).
free_port() {
  python3 "$ROOT/scripts/localstack.py" free-port
}

# Generated once: the broker credentials every role reads (git-ignored).
ensure_secrets() {
  mkdir -p "$VAR_DIR"
  chmod 755 "$VAR_DIR"
  [[ -s "$SECRETS_ENV" ]] && return 0
  (
    umask 077
    {
      echo "RABBITMQ_USER=iris"
      echo "RABBITMQ_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
      echo "RABBITMQ_VHOST=iris"
    } > "$SECRETS_ENV"
  )
  info "generated broker credentials in $SECRETS_ENV"
}

# Local mode's private RabbitMQ node: its own ports and name, chosen once.
ensure_local_env() {
  [[ -s "$LOCAL_ENV" ]] && return 0
  {
    echo "RABBITMQ_PORT=$(free_port)"
    echo "RABBITMQ_DIST_PORT=$(free_port)"
    echo "ERL_EPMD_PORT=$(free_port)"
    echo "RABBITMQ_NODENAME=iris-$(python3 -c 'import secrets; print(secrets.token_hex(4))')@localhost"
  } > "$LOCAL_ENV"
}

# Everything local mode's processes need, exported.
load_local_env() {
  set -a
  # shellcheck source=/dev/null
  . "$SECRETS_ENV"
  # shellcheck source=/dev/null
  . "$LOCAL_ENV"
  set +a
  export RABBITMQ_HOST=127.0.0.1
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="${RABBITMQ_PORT:?}"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$VAR_DIR/rabbitmq/data"
  export RABBITMQ_LOG_BASE="$LOG_DIR/rabbitmq"
  export RABBITMQ_CONFIG_FILE="$VAR_DIR/rabbitmq/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$VAR_DIR/rabbitmq/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$VAR_DIR/rabbitmq/rabbitmq-env.conf"
  export RABBITMQ_PID_FILE="$RUN_DIR/rabbitmq.pid"
  export RABBITMQ_HOME_DIR="$VAR_DIR/rabbitmq/home"
  # Bypass Debian's wrapper, which would switch to the system rabbitmq user.
  export RABBITMQ_SERVER_BIN=/usr/lib/rabbitmq/bin/rabbitmq-server
  export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export DATABASE_URL="${DATABASE_URL:-sqlite:///$ROOT/db/results.sqlite}"
  export REPORTS_DIR="${REPORTS_DIR:-$ROOT/document_root/reports}"
  # The status files nginx answers polls from are a cache: on tmpfs when there
  # is one (file creation is slow on disk), one folder per stack.
  if [[ -z "${STATUS_DIR:-}" ]]; then
    if [[ -d /dev/shm && -w /dev/shm ]]; then
      STATUS_DIR="/dev/shm/iris-status-$(printf '%s' "$VAR_DIR" | sha256sum | cut -c1-12)"
    else
      STATUS_DIR="$RUN_DIR/status"
    fi
  fi
  export STATUS_DIR
  export DOCUMENT_ROOT="${DOCUMENT_ROOT:-$ROOT/document_root}"
  export MODEL_PATH="${MODEL_PATH:-$VAR_DIR/model/iris_model.json}"
  export GUNICORN_BIND="unix:$RUN_DIR/gunicorn.sock"
  export FLASK_UPSTREAM="unix:$RUN_DIR/gunicorn.sock"
  export NGINX_LISTEN="127.0.0.1:${HTTP_PORT:-8000}"
  export NGINX_RUN_DIR="$RUN_DIR/nginx"
  export NGINX_ERROR_LOG="$LOG_DIR/nginx-error.log"
  export NGINX_ACCESS_LOG="$LOG_DIR/nginx-access.log"
  # Off in local mode, so a load test from one address measures the service.
  export SUBMIT_RATE_LIMIT="${SUBMIT_RATE_LIMIT:-off}"
  export PATH="$VENV/bin:$PATH"
}

# rabbitmqctl against the private node (the cookie lives in its own HOME).
local_rabbitmqctl() {
  HOME="$RABBITMQ_HOME_DIR" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A local process of the stack, detached, under a role name that gives its pid
# file $RUN_DIR/<role>.pid and its log $LOG_DIR/<role>.log (after load_local_env).
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

# ---------------------------------------------------------------------------
# Docker mode: names shared by build.sh and the operating scripts.
DOCKER_PROJECT="${DOCKER_PROJECT:-iris}"
# shellcheck disable=SC2034  # these are used by the scripts that source this file
DOCKER_NETWORK="$DOCKER_PROJECT-net"
# shellcheck disable=SC2034
RABBITMQ_VOLUME="$DOCKER_PROJECT-rabbitmq-data"
IMAGE_TAG="${IMAGE_TAG:-latest}"
# Containers reach each other by these names (container hostname + network alias).
C_RABBITMQ="$DOCKER_PROJECT-rabbitmq"
# shellcheck disable=SC2034
C_WEB="$DOCKER_PROJECT-flask"
# shellcheck disable=SC2034
C_NGINX="$DOCKER_PROJECT-nginx"
DRY_RUN=0  # build.sh --dry-run sets it (never from the environment)

# Run docker, or under --dry-run print the command (shell-quoted, one line) on
# fd 3, which build.sh opens on stdout for a dry run only.
dk() {
  if ((DRY_RUN)); then
    local line
    printf -v line '%q ' docker "$@"
    echo "${line% }" >&3
    return 0
  fi
  docker "$@"
}

docker_engine_up() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# The options every container gets: the named network, the restart policy, no
# privilege escalation, a project label (for --stop and --list).
docker_common_opts() {  # container name, role
  printf '%s\n' --detach --name "$1" --label "$DOCKER_PROJECT.role=$2" \
    --network "$DOCKER_NETWORK" --restart unless-stopped \
    --security-opt no-new-privileges --cap-drop ALL
}

# One Celery worker container; build.sh starts worker1, launch_celery_worker.sh more.
docker_run_worker() {  # worker name (worker1, worker2, ...)
  local name="$1" opts
  mapfile -t opts < <(docker_common_opts "$DOCKER_PROJECT-celery-$name" worker)
  dk run "${opts[@]}" --hostname "celery-$name" \
    --env-file "$SECRETS_ENV" --env "WORKER_NAME=$name" \
    --volume "$ROOT/db:/app/db" \
    --volume "$ROOT/document_root/reports:/app/document_root/reports" \
    "$DOCKER_PROJECT-celery:$IMAGE_TAG"
}

# Which mode is running for this checkout: "local", "docker" or "" (nothing).
running_mode() {
  local pidfile
  if [[ -s "$LOCAL_ENV" ]]; then
    for pidfile in "$RUN_DIR"/*.pid; do
      if pid_alive "$pidfile"; then echo local; return 0; fi
    done
  fi
  if docker_engine_up && [[ -n "$(docker ps --quiet --filter "label=$DOCKER_PROJECT.role")" ]]; then
    echo docker
  fi
}

# The running mode, or die saying there is none (for mode="$(require_running_mode)").
require_running_mode() {
  local mode
  mode="$(running_mode)"
  [[ -n "$mode" ]] || die "no running system found for this checkout (VAR_DIR=$VAR_DIR); start it with ./build.sh"
  echo "$mode"
}

# One tab-separated line per queue: name, ready, unacked, consumers. Fails with
# a message naming the broker when it does not answer.
queue_stats() {  # mode
  local vhost broker ctl
  vhost="$(sed -n 's/^RABBITMQ_VHOST=//p' "$SECRETS_ENV" 2>/dev/null)"
  case "$1" in
    local)
      load_local_env
      ctl=(local_rabbitmqctl) broker="local node $RABBITMQ_NODENAME"
      ;;
    docker)
      ctl=(docker exec "$C_RABBITMQ" rabbitmqctl) broker="container $C_RABBITMQ"
      ;;
    *)
      echo "error: the broker is down: no running system found for this checkout (VAR_DIR=$VAR_DIR); start it with ./build.sh" >&2
      return 3
      ;;
  esac
  "${ctl[@]}" -q list_queues -p "${vhost:-iris}" --no-table-headers --timeout 10 \
    name messages_ready messages_unacknowledged consumers 2>/dev/null \
    || { echo "error: the broker ($broker) is not answering" >&2; return 3; }
}
