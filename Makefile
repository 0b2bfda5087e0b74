# grue: install, test, benchmark. torch 2.13.0 is installed first, on its own, so that
# resolving the project's dependencies never pulls a CUDA build of torch.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export GRUE_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

DEBIAN_PACKAGES := wordnet-base wordnet-sense-index chromium chromium-driver

.PHONY: install system-deps test test-fast bench compare smoke clean

# WordNet 3.0 from Debian, for METEOR without internet (grue copies it into an NLTK data
# folder on first use), and Chromium + ChromeDriver for the leaderboard's browser tests.
# Needs root and apt; elsewhere run `python -m nltk.downloader wordnet` (the browser tests skip).
system-deps:
	apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES) || \
	  (apt-get update && apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES))

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
