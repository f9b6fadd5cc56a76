"""gunicorn settings from the environment: ``gunicorn -c python:iris_service.gunicorn_conf``."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8001").split(",")
workers = int(os.environ.get("WEB_CONCURRENCY", str(multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# gthread even with one thread: it keeps nginx's upstream connections alive,
# where the sync worker closes each one after its request (a connect and a
# graceful close per request). The benchmark measured about 3x the status
# reads per second and a third less CPU per read than with sync.
worker_class = "gthread"
# Requests never wait on tasks; anything slower than this is a bug to surface.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# Longer than nginx's upstream keepalive_timeout (60 s): nginx, not gunicorn,
# closes an idle connection, so nginx never sends a request on one being closed.
keepalive = 75
# As long as nginx's 8 KiB request line, so an over-long URI is refused by nginx
# with a JSON 414 instead of by gunicorn with an HTML one.
limit_request_line = 8190
# A unix socket is reached by nginx's workers, which may run as another user.
umask = 0o007 if os.environ.get("GUNICORN_SOCKET_PRIVATE") else 0
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "iris-web"
