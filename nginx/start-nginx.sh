#!/usr/bin/env bash
# The nginx role: render nginx.conf.template for this mode's addresses, then
# run nginx in the foreground. The same script runs in the nginx container.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-nginx.sh   (env: NGINX_LISTEN FLASK_UPSTREAM DOCUMENT_ROOT REPORTS_DIR NGINX_RUN_DIR)" >&2
  exit 0
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NGINX_LISTEN:?}" "${FLASK_UPSTREAM:?}" "${DOCUMENT_ROOT:?}" "${REPORTS_DIR:?}" "${NGINX_RUN_DIR:?}"
export NGINX_ERROR_LOG="${NGINX_ERROR_LOG:-/dev/stderr}"
export NGINX_ACCESS_LOG="${NGINX_ACCESS_LOG:-/dev/stdout}"
mkdir -p "$NGINX_RUN_DIR"
conf="$NGINX_RUN_DIR/nginx.conf"
# Only our variables are substituted; nginx's own $host etc. stay as they are.
# shellcheck disable=SC2016  # the names are for envsubst, not for the shell
envsubst '${NGINX_LISTEN} ${FLASK_UPSTREAM} ${DOCUMENT_ROOT} ${REPORTS_DIR} ${NGINX_RUN_DIR} ${NGINX_ERROR_LOG} ${NGINX_ACCESS_LOG}' \
  < "${NGINX_TEMPLATE:-$here/nginx.conf.template}" > "$conf"
nginx -t -q -c "$conf" -p "$NGINX_RUN_DIR"
exec nginx -c "$conf" -p "$NGINX_RUN_DIR" -g 'daemon off;'
