# syntax=docker/dockerfile:1.7
# docmill GPU worker: `docmill worker` on NVIDIA's CUDA runtime + cuDNN.
#
# onnxruntime-gpu 1.31.1 (PyPI) is built against CUDA 13.0 and cuDNN 9 (its
# build_and_package_info says cuda_version 13.0; libonnxruntime_providers_cuda.so needs
# libcudart.so.13 and libcublas.so.13), so the base is CUDA 13.0 with cuDNN 9. Hosts need an
# NVIDIA driver >= 580 and the NVIDIA container toolkit. Without a GPU the same image runs on CPU.
#
# No model set is baked in: the worker pulls the set each task pins from S3 into
# DOCMILL_CACHE_DIR on first use, verified against its manifest. For air-gapped sites,
# `--build-arg BAKE_MODELS=pp-ocrv4-ch` bakes that preset into /opt/docmill/models (see
# docker/README.md). Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t docmill-worker .
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.8.22-bookworm-slim

FROM ${UV_IMAGE} AS build
ARG PYTHON_VERSION=3.11.13
ARG BAKE_MODELS=""
# A standalone CPython (python-build-standalone) in /opt/python runs unchanged on the CUDA
# image's Ubuntu, so the worker gets the same Python minor version the tests run on.
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1
RUN uv python install "${PYTHON_VERSION}" && uv venv --python "${PYTHON_VERSION}" /opt/venv
WORKDIR /src
COPY docker/constraints.txt docker/constraints.txt
COPY pyproject.toml README.md ./
COPY docmill docmill
COPY converter converter
COPY producer producer
COPY worker worker
COPY demo demo
# The base install only: the `convert` extra (Paddle) never enters this image.
RUN uv pip install --python /opt/venv/bin/python --constraint docker/constraints.txt .
ENV PATH=/opt/venv/bin:$PATH
RUN mkdir -p /opt/docmill/models \
 && if [ -n "${BAKE_MODELS}" ]; then \
      DOCMILL_CACHE_DIR=/tmp/docmill docmill models import --preset "${BAKE_MODELS}" --publish /opt/docmill/models; \
    fi

FROM ${CUDA_IMAGE} AS runtime
# Pinned where the image is named: the CUDA, uv and Python versions above, every Python
# package by docker/constraints.txt.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/docmill docmill \
 && mkdir -p /var/cache/docmill && chown docmill:docmill /var/cache/docmill
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/docmill/models /opt/docmill/models
ENV PATH=/opt/venv/bin:$PATH \
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
