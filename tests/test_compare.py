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
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare.py"), "--algos", "rloo", "--settings",
                        "seq2seq (tiny-t5)", "--seeds", "0",
                        "--iterations", "2", "--out", str(out)], capture_output=True, text=True, env=cli_env(), cwd=REPO,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algos"] == ["rloo"] and summary["iterations"] == 2
    assert set(summary["results"]) == {"seq2seq (tiny-t5)"}
    for res in summary["results"].values():
        r = res["rloo"]
        assert len(r["per_seed_final"]) == 1 and 0.0 <= r["final_reward_mean"] <= 1.0  # the lexicon reward's range
        assert r["final_reward_std"] == 0.0 and r["seconds_per_iteration"] > 0
    assert (out / "reward_kl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rloo  final reward" in p.stdout
