# Test-only stand-in for the official rabbitmq image (scripts/docker-test-engine.sh).
# What rabbitmq/Dockerfile relies on: rabbitmq-server and rabbitmq-diagnostics
# on PATH, the "rabbitmq" user with uid/gid 999 and HOME /var/lib/rabbitmq (the
# data dir, holding the cookie), /etc/rabbitmq with conf.d/ and enabled_plugins
# owned by it, and apt-get.
ARG BASE=iris-standin-debian:bookworm
FROM ${BASE}
# The user first, with the official image's ids; the package keeps an existing one.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 rabbitmq \
    && useradd --system --gid rabbitmq --uid 999 --home-dir /var/lib/rabbitmq \
       --shell /bin/false rabbitmq \
    && apt-get update \
    && apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /etc/rabbitmq/conf.d /var/lib/rabbitmq /var/log/rabbitmq \
    && printf 'loopback_users.guest = false\nlisteners.tcp.default = 5672\n' \
       > /etc/rabbitmq/conf.d/10-defaults.conf \
    && printf '[rabbitmq_prometheus].\n' > /etc/rabbitmq/enabled_plugins \
    && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
ENV HOME=/var/lib/rabbitmq \
    RABBITMQ_DATA_DIR=/var/lib/rabbitmq \
    LANG=C.UTF-8
EXPOSE 5672
CMD ["rabbitmq-server"]
