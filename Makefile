# grue: install, test, benchmark. torch 2.13.0 is installed first, on its own, so that
# resolving the project's dependencies never pulls another build of torch.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# Where torch comes from. On Linux without an NVIDIA GPU (no working `nvidia-smi`), PyTorch's
# CPU-only wheels: PyPI's Linux torch is the CUDA build (a 527 MB wheel plus 19 CUDA packages).
# `make install` falls back to the plain `pip install` when this index cannot be reached.
# Override: `make install TORCH_INDEX=` (pip's own indexes) or TORCH_INDEX=URL (e.g. a ROCm index).
ifeq ($(origin TORCH_INDEX),undefined)
TORCH_INDEX := $(shell [ "$$(uname -s)" = Linux ] && ! nvidia-smi -L >/dev/null 2>&1 && echo https://download.pytorch.org/whl/cpu)
endif
export GRUE_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

DEBIAN_PACKAGES := wordnet-base wordnet-sense-index chromium chromium-driver slurmctld slurmd slurm-client

.PHONY: install install-torch system-deps format test test-fast test-deps-range bench bench-trl bench-launchers compare compare-precision smoke clean

# WordNet 3.0 from Debian, for METEOR without internet (grue copies it into an NLTK data
# folder on first use), Chromium + ChromeDriver for the leaderboard's browser tests, and SLURM
# (slurmctld, slurmd and the sbatch/squeue/scancel commands; Debian 12 has 22.05) for the tests
# of `grue benchmark run --launcher slurm`, which start a one-node cluster of their own
# (tests/clusters.py; auth/none, so the munge that apt pulls in is never started by them).
# Needs root and apt; elsewhere run `python -m nltk.downloader wordnet` (the browser and SLURM tests skip).
system-deps:
	apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES) || \
	  (apt-get update && apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES))

install: install-torch
	$(PIP) install -e ".[dev]"
	@$(PYTHON) -c "import torch, grue; print('grue', grue.__version__, 'with torch', torch.__version__)"

install-torch:
	@if [ -n "$(TORCH_INDEX)" ] && $(PYTHON) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
	    "$(TORCH_INDEX)/torch/" 2>/dev/null; then \
	  echo "$(PIP) install torch==2.13.0 --index-url $(TORCH_INDEX)   # no GPU seen: CPU-only build"; \
	  $(PIP) install torch==2.13.0 --index-url "$(TORCH_INDEX)"; \
	else \
	  echo "$(PIP) install torch==2.13.0$(if $(TORCH_INDEX),   # $(TORCH_INDEX) cannot be reached: pip's indexes)"; \
	  $(PIP) install torch==2.13.0; \
	fi

# ruff (pinned in the dev extra): the formatter, then the checks tests/test_formatting.py runs.
format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check .

test:
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

# The tested range of the core dependencies: the dependency-sensitive tests at the lowest Hugging Face stack
# (.ci/deps-lowest.txt, pyproject.toml's lower bounds) and at the newest releases its upper bounds allow, each in a
# throw-away venv under .venv-deps/ layered over this one. Needs PyPI; about 10 minutes per corner on 2 cores.
test-deps-range:
	PYTHON=$(PYTHON) .ci/deps-range

smoke:
	grue train imdb --algo ppo --preset smoke

# PPO's engine (full and LoRA), NLPO against PPO on that workload, and the rollout sampler against transformers' generate
# (T5-base and GPT-2 small shapes). Each writes a JSON into benchmarks/results/.
bench:
	$(PYTHON) benchmarks/bench_ppo.py --out benchmarks/results/bench_ppo.json
	$(PYTHON) benchmarks/bench_nlpo.py --out benchmarks/results/bench_nlpo.json
	$(PYTHON) benchmarks/bench_seq2seq.py --out benchmarks/results/bench_seq2seq.json

# grue's PPO against TRL 1.12.0's PPOTrainer, A B A B, fp32 and bf16 (TRL goes into benchmarks/.trl-1.12.0, git-ignored).
bench-trl:
	$(PYTHON) benchmarks/bench_trl.py --out benchmarks/results/bench_trl.json

# grue benchmark run on each launcher (local x1, local x2, a one-node SLURM, a local Ray): the 7 x 2 smoke protocol's
# wall time and each launcher's overhead per cell (needs GRUE_DATA_DIR; SLURM from make system-deps, as root).
bench-launchers:
	$(PYTHON) benchmarks/bench_launchers.py --out benchmarks/results/bench_launchers.json

compare:
	$(PYTHON) benchmarks/compare.py --jobs 2 --iterations 20 --out benchmarks/results/compare

# fp32 against bf16 on the IMDB smoke setting (PPO and NLPO, tiny-gpt2, 3 seeds): the same reward curve within seed noise?
compare-precision:
	$(PYTHON) benchmarks/compare.py --jobs 2 --iterations 20 --algos ppo nlpo --settings "causal (tiny-gpt2)" \
		--precisions no bf16 --out benchmarks/results/compare-precision

clean:
	rm -rf build dist .pytest_cache benchmarks/results
