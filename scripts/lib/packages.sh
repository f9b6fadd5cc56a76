# shellcheck shell=bash
# System packages: what local mode needs from Debian, and installing what is
# missing (apt-get as root) or saying exactly what to install. Part of
# scripts/common.sh; sourced, never executed.

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
