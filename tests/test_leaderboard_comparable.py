"""A grue entry is compared only with the paper rows made by the same settings (grue.leaderboard.comparable): the
same task version, the same algorithm, equal values on every setting the paper states for the row."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO
from grue.algorithms import resolve
from grue.leaderboard.board import make_board
from grue.leaderboard.build import render
from grue.leaderboard.comparable import algorithm_label
from grue.leaderboard.export import csv_text
from grue.results import MetricValue, ModelInfo, Results, SampleCounts, load_results, write_results
from grue.leaderboard.submissions import known_tasks

REPORTED = REPO / "leaderboard" / "reported"
TABLE_3_PPO = "imdb/arxiv-v2-table-03--3-ppo--sentiment-classifier-reward--headline.json"
TABLE_5_PPO_05 = "imdb/arxiv-v2-table-05--3-ppo--target-kl-0-5.json"


def submission(root: Path, name: str, algo: str, *sets: str) -> None:
    """A one-seed IMDB submission whose results.json records the config of ``grue train imdb --algo ALGO``."""
    cfg = resolve("imdb", algo, sets=list(sets)).to_dict()
    metrics = {n: MetricValue(0.5, h) for n, h in known_tasks()["imdb"].metrics.items()}
    res = Results(
        kind="evaluated",
        task="imdb",
        task_version=cfg["task_version"],
        split="test",
        algorithm=algo,
        model=ModelInfo("lvwerra/gpt2-imdb", None, 1000),
        seed=0,
        metrics=metrics,
        samples=SampleCounts(50, 50),
        runtime_seconds=1.0,
        date="2026-12-01T12:00:00Z",
        grue_version="0.2.0",
        git_commit=None,
        config={**cfg, "evaluated_weights": "run/checkpoint"},
    )
    folder = root / name
    path = write_results(res, folder / "imdb" / "seed0" / "results.json")
    path.with_name("samples.jsonl").write_text(
        json.dumps({"prompt": "p", "generation": "g", "references": ["r"]}) + "\n"
    )
    (folder / "submission.yaml").write_text(json.dumps({"who": "T", "model": "m", "algorithm": algo.upper()}))


def test_target_kl_decides_comparability_with_table_3(tmp_path):
    subs = tmp_path / "subs"
    submission(subs, "ppo-kl05", "ppo")  # today's defaults: Table 3's settings
    submission(subs, "ppo-kl01", "ppo", "ppo.kl_target=0.1")  # RL4LMs 97df0bd's target
    board = make_board(subs, REPORTED, "subs", "reported")
    rows = {r.ref: r for r in board.rows if r.kind == "submission"}
    assert TABLE_3_PPO in rows["ppo-kl05"].comparable_to and TABLE_5_PPO_05 in rows["ppo-kl05"].comparable_to
    assert all("ppo" in p for p in rows["ppo-kl05"].comparable_to)
    assert TABLE_3_PPO not in rows["ppo-kl01"].comparable_to and rows["ppo-kl01"].comparable_to == []
    assert (
        "PPO · sentiment-classifier reward (per Sec. B.3.1) · headline · arXiv v2 Table 3: kl_target 0.1 here, "
        "0.5 in arXiv v2 Table 3"
    ) in rows["ppo-kl01"].not_comparable
    csv = csv_text(board).splitlines()
    assert csv[0].endswith(",comparable_to")
    assert any(line.startswith("task,imdb,submission,ppo-kl01,") and line.endswith(",none") for line in csv)
    assert any(line.startswith("task,imdb,submission,ppo-kl05,") and TABLE_3_PPO in line for line in csv)
    pages = render(board)
    assert "kl_target 0.1 here, 0.5 in arXiv v2 Table 3" in pages["submissions/ppo-kl01.html"]
    assert (
        "<li>PPO · sentiment-classifier reward (per Sec. B.3.1) · headline · arXiv v2 Table 3</li>"
        in pages["submissions/ppo-kl05.html"]
    )
    assert "comparable with no paper rows" in pages["index.html"]


def test_nlpo_as_published_is_named_apart_and_only_it_meets_the_papers_nlpo_rows(tmp_path):
    subs = tmp_path / "subs"
    submission(subs, "nlpo-grue", "nlpo")
    submission(subs, "nlpo-paper", "nlpo", "nlpo.mask_refresh=paper")
    board = make_board(subs, REPORTED, "subs", "reported")
    rows = {r.ref: r for r in board.rows if r.kind == "submission"}
    assert (rows["nlpo-grue"].algorithm, rows["nlpo-paper"].algorithm) == ("NLPO", "NLPO (as published)")
    table_3 = "imdb/arxiv-v2-table-03--4-nlpo--sentiment-classifier-reward--headline.json"
    assert table_3 in rows["nlpo-paper"].comparable_to
    assert any(
        line.endswith('mask_refresh "periodic" here, "paper" in arXiv v2 Table 3')
        for line in rows["nlpo-grue"].not_comparable
    )
    assert algorithm_label("supervised+nlpo", {"nlpo": {"mask_refresh": "paper"}}) == "Supervised+NLPO (as published)"
    assert algorithm_label("ppo", {}) == "ppo"


def test_every_reported_row_states_its_settings_or_says_why_not():
    for path in sorted(REPORTED.glob("*/*.json")):
        paper = load_results(path).config["paper"]
        settings = paper["settings"]
        assert settings == "unknown" and paper["settings_reason"] or isinstance(settings, dict) and settings, path
        for key in settings if isinstance(settings, dict) else ():  # every stated key is a setting grue's config has
            part, name = key.split(".")
            algo = part if part in ("ppo", "nlpo", "supervised") else "ppo"
            assert name in resolve(path.parent.name, algo).to_dict()[part], (path, key)
