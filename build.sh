#!/usr/bin/env bash
# Build and start the whole system: Docker mode when a Docker engine answers,
# local processes otherwise. See README.md.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

HTTP_PORT="${HTTP_PORT:-8000}"
HTTP_BIND="${HTTP_BIND:-127.0.0.1}"
ROLES=(nginx flower waiter web worker rabbitmq)  # stop order; start order is the reverse

usage() {
  cat >&2 <<EOF
usage: ./build.sh [--local | --docker] [--stop [--purge]] [--dry-run]
  (no option)  start the system: Docker mode if a Docker engine answers, else local mode;
               a re-run restarts it, with the workers launch_celery_worker.sh added
  --local      start as local processes (private RabbitMQ node, worker, gunicorn, nginx)
  --docker     build the four images, start them as containers on a named bridge network
  --stop       stop what this checkout started (local processes or containers)
  --purge      with --stop in Docker mode: also remove the network and the broker's volume
  --dry-run    Docker mode: print every docker command in order, run none
env: HTTP_PORT (default 8000), HTTP_BIND (Docker mode's published address, default
     127.0.0.1), VAR_DIR (default ./var: logs, pids, credentials), DOCKER_PROJECT (default iris),
     FLOWER=1 (also start Flower, at /flower/ behind a generated password; off by default);
     Docker builds: PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_CERT (a CA
     bundle file), PYTHON_IMAGE, NGINX_IMAGE, RABBITMQ_IMAGE, DOCKER_BUILD_NETWORK
EOF
}

mode="" action="start" purge=0
while (($#)); do
  case "$1" in
    --local) mode=local ;;
    --docker) mode=docker ;;
    --stop) action=stop ;;
    --purge) purge=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown option: $1" ;;
  esac
  shift
done
# dk (scripts/common.sh) prints the dry-run plan on fd 3: stdout. Only then:
# processes started in local mode must not inherit a copy of our stdout.
if ((DRY_RUN)); then exec 3>&1; fi
if [[ -z "$mode" ]]; then
  if [[ "$action" == stop && -d "$RUN_DIR" ]] && compgen -G "$RUN_DIR/*.pid" >/dev/null; then
    mode=local
  elif ((DRY_RUN)) || docker_engine_up; then
    mode=docker
  else
    mode=local
  fi
fi
[[ "$mode" == docker ]] || ((!DRY_RUN)) || die "--dry-run applies to Docker mode only"
((!purge)) || [[ "$mode/$action" == docker/stop ]] || die "--purge goes with --stop in Docker mode"
# The workers read it too: their task events are on only with Flower.
if flower_enabled; then export FLOWER=1; else export FLOWER=0; fi

# Workers added by launch_celery_worker.sh: pid files worker-<name>.pid.
stop_extra_workers() {
  local pidfile
  for pidfile in "$RUN_DIR"/worker-*.pid; do
    [[ -e "$pidfile" ]] || continue
    pidfile="${pidfile##*/}"
    stop_role "${pidfile%.pid}"
  done
}

# Every local process of this checkout (added workers first), and the status
# files: a cache of the database, rebuilt by the next writes (and status files
# of an earlier run may be older than the database).
stop_local_processes() {
  stop_extra_workers
  local role
  for role in "${ROLES[@]}"; do stop_role "$role"; done
  # The metrics files too: the next run's processes count from zero.
  rm -rf "$STATUS_DIR" "$PROMETHEUS_MULTIPROC_DIR"
}

local_stop() {
  [[ -s "$SECRETS_ENV" && -s "$LOCAL_ENV" ]] || { info "nothing to stop"; return 0; }
  load_local_env
  stop_local_processes
  # The private epmd started with our node; leave any system one alone.
  epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

local_start() {
  ensure_debs "${LOCAL_MODE_DEBS[@]}"
  if flower_enabled; then ensure_debs openssl openssl; fi
  ensure_venv requirements.txt
  ensure_secrets
  ensure_local_env
  load_local_env
  # Re-running is safe: what an earlier run started is stopped first, and the
  # status files start empty. The workers launch_celery_worker.sh added are
  # started again, under the same names, once the rest is up.
  local extra name
  mapfile -t extra < <(local_workers | grep -vx worker1)
  stop_local_processes
  mkdir -p "$LOG_DIR/rabbitmq" "$RUN_DIR" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_HOME_DIR" \
    "$REPORTS_DIR" "$(dirname "$MODEL_PATH")" "$STATUS_DIR" "$PROMETHEUS_MULTIPROC_DIR"
  chmod 755 "$RUN_DIR" "$REPORTS_DIR" "$STATUS_DIR"
  : > "$RABBITMQ_CONF_ENV_FILE"
  [[ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ]] || echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"

  start_role rabbitmq env HOME="$RABBITMQ_HOME_DIR" "$ROOT/rabbitmq/start-rabbitmq.sh"
  wait_for rabbitmq 90 local_rabbitmqctl -q await_startup --timeout 5

  [[ -f "$MODEL_PATH" ]] || (cd "$ROOT" && "$ROOT/flask/bin/train-model.sh" >&2)
  # The schema is created once here, before several processes race for it.
  # Its log lines go to stderr: build.sh's stdout is the URL alone.
  (cd "$ROOT" && flask --app iris_service init-db >&2)

  # The worker starts beside the web app (both take seconds to import), and
  # build.sh returns only once it consumes, as launch_celery_worker.sh does.
  local worker_log="$LOG_DIR/worker.log" from
  from=$(($(stat -c %s "$worker_log" 2>/dev/null || echo 0) + 1))
  (cd "$ROOT" && start_role worker "$ROOT/flask/bin/start-worker.sh")
  (cd "$ROOT" && start_role web "$ROOT/flask/bin/start-web.sh")
  (cd "$ROOT" && start_role waiter "$ROOT/flask/bin/start-waiter.sh")
  # Flower on loopback, behind nginx's /flower/ (start-nginx.sh proxies it
  # only when FLOWER_UPSTREAM is set).
  unset FLOWER_UPSTREAM FLOWER_HTPASSWD
  if flower_enabled; then
    write_flower_htpasswd
    export FLOWER_ADDRESS=127.0.0.1 FLOWER_PORT="${FLOWER_PORT:?}"
    (cd "$ROOT" && start_role flower "$ROOT/flask/bin/start-flower.sh")
    export FLOWER_UPSTREAM="127.0.0.1:$FLOWER_PORT" FLOWER_HTPASSWD="$FLOWER_HTPASSWD_FILE"
  fi
  start_role nginx "$ROOT/nginx/start-nginx.sh"

  local url="http://127.0.0.1:$HTTP_PORT"
  wait_for web 60 test -S "$RUN_DIR/gunicorn.sock"
  wait_for waiter 60 test -S "$RUN_DIR/waiter.sock"
  if flower_enabled; then
    wait_for flower 60 curl -fsS "http://$FLOWER_UPSTREAM/flower/healthcheck"
  fi
  wait_for nginx 30 curl -fsS "$url/flask/health"
  wait_for worker 120 _log_has_since "$worker_log" "$from" "${WORKER_NAME:-worker1}@.* ready\."
  for name in "${extra[@]}"; do start_worker "$name"; done
  ((${#extra[@]} == 0)) || info "restarted workers ${extra[*]}"
  echo "$url/"
}

# ---------------------------------------------------------------------------
# Docker mode. Every docker command goes through dk, so --dry-run prints the
# exact plan. The containers run the same start scripts as local mode (each
# image's CMD/ENTRYPOINT); build.sh only passes the environment and mounts.

# Containers of this project, from this run or an earlier one (any role, any
# number of workers), one "name role" line each. The dry run shows the case
# where an earlier run left them, with a worker launch_celery_worker.sh added.
docker_project_containers() {
  local format="{{.Names}} {{.Label \"$DOCKER_PROJECT.role\"}}"
  if ((DRY_RUN)); then
    dk ps --all --filter "label=$DOCKER_PROJECT.role" --format "$format"
    local pretend=("$C_NGINX nginx" "$C_WAITER waiter" "$C_WEB web" "$(docker_worker_container worker1) worker"
      "$(docker_worker_container worker2) worker" "$C_RABBITMQ rabbitmq")
    if flower_enabled; then pretend+=("$C_FLOWER flower"); fi
    echo "# supposing an earlier run left these (worker2 from launch_celery_worker.sh):" >&3
    printf '#   %s\n' "${pretend[@]}" >&3
    printf '%s\n' "${pretend[@]}"
  else
    docker ps --all --filter "label=$DOCKER_PROJECT.role" --format "$format"
  fi
}

docker_remove_containers() {  # container names...
  (($#)) || return 0
  # Graceful first: a worker finishes (or requeues) its job, nginx drains.
  dk stop --time 30 "$@" >/dev/null
  dk rm "$@" >/dev/null
}

docker_start() {
  ((DRY_RUN)) || docker_engine_up \
    || die "no Docker engine answers (docker info failed); use ./build.sh --local"
  if ((DRY_RUN)); then
    info "dry run: printing the docker commands, running none"
  else
    if flower_enabled; then ensure_debs openssl openssl; fi
    ensure_secrets
  fi
  # Files the containers write to the bind mounts belong to the invoking user:
  # the app image's user gets that uid (root on the host: a fixed unprivileged one).
  local uid gid
  uid="$(id -u)" gid="$(id -g)"
  if [[ "$uid" == 0 ]]; then uid=10001 gid=10001; fi
  if ((!DRY_RUN)); then
    mkdir -p "$ROOT/db" "$ROOT/document_root/reports"
    chmod 755 "$ROOT/document_root/reports"  # nginx (uid 101) reads the PDFs
    if [[ "$(id -u)" == 0 ]]; then
      chown -R "$uid:$gid" "$ROOT/db" "$ROOT/document_root/reports"
    fi
  fi

  if flower_enabled; then
    info "building the four images, and Flower's"
  else
    info "building the four images"
  fi
  # Their output goes to stderr: build.sh's stdout is the URL alone.
  local py ng rb
  mapfile -t py < <(docker_build_opts python)
  mapfile -t ng < <(docker_build_opts nginx)
  mapfile -t rb < <(docker_build_opts rabbitmq)
  docker_build_ca_bundle
  dk build "${rb[@]}" --file "$ROOT/rabbitmq/Dockerfile" --tag "$DOCKER_PROJECT-rabbitmq:$IMAGE_TAG" "$ROOT" >&2
  dk build "${py[@]}" --file "$ROOT/flask/Dockerfile" --target web \
    --build-arg "APP_UID=$uid" --build-arg "APP_GID=$gid" \
    --tag "$DOCKER_PROJECT-flask:$IMAGE_TAG" "$ROOT" >&2
  dk build "${py[@]}" --file "$ROOT/flask/Dockerfile" --target celery \
    --build-arg "APP_UID=$uid" --build-arg "APP_GID=$gid" \
    --tag "$DOCKER_PROJECT-celery:$IMAGE_TAG" "$ROOT" >&2
  if flower_enabled; then
    dk build "${py[@]}" --file "$ROOT/flask/Dockerfile" --target flower \
      --build-arg "APP_UID=$uid" --build-arg "APP_GID=$gid" \
      --tag "$DOCKER_PROJECT-flower:$IMAGE_TAG" "$ROOT" >&2
  fi
  dk build "${ng[@]}" --file "$ROOT/nginx/Dockerfile" --tag "$DOCKER_PROJECT-nginx:$IMAGE_TAG" "$ROOT" >&2

  if ((DRY_RUN)) || ! docker network inspect "$DOCKER_NETWORK" >/dev/null 2>&1; then
    dk network create --driver bridge "$DOCKER_NETWORK" >/dev/null
  fi
  # Workers launch_celery_worker.sh added are started again under their names.
  local containers=() extra=() name role
  while read -r name role; do
    containers+=("$name")
    if [[ "$role" == worker && "$name" != "$(docker_worker_container worker1)" ]]; then
      extra+=("${name#"$DOCKER_PROJECT-celery-"}")
    fi
  done < <(docker_project_containers)
  docker_remove_containers "${containers[@]}"

  local opts
  info "starting RabbitMQ ($C_RABBITMQ)"
  mapfile -t opts < <(docker_common_opts "$C_RABBITMQ" rabbitmq)
  dk run "${opts[@]}" --hostname rabbitmq --network-alias rabbitmq \
    --env-file "$SECRETS_ENV" \
    --volume "$RABBITMQ_VOLUME:/var/lib/rabbitmq" \
    "$DOCKER_PROJECT-rabbitmq:$IMAGE_TAG" >/dev/null
  docker_wait_healthy "$C_RABBITMQ" 120

  info "starting the web app ($C_WEB) and the workers"
  mapfile -t opts < <(docker_common_opts "$C_WEB" web)
  dk run "${opts[@]}" --hostname flask --network-alias flask \
    --env-file "$SECRETS_ENV" \
    --volume "$ROOT/db:/app/db" \
    --volume "$ROOT/document_root/reports:/app/document_root/reports" \
    "$DOCKER_PROJECT-flask:$IMAGE_TAG" >/dev/null
  for name in worker1 "${extra[@]}"; do docker_run_worker "$name" >/dev/null; done
  docker_wait_healthy "$C_WEB" 120
  for name in worker1 "${extra[@]}"; do
    docker_wait_healthy "$(docker_worker_container "$name")" 120
  done
  ((${#extra[@]} == 0)) || info "restarted workers ${extra[*]}"
  # Before nginx, which resolves its name at start.
  info "starting the waiter ($C_WAITER)"
  docker_run_waiter >/dev/null
  docker_wait_healthy "$C_WAITER" 60

  # Flower before nginx, which resolves its name at start; nginx gets the
  # password's hash, never the password.
  local flower_opts=()
  if flower_enabled; then
    info "starting Flower ($C_FLOWER)"
    ((DRY_RUN)) || write_flower_htpasswd
    docker_run_flower >/dev/null
    docker_wait_healthy "$C_FLOWER" 120
    flower_opts=(--env "FLOWER_UPSTREAM=flower:$FLOWER_CONTAINER_PORT"
      --env FLOWER_HTPASSWD=/srv/flower.htpasswd
      --volume "$FLOWER_HTPASSWD_FILE:/srv/flower.htpasswd:ro")
  fi

  # nginx holds no credentials: it gets no env file, only the pages.
  info "starting nginx ($C_NGINX) on $HTTP_BIND:$HTTP_PORT"
  mapfile -t opts < <(docker_common_opts "$C_NGINX" nginx)
  dk run "${opts[@]}" --hostname nginx --network-alias nginx \
    --publish "$HTTP_BIND:$HTTP_PORT:8080" \
    --env "SUBMIT_RATE_LIMIT=${SUBMIT_RATE_LIMIT:-10r/s}" --env "SUBMIT_RATE_BURST=${SUBMIT_RATE_BURST:-20}" \
    --volume "$ROOT/document_root:/srv/document_root:ro" \
    "${flower_opts[@]}" \
    "$DOCKER_PROJECT-nginx:$IMAGE_TAG" >/dev/null
  docker_wait_healthy "$C_NGINX" 60

  local host="$HTTP_BIND"
  [[ "$host" != 0.0.0.0 ]] || host=127.0.0.1
  local url="http://$host:$HTTP_PORT"
  if ((DRY_RUN)); then
    echo "# then wait for GET $url/flask/health to answer 200" >&3
    return 0
  fi
  local i
  for ((i = 0; i < 60; i++)); do
    curl -fsS "$url/flask/health" >/dev/null 2>&1 && { echo "$url/"; return 0; }
    sleep 1
  done
  echo "error: $url/flask/health does not answer 200; see 'docker logs $C_NGINX' and 'docker logs $C_WEB'" >&2
  exit 1
}

docker_stop() {
  ((DRY_RUN)) || docker_engine_up || die "no Docker engine answers (docker info failed)"
  local containers
  mapfile -t containers < <(docker_project_containers | cut -d' ' -f1)
  docker_remove_containers "${containers[@]}"
  info "removed the containers"
  if ((purge)); then
    if ((DRY_RUN)) || docker network inspect "$DOCKER_NETWORK" >/dev/null 2>&1; then
      dk network rm "$DOCKER_NETWORK" >/dev/null
    fi
    if ((DRY_RUN)) || docker volume inspect "$RABBITMQ_VOLUME" >/dev/null 2>&1; then
      dk volume rm "$RABBITMQ_VOLUME" >/dev/null
    fi
    info "removed the network $DOCKER_NETWORK and the volume $RABBITMQ_VOLUME"
  fi
}

case "$mode/$action" in
  local/start) local_start ;;
  local/stop) local_stop ;;
  docker/start) docker_start ;;
  docker/stop) docker_stop ;;
esac
