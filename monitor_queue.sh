#!/usr/bin/env bash
# Watch the broker's queues: one timestamped line per queue every interval, with
# a bar of the queue depth (ready + unacknowledged) scaled to the largest depth
# seen so far, for COUNT rounds or until Ctrl-C. Meant to sit beside a load test.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

usage() {
  echo "usage: ./monitor_queue.sh [-i SECONDS] [-n COUNT] [-a]   (every 2 s until Ctrl-C by default; -a: include Celery's internal queues)" >&2
}

interval=2 count=0 all=0 width=40
while getopts ":i:n:ah-:" opt; do
  case "$opt" in
    i) interval="$OPTARG" ;;
    n) count="$OPTARG" ;;
    a) all=1 ;;
    h) usage; exit 0 ;;
    -) [[ "$OPTARG" == help ]] && { usage; exit 0; }; usage; die "unknown option --$OPTARG" ;;
    :) usage; die "-$OPTARG needs a value" ;;
    *) usage; die "unknown option -$OPTARG" ;;
  esac
done
shift $((OPTIND - 1))
(($# == 0)) || { usage; die "unexpected argument: $1"; }
if ! [[ "$interval" =~ ^([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]] \
  || ! awk -v i="$interval" 'BEGIN { exit !(i > 0) }'; then
  die "-i needs a positive number of seconds, got '$interval'"
fi
[[ "$count" =~ ^[0-9]+$ ]] || die "-n needs a whole number of rounds, got '$count'"

mode="$(require_running_mode)" || exit

# Ctrl-C (or a TERM) ends the watch cleanly between or after a query.
trap 'echo "stopped" >&2; exit 0' INT TERM

bar() {  # depth, scale (messages per full bar)
  local n=$(($1 * width / $2)) filled empty
  ((n > 0 || $1 == 0)) || n=1  # any message shows
  printf -v filled '%*s' "$n" ''
  printf -v empty '%*s' "$((width - n))" ''
  printf '|%s%s|' "${filled// /#}" "$empty"
}

peak=10 round=0
while ((count == 0 || round < count)); do
  round=$((round + 1))
  started="$EPOCHREALTIME"
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # The query ignores SIGINT so that Ctrl-C waits for it and then runs the trap.
  if stats="$(trap '' INT; queue_stats "$mode" 2>&1)"; then
    while IFS=$'\t' read -r name ready unacked consumers; do
      [[ -n "$name" ]] || continue
      # Celery's control and event queues, and each waiter's private queue of job ends.
      if ((!all)) && [[ "$name" == *.pidbox || "$name" == celeryev.* || "$name" == celery@*.reply.* \
        || "$name" == iris.job-ends.* ]]; then
        continue
      fi
      depth=$((ready + unacked))
      ((depth <= peak)) || peak=$depth
      printf '%s %-14s ready=%6d unacked=%4d consumers=%3d %s %d\n' \
        "$now" "$name" "$ready" "$unacked" "$consumers" "$(bar "$depth" "$peak")" "$depth"
    done <<<"$stats"
  else
    printf '%s broker not answering: %s\n' "$now" "${stats#error: }"
  fi
  ((count == 0 || round < count)) || break
  sleep "$(awk -v s="$started" -v e="$EPOCHREALTIME" -v i="$interval" \
    'BEGIN { r = i - (e - s); print (r > 0 ? r : 0) }')"
done
