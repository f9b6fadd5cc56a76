# shellcheck shell=bash
# Queue statistics from the running system's broker (the local private node or
# the broker container), for list_queues.sh and monitor_queue.sh. Part of
# scripts/common.sh; sourced, never executed.

# One tab-separated line per queue: name, ready, unacked, consumers. Fails with
# a message naming the broker when it does not answer.
queue_stats() {  # mode
  local vhost broker ctl
  vhost="$(sed -n 's/^RABBITMQ_VHOST=//p' "$SECRETS_ENV" 2>/dev/null)"
  case "$1" in
    local)
      load_local_env
      ctl=(local_rabbitmqctl) broker="local node $RABBITMQ_NODENAME"
      ;;
    docker)
      ctl=(docker exec "$C_RABBITMQ" rabbitmqctl) broker="container $C_RABBITMQ"
      ;;
    *)
      echo "error: the broker is down: no running system found for this checkout (VAR_DIR=$VAR_DIR); start it with ./build.sh" >&2
      return 3
      ;;
  esac
  "${ctl[@]}" -q list_queues -p "${vhost:-iris}" --no-table-headers --timeout 10 \
    name messages_ready messages_unacknowledged consumers 2>/dev/null \
    || { echo "error: the broker ($broker) is not answering" >&2; return 3; }
}
