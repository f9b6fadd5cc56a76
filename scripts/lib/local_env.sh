# shellcheck shell=bash
# Local mode's configuration: the generated broker credentials, the private
# RabbitMQ node's ports and name, and load_local_env, which exports everything
# local mode's processes read. Part of scripts/common.sh; sourced, never executed.

# A free TCP port, by the one rule every port of this project is picked with
# (scripts/localstack.py says why it is below 30000).
free_port() {
  python3 "$ROOT/scripts/localstack.py" free-port
}

# Generated once: the broker credentials every role reads, and Flower's
# (git-ignored). A file from before Flower existed gains Flower's and keeps
# the rest.
ensure_secrets() {
  mkdir -p "$VAR_DIR"
  chmod 755 "$VAR_DIR"
  if [[ ! -s "$SECRETS_ENV" ]]; then
    (
      umask 077
      {
        echo "RABBITMQ_USER=iris"
        echo "RABBITMQ_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        echo "RABBITMQ_VHOST=iris"
      } > "$SECRETS_ENV"
    )
    info "generated broker credentials in $SECRETS_ENV"
  fi
  # issue 14 part D: Flower's login (nginx's basic auth at /flower/, and Flower's own).
  if ! grep -q '^FLOWER_PASSWORD=' "$SECRETS_ENV"; then
    {
      echo "FLOWER_USER=admin"
      echo "FLOWER_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    } >> "$SECRETS_ENV"
    info "generated Flower's password in $SECRETS_ENV"
  fi
}

# Local mode's private RabbitMQ node: its own ports and name, chosen once;
# and Flower's port (added to a file from before Flower existed).
ensure_local_env() {
  if [[ ! -s "$LOCAL_ENV" ]]; then
    {
      echo "RABBITMQ_PORT=$(free_port)"
      echo "RABBITMQ_DIST_PORT=$(free_port)"
      echo "ERL_EPMD_PORT=$(free_port)"
      echo "RABBITMQ_NODENAME=iris-$(python3 -c 'import secrets; print(secrets.token_hex(4))')@localhost"
    } > "$LOCAL_ENV"
  fi
  grep -q '^FLOWER_PORT=' "$LOCAL_ENV" || echo "FLOWER_PORT=$(free_port)" >> "$LOCAL_ENV"
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
  # issue 14 part C: every process of the stack writes its Prometheus metrics
  # here (prometheus-client's multiprocess mode) and /flask/metrics merges
  # them; it must be set before any process imports prometheus_client.
  export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$RUN_DIR/prometheus}"
  export DOCUMENT_ROOT="${DOCUMENT_ROOT:-$ROOT/document_root}"
  export MODEL_PATH="${MODEL_PATH:-$VAR_DIR/model/iris_model.json}"
  export MODELS_DIR="${MODELS_DIR:-$VAR_DIR/models}"
  export GUNICORN_BIND="unix:$RUN_DIR/gunicorn.sock"
  export FLASK_UPSTREAM="unix:$RUN_DIR/gunicorn.sock"
  export WAITER_BIND="unix:$RUN_DIR/waiter.sock" WAITER_UPSTREAM="unix:$RUN_DIR/waiter.sock"
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
