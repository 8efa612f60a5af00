# syntax=docker/dockerfile:1.7
# docmill producer: `docmill produce` (and `docmill status`), a one-shot per job. No CUDA base:
# the producer runs no model. onnxruntime-gpu still comes in as a base dependency of the
# package (it imports no CUDA library until a session is made, and the producer makes none).
# `--build-arg BAKE_MODELS=<preset>` bakes the same set the worker image bakes, for air-gapped
# sites that pin `--models /opt/docmill/models/<preset>` instead of an s3:// set.
#   docker build -f docker/producer.Dockerfile -t docmill-producer .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG BAKE_MODELS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY docker/constraints.txt docker/constraints.txt
COPY pyproject.toml README.md ./
COPY docmill docmill
COPY converter converter
COPY producer producer
COPY worker worker
COPY demo demo
RUN /opt/venv/bin/pip install --constraint docker/constraints.txt .
ENV PATH=/opt/venv/bin:$PATH
RUN mkdir -p /opt/docmill/models \
 && if [ -n "${BAKE_MODELS}" ]; then \
      DOCMILL_CACHE_DIR=/tmp/docmill docmill models import --preset "${BAKE_MODELS}" --publish /opt/docmill/models; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/docmill docmill
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/docmill/models /opt/docmill/models
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/docmill
ENTRYPOINT ["docmill"]
CMD ["produce", "--help"]
