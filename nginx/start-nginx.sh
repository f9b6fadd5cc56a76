#!/usr/bin/env bash
# The nginx role: render nginx.conf.template for this mode's addresses, then
# run nginx in the foreground. The same script runs in the nginx container.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: start-nginx.sh [--check]   (env: NGINX_LISTEN FLASK_UPSTREAM WAITER_UPSTREAM DOCUMENT_ROOT REPORTS_DIR STATUS_DIR NGINX_RUN_DIR SUBMIT_RATE_LIMIT SUBMIT_RATE_BURST FLOWER_UPSTREAM FLOWER_HTPASSWD)" >&2
  exit 0
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NGINX_LISTEN:?}" "${FLASK_UPSTREAM:?}" "${DOCUMENT_ROOT:?}" "${REPORTS_DIR:?}" "${NGINX_RUN_DIR:?}"
# The waiter process, for status reads with ?wait= (Docker mode: its container).
export WAITER_UPSTREAM="${WAITER_UPSTREAM:-waiter:8002}"
# The status files nginx answers polls from (the app's STATUS_DIR, same default).
export STATUS_DIR="${STATUS_DIR:-$REPORTS_DIR/status}"
export NGINX_ERROR_LOG="${NGINX_ERROR_LOG:-/dev/stderr}"
export NGINX_ACCESS_LOG="${NGINX_ACCESS_LOG:-/dev/stdout}"
# Submit rate limit per client address (429 beyond it). On by default, as in
# Docker mode; local mode's build.sh sets it to off. "off" renders an empty key.
SUBMIT_RATE_LIMIT="${SUBMIT_RATE_LIMIT:-10r/s}"
if [[ "$SUBMIT_RATE_LIMIT" == off || "$SUBMIT_RATE_LIMIT" == 0 ]]; then
  export NGINX_SUBMIT_LIMIT_KEY='""' NGINX_SUBMIT_RATE=1r/s
else
  [[ "$SUBMIT_RATE_LIMIT" =~ ^[0-9]+r/[sm]$ ]] \
    || { echo "error: SUBMIT_RATE_LIMIT must look like 10r/s, 600r/m or off" >&2; exit 2; }
  # shellcheck disable=SC2016  # nginx's variable, written into the config as is
  export NGINX_SUBMIT_LIMIT_KEY='$binary_remote_addr' NGINX_SUBMIT_RATE="$SUBMIT_RATE_LIMIT"
fi
export NGINX_SUBMIT_BURST="${SUBMIT_RATE_BURST:-20}"
[[ "$NGINX_SUBMIT_BURST" =~ ^[0-9]+$ ]] || { echo "error: SUBMIT_RATE_BURST must be an integer" >&2; exit 2; }
# Flower (FLOWER=1): FLOWER_UPSTREAM is its host:port, FLOWER_HTPASSWD the
# file of user:hash lines /flower/ is checked against. Without them /flower/
# is a 404: the template's Flower lines are rendered as comments.
if [[ -n "${FLOWER_UPSTREAM:-}" ]]; then
  [[ -r "${FLOWER_HTPASSWD:-}" ]] \
    || { echo "error: FLOWER_UPSTREAM is set but FLOWER_HTPASSWD (${FLOWER_HTPASSWD:-unset}) is not a readable file" >&2; exit 2; }
  export NGINX_FLOWER_ON="" NGINX_FLOWER_OFF="# " NGINX_FLOWER_UPSTREAM="$FLOWER_UPSTREAM" \
    NGINX_FLOWER_HTPASSWD="$FLOWER_HTPASSWD"
else
  export NGINX_FLOWER_ON="# " NGINX_FLOWER_OFF="" NGINX_FLOWER_UPSTREAM=- NGINX_FLOWER_HTPASSWD=-
fi
mkdir -p "$NGINX_RUN_DIR"
conf="$NGINX_RUN_DIR/nginx.conf"
# Only our variables are substituted; nginx's own $host etc. stay as they are.
# shellcheck disable=SC2016  # the names are for envsubst, not for the shell
envsubst '${NGINX_LISTEN} ${FLASK_UPSTREAM} ${WAITER_UPSTREAM} ${DOCUMENT_ROOT} ${REPORTS_DIR} ${STATUS_DIR} ${NGINX_RUN_DIR} ${NGINX_ERROR_LOG} ${NGINX_ACCESS_LOG} ${NGINX_SUBMIT_LIMIT_KEY} ${NGINX_SUBMIT_RATE} ${NGINX_SUBMIT_BURST} ${NGINX_FLOWER_ON} ${NGINX_FLOWER_OFF} ${NGINX_FLOWER_UPSTREAM} ${NGINX_FLOWER_HTPASSWD}' \
  < "${NGINX_TEMPLATE:-$here/nginx.conf.template}" > "$conf"
nginx -t -q -c "$conf" -p "$NGINX_RUN_DIR"
# --check: render and validate only (the nginx image build runs this).
[[ "${1:-}" == "--check" ]] && exit 0
exec nginx -c "$conf" -p "$NGINX_RUN_DIR" -g 'daemon off;'
