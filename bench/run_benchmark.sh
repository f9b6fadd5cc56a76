#!/usr/bin/env bash
# The benchmark command: starts a private local stack (own VAR_DIR, free port,
# the benchmark-only inline endpoint on), measures the queued pipeline against
# the inline floor at 1, 8 and 32 clients, prints a table, writes JSON into
# bench/results/, and stops the stack. See README.md, "Load testing and benchmark".
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: bench/run_benchmark.sh [--quick] [--clients N...] [--warmup S] [--duration S]" >&2
  echo "       [--poll-ms MS] [--no-submit] [--phases P...] [--env NAME=VALUE]... [--url URL --var-dir DIR]" >&2
  echo "about 3 minutes in full; --quick is a smoke run of about 40 seconds" >&2
  echo "       bench/run_benchmark.sh --scale [--jobs N] [--expired N] ...  (empty vs 5 million jobs, the purge)" >&2
  echo "       bench/run_benchmark.sh --memory [--jobs N] ...  (memory of each role after 10,000 jobs)" >&2
  exit 0
fi
# The optional phases, each a script of its own (--scale: about 25 minutes).
script=benchmark.py
case "${1:-}" in
  --scale) script=scale_bench.py; shift ;;
  --memory) script=role_memory.py; shift ;;
esac

# The stack needs the Debian packages and the pinned venv; the load generator
# needs the dev pins (aiohttp).
ensure_debs "${LOCAL_MODE_DEBS[@]}"
ensure_venv requirements-dev.txt
cd "$ROOT"
exec "$VENV/bin/python" "$ROOT/bench/$script" "$@"
