"""gunicorn settings: ``gunicorn -c python:iris_service.gunicorn_conf``.

The values that vary come from the environment through config.GunicornSettings,
read here in gunicorn's master before the app loads; the rest are fixed.
"""

from typing import Any

from iris_service import logs, metrics
from iris_service.config import GunicornSettings

_conf = GunicornSettings()

bind = _conf.bind.split(",")
workers = _conf.workers
threads = _conf.threads
# gthread even with one thread: it keeps nginx's upstream connections alive,
# where the sync worker closes each one after its request (a connect and a
# graceful close per request), which cost more than the request itself
# (docs/performance.md).
worker_class = "gthread"
timeout = _conf.timeout
graceful_timeout = 20
# Longer than nginx's upstream keepalive_timeout (60 s): nginx, not gunicorn,
# closes an idle connection, so nginx never sends a request on one being closed.
keepalive = 75
# As long as nginx's 8 KiB request line, so an over-long URI is refused by nginx
# with a JSON 414 instead of by gunicorn with an HTML one.
limit_request_line = 8190
# A unix socket is reached by nginx's workers, which may run as another user.
umask = 0o007 if _conf.socket_private else 0
accesslog = "-" if _conf.access_log else None
# gunicorn's default, and the request id (set by nginx, else by the app) to grep for.
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" rid=%({x-request-id}o)s'
)
errorlog = "-"
loglevel = _conf.log_level.lower()
if _conf.log_format == "json":
    # gunicorn's own lines (start, workers booted and exited) in the app's JSON
    # too; in text mode they keep gunicorn's format.
    logconfig_dict = logs.gunicorn_logconfig(_conf.log_level, _conf.log_format)
proc_name = "iris-web"
# No control socket (gunicornc, unused here): its default path is under $HOME,
# which the image's user cannot write (/app) and which every local stack of one
# user would share.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    # In the master, as a worker exits: its live gauges must stop counting
    # (prometheus-client's multiprocess mode; its counters stay in the totals).
    metrics.process_exited(worker.pid)
