#!/usr/bin/env bash
# One line per queue of the running system's broker: name, messages ready,
# messages unacknowledged, consumers. Asks the local private node (rabbitmqctl)
# or the broker container (docker exec), whichever mode is running.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

case "${1:-}" in
  -h|--help)
    echo "usage: ./list_queues.sh   (env: VAR_DIR for a local stack other than ./var)" >&2
    exit 0
    ;;
  "") ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

stats="$(queue_stats "$(running_mode)")" || exit 3
printf '%-40s %8s %8s %9s\n' QUEUE READY UNACKED CONSUMERS
while IFS=$'\t' read -r name ready unacked consumers; do
  [[ -n "$name" ]] || continue
  printf '%-40s %8s %8s %9s\n' "$name" "$ready" "$unacked" "$consumers"
done <<<"$stats"
