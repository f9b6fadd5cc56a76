#!/usr/bin/env bash
# The Docker engine the Docker tests run on (test only; flask/tests/support/docker_stack.py).
#   start  print KEY=VALUE lines for the tests: DOCKER_HOST and the base-image build arguments.
#          An engine that already answers and can pull the official base images is used as
#          it is. Otherwise (a machine without a registry, like CI's) a private engine is
#          started as root, and stand-ins for the base images are built locally with
#          debootstrap (scripts/docker-standins/): they are cached in its data root, so a
#          second run builds none.
#   stop   stop the private engine, leaving no container, network, volume, bridge, mount
#          or daemon (its images stay in the cache).
# env: IRIS_DOCKER_TEST_CACHE (default ~/.cache/iris-docker-test): the private engine's
#      images and the Debian tarball.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CACHE="${IRIS_DOCKER_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iris-docker-test}"
# Short paths: unix socket paths are limited to 108 bytes.
RUN_BASE=/run/iris-docker-test
SOCKET="$RUN_BASE/docker.sock"
PIDFILE="$RUN_BASE/dockerd.pid"
SUITE=bookworm  # its python3 is 3.11, the official image's minor version
STANDIN_TAG="$SUITE-1"  # bump when scripts/docker-standins/ changes

usage() { echo "usage: scripts/docker-test-engine.sh start|stop" >&2; }

# The official base images, as the Dockerfiles name them.
official_images() {
  sed -n 's/^ARG \(PYTHON\|NGINX\|RABBITMQ\)_IMAGE=//p' \
    "$ROOT/flask/Dockerfile" "$ROOT/nginx/Dockerfile" "$ROOT/rabbitmq/Dockerfile"
}

system_engine_usable() {
  [[ -z "${DOCKER_HOST:-}" || "$DOCKER_HOST" != "unix://$SOCKET" ]] || return 1
  docker_engine_up || return 1
  local image
  for image in $(official_images); do
    docker image inspect "$image" >/dev/null 2>&1 || docker pull --quiet "$image" >/dev/null 2>&1 || return 1
  done
}

private_engine_start() {
  [[ "$(id -u)" == 0 ]] || die "no usable Docker engine, and starting a private one needs root"
  ensure_debs dockerd docker.io debootstrap debootstrap
  export DOCKER_HOST="unix://$SOCKET"
  docker info >/dev/null 2>&1 && return 0  # already running (an earlier start)
  mkdir -p "$RUN_BASE" "$CACHE/data-root"
  # No iptables rules and no default bridge (docker0) on a shared machine: the
  # project's containers use their own bridge network, builds the host's network.
  dockerd --data-root "$CACHE/data-root" --exec-root "$RUN_BASE/exec" \
    --iptables=false --ip6tables=false --ip-forward=false --bridge=none \
    --host "unix://$SOCKET" --pidfile "$PIDFILE" >"$CACHE/dockerd.log" 2>&1 &
  local i
  for ((i = 0; i < 60; i++)); do
    docker info >/dev/null 2>&1 && { info "private Docker engine on $SOCKET"; return 0; }
    kill -0 "$!" 2>/dev/null || break
    sleep 1
  done
  tail -20 "$CACHE/dockerd.log" >&2
  die "the private Docker engine did not start (log: $CACHE/dockerd.log)"
}

# A minimal Debian as an image (debootstrap's tarball is cached), then one
# stand-in per official base image, built on it from scripts/docker-standins/.
build_standins() {
  local base="iris-standin-debian:$SUITE" role
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    local tarball="$CACHE/debian-$SUITE-minbase.tar"
    if [[ ! -s "$tarball" ]]; then
      info "debootstrap $SUITE (once; cached in $tarball)"
      local tree
      tree="$(mktemp -d)"
      debootstrap --variant=minbase "$SUITE" "$tree" http://deb.debian.org/debian >&2
      rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*  # as official images
      tar -C "$tree" -cf "$tarball.part" .
      rm -rf "$tree"
      mv "$tarball.part" "$tarball"
    fi
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' "$tarball" "$base" >/dev/null
  fi
  for role in python nginx rabbitmq; do
    docker image inspect "iris-standin-$role:$STANDIN_TAG" >/dev/null 2>&1 && continue
    info "building the $role stand-in"
    docker build --quiet --network host --build-arg "BASE=$base" \
      --file "$ROOT/scripts/docker-standins/$role.Dockerfile" \
      --tag "iris-standin-$role:$STANDIN_TAG" "$ROOT/scripts/docker-standins" >/dev/null
  done
}

engine_start() {
  if system_engine_usable; then
    info "using the Docker engine that answers, with the official base images"
    echo "DOCKER_HOST=${DOCKER_HOST:-}"
    return 0
  fi
  private_engine_start
  build_standins
  echo "DOCKER_HOST=$DOCKER_HOST"
  echo "PYTHON_IMAGE=iris-standin-python:$STANDIN_TAG"
  echo "NGINX_IMAGE=iris-standin-nginx:$STANDIN_TAG"
  echo "RABBITMQ_IMAGE=iris-standin-rabbitmq:$STANDIN_TAG"
  # Without iptables there is no NAT: a build reaches the network through the host's.
  echo "DOCKER_BUILD_NETWORK=host"
}

engine_stop() {
  export DOCKER_HOST="unix://$SOCKET"
  if docker info >/dev/null 2>&1; then
    local ids
    mapfile -t ids < <(docker ps --all --quiet)
    ((${#ids[@]} == 0)) || docker rm --force --volumes "${ids[@]}" >/dev/null
    docker network prune --force >/dev/null
    mapfile -t ids < <(docker volume ls --quiet)
    ((${#ids[@]} == 0)) || docker volume rm --force "${ids[@]}" >/dev/null
    docker image prune --force >/dev/null  # dangling layers of replaced builds
  fi
  local pid i
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && die "dockerd ($pid) did not stop"
  fi
  # What a stopped engine may leave: mounts under its roots. (It made no
  # docker0: --bridge=none; the project's network's bridge went with the network.)
  local mounts
  mapfile -t mounts < <(findmnt --list --noheadings --output TARGET \
    | grep -E "^($RUN_BASE|$CACHE/data-root)(/|$)" | sort -r)
  ((${#mounts[@]} == 0)) || umount "${mounts[@]}"
  rm -rf "$RUN_BASE"
  info "private Docker engine stopped"
}

case "${1:-}" in
  start) engine_start ;;
  stop) engine_stop ;;
  -h|--help) usage ;;
  *) usage; exit 2 ;;
esac
