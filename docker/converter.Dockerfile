# docmill converter: the model job. `docmill convert` turns Paddle inference models into a
# checked ONNX model set and publishes it; `docmill models import` publishes a preset that is
# already ONNX. The only image with the Paddle stack (the `convert` extra: paddlepaddle,
# paddle2onnx, onnxslim), which is why it is its own image.
#
# Base, BuildKit, build secrets and the PyPI mirror: as in worker.Dockerfile.
#   DOCKER_BUILDKIT=1 docker build -f docker/converter.Dockerfile -t docmill-converter \
#       [--build-arg BASE_IMAGE=docmill-base:bookworm] [--secret id=ca,src=...] .
# `--build-arg BAKE_MODELS=pp-ocrv6-int8det` imports that preset into the image's model cache, so
# `docmill models import --preset pp-ocrv6-int8det --publish s3://models/sets` (the compose and
# Kubernetes model job) publishes it with no registry in reach.
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
# The base install plus the `convert` extra.
FROM python AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *p["optional-dependencies"]["convert"], sep="\n")' > requirements.txt

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
    /opt/venv/bin/pip install --no-deps --target /opt/docmill/lib --constraint docker/constraints.txt ".[convert]" \
 && /opt/venv/bin/pip check
ENV PATH=/opt/docmill/lib/bin:/opt/venv/bin:$PATH
# Into the runtime's model cache (DOCMILL_CACHE_DIR below); the fetched wheels stay here.
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=netrc,target=/root/.netrc \
    mkdir -p /home/docmill/.cache/docmill/models \
 && if [ -n "${BAKE_MODELS}" ]; then \
      DOCMILL_CACHE_DIR=/home/docmill/.cache/docmill docmill models import --preset "${BAKE_MODELS}"; \
    fi

FROM python AS runtime
# Paddle's CPU wheel links the system OpenMP runtime; the converter fetches sources over https.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o docmill -g docmill /home/docmill/.cache /home/docmill/.cache/docmill
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /opt/docmill/lib /opt/docmill/lib
COPY --from=app --chown=10001:10001 /home/docmill/.cache/docmill/models /home/docmill/.cache/docmill/models
ENV PATH=/opt/docmill/lib/bin:/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DOCMILL_CACHE_DIR=/home/docmill/.cache/docmill
USER 10001:10001
WORKDIR /home/docmill
ENTRYPOINT ["docmill"]
CMD ["convert", "--preset", "pp-ocrv4-ch", "--publish", "s3://models/sets"]
