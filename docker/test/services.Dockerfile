# Stand-ins for the services of docker/compose.yaml that come from other registries (Docker
# Hub's redis, minio and prometheus images), built from Debian and PyPI alone for
# `make deploy-test` (docker/compose.test.yaml). One target per service, each on BASE_IMAGE
# and running as uid 10001 like the docmill images:
#   redis       Debian's redis-server
#   s3          moto's S3 server from PyPI, the S3-compatible server the test suite uses
#   prometheus  Debian's prometheus (data in /var/lib/prometheus/metrics2), plus wget for
#               compose's health check
# Build from the repository root with BuildKit, e.g.
#   DOCKER_BUILDKIT=1 docker build -f docker/test/services.Dockerfile --target redis \
#       --build-arg BASE_IMAGE=docmill-base:bookworm -t docmill-test-redis:dev .
# The Debian packages are left to Debian's updates: these images stand in for other images
# in a test, and are not shipped.
ARG BASE_IMAGE=debian:12.11-slim

FROM ${BASE_IMAGE} AS redis
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 docmill \
 && useradd --system --uid 10001 --gid 10001 --no-create-home docmill \
 && install -d -o docmill -g docmill /data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
CMD ["redis-server"]

FROM ${BASE_IMAGE} AS s3
ARG MOTO_VERSION=5.2.5
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv=3.11.2-1+b1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 docmill \
 && useradd --system --uid 10001 --gid 10001 --no-create-home docmill
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY docker/constraints.txt /tmp/constraints.txt
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=netrc,target=/root/.netrc \
    python3 -m venv /opt/moto \
 && /opt/moto/bin/pip install --constraint /tmp/constraints.txt "moto[server]==${MOTO_VERSION}"
USER 10001:10001
EXPOSE 9000
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
    CMD ["/opt/moto/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/moto-api/', timeout=2)"]
ENTRYPOINT ["/opt/moto/bin/python", "-m", "moto.server"]
CMD ["-H", "0.0.0.0", "-p", "9000"]

FROM ${BASE_IMAGE} AS prometheus
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 docmill \
 && useradd --system --uid 10001 --gid 10001 --no-create-home docmill \
 && install -d -o docmill -g docmill /var/lib/prometheus/metrics2
USER 10001:10001
# Debian's build keeps its data in /var/lib/prometheus/metrics2 unless told otherwise.
WORKDIR /var/lib/prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml"]
