# grue: install, test, benchmark. torch 2.13.0 is installed first, on its own, so that
# resolving the project's dependencies never pulls a CUDA build of torch.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export GRUE_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: install test test-fast bench compare smoke clean

install:
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	@$(PYTHON) -c "import torch, grue; print('grue', grue.__version__, 'with torch', torch.__version__)"

test:
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

smoke:
	grue train imdb --algo ppo --preset smoke

bench:
	$(PYTHON) benchmarks/bench_ppo.py --out benchmarks/results/bench_ppo.json

compare:
	$(PYTHON) benchmarks/compare.py --out benchmarks/results/compare

clean:
	rm -rf build dist .pytest_cache benchmarks/results
