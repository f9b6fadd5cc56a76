#!/usr/bin/env bash
# The broker role: render rabbitmq.conf from the generated credentials and run
# the node in the foreground. The same script runs in the rabbitmq container.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-rabbitmq.sh   (env: RABBITMQ_USER RABBITMQ_PASSWORD RABBITMQ_VHOST RABBITMQ_CONFIG_FILE)" >&2
  exit 0
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${RABBITMQ_USER:?}" "${RABBITMQ_PASSWORD:?}" "${RABBITMQ_VHOST:?}"
export RABBITMQ_CONFIG_FILE="${RABBITMQ_CONFIG_FILE:-/etc/rabbitmq/rabbitmq.conf}"
mkdir -p "$(dirname "$RABBITMQ_CONFIG_FILE")"
umask 077  # the rendered file holds the password
# shellcheck disable=SC2016  # the names are for envsubst, not for the shell
envsubst '${RABBITMQ_USER} ${RABBITMQ_PASSWORD} ${RABBITMQ_VHOST}' \
  < "${RABBITMQ_TEMPLATE:-$here/rabbitmq.conf.template}" > "$RABBITMQ_CONFIG_FILE"
umask 022
exec "${RABBITMQ_SERVER_BIN:-rabbitmq-server}"
