"""benchmarks/bench_ppo.py, bench_nlpo.py and bench_seq2seq.py on grue's tiny models and a smaller workload: the
timed code paths run for real and the numbers they report are consistent (the benchmarks themselves: make bench)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_nlpo  # noqa: E402
import bench_ppo  # noqa: E402
import bench_seq2seq  # noqa: E402


@pytest.fixture
def small(monkeypatch):
    """4 prompts of 64 tokens, 8 new tokens: the same code, seconds instead of minutes."""
    for mod in (bench_ppo, bench_seq2seq):
        monkeypatch.setattr(mod, "BATCH", 4)
        monkeypatch.setattr(mod, "NEW_TOKENS", 8)


@pytest.mark.usefixtures("fresh_accelerator", "small")
@pytest.mark.parametrize("algo", ["ppo", "nlpo"])
def test_a_ppo_and_an_nlpo_run_time_their_phases(algo):
    r = bench_ppo.run_one("tiny-gpt2", 1, 0, algo)
    assert r["algo"] == algo and r["settings"]["rollout_size"] == 4
    (it,) = r["per_iteration"]
    assert it["rollout_tokens"] == 4 * 8 and it["update_tokens"] == 4 * 8
    assert 0 < it["generate_s"] <= it["rollout_s"] < it["iteration_s"] and it["update_s"] > 0
    assert r["seconds_per_iteration"] == it["iteration_s"]
    assert (r["mask_refresh_seconds"] is not None and r["mask_refresh_seconds"] > 0) == (algo == "nlpo")


def test_nlpo_summary_is_the_median_of_repeats_and_nlpo_over_ppo():
    def run(algo, s, refresh=None):
        return {
            "algo": algo,
            "seconds_per_iteration": s,
            "rollout_seconds": s / 2,
            "generate_seconds": s / 4,
            "update_seconds": s / 2,
            "peak_memory_mb": 100 * s,
            "mask_refresh_seconds": refresh,
        }

    runs = [
        run("ppo", 2),
        run("nlpo", 3, 0.1),
        run("ppo", 4),
        run("nlpo", 3, 0.3),
        run("ppo", 3),
        {"algo": "nlpo", "error": "subprocess exited with 1"},
    ]
    rows, ratios = bench_nlpo.summarize(runs)
    assert rows["ppo"]["seconds_per_iteration"] == 3 and rows["ppo"]["repeats"] == 3 and rows["nlpo"]["repeats"] == 2
    assert rows["nlpo"]["mask_refresh_seconds"] == pytest.approx(0.2) and rows["ppo"]["mask_refresh_seconds"] is None
    assert ratios["seconds_per_iteration"] == 1.0 and ratios["update_seconds"] == 1.0


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("model", ["tiny-t5", "tiny-gpt2"])
def test_grue_and_transformers_sample_the_same_number_of_tokens(model):
    r = bench_seq2seq.bench(model, 1)
    for side in ("grue", "transformers"):
        assert len(r[side]["runs_s"]) == 1 and r[side]["tokens_per_s"] == pytest.approx(4 * 8 / r[side]["seconds"])
    assert r["grue_over_transformers_tokens_per_s"] == pytest.approx(
        r["grue"]["tokens_per_s"] / r["transformers"]["tokens_per_s"]
    )
