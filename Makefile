# docmill: `make run` (install, then OCR the demo pages in-process), `make test` (install,
# start what the tests need, run them), `make bench` (docmill against RapidOCR, same models,
# and against OCRmyPDF with Tesseract on a scanned PDF).
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PEER_VENV := .venv-peer
PEER3_VENV := .venv-peer3
OCRMYPDF_VENV := .venv-ocrmypdf
BIN := $(VENV)/bin
MODELS ?= pp-ocrv6-int8det
SHARED ?= ../shared
OUT ?= out
QUIET_PIP := 2>&1 | { grep -v 'is ignored: it is neither' || true; }

.PHONY: install install-local install-test bytecode models samples run test chaos services stack stack-down bench bench-gpu clean

# Three installs into the one venv, each with its own stamp (redone when pyproject.toml changes);
# none uninstalls anything, so e.g. `make run` after `make test` keeps the test install whole.
# - install: the worker's (`make run`): no Paddle stack, no test tools;
# - install-local: adds the `test` extra for moto's S3 server, which stack, bench and soak run;
# - install-test: adds the `convert` extra too (paddlepaddle, paddle2onnx): make test covers
#   the converter.
install: $(VENV)/.installed-run bytecode
install-local: $(VENV)/.installed-local bytecode
install-test: $(VENV)/.installed-test bytecode
EXTRAS_run :=
EXTRAS_local := [test]
EXTRAS_test := [test,convert]

$(VENV)/.created:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip $(QUIET_PIP)
	touch $@

$(VENV)/.installed-%: pyproject.toml | $(VENV)/.created
	$(BIN)/python -m pip install -q -e '.$(EXTRAS_$*)' $(QUIET_PIP)
	touch $@

# An editable install leaves the project's own modules uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set every start compiled them again: 30-40 ms of CPU per
# `docmill run`. compileall writes only what is stale, so this is cheap to redo.
bytecode: | $(VENV)/.created
	$(BIN)/python -m compileall -q docmill worker pages converter producer demo > /dev/null

models: install
	$(BIN)/docmill models import --preset $(MODELS)

samples: install
	$(BIN)/docmill samples $(OUT)/samples

run: models samples
	$(BIN)/docmill run $(OUT)/samples $(wildcard $(SHARED)/data/paddleocr/doc/imgs_en) \
		--models $(MODELS) --out $(OUT)/run
	$(BIN)/docmill report $(OUT)/run --truth $(OUT)/samples/truth.json

services:
	scripts/ensure-redis.sh
	scripts/ensure-tools.sh

test: install-test services
	$(BIN)/python -m pytest -q -m "not chaos"

stack: install-local
	$(BIN)/python scripts/stack.py

stack-down:
	$(PYTHON) scripts/stack.py down

# The deployment files checked without a Docker engine: hadolint, compose config (Debian's
# docker-compose, installed when missing), k8s schemas, and the commands they run.
.PHONY: deploy-lint
deploy-lint: install-test services
	command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose; }
	$(BIN)/python -m pytest -q tests/docker tests/worker/test_check.py

# The images built and the compose stack run for real, as an air-gapped site would (Debian's
# packages and PyPI only): docker.io and debootstrap installed when missing, a local Debian
# base, the three images, the stack with a killed worker. Needs root; not part of `make test`.
.PHONY: deploy-test
deploy-test:
	$(PYTHON) scripts/deploy_test.py --shared $(SHARED)

chaos: install-test services
	$(BIN)/python -m pytest -q -m chaos

$(PEER_VENV)/.installed:
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q rapidocr_onnxruntime==1.4.4 shapely \
		"onnxruntime==$$($(BIN)/python -c 'import onnxruntime; print(onnxruntime.__version__)')" $(QUIET_PIP)
	touch $@

# The newest peer, RapidOCR 3.10.0 with the PP-OCRv6 files it ships, in its own venv with the
# same onnxruntime version as docmill's.
$(PEER3_VENV)/.installed:
	test -x $(PEER3_VENV)/bin/python || $(PYTHON) -m venv $(PEER3_VENV)
	$(PEER3_VENV)/bin/python -m pip install -q rapidocr==3.10.0 \
		"onnxruntime==$$($(BIN)/python -c 'import onnxruntime; print(onnxruntime.__version__)')" $(QUIET_PIP)
	touch $@

# OCRmyPDF 17 with Tesseract, the searchable-PDF peer: OCRmyPDF from PyPI in a venv of its own;
# Tesseract with English, and poppler's pdftotext, from Debian through ensure-tools.sh, called
# by bench only (make test never installs Tesseract). OCRmyPDF 17 needs no Ghostscript for
# --output-type pdf: pypdfium2 rasterises the pages and fpdf2 writes the text layer.
OCRMYPDF_TOOLS := tesseract:tesseract-ocr /usr/share/tesseract-ocr/5/tessdata/eng.traineddata:tesseract-ocr-eng \
	pdftotext:poppler-utils
$(OCRMYPDF_VENV)/.installed:
	test -x $(OCRMYPDF_VENV)/bin/python || $(PYTHON) -m venv $(OCRMYPDF_VENV)
	$(OCRMYPDF_VENV)/bin/python -m pip install -q ocrmypdf==17.13.0 $(QUIET_PIP)
	touch $@

bench: models install-local $(PEER_VENV)/.installed $(PEER3_VENV)/.installed $(OCRMYPDF_VENV)/.installed
	$(BIN)/python -m bench.run_bench --dataset all --repeat 3 --models $(MODELS)
	$(BIN)/python -m bench.orientation --models $(MODELS)
	$(BIN)/python -m bench.show_through --models $(MODELS)
	$(BIN)/python -m bench.small_print --models $(MODELS)
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.host_cpu
	$(BIN)/python -m bench.documents --models $(MODELS)
	$(BIN)/python -m bench.tiff_pdf --models $(MODELS)
	$(BIN)/python -m bench.output_memory
	$(BIN)/python -m bench.distributed --models $(MODELS)
	scripts/ensure-tools.sh $(OCRMYPDF_TOOLS)
	$(BIN)/python -m bench.ocrmypdf_peer --models $(MODELS)

# One prepared GPU benchmark (bench/gpu.py). It installs nothing from a registry: give it a
# folder of wheels (ARGS="--wheels DIR"), or it uses what is installed. Rehearse it here with
# make bench-gpu ARGS="--device cpu --quick" (the test suite does).
bench-gpu:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m bench.gpu $(ARGS)

clean:
	rm -rf $(OUT) .pytest_cache

.PHONY: soak
soak: models install-local services
	$(BIN)/python -m bench.soak --images 2000 --models $(MODELS)
