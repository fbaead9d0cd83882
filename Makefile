# helixserve — the two commands first:
#   make run    create .venv, install helixserve with the train extra, start it (server + worker)
#   make test   create .venv with every extra, run ruff, mypy and the whole pytest suite
# Exact versions of every package come from requirements/constraints.txt.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
PIP := $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q -c $(CONSTRAINTS)

.PHONY: audit image image-worker image-clean manifests reliability run test lint typecheck pytest install-base install-run install-all lock clean help bench bench-serving bench-science zoo proto

help:
	@echo "make run   - install helixserve (serving + training) into .venv and start it"
	@echo "make test  - install everything into .venv; ruff, mypy, pytest"
	@echo "make image - build the container images and run them for real (root, docker.io)"
	@echo "make lock  - re-resolve requirements/constraints.txt from pyproject.toml"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -c $(CONSTRAINTS) pip

$(VENV)/.base-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.all-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP_INSTALL) -e ".[train,s3,parquet,explain,ray,postgres,dev]"
	touch $@ $(VENV)/.base-installed $(VENV)/.run-installed

# make run: the whole workspace, worker included, so the train extra (torch==2.13.0, the CPU wheel
# pinned in the constraints); `pip install helixserve` (the serving install) stays torch-free.
$(VENV)/.run-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP_INSTALL) -e ".[train]"
	touch $@ $(VENV)/.base-installed

install-base: $(VENV)/.base-installed
install-run: $(VENV)/.run-installed
install-all: $(VENV)/.all-installed

# Serve the pretrained models shipped in the package, and yours from HELIXSERVE_STORE (default
# ~/.helixserve/store): http://127.0.0.1:8000 (API docs at /docs), gRPC on 127.0.0.1:8001, with
# the workspace and one worker process that trains its queued runs. Nothing downloaded. Ctrl+C
# stops both.
run: install-run
	$(BIN)/helixserve models list
	$(BIN)/helixserve quickstart

lint: install-all
	$(BIN)/ruff check src tests benchmarks reliability
	$(BIN)/ruff format --check src tests benchmarks reliability

typecheck: install-all
	$(BIN)/mypy

pytest: install-all
	$(BIN)/pytest

test: lint typecheck pytest

# The container images, built and run for real (not in make test; .ci/run runs make image): a
# private Docker engine (Debian's docker.io, as root: tests/support/docker_engine.py) builds the
# serving image and compose.yaml's images on local stand-ins for the public base images
# (debootstrap: tests/support/base_images.py), runs the container, then the compose stack
# (tests/image). Sizes and build times are printed at the end. Needs docker.io, docker-compose
# and debootstrap (apt-get install; .ci/run installs them).
image: install-all
	$(BIN)/pytest -m image tests/image/test_image.py tests/image/test_compose.py

# The worker image (the train extra, CPU torch: about 1 GB to install; not in CI).
image-worker: install-all
	$(BIN)/pytest -m image tests/image/test_worker_image.py

# The Kubernetes and KServe manifests against the API schemas, offline (not in make test):
# kubernetes-validate's bundled schemas and the kserve SDK's models, in a throw-away venv
# (tests/support/manifests.py). No cluster applies them here.
manifests:
	test -x .venv-manifests/bin/python || ( $(PYTHON) -m venv .venv-manifests && \
	  .venv-manifests/bin/python -m pip install --disable-pip-version-check -q \
	  kubernetes-validate==1.37.0 kserve==0.21.0 )
	.venv-manifests/bin/python -m tests.support.manifests deploy/k8s/helixserve.yaml \
	  deploy/kserve/inferenceservice.yaml

# Forget the images' cache: the base root file system, the private engine's images and layers.
image-clean:
	rm -rf "$${HELIXSERVE_IMAGE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/helixserve/image}"

# Re-resolve the pinned set (run after changing dependencies in pyproject.toml, then commit it).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
	.venv-lock/bin/python -m pip install --disable-pip-version-check -q -e ".[train,s3,parquet,explain,ray,postgres,dev]"
	( echo "# Exact versions that make test and make run install (regenerate with make lock)."; \
	  .venv-lock/bin/python -m pip freeze --all --exclude-editable | sed 's/+cpu$$//' ) > $(CONSTRAINTS)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Retrain the pretrained zoo from ../shared/data into src/helixserve/zoo/store (not in make test).
zoo: install-all
	$(BIN)/helixserve zoo build --data ../shared/data

# Benchmarks (not part of make test): speed figures, ratios measured in one run.
bench: install-all
	$(BIN)/python -m benchmarks.bench_store_runtime
	$(BIN)/python -m benchmarks.bench_serving
	$(BIN)/python -m benchmarks.bench_grpc
	$(BIN)/python -m benchmarks.bench_asgi_cpu
	$(BIN)/python -m benchmarks.bench_batch
	$(BIN)/python -m benchmarks.bench_explain
	$(BIN)/python -m benchmarks.bench_dataset_upload
	$(BIN)/python -m benchmarks.bench_dataset_upload --http
	$(BIN)/python -m benchmarks.bench_worker
	$(BIN)/python -m benchmarks.bench_live
	$(BIN)/python -m benchmarks.bench_watchers
	$(BIN)/python -m benchmarks.bench_accounts
	$(BIN)/python -m benchmarks.bench_heavy
	$(BIN)/python -m benchmarks.profile_heavy
	$(BIN)/python -m benchmarks.goals

# Only the serving benchmark (needs wrk and h2load: apt-get install wrk nghttp2-client).
bench-serving: install-all
	$(BIN)/python -m benchmarks.bench_serving
	$(BIN)/python -m benchmarks.bench_grpc
	$(BIN)/python -m benchmarks.bench_asgi_cpu

# The DNA classification defaults on simulated tasks, scored on a holdout kept untouched until the
# end; writes its tables into docs/benchmarks.md (about 20-40 minutes on 2 cores; not in make test).
bench-science: install-all
	nice -n 10 $(BIN)/python -m benchmarks.bench_science

# Recompile the Open Inference Protocol descriptor after editing the .proto (grpcio-tools in a
# throw-away venv: it is a build tool, not a dependency).
PROTO_DIR := src/helixserve/serving/proto
proto:
	rm -rf .venv-proto
	$(PYTHON) -m venv .venv-proto
	.venv-proto/bin/python -m pip install --disable-pip-version-check -q "grpcio-tools==1.78.2" "protobuf==6.33.6"
	.venv-proto/bin/python -m grpc_tools.protoc -I$(PROTO_DIR) --descriptor_set_out=$(PROTO_DIR)/grpc_predict_v2.pb $(PROTO_DIR)/grpc_predict_v2.proto
	rm -rf .venv-proto

# Known vulnerabilities (PyPI's advisory database) in every pinned dependency. --strict: a package
# that cannot be checked fails the audit (from these build machines PyPI's per-version JSON API,
# which carries the advisories, is not reachable, so here it fails; see docs/reliability.md).
audit:
	test -x .venv-audit/bin/pip-audit || ( $(PYTHON) -m venv .venv-audit && \
	  .venv-audit/bin/python -m pip install --disable-pip-version-check -q pip-audit==2.10.1 )
	grep -v '^#' $(CONSTRAINTS) > .venv-audit/requirements.txt
	.venv-audit/bin/pip-audit --requirement .venv-audit/requirements.txt --no-deps --disable-pip \
	  --progress-spinner off --strict

# The long reliability suite (about 25 minutes, not in make test): fuzzing with thousands of
# inputs, overload and a 10-minute soak, kill -9 / disk-full faults; writes docs/reliability.md.
reliability: install-all
	status=0; \
	for step in fuzz "load --soak-minutes 10" faults; do \
	  $(BIN)/python -m reliability.$$step || status=1; \
	done; \
	$(BIN)/python -m reliability.report; exit $$status
