# shellcheck shell=bash
# Docker mode: the names of the project's network, volume, images and
# containers, the docker wrapper that --dry-run prints instead of running, the
# options every container gets, the worker container, and waiting for a
# container's health check. Shared by build.sh and launch_celery_worker.sh.
# Part of scripts/common.sh; sourced, never executed.

DOCKER_PROJECT="${DOCKER_PROJECT:-iris}"
# shellcheck disable=SC2034  # these are used by the scripts that source this file
DOCKER_NETWORK="$DOCKER_PROJECT-net"
# shellcheck disable=SC2034
RABBITMQ_VOLUME="$DOCKER_PROJECT-rabbitmq-data"
IMAGE_TAG="${IMAGE_TAG:-latest}"
# Containers reach each other by these names (container hostname + network alias).
# shellcheck disable=SC2034
C_RABBITMQ="$DOCKER_PROJECT-rabbitmq"
# shellcheck disable=SC2034
C_WEB="$DOCKER_PROJECT-flask"
# shellcheck disable=SC2034
C_NGINX="$DOCKER_PROJECT-nginx"
# shellcheck disable=SC2034
C_WAITER="$DOCKER_PROJECT-waiter"
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
# The engine's default json-file log grows without bound: each container keeps
# at most DOCKER_LOG_MAX_SIZE x DOCKER_LOG_MAX_FILES of output.
docker_common_opts() {  # container name, role
  printf '%s\n' --detach --name "$1" --label "$DOCKER_PROJECT.role=$2" \
    --network "$DOCKER_NETWORK" --restart unless-stopped \
    --security-opt no-new-privileges --cap-drop ALL \
    --log-driver json-file --log-opt "max-size=${DOCKER_LOG_MAX_SIZE:-10m}" \
    --log-opt "max-file=${DOCKER_LOG_MAX_FILES:-3}"
}

docker_worker_container() { echo "$DOCKER_PROJECT-celery-$1"; }  # worker name

# One Celery worker container; build.sh starts worker1, launch_celery_worker.sh more.
docker_run_worker() {  # worker name (worker1, worker2, ...)
  local name="$1" opts events=() queue_env=()
  mapfile -t opts < <(docker_common_opts "$(docker_worker_container "$name")" worker)
  # Issue 16: a trainer<K> consumes the training queue (processes.sh's worker_env).
  while read -r assignment; do queue_env+=(--env "$assignment"); done < <(worker_env "$name")
  # Task events only with Flower (start-worker.sh); Flower turns them on in the others.
  if flower_enabled; then events=(--env FLOWER=1); fi
  dk run "${opts[@]}" --hostname "celery-$name" \
    --env-file "$SECRETS_ENV" --env "WORKER_NAME=$name" "${events[@]}" "${queue_env[@]}" \
    --volume "$ROOT/db:/app/db" \
    --volume "$ROOT/document_root/reports:/app/document_root/reports" \
    "$DOCKER_PROJECT-celery:$IMAGE_TAG"
}

# The waiter (status reads with ?wait=, iris_service/waiter.py): the web image
# running start-waiter.sh, reached by nginx as waiter:8002; it reads the database.
docker_run_waiter() {
  local opts
  mapfile -t opts < <(docker_common_opts "$C_WAITER" waiter)
  dk run "${opts[@]}" --hostname waiter --network-alias waiter \
    --env-file "$SECRETS_ENV" --env WAITER_BIND=0.0.0.0:8002 \
    --health-cmd "python -I -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8002/waiter/health', timeout=4)\"" \
    --volume "$ROOT/db:/app/db" \
    "$DOCKER_PROJECT-flask:$IMAGE_TAG" /app/flask/bin/start-waiter.sh
}

# The names (worker1, worker2, ...) of the project's worker containers, running or not.
docker_workers() {
  docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" --format '{{.Names}}' \
    | sed "s/^$DOCKER_PROJECT-celery-//"
}

# The container's own health check (its image's HEALTHCHECK command), run now
# with docker exec: the engine runs it only every interval (30 s for a worker).
docker_health_check_passes() {  # container
  local test
  mapfile -t test < <(docker inspect --format \
    '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' "$1" 2>/dev/null)
  case "${test[0]:-}" in
    CMD) test=("${test[@]:1}") ;;
    CMD-SHELL) test=(sh -c "${test[*]:1}") ;;
    *) return 1 ;;
  esac
  timeout 30 docker exec "$1" "${test[@]}" >/dev/null 2>&1
}

# Return once the container is healthy: its health check passes (a worker's: it
# answers a Celery ping, so it consumes), run by the engine or by us while the
# engine still says "starting". Exit with its last log lines when it stops or
# time runs out.
docker_wait_healthy() {  # container, timeout seconds
  local name="$1" limit="$2" state=missing next_check=0
  if ((DRY_RUN)); then echo "# wait until $name is healthy" >&3; return 0; fi
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    state="$(docker inspect --format \
      '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
      "$name" 2>/dev/null || echo missing)"
    case "$state" in
      healthy) info "$name is healthy"; return 0 ;;
      starting)
        # At most every 5 s: a check costs CPU (the worker's imports Celery).
        if ((SECONDS >= next_check)); then
          docker_health_check_passes "$name" && { info "$name is healthy"; return 0; }
          next_check=$((SECONDS + 5))
        fi
        ;;
      exited|dead|missing) break ;;
    esac
    sleep 1
  done
  echo "error: container $name did not become healthy within ${limit}s ($state); last lines of 'docker logs $name':" >&2
  docker logs --tail 25 "$name" >&2 || true
  exit 1
}

# What every docker build gets from the environment: the base images (the
# Docker tests' stand-ins), the build's network (DOCKER_BUILD_NETWORK, e.g. host
# where containers have no NAT) and, for the Python image, the package index
# (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST) and the CA bundle
# named by PIP_CERT, copied into the build context as build/pip-ca.pem.
docker_build_opts() {  # role: python, nginx or rabbitmq
  local name
  [[ -z "${DOCKER_BUILD_NETWORK:-}" ]] || printf '%s\n' --network "$DOCKER_BUILD_NETWORK"
  name="${1^^}_IMAGE"
  [[ -z "${!name:-}" ]] || printf '%s\n' --build-arg "$name=${!name}"
  [[ "$1" == python ]] || return 0
  for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
    [[ -z "${!name:-}" ]] || printf '%s\n' --build-arg "$name=${!name}"
  done
}

docker_build_ca_bundle() {
  if ((DRY_RUN)); then return 0; fi
  rm -f "$ROOT/build/pip-ca.pem"
  if [[ -n "${PIP_CERT:-}" ]]; then
    [[ -r "$PIP_CERT" ]] || die "PIP_CERT names $PIP_CERT, which is not a readable file"
    mkdir -p "$ROOT/build"
    cp "$PIP_CERT" "$ROOT/build/pip-ca.pem"
  fi
}
