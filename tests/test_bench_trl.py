"""benchmarks/bench_trl.py on a tiny shape: grue's side always; TRL's only where benchmarks/.trl-1.12.0 exists
(the test never installs it: no network in tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_trl  # noqa: E402


def check(runs: list[dict], side: str) -> None:
    assert len(runs) == 2  # the warm-up and one timed iteration
    for x in runs:
        assert x["generated_tokens"] == bench_trl.BATCH * bench_trl.NEW_TOKENS
        assert 0 < x["generate_s"] <= x["rollout_s"] < x["iteration_s"], (side, x)
        assert abs(x["rollout_s"] + x["update_s"] - x["iteration_s"]) < 1e-6 * x["iteration_s"] + 1e-3, (side, x)
        if sys.platform == "linux":
            assert x["rollout_peak_mb"] > 100 and x["update_peak_mb"] > 100, (side, x)


@pytest.mark.usefixtures("fresh_accelerator")
def test_grue_side_on_the_tiny_shape(monkeypatch):
    monkeypatch.setattr(bench_trl, "BATCH", 4)  # the workload's size, smaller: seconds, not half a minute
    monkeypatch.setattr(bench_trl, "NEW_TOKENS", 8)
    check(bench_trl.run_grue("tiny", "fp32", 1), "grue")


def test_summary_ratios_are_grue_over_trl():
    run = lambda side, prec, s: {
        "side": side,
        "precision": prec,
        "seconds_per_iteration": s,
        "rollout_seconds": s / 2,
        "generate_seconds": s / 4,
        "update_seconds": s / 2,
        "peak_memory_mb": 10 * s,
        "rollout_peak_mb": 5 * s,
        "update_peak_mb": 10 * s,
    }
    runs = [
        run("grue", "fp32", 2),
        run("trl", "fp32", 4),
        run("grue", "fp32", 4),
        run("trl", "fp32", 4),
        run("grue", "bf16", 1),
        {"side": "trl", "precision": "bf16", "error": "exit 1"},
    ]
    out = bench_trl.summarise(runs, ["fp32", "bf16"])
    assert out["rows"]["grue-fp32"]["seconds_per_iteration"] == 3  # median of the repeats
    assert out["ratios"] == {
        "fp32_seconds_per_iteration": 0.75,
        "fp32_peak_memory": 0.75,
        "grue_bf16_over_trl_fp32_seconds_per_iteration": 0.25,
    }


@pytest.mark.slow
@pytest.mark.skipif(
    not any(bench_trl.TRL_DIR.glob("trl-*.dist-info")), reason="TRL not installed in benchmarks/.trl-1.12.0"
)
@pytest.mark.usefixtures("fresh_accelerator")
def test_trl_side_on_the_tiny_shape():
    check(bench_trl.run_trl("tiny", "fp32", 1), "trl")
