# multiverse: run and compare multimodal single-cell integration methods in containers.
#
#   make run-all    build what is missing, then run every method on the bundled
#                   synthetic data (or INPUT=file.h5mu) into results/ (or OUT=...)
#   make test       build the images, then run the test suite against the real engine
#
# Set-up steps are idempotent; each is also a target of its own.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    := data/synthetic.h5mu
INPUT   ?= $(DATA)
OUT     ?= results
MODELS  ?=
PYTEST_ARGS ?=

.PHONY: help setup engine podman slurm browser base-image build-all run-all test test-unit data bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

setup: $(BIN)/multiverse  ## host virtual environment with multiverse and its test tools

$(BIN)/multiverse: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

engine:  ## make a Docker engine answer (installs/starts Debian's docker.io if none does)
	bash scripts/ensure-docker-engine.sh

podman:  ## Podman's Docker-compatible service (Debian's podman), for the Podman tests
	bash scripts/ensure-podman.sh

slurm:  ## a one-node Slurm cluster on this machine (Debian's slurm-wlm + munge), for the Slurm tests
	bash scripts/ensure-slurm.sh

browser:  ## headless Chromium + ChromeDriver for the report's browser test (Debian packages)
	bash scripts/ensure-test-browser.sh

base-image: engine  ## the Python 3.11 base image: pulled if a registry answers, else built offline
	@docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
	 || docker image inspect multiverse/python:3.11-slim-bookworm >/dev/null 2>&1 \
	 || timeout 60 docker pull python:3.11-slim-bookworm >/dev/null 2>&1 \
	 || bash scripts/build-base-image.sh

build-all: setup base-image  ## build every method's image (cached layers make this quick when built)
	$(BIN)/multiverse build $(MODELS)

data: $(DATA)  ## the bundled synthetic paired dataset (RNA+ATAC, known cell types and batches)

$(DATA): | setup
	$(BIN)/multiverse synth $(DATA)

run-all: build-all $(DATA)  ## run every method on INPUT (default: the synthetic data) into OUT
	$(BIN)/multiverse run --input $(INPUT) --output $(OUT) $(if $(MODELS),--models $(MODELS))

test: build-all browser podman slurm  ## the whole test suite: real engines (Docker, Podman, Slurm), images, browser
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup  ## only the tests that need no Docker engine
	$(BIN)/pytest -m "not docker" $(PYTEST_ARGS)

bench: build-all $(DATA)  ## the quick benchmarks under bench/ (about an hour on 2 cores; scaling.py runs for hours alone)
	$(BIN)/python bench/orchestration_overhead.py
	$(BIN)/python bench/parallel_jobs.py
	$(BIN)/python bench/campaign_overhead.py
	$(BIN)/python bench/evaluation_time.py
	$(BIN)/python bench/methods.py

clean:  ## remove the virtual environment, wheelhouses and results (images stay)
	rm -rf $(VENV) build results bench-results
