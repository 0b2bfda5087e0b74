"""`make compare` (benchmarks/compare.py) end to end: real `grue train` runs in subprocesses, a summary and a plot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, cli_env


@pytest.mark.slow
def test_compare_runs_and_writes_summary_and_plot(tmp_path):
    out = tmp_path / "compare"
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "compare.py"),
            "--algos",
            "rloo",
            "--settings",
            "seq2seq (tiny-t5)",
            "--seeds",
            "0",
            "--precisions",
            "no",
            "bf16",
            "--iterations",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algos"] == ["rloo"] and summary["iterations"] == 2
    assert set(summary["results"]) == {"seq2seq (tiny-t5)"} and summary["precisions"] == ["no", "bf16"]
    assert set(summary["results"]["seq2seq (tiny-t5)"]) == {"rloo", "rloo (bf16)"}
    check = summary["precision_check"]["seq2seq (tiny-t5)"]["rloo (bf16)"]
    assert check["mean_seed_std"] == 0.0 and check["within_seed_noise"] == (check["mean_abs_curve_difference"] == 0.0)
    for r in summary["results"]["seq2seq (tiny-t5)"].values():
        assert len(r["per_seed_final"]) == 1 and 0.0 <= r["final_reward_mean"] <= 1.0  # the lexicon reward's range
        assert r["final_reward_std"] == 0.0 and r["seconds_per_iteration"] > 0
    assert (out / "reward_kl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rloo  final reward" in p.stdout and "rloo (bf16): reward curve differs from fp32's by" in p.stdout


def test_precision_check_compares_the_curve_gap_with_the_seed_spread():
    """Hand-made curves: two seeds per precision, two iterations. fp32 rewards (0, 1) and (0.2, 1.2): means 0.1, 1.1,
    spreads 0.1 each; bf16 shifted by +0.05 (within), then by +0.5 (outside)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from compare import precision_check

    def runs(shift):
        return [[{"reward/mean": r + shift, "kl/mean": 0.1} for r in seed] for seed in ([0.0, 1.0], [0.2, 1.2])]

    near, far = precision_check(runs(0), runs(0.05)), precision_check(runs(0), runs(0.5))
    assert near["mean_abs_curve_difference"] == pytest.approx(0.05) and near["mean_seed_std"] == pytest.approx(0.1)
    assert near["within_seed_noise"] and not far["within_seed_noise"]
    assert far["final_reward_difference"] == pytest.approx(0.5) and far["max_abs_kl_difference"] == 0.0
