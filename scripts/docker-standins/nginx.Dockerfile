# Test-only stand-in for the official nginx image (scripts/docker-test-engine.sh).
# What nginx/Dockerfile relies on: nginx on PATH with /etc/nginx/mime.types, the
# "nginx" user and group with uid/gid 101, curl (the health check) and envsubst,
# logs to stdout/stderr.
ARG BASE=iris-standin-debian:bookworm
FROM ${BASE}
# The user first, so that the packages' own system users take other ids.
# hadolint ignore=DL3008
RUN groupadd --system --gid 101 nginx \
    && useradd --system --gid nginx --no-create-home --home-dir /nonexistent \
       --shell /bin/false --uid 101 nginx \
    && apt-get update \
    && apt-get install -y --no-install-recommends nginx-light curl gettext-base ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
