# syntax=docker/dockerfile:1.7
# docmill converter: `docmill convert`, a one-shot job that turns Paddle inference models into
# a checked ONNX model set and publishes it. The only image with the Paddle stack (the
# `convert` extra: paddlepaddle, paddle2onnx, onnxslim), which is why it is its own image.
#   docker build -f docker/converter.Dockerfile -t docmill-converter .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
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
RUN /opt/venv/bin/pip install --constraint docker/constraints.txt ".[convert]"

FROM ${PYTHON_IMAGE} AS runtime
# Paddle's CPU wheel links the system OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/docmill docmill
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DOCMILL_CACHE_DIR=/home/docmill/.cache/docmill
USER 10001:10001
WORKDIR /home/docmill
ENTRYPOINT ["docmill"]
CMD ["convert", "--preset", "pp-ocrv4-ch", "--publish", "s3://models/sets"]
