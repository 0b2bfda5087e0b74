"""Shared test fixtures: offline environment, the real-data directory, and a CLI runner."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

# The real-data directory is read once here and served by the `data_dir` fixture; it is then
# removed from this process so that in-process runs are the same whether or not it is set.
DATA_DIR = os.environ.pop("GRUE_DATA_DIR", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Runs draw plots/curves.png with matplotlib (about 0.7 s of CPU each); the suite's hundred short runs skip it.
# The tests of the pictures turn it back on (GRUE_PLOTS=1).
os.environ.setdefault("GRUE_PLOTS", "0")
# The same float kernels on every x86 CPU: torch's own kernels and MKL's pick AVX-512 code where the CPU has it, whose
# sums round differently from the AVX2 code, and a sampled run then takes other tokens. Pinned to AVX2, the suite's
# runs (the README's done-line, the learning thresholds) give the same numbers on AVX2 and AVX-512 machines.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")

TESTS = Path(__file__).parent
REPO = TESTS.parent


@pytest.fixture
def data_dir() -> Path:
    """The real GRUE samples ($GRUE_DATA_DIR); the test is skipped when they are absent."""
    path = DATA_DIR
    if not path or not Path(path).is_dir():
        pytest.skip("GRUE_DATA_DIR is not set to a directory with the GRUE data samples (../shared/data)")
    return Path(path)


def cli_env(data_dir: str | None = None) -> dict:
    """Environment for a `grue` subprocess: offline, GRUE_DATA_DIR only if given, test rewards importable."""
    env = {k: v for k, v in os.environ.items() if k != "GRUE_DATA_DIR"}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
    )
    if data_dir:
        env["GRUE_DATA_DIR"] = str(data_dir)
    return env


def run_cli(
    *args: str, data_dir: str | None = None, timeout: int = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m grue_cli.main ARGS` (the `grue` console script) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "grue_cli.main", *args],
        capture_output=True,
        text=True,
        env=cli_env(data_dir),
        timeout=timeout,
        cwd=cwd or REPO,
    )


@dataclasses.dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_in_process(*args: str, data_dir: str | None = None) -> CliResult:
    """The `grue` command run in this process (typer's runner) with run_cli's environment: for checks of what the
    command answers (errors, exit codes) without paying a new interpreter and torch import per case. An
    exception that escapes the command is re-raised, so a traceback cannot pass for an answer."""
    from typer.testing import CliRunner

    from grue_cli.main import app

    env = cli_env(data_dir)
    r = CliRunner().invoke(app, list(args), env={k: env.get(k) for k in set(env) | set(os.environ)})
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return CliResult(r.exit_code, r.stdout, r.stderr)


# Small, fast PPO settings for end-to-end runs of the tiny models.
FAST = [
    "--set",
    "ppo.batch_unit=completions",
    "--set",
    "ppo.rollout_size=16",
    "--set",
    "ppo.rollout_batch_size=8",
    "--set",
    "ppo.minibatch_size=8",
    "--set",
    "ppo.epochs=2",
    "--set",
    "generation.max_new_tokens=8",
    "--set",
    "generation.min_new_tokens=8",
]


def sampler(max_prompt_tokens: int, min_new_tokens: int, max_new_tokens: int, **warp):
    """A generation section for direct ``grue.rollout.generate`` calls: no top-k limit unless ``warp`` sets one."""
    from grue.config import GenerationConfig

    return GenerationConfig(
        max_prompt_tokens=max_prompt_tokens,
        min_new_tokens=min_new_tokens,
        max_new_tokens=max_new_tokens,
        **{"top_k": 0, **warp},
    )


@pytest.fixture
def fresh_accelerator():
    """accelerate keeps one process-wide state (its mixed precision included): start and leave it clean."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
