# scorelid developer commands. `make test` and `make quick` create .venv if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast lint quick bench-core clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly: a CPU wheel; an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# the inner loop: everything but the tests marked slow (torchrun, kill-and-resume, long training,
# the README's examples); `make test` (what CI runs) still runs them all
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# the README's main command; an interrupted run resumes, a finished runs/quick is refused unless
# `make quick QUICK_ARGS=--force` (add --no-resume to recompute everything)
QUICK_ARGS ?=
quick: $(STAMP)
	$(BIN)/scorelid bench --profile quick --out runs/quick --jobs 2 $(QUICK_ARGS)

bench-core: $(STAMP)
	$(BIN)/python benchmarks/estimator_cost.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
