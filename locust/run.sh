#!/usr/bin/env bash
# Headless Locust run against a running service: CSV and HTML report into
# locust/results/, exit status 1 when the failure ratio or the 95th percentile
# of job latency (submit-to-done) passes the given thresholds.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
HERE="$ROOT/locust"

users=10 rate=5 run_time=1m host="http://127.0.0.1:${HTTP_PORT:-8000}"
classes="PredictingUser StatusWatcher"
max_fail_ratio=0.01 max_job_p95_ms=10000
results="$HERE/results" prefix=""

usage() {
  cat >&2 <<USAGE
usage: locust/run.sh [options]
  -u, --users N            concurrent users (default $users)
  -r, --spawn-rate N       users started per second (default $rate)
  -t, --run-time T         run time, e.g. 30s, 5m (default $run_time)
  -H, --host URL           the service (default $host; start it with ./build.sh)
  -c, --classes "A B"      user classes (default "$classes";
                           also WaitingPredictingUser, which reads with ?wait=, and
                           BurstUser, paced by BURST_RATE submits/s per user)
  --max-fail-ratio R       fail above this failure ratio (default $max_fail_ratio)
  --max-job-p95-ms MS      fail above this p95 of submit-to-done (default $max_job_p95_ms)
  -o, --results DIR        where CSV and HTML go (default locust/results)
  --prefix NAME            file name prefix (default run-<UTC time>)
USAGE
}

while (($#)); do
  case "$1" in
    -u|--users) users="$2"; shift ;;
    -r|--spawn-rate) rate="$2"; shift ;;
    -t|--run-time) run_time="$2"; shift ;;
    -H|--host) host="$2"; shift ;;
    -c|--classes) classes="$2"; shift ;;
    --max-fail-ratio) max_fail_ratio="$2"; shift ;;
    --max-job-p95-ms) max_job_p95_ms="$2"; shift ;;
    -o|--results) results="$2"; shift ;;
    --prefix) prefix="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown option: $1" ;;
  esac
  shift
done

ensure_venv requirements-dev.txt
mkdir -p "$results"
prefix="${prefix:-run-$(date -u +%Y%m%dT%H%M%SZ)}"
out="$results/$prefix"
read -r -a class_list <<<"$classes"
expect_jobs=()
[[ " $classes " == *" PredictingUser "* || " $classes " == *" WaitingPredictingUser "* ]] \
  && expect_jobs=(--expect-jobs)

info "locust: ${users} users (${classes}) against $host for $run_time"
# Thresholds are judged below from the CSV, so Locust's own exit code is not used;
# --stop-timeout lets running jobs finish so that their latency is counted.
"$VENV/bin/locust" -f "$HERE/locustfile.py" --headless --only-summary \
  -u "$users" -r "$rate" -t "$run_time" -H "$host" \
  --stop-timeout 15 --exit-code-on-error 0 \
  --csv "$out" --html "$out.html" \
  "${class_list[@]}" >&2
info "report: $out.html; CSV: ${out}_stats.csv"
exec "$VENV/bin/python" "$HERE/check_results.py" "${out}_stats.csv" \
  --max-fail-ratio "$max_fail_ratio" --max-job-p95-ms "$max_job_p95_ms" "${expect_jobs[@]}"
