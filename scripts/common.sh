# shellcheck shell=bash
# The one file the scripts source (build.sh, run_tests.sh, the operating
# scripts, the benchmark and load-test runners, the tests' shell helpers): the
# checkout's paths and message helpers, then the parts in scripts/lib/, one
# concern each. Sourced, never executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR_DIR="${VAR_DIR:-$ROOT/var}"
VENV="${VENV:-$ROOT/.venv}"
# Read by the parts in scripts/lib/ and the scripts that source this file.
# shellcheck disable=SC2034
{
  SECRETS_ENV="$VAR_DIR/secrets.env"
  LOCAL_ENV="$VAR_DIR/local.env"
  LOG_DIR="$VAR_DIR/log"
  RUN_DIR="$VAR_DIR/run"
}

die() { echo "error: $*" >&2; exit 1; }
info() { echo "==> $*" >&2; }

# shellcheck source=scripts/lib/packages.sh
. "$ROOT/scripts/lib/packages.sh"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/local_env.sh
. "$ROOT/scripts/lib/local_env.sh"
# shellcheck source=scripts/lib/processes.sh
. "$ROOT/scripts/lib/processes.sh"
# shellcheck source=scripts/lib/docker.sh
. "$ROOT/scripts/lib/docker.sh"
# shellcheck source=scripts/lib/flower.sh
. "$ROOT/scripts/lib/flower.sh"
# shellcheck source=scripts/lib/mode.sh
. "$ROOT/scripts/lib/mode.sh"
# shellcheck source=scripts/lib/queues.sh
. "$ROOT/scripts/lib/queues.sh"
