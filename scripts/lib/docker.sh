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

# The names (worker1, worker2, ...) of the project's worker containers, running or not.
docker_workers() {
  docker ps --all --filter "label=$DOCKER_PROJECT.role=worker" --format '{{.Names}}' \
    | sed "s/^$DOCKER_PROJECT-celery-//"
}

# Return once the container's health check passes (a worker's: it answers a
# Celery ping, so it consumes); exit with its last log lines when it stops or
# time runs out.
docker_wait_healthy() {  # container, timeout seconds
  local name="$1" limit="$2" state=missing i
  if ((DRY_RUN)); then echo "# wait until $name is healthy" >&3; return 0; fi
  for ((i = 0; i < limit; i++)); do
    state="$(docker inspect --format \
      '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
      "$name" 2>/dev/null || echo missing)"
    case "$state" in
      healthy) info "$name is healthy"; return 0 ;;
      exited|dead|missing) break ;;
    esac
    sleep 1
  done
  echo "error: container $name did not become healthy within ${limit}s ($state); last lines of 'docker logs $name':" >&2
  docker logs --tail 25 "$name" >&2 || true
  exit 1
}
