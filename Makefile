# Everything from nothing: `make demo` and `make test` create .venv, install torch (CPU build
# where the machine has it) first, then the package with its dev, ray and bench extras (bench:
# OR-Tools, the CP-SAT solver bench/bench_select_hard.py compares with).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

export MALLOC_MMAP_THRESHOLD_ ?= 1073741824
export MALLOC_TRIM_THRESHOLD_ ?= 4294967296

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/taskgrouper demo --out taskgrouper-demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_scenes.py
	$(BIN)/python bench/bench_flops.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_select.py
	$(BIN)/python bench/bench_balancers.py
	$(BIN)/python bench/bench_papnet_memory.py
	$(BIN)/python bench/bench_data_loading.py
	$(BIN)/python bench/bench_ray.py

clean:
	rm -rf $(VENV) taskgrouper-demo .pytest_cache .ruff_cache
