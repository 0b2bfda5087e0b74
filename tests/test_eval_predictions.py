"""``grue eval --predictions``: generations made elsewhere, scored exactly as a normal evaluation scores its own."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import cli_in_process, run_cli
from typer.testing import CliRunner

from grue.algorithms import resolve
from grue.errors import GrueError
from grue.evaluation import task_metrics
from grue.metrics import METRICS, EvalBatch, MetricOptions, MetricSkipped, metric_function
from grue.results import load_results
from grue.data import load_examples
from grue_cli.main import app


def write_jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def examples_of(task: str, split: str, data_dir, n: int):
    return load_examples(resolve(task, "ppo", flags={"run.data_dir": str(data_dir)}), split)[:n]


def samples(out) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def score_external(tmp_path, data_dir, task, split, generations, out_name, *extra):
    preds = write_jsonl(
        tmp_path / f"{out_name}.jsonl",
        [{"index": i, "generation": g, "id": f"x{i}"} for i, g in enumerate(generations)],
    )
    out = tmp_path / out_name
    r = cli_in_process(
        "eval",
        "--task",
        task,
        "--split",
        split,
        "--predictions",
        preds,
        "--model-name",
        "some-lab/api-model",
        "--limit",
        str(len(generations)),
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(out),
        "--quiet",
        *extra,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return load_results(out / "results.json"), out


@pytest.mark.slow
def test_scores_of_chosen_texts_equal_the_metric_functions(tmp_path, data_dir):
    exs = examples_of("wmt16", "test", data_dir, 5)
    refs = [e.references[0] for e in exs]
    assert all(len(e.references) == 1 for e in exs)

    # The references themselves: perfect scores by the definitions (one reference each).
    res, _ = score_external(tmp_path, data_dir, "wmt16", "test", refs, "perfect")
    for name in ("bleu", "sacrebleu", "chrf", "rouge_1", "rouge_2", "rouge_l", "rouge_lsum"):
        assert res.metrics[name].value == pytest.approx(1.0, abs=1e-12), name
    assert res.metrics["ter"].value == 0.0

    # Other texts: every number equals what the metric function gives directly on the same batch.
    words = refs[1].split()
    gens = [
        refs[0],
        " ".join(words[: len(words) // 2]),
        "Ein völlig anderer Satz über nichts.",
        refs[3].upper(),
        refs[0],
    ]
    res, out = score_external(tmp_path, data_dir, "wmt16", "test", gens, "mixed")
    batch = EvalBatch([e.prompt for e in exs], gens, [e.references for e in exs], [e.meta for e in exs])
    rows = samples(out)
    assert [r["generation"] for r in rows] == gens and [r["references"] for r in rows] == [e.references for e in exs]
    e = resolve("wmt16", "ppo").eval  # the task's own metric settings (e.g. sacrebleu's intl tokenizer)
    opts = MetricOptions(sacrebleu_tokenize=e.sacrebleu_tokenize, rouge_references=e.rouge_references)
    for group in task_metrics("wmt16"):
        try:
            direct = metric_function(group)(batch, opts)
        except (MetricSkipped, GrueError):
            assert set(METRICS[group].names) <= set(res.skipped), group  # offline (BERTScore): skipped in both
            continue
        for name, value in direct.values.items():
            if value != value:  # NaN (MSTTR under 100 tokens): the evaluation records it as skipped
                assert name in res.skipped, name
                continue
            assert res.metrics[name].value == float(value), name
        for name, values in direct.per_sample.items():
            assert [r["scores"][name] for r in rows] == values, name
    assert 0.0 < res.metrics["bleu"].value < 1.0 and res.metrics["ter"].value > 0.0


@pytest.mark.slow
def test_rescoring_a_normal_evaluations_samples_reproduces_its_metrics(tmp_path, data_dir):
    normal = tmp_path / "normal"
    r = cli_in_process(
        "eval",
        "--task",
        "dailydialog",
        "--model",
        "tiny-gpt2",
        "--limit",
        "6",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(normal),
        "--quiet",
        "--set",
        "eval.max_new_tokens=8",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    ext = tmp_path / "external"
    r = cli_in_process(
        "eval",
        "--task",
        "dailydialog",
        "--predictions",
        str(normal / "samples.jsonl"),
        "--model-name",
        "tiny-gpt2",
        "--limit",
        "6",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(ext),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = load_results(normal / "results.json"), load_results(ext / "results.json")

    # The same numbers; only perplexity, which needs the evaluated model, is skipped, with the reason.
    assert set(a.metrics) - set(b.metrics) == {"perplexity"} and set(b.metrics) <= set(a.metrics)
    assert {k: b.metrics[k] for k in b.metrics} == {k: a.metrics[k] for k in b.metrics}
    assert "evaluated model" in b.skipped["perplexity"]
    assert {k: v for k, v in b.skipped.items() if k != "perplexity"} == a.skipped
    assert samples(ext) == samples(normal)

    assert (b.kind, b.algorithm, b.split, b.seed, b.samples) == ("evaluated", "external", "test", 0, a.samples)
    assert (b.model.name, b.model.revision, b.model.parameters) == ("tiny-gpt2", None, None)
    digest = hashlib.sha256((normal / "samples.jsonl").read_bytes()).hexdigest()
    assert b.config["predictions"] == {"file": str(normal / "samples.jsonl"), "sha256": digest}
    assert b.config["run"]["algo"] == "external" and "generation" not in b.config and "ppo" not in b.config
    assert b.config["eval"]["action_mask"] is False and "evaluated_weights" not in b.config


def good_rows(n: int) -> list[dict]:
    return [{"generation": f"text {i}"} for i in range(n)]


ERRORS = [  # (predictions file rows or None, extra arguments, expected message; {f} is the file)
    (
        good_rows(3),
        ["--limit", "4"],
        "{f}: 3 rows, expected 4 (the first 4 examples, --limit 4) or 40 (the whole split)",
    ),
    (
        good_rows(5),
        [],
        "{f}: 5 rows, expected 40, one per example of the split; to score only the first 5, pass --limit 5",
    ),
    (
        good_rows(1) + [{"text": "x"}] + good_rows(2),
        ["--limit", "4"],
        '{f}:2: "generation" must be a string, got nothing',
    ),
    (good_rows(2) + [{"generation": 3}], ["--limit", "3"], '{f}:3: "generation" must be a string, got 3'),
    (
        good_rows(2) + ['{"generation": "a",'],
        ["--limit", "3"],
        "{f}:3: invalid JSON: Expecting property name enclosed in double quotes",
    ),
    (good_rows(1) + ["[1, 2]"], ["--limit", "2"], '{f}:2: must be a JSON object with a string "generation", got list'),
    (
        [{"index": 0, "generation": "a"}, {"index": 2, "generation": "b"}],
        ["--limit", "2"],
        '{f}:2: "index" is 2, but this is row 1 (rows follow the split\'s order, from 0)',
    ),
    (
        good_rows(2),
        ["--limit", "2", "--model", "tiny-gpt2"],
        "--predictions scores generations made elsewhere; it cannot be combined with --model (which generate them)",
    ),
    (
        good_rows(2),
        ["--limit", "2", "--checkpoint", "runs/x"],
        "--predictions scores generations made elsewhere; it cannot be "
        "combined with --checkpoint (which generate them)",
    ),
    (
        good_rows(2),
        ["--limit", "2", "--set", "eval.action_mask=true"],
        "eval.action_mask applies an NLPO checkpoint's masking policy; generations from --predictions has none",
    ),
]


@pytest.mark.parametrize("rows, extra, expected", ERRORS, ids=[f"e{i}" for i in range(len(ERRORS))])
def test_bad_predictions_get_one_line_and_exit_2(tmp_path, data_dir, rows, extra, expected):
    f = write_jsonl(tmp_path / "preds.jsonl", rows)
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--task",
            "cnn_dailymail",
            "--predictions",
            f,
            "--model-name",
            "m",
            "--data-dir",
            str(data_dir),
            "--output-dir",
            str(tmp_path / "out"),
            "--quiet",
            *extra,
        ],
    )
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected.format(f=f) in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--task", "cnn_dailymail", "--predictions", "p.jsonl"], "--predictions needs --model-name NAME"),
        (["--predictions", "p.jsonl", "--model-name", "m"], "--predictions needs --task TASK"),
        (
            ["--task", "cnn_dailymail", "--model", "tiny-gpt2", "--model-name", "m"],
            "--model-name names the model of --predictions",
        ),
        (
            ["--task", "cnn_dailymail", "--predictions", "nowhere.jsonl", "--model-name", "m"],
            "--predictions nowhere.jsonl: cannot read it",
        ),
    ],
)
def test_predictions_need_a_task_and_a_model_name(tmp_path, data_dir, args, expected):
    res = CliRunner().invoke(
        app, ["eval", *args, "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"), "--quiet"]
    )
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), lines


def test_the_console_command_reports_a_bad_line_without_a_traceback(tmp_path, data_dir):
    f = write_jsonl(tmp_path / "preds.jsonl", good_rows(1) + ["not json"])
    r = run_cli(
        "eval",
        "--task",
        "cnn_dailymail",
        "--predictions",
        f,
        "--model-name",
        "m",
        "--limit",
        "2",
        "--data-dir",
        str(data_dir),
        "--quiet",
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f'error: {f}:2: invalid JSON: Expecting value; each line is one JSON object {{"generation": "..."}}'
    ]


def test_read_predictions_takes_the_first_n_of_a_whole_split_and_keeps_odd_characters(tmp_path):
    from grue.predictions import read_predictions

    odd = "line\u2028separator, next\x85line, para\u2029graph"  # json.dumps(ensure_ascii=False) writes these raw
    f = write_jsonl(tmp_path / "p.jsonl", [{"generation": odd}, {"generation": "b", "index": 1}, {"generation": ""}])
    assert read_predictions(f, 3, 3, None) == [odd, "b", ""]
    assert read_predictions(f, 2, 3, 2) == [odd, "b"]  # --limit 2 on a file of the whole split
    (tmp_path / "p.jsonl").write_text((tmp_path / "p.jsonl").read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    assert read_predictions(f, 3, 3, None) == [odd, "b", ""]  # trailing blank lines hold no example
