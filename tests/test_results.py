"""The results file contract: round trips, every malformed file rejected with its field path, atomic writes."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys

import pytest
from conftest import REPO

from grue.errors import GrueError, ProblemsError
from grue.leaderboard.submissions import LeaderboardError
from grue.metrics import METRICS, reported_names
from grue.results import (
    MAX_BYTES,
    SCHEMA_VERSION,
    MetricValue,
    ModelInfo,
    Results,
    ResultsError,
    SampleCounts,
    from_bytes,
    from_dict,
    load_results,
    to_dict,
    validate,
    write_results,
)


def evaluated() -> Results:
    """An IMDB PPO evaluation as `grue eval` would write it (made-up but plausible numbers)."""
    return Results(
        kind="evaluated",
        task="imdb",
        task_version="1.0",
        split="test",
        algorithm="ppo",
        model=ModelInfo("runs/imdb-ppo-s0/checkpoint", None, 124_439_808),
        seed=0,
        metrics={
            "sentiment_score": MetricValue(0.6021, True),
            "perplexity": MetricValue(33.5, False),
            "mean_output_length": MetricValue(47.9, None),
            "distinct_1": MetricValue(0.041, True),
        },
        skipped={"bertscore": "no BERTScore model available offline"},
        samples=SampleCounts(total=5000, evaluated=500),
        runtime_seconds=81.25,
        date="2024-05-01T12:30:00Z",
        grue_version="0.1.0",
        git_commit="0123456789abcdef0123456789abcdef01234567",
        config={"run": {"task": "imdb", "seed": 0, "lr": 1e-6}, "generation": {"top_k": 50, "stop": ["\n"]}},
        notes="smoke check",
    )


def reported() -> Results:
    """A row copied from the paper: no samples, runtime or config, a source instead."""
    return Results(
        kind="reported",
        task="imdb",
        task_version="1.0",
        split="test",
        algorithm="Supervised+PPO",
        model=ModelInfo("gpt2", None, 124_439_808),
        seed=None,
        metrics={"sentiment_score": MetricValue(0.626, True)},
        samples=None,
        runtime_seconds=None,
        date="2024-05-01T12:30:00Z",
        grue_version="0.1.0",
        git_commit=None,
        source="Ramamurthy et al., ICLR 2023, Table 3 (illustrative number)",
    )


@pytest.mark.parametrize("make", [evaluated, reported])
def test_dict_round_trip(make):
    results = make()
    data = json.loads(json.dumps(to_dict(results)))
    assert validate(data) == []
    assert from_dict(data) == results


@pytest.mark.parametrize("make", [evaluated, reported])
def test_write_load_round_trip(tmp_path, make):
    results = make()
    path = write_results(results, tmp_path / "run" / "results.json")
    assert load_results(path) == results
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)  # plain JSON: python's own parser reads it
    assert text.startswith('{\n  "schema_version": 1,') and text.endswith("}\n")
    assert next(iter(data)) == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    assert list(data["metrics"]) == sorted(data["metrics"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temp file left


def test_optional_fields_may_be_left_out(tmp_path):
    data = to_dict(reported())
    for key in ("skipped", "config", "notes"):
        del data[key]
    assert from_dict(data) == reported()


VALID_VARIANTS = [
    ("algorithm", "supervised+nlpo"),
    ("algorithm", "grpo"),
    ("algorithm", "supervised+rloo"),
    ("algorithm", "trpo"),
    ("algorithm", "zero-shot"),
    ("algorithm", "external"),
    ("git_commit", None),
    ("git_commit", "0123abc-dirty"),
    ("seed", None),
    ("model.revision", "c" * 40),
    ("metrics.perplexity.higher_is_better", None),
    ("metrics.perplexity.value", 0),
    ("runtime_seconds", 0),
    ("samples.evaluated", 5000),
    ("notes", None),
    ("split", "builtin"),
]


@pytest.mark.parametrize("path, value", VALID_VARIANTS)
def test_valid_variants_are_accepted(tmp_path, path, value):
    data = to_dict(evaluated())
    corrupt(path, value)(data)
    file = tmp_path / "results.json"
    file.write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())  # a byte-order mark is tolerated
    assert to_dict(load_results(file)) == data


def corrupt(path: str, value) -> callable:
    """A case: set (or, with DROP, delete) the dotted field ``path`` of a valid evaluated file."""

    def apply(data: dict) -> str:
        *parents, last = path.split(".")
        for key in parents:
            data = data[key]
        if value is DROP:
            del data[last]
        else:
            data[last] = value

    return apply


def raw(old: str, new: str) -> callable:
    """A case: replace text in the JSON file itself (for what json.dumps would never write)."""
    return lambda data: (old, new)


def as_reported(**changes) -> callable:
    def apply(data: dict) -> None:
        data.update(to_dict(reported()))
        data.update(changes)

    return apply


DROP = object()
CASES = [
    (
        "schema_version",
        corrupt("schema_version", 2),
        "schema_version: must be 1, the only version this grue reads, got 2",
    ),
    ("missing", corrupt("task", DROP), "task: missing (a required field)"),
    ("missing_nested", corrupt("model.revision", DROP), "model.revision: missing (a required field)"),
    (
        "unknown",
        corrupt("score", 0.5),
        "score: unknown field; accepted: schema_version, kind, task, task_version, "
        "split, algorithm, model, seed, metrics, skipped, samples, runtime_seconds, date, grue_version, git_commit, "
        "source, notes, config",
    ),
    (
        "unknown_nested",
        corrupt("metrics.perplexity.lower_is_better", True),
        "metrics.perplexity.lower_is_better: unknown field; accepted: value, higher_is_better, std",
    ),
    ("wrong_type", corrupt("seed", "0"), 'seed: must be an integer >= 0 or null, got "0"'),
    ("bool_is_not_int", corrupt("samples.total", True), "samples.total: must be an integer >= 1, got true"),
    (
        "metric_as_string",
        corrupt("metrics.perplexity.value", "33.5"),
        'metrics.perplexity.value: must be a finite number, got "33.5"',
    ),
    (
        "nan_metric",
        corrupt("metrics.perplexity.value", math.nan),
        "metrics.perplexity.value: must be a finite number, got NaN",
    ),
    (
        "infinity_literal",
        raw('"value": 33.5', '"value": Infinity'),
        "metrics.perplexity.value: must be a finite number, got Infinity",
    ),
    (
        "overflowing_number",
        raw('"value": 33.5', '"value": 1e999'),
        "metrics.perplexity.value: must be a finite number, got Infinity",
    ),
    (
        "nan_in_config",
        raw('"lr": 1e-06', '"lr": NaN'),
        "config.run.lr: must be JSON data (object, array, string, finite number, boolean, null), got NaN",
    ),
    (
        "negative_parameters",
        corrupt("model.parameters", -3),
        'model.parameters: must be an integer >= 0 (or null for algorithm "external"), got -3',
    ),
    (
        "unknown_parameters_of_a_trained_model",
        corrupt("model.parameters", None),
        'model.parameters: null (unknown) is allowed only for algorithm "external" (generations scored without their '
        'model); got null for algorithm "ppo"',
    ),
    (
        "evaluated_above_total",
        corrupt("samples.evaluated", 5001),
        "samples.evaluated: must be <= samples.total (5000), got 5001",
    ),
    (
        "bad_date",
        corrupt("date", "2024-05-01 12:30:00"),
        'date: must be an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SSZ", got "2024-05-01 12:30:00"',
    ),
    (
        "impossible_date",
        corrupt("date", "2024-02-30T12:30:00Z"),
        'date: must be an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SSZ", got "2024-02-30T12:30:00Z"',
    ),
    ("bad_split", corrupt("split", "dev"), 'split: must be one of "train", "validation", "test", "builtin", got "dev"'),
    (
        "empty_skipped_reason",
        corrupt("skipped.bertscore", " "),
        'skipped.bertscore: must be a non-empty string (why it was not computed), got " "',
    ),
    (
        "metric_and_skipped",
        corrupt("skipped.perplexity", "no model"),
        "skipped.perplexity: also in metrics; a metric is either computed or skipped",
    ),
    (
        "bad_metric_name",
        corrupt("metrics.ROUGE-L", {"value": 0.3, "higher_is_better": True}),
        "metrics.ROUGE-L: metric names must match ^[a-z][a-z0-9_]*$ (e.g. rouge_l)",
    ),
    ("no_metrics", corrupt("metrics", {}), "metrics: must hold at least one metric, got {}"),
    (
        "unknown_algorithm",
        corrupt("algorithm", "Supervised+PPO"),
        'algorithm: must be "zero-shot", "external" or one of "supervised", "ppo", "nlpo", "a2c", "grpo", "rloo", "trpo", or several of these '
        'joined by "+" (e.g. "supervised+ppo") when kind is "evaluated", got "Supervised+PPO"',
    ),
    (
        "external_is_not_a_training_step",
        corrupt("algorithm", "supervised+external"),
        'algorithm: must be "zero-shot", "external" or one of "supervised", "ppo", "nlpo", "a2c", "grpo", "rloo", "trpo", or several of these '
        'joined by "+" (e.g. "supervised+ppo") when kind is "evaluated", got "supervised+external"',
    ),
    ("evaluated_without_samples", corrupt("samples", None), 'samples: must not be null when kind is "evaluated"'),
    (
        "evaluated_with_source",
        corrupt("source", "a paper"),
        'source: must be null when kind is "evaluated" (source cites reported numbers)',
    ),
    (
        "negative_std",
        as_reported(metrics={"sentiment_score": {"value": 0.626, "higher_is_better": True, "std": -0.1}}),
        "metrics.sentiment_score.std: must be a finite number >= 0 or null, got -0.1",
    ),
    (
        "std_in_evaluated",
        corrupt("metrics.perplexity.std", 0.2),
        'metrics.perplexity.std: must be null or left out when kind is "evaluated" (one file is one seed; the leaderboard '
        "computes the spread over seeds)",
    ),
    (
        "reported_without_source",
        as_reported(source=None),
        'source: required when kind is "reported": where the numbers come from (paper, table)',
    ),
    ("bad_kind", corrupt("kind", "paper"), 'kind: must be one of "evaluated", "reported", got "paper"'),
    (
        "bad_commit",
        corrupt("git_commit", "HEAD"),
        "git_commit: must be 7 to 64 lowercase hex digits (optionally + '-dirty') or null, got \"HEAD\"",
    ),
    (
        "duplicate_key",
        raw('"seed": 0,', '"seed": 0, "seed": 1,'),
        'duplicate key "seed" in one JSON object; each key may appear once',
    ),
    # by hand: "seed" is line 13 of the indent-2 file (after 7 scalars and 5 lines of model); the 2nd comma is column 13
    (
        "syntax_error",
        raw('"seed": 0,', '"seed": 0,,'),
        "invalid JSON at line 13, column 13: Expecting property name enclosed in double quotes",
    ),
    ("not_an_object", raw("", "[1, 2]"), "(top level): must be a JSON object, got [1, 2]"),
]


@pytest.mark.parametrize("name, case, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_file_is_rejected_with_its_path(tmp_path, name, case, expected):
    data = to_dict(evaluated())
    change = case(data)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if change:
        old, new = change
        assert old in text
        text = text.replace(old, new, 1) if old else new
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GrueError) as err:
        load_results(path)
    assert isinstance(err.value, ResultsError)
    assert err.value.problems == [f"{path}: {expected}"]  # exactly one problem, with its field path
    assert str(err.value) == f"{path}: {expected}"


def test_every_problem_is_reported():
    data = to_dict(evaluated())
    data["model"]["parameters"] = -3
    data["metrics"]["meteor"] = {"value": math.nan, "higher_is_better": True}
    data["split"] = "dev"
    with pytest.raises(ResultsError) as err:
        from_dict(data)
    assert err.value.problems == [
        'results.json: split: must be one of "train", "validation", "test", "builtin", got "dev"',
        'results.json: model.parameters: must be an integer >= 0 (or null for algorithm "external"), got -3',
        "results.json: metrics.meteor.value: must be a finite number, got NaN",
    ]
    assert (
        str(err.value)
        == 'results.json: split: must be one of "train", "validation", "test", "builtin", got "dev" (and 2 more)'
    )


def test_external_generations_may_leave_the_model_size_unknown(tmp_path):
    """`grue eval --predictions` scores generations without their model: algorithm external, size and revision null."""
    results = evaluated()
    results.algorithm, results.model = "external", ModelInfo("my-lab/secret-model", None, None)
    path = write_results(results, tmp_path / "results.json")
    assert load_results(path) == results
    assert json.loads(path.read_text())["model"] == {
        "name": "my-lab/secret-model",
        "revision": None,
        "parameters": None,
    }


def test_invalid_results_leave_an_existing_file_intact(tmp_path):
    path = write_results(evaluated(), tmp_path / "results.json")
    before = path.read_bytes()
    bad = evaluated()
    bad.metrics["meteor"] = MetricValue(math.inf, True)
    bad.config["run"]["lr"] = math.nan
    with pytest.raises(ResultsError) as err:
        write_results(bad, path)
    assert err.value.problems == [
        f"{path}: metrics.meteor.value: must be a finite number, got Infinity",
        f"{path}: config.run.lr: must be JSON data (object, array, string, finite number, boolean, null), got NaN",
    ]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_does_not_change_the_results_object(tmp_path):
    results = evaluated()
    original = copy.deepcopy(results)
    write_results(results, tmp_path / "results.json")
    assert results == original and list(results.metrics) == list(original.metrics)


def test_oversize_file_is_refused(tmp_path):
    path = tmp_path / "results.json"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(ResultsError, match=r"larger than 5242880 bytes \(5 MB\)"):
        load_results(path)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(ResultsError, match="cannot read the results file"):
        load_results(tmp_path / "missing.json")
    path = tmp_path / "results.json"
    path.write_bytes(b'{"kind": "\xff"}')
    with pytest.raises(ResultsError, match=r"not UTF-8 text \(invalid byte at offset 10\)"):
        load_results(path)


def test_schema_document_examples_are_valid():
    """The JSON examples of leaderboard/RESULTS_SCHEMA.md pass validation, and its metric table names are valid."""
    doc = (REPO / "leaderboard" / "RESULTS_SCHEMA.md").read_text(encoding="utf-8")
    examples = re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)
    assert [json.loads(e)["kind"] for e in examples] == ["evaluated", "reported"]
    for text in examples:
        assert validate(json.loads(text), "RESULTS_SCHEMA.md") == []
    table = doc.split("## Metric names")[1].split("## Kind")[0]
    documented = {}  # name -> higher_is_better, from the table's first and last columns
    for row in table.splitlines():
        cells = [c.strip() for c in row.split("|")[1:-1]]
        if cells and cells[0].startswith("`"):
            direction = {"true": True, "false": False, "null": None}[cells[-1]]
            documented.update({name: direction for name in re.findall(r"`(\w+)`", cells[0])})
    assert len(documented) == 31  # by hand: the 31 names listed in the brief
    assert documented == reported_names(METRICS)  # the directions grue eval records
    data = to_dict(evaluated())
    data["metrics"], data["skipped"] = {n: {"value": 0.5, "higher_is_better": h} for n, h in documented.items()}, {}
    assert validate(data) == []


def test_reported_std_round_trips_and_is_left_out_when_unset(tmp_path):
    """A printed std is kept on a reported metric; files without one are written exactly as before (no "std" key)."""
    results = reported()
    results.metrics["perplexity"] = MetricValue(34.078, False, std=0.253)
    path = write_results(results, tmp_path / "results.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["metrics"]["perplexity"] == {"value": 34.078, "higher_is_better": False, "std": 0.253}
    assert data["metrics"]["sentiment_score"] == {"value": 0.626, "higher_is_better": True}
    assert load_results(path) == results
    assert "std" not in json.dumps(to_dict(evaluated())["metrics"])


def test_from_bytes_reads_what_load_results_reads(tmp_path):
    path = write_results(evaluated(), tmp_path / "results.json")
    assert from_bytes(path.read_bytes(), str(path)) == load_results(path)
    with pytest.raises(ResultsError, match=r"x.json: not UTF-8 text"):
        from_bytes(b"\xff", "x.json")


def test_reading_and_writing_results_never_loads_torch(tmp_path):
    """grue.results (and grue.files, its atomic write) stay torch-free: the leaderboard reads and writes results
    files without the training stack. A fresh interpreter, since this one may have loaded torch already."""
    src = write_results(evaluated(), tmp_path / "a.json")
    code = (
        "import sys; from grue.results import load_results, write_results; "
        f"write_results(load_results({str(src)!r}), {str(tmp_path / 'b.json')!r}); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "b.json").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temporary file left behind


def test_results_error_is_a_problems_error():
    """One base carries ``problems`` for results files and leaderboard input alike; the CLI catches it."""
    for cls in (ResultsError, LeaderboardError):
        err = cls(["a.json: x: bad", "a.json: y: bad"])
        assert isinstance(err, ProblemsError) and isinstance(err, GrueError)
        assert err.problems == ["a.json: x: bad", "a.json: y: bad"] and str(err) == "a.json: x: bad (and 1 more)"
