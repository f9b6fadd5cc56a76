# shellcheck shell=bash
# Which mode (local processes or Docker containers) is running for this
# checkout, for the operating scripts. Part of scripts/common.sh; sourced,
# never executed.

# "local", "docker" or "" (nothing).
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
