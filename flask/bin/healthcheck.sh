#!/usr/bin/env bash
# Container health checks (Docker's HEALTHCHECK), also runnable in local mode:
#   web     GET /flask/health from gunicorn at GUNICORN_BIND (host:port or unix:path)
#   worker  a Celery ping to this worker (WORKER_NAME@hostname) answers
set -o errexit -o nounset -o pipefail
usage() { echo "usage: healthcheck.sh web|worker   (env: GUNICORN_BIND, WORKER_NAME)" >&2; }
case "${1:-}" in
  web)
    exec python - <<'PY'
"""GET /flask/health straight from gunicorn; exit 0 only on a 200."""
import http.client, os, socket, sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")[0]


class UnixConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(bind.removeprefix("unix:"))


if bind.startswith("unix:"):
    conn: http.client.HTTPConnection = UnixConnection("localhost", timeout=4)
else:
    host, _, port = bind.rpartition(":")
    conn = http.client.HTTPConnection("127.0.0.1" if host in ("", "0.0.0.0") else host, int(port), timeout=4)
try:
    conn.request("GET", "/flask/health")
    status = conn.getresponse().status
except OSError as exc:
    sys.exit(f"unhealthy: {exc}")
sys.exit(0 if status == 200 else f"unhealthy: /flask/health answered {status}")
PY
    ;;
  worker)
    exec celery --app iris_service.worker inspect ping \
      --destination "${WORKER_NAME:-worker1}@$(hostname)" --timeout 10
    ;;
  -h|--help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac
