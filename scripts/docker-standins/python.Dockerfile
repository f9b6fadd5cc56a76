# Test-only stand-in for the official python:3.11-slim image (no registry on CI's
# machine; scripts/docker-test-engine.sh builds it on a debootstrapped Debian).
# What flask/Dockerfile relies on: `python` 3.11 on PATH with venv and pip,
# groupadd/useradd, root as the build user.
ARG BASE=iris-standin-debian:bookworm
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
