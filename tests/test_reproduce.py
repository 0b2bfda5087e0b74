"""benchmarks/reproduce.py: the comparison with the paper's mean and std, the rows' files, and the one-line stop
without the Hugging Face Hub (the rows themselves need the Hub and a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import reproduce  # noqa: E402


def test_a_mean_more_than_two_paper_stds_away_is_flagged():
    paper = {
        "sentiment_score": {"value": 0.605, "std": 0.023},
        "perplexity": {"value": 33.497, "std": 0.1},
        "h1": {"value": 5.0, "std": None},
        "msttr": {"value": 0.7, "std": 0.01},
    }
    ours = {"sentiment_score": [0.60, 0.62, 0.61], "perplexity": [33.0, 33.1, 33.2], "h1": [4.0]}
    rows = {r["metric"]: r for r in reproduce.compare(ours, paper)}
    # |0.61 - 0.605| = 0.005 <= 0.046: ok; |33.1 - 33.497| = 0.397 > 0.2: outside; no std printed: no verdict
    assert rows["sentiment_score"]["flag"] is False and abs(rows["sentiment_score"]["ours"] - 0.61) < 1e-12
    assert rows["perplexity"]["flag"] is True and rows["perplexity"]["seeds"] == 3
    assert rows["h1"]["flag"] is None and rows["msttr"]["ours"] is None and rows["msttr"]["flag"] is None


def test_every_row_names_a_table_5_file_with_the_headline_settings():
    for row, (algo, first, sets, name) in reproduce.ROWS.items():
        data = json.loads((reproduce.REPORTED / name).read_text(encoding="utf-8"))
        assert (
            data["task"] == "imdb"
            and "sentiment_score" in data["metrics"]
            and data["metrics"]["sentiment_score"]["std"]
        )
        expected = {"Zero-Shot": "zero-shot", "Supervised": "supervised"}.get(row, row.lower())
        assert data["algorithm"].lower() == expected, row
        assert ("nlpo.mask_refresh=paper" in sets) == (algo == "nlpo")


def test_without_the_hub_it_stops_at_once_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "reproduce.py"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "need the Hugging Face Hub" in done.stderr and "HF_HUB_OFFLINE is set" in done.stderr
    assert not (tmp_path / "r").exists()
    bad = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "reproduce.py"), "--rows", "PPX"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "--rows accepts" in bad.stderr
