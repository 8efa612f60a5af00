# docmill worker: `docmill worker`, on GPU hosts and CPU hosts alike.
#
# CUDA comes from PyPI, not from the base image: onnxruntime-gpu 1.31.1 (a CUDA 13.0 + cuDNN 9
# build) with its `cuda` and `cudnn` extras, the NVIDIA runtime wheels pinned in
# docker/constraints.txt (cudart, cuBLAS, cuFFT, cuRAND, NVRTC 13 and cuDNN 9). LD_LIBRARY_PATH
# points at them. So the image runs on any glibc base. A GPU host needs an NVIDIA driver >= 580
# and the NVIDIA container toolkit, which mounts the driver's libcuda.so.1. On a CPU host the
# CUDA provider does not load and the worker runs on the CPU.
#
# Base: BASE_IMAGE, Debian 12 (bookworm) or a base with its apt sources, and Debian's Python
# 3.11. The default is the official image; `make deploy-test` builds on one bootstrapped from
# Debian's packages alone (docker/README.md, "Air-gapped build").
#
# Build with BuildKit. It needs no frontend image: there is no `# syntax` line. pip reaches
# PyPI, or the mirror in --build-arg PIP_INDEX_URL. A site CA bundle and a netrc for the
# mirror can come in as build secrets. They are mounted only while pip runs, never stored:
#   DOCKER_BUILDKIT=1 docker build -f docker/worker.Dockerfile -t docmill-worker \
#       [--build-arg BASE_IMAGE=docmill-base:bookworm] [--build-arg BAKE_MODELS=pp-ocrv6-int8det] \
#       [--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt] [--secret id=netrc,src=$HOME/.netrc] .
#
# No model set is baked in: the worker pulls the set each task pins from S3 into
# DOCMILL_CACHE_DIR on first use, verified against its manifest. `--build-arg
# BAKE_MODELS=pp-ocrv6-int8det` bakes that preset into /opt/docmill/models, for sites that produce
# with `--models /opt/docmill/models/pp-ocrv6-int8det` and keep models off S3.
ARG BASE_IMAGE=debian:12.11-slim

FROM ${BASE_IMAGE} AS python
# Debian's Python 3.11 in every stage: the venv built below links to /usr/bin/python3.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 docmill \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/docmill docmill

# What to install, from pyproject.toml: a stage of its own, so that the install below is
# redone only when this list or the constraints change, not on every edit of pyproject.toml.
# The base install plus onnxruntime-gpu's CUDA and cuDNN wheels; no Paddle stack.
FROM python AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(*p["dependencies"], "onnxruntime-gpu[cuda,cudnn]", sep="\n")' > requirements.txt

# The dependencies, in a venv of their own: the big layer, rebuilt (and pushed) only when
# they change. docmill itself goes to /opt/docmill/lib (the app stage), which docmill-lib.pth
# puts on the venv's path. docmill-secrets.pth reads secrets from files: each readable
# /run/secrets/NAME (DOCMILL_SECRETS_DIR), NAME an environment variable's name
# (DOCMILL_BROKER_URL, AWS_SECRET_ACCESS_KEY, ...), sets NAME in every Python process of the
# venv, the health check's included, unless NAME is set already. So compose and Kubernetes
# keep secrets out of the environment that `docker inspect` shows.
FROM python AS deps
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
# ca-certificates follows Debian's updates; this stage is not shipped.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv=3.11.2-1+b1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && echo /opt/docmill/lib > "$site/docmill-lib.pth" \
 && printf '%s\n' 'import os, pathlib; [os.environ.setdefault(p.name, p.read_text().rstrip("\r\n")) for p in sorted(pathlib.Path(os.environ.get("DOCMILL_SECRETS_DIR", "/run/secrets")).glob("[A-Z]*")) if p.name.isupper() and p.name.replace("_", "").isalnum() and p.is_file() and os.access(p, os.R_OK)]' > "$site/docmill-secrets.pth"
# The `ca` secret, when given, is mounted over this bundle for the RUNs that fetch.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
COPY docker/constraints.txt docker/constraints.txt
COPY --from=requirements /src/requirements.txt requirements.txt
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=netrc,target=/root/.netrc \
    /opt/venv/bin/pip install --constraint docker/constraints.txt --requirement requirements.txt

# docmill itself, in /opt/docmill/lib, and the models BAKE_MODELS names.
FROM deps AS app
ARG BAKE_MODELS=""
COPY pyproject.toml README.md ./
COPY docmill docmill
COPY converter converter
COPY producer producer
COPY pages pages
COPY worker worker
COPY demo demo
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=netrc,target=/root/.netrc \
    /opt/venv/bin/pip install --no-deps --target /opt/docmill/lib --constraint docker/constraints.txt . \
 && /opt/venv/bin/pip check
ENV PATH=/opt/docmill/lib/bin:/opt/venv/bin:$PATH
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=netrc,target=/root/.netrc \
    mkdir -p /opt/docmill/models \
 && if [ -n "${BAKE_MODELS}" ]; then \
      DOCMILL_CACHE_DIR=/tmp/docmill docmill models import --preset "${BAKE_MODELS}" --publish /opt/docmill/models; \
    fi

FROM python AS runtime
RUN mkdir -p /var/cache/docmill && chown docmill:docmill /var/cache/docmill
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /opt/docmill /opt/docmill
ENV PATH=/opt/docmill/lib/bin:/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    PYTHONUNBUFFERED=1 \
    DOCMILL_CACHE_DIR=/var/cache/docmill \
    DOCMILL_LOG_LEVEL=INFO
USER 10001:10001
WORKDIR /home/docmill
VOLUME ["/var/cache/docmill"]
EXPOSE 9108
# Broker PING, model-set HEAD, providers for DOCMILL_DEVICE: unhealthy when any fails. The
# first run waits for the CUDA probe; each run costs about a second of CPU.
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
    CMD ["docmill", "worker", "--check"]
ENTRYPOINT ["docmill"]
CMD ["worker", "--concurrency", "4", "--metrics-port", "9108"]
