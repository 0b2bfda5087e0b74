"""The leaderboard: submission validation (one case per rule), aggregation against hand-computed values,
the paper's reported rows, and the build (byte-identical, escaped, the example kept off the real board)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from typer.testing import CliRunner

from grue.errors import GrueError, ProblemsError
from grue.leaderboard.aggregate import (
    HEADLINE,
    Cell,
    Row,
    mean_std,
    overall,
    references,
    row_scores,
    task_score,
)
from grue.leaderboard.board import fmt, make_board
from grue.leaderboard.build import build, render
from grue.leaderboard.charts import bar_svg, score_axis, task_bars, wrap
from grue.leaderboard.reported import load_reported
from grue.leaderboard.scrub import LOCAL_PATH, is_local_path, scrub, scrub_text
from grue.leaderboard.site import link
from grue.leaderboard.submissions import (
    LeaderboardError,
    known_tasks,
    load_submissions,
    submission_names,
)
from grue.results import (
    MetricValue,
    ModelInfo,
    Results,
    SampleCounts,
    load_results,
    write_results,
)
from grue_cli.main import app

EXAMPLE = REPO / "leaderboard" / "examples"
REPORTED = REPO / "leaderboard" / "reported"
HOSTILE = "<script>alert(1)</script>"
TASKS = known_tasks()  # the task cards, read once for the whole module


def results_for(
    task: str,
    seed: int,
    values: dict[str, float],
    model: str = "tiny-gpt2",
    algorithm: str = "ppo",
    evaluated: int = 50,
    total: int = 50,
) -> Results:
    """An evaluated results file of ``task`` with every metric the task reports (0.5 unless in ``values``)."""
    metrics = {n: MetricValue(values.get(n, 0.5), h) for n, h in TASKS[task].metrics.items()}
    return Results(
        kind="evaluated",
        task=task,
        task_version=TASKS[task].version,
        split="test",
        algorithm=algorithm,
        model=ModelInfo(model, None, 1000),
        seed=seed,
        metrics=metrics,
        samples=SampleCounts(total, evaluated),
        runtime_seconds=1.0,
        date="2024-05-01T12:00:00Z",
        grue_version="0.1.0",
        git_commit=None,
        config={"run": {"task": task, "seed": seed}},
    )


def write_submission(
    root: Path,
    name: str,
    runs: dict[tuple[str, int], dict[str, float]],
    *,
    meta: dict | None = None,
    model: str = "tiny-gpt2",
    samples: list[dict] | None = None,
    **kwargs,
) -> Path:
    """A submission folder: submission.yaml and <task>/seed<N>/results.json (+ samples.jsonl) per (task, seed)."""
    folder = root / name
    folder.mkdir(parents=True)
    meta = meta or {
        "who": "A. Tester",
        "model": model,
        "algorithm": "PPO",
        "link": "https://example.org/paper",
        "notes": "test submission",
    }
    (folder / "submission.yaml").write_text(json.dumps(meta), encoding="utf-8")  # JSON is YAML
    for (task, seed), values in runs.items():
        path = write_results(
            results_for(task, seed, values, model=model, **kwargs), folder / task / f"seed{seed}" / "results.json"
        )
        rows = samples if samples is not None else [{"prompt": "p", "generation": "g", "references": ["r"]}]
        path.with_name("samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def problems_of(root: Path) -> list[str]:
    """Every problem of the submissions folder ``root`` (shown as 'subs')."""
    return load_submissions(root, TASKS, "subs")[1]


# ---- validation: one malformed submission per rule, each with its message


def edit_results(rel: str, **changes):
    def apply(folder: Path):
        path = folder / rel
        data = json.loads(path.read_text())
        for key, value in changes.items():
            *parents, last = key.split("__")
            target = data
            for p in parents:
                target = target[p]
            target[last] = value
        path.write_text(json.dumps(data))

    return apply


def write_file(rel: str, text: str | bytes):
    def apply(folder: Path):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(text if isinstance(text, bytes) else text.encode())

    return apply


def with_meta(**changes):
    def apply(folder: Path):
        meta = {"who": "A. Tester", "model": "tiny-gpt2", "algorithm": "PPO"}
        meta.update(changes)
        (folder / "submission.yaml").write_text(json.dumps({k: v for k, v in meta.items() if v is not DROP}))

    return apply


def replace_text(rel: str, old: str, new: str):
    """Replace the first ``old`` in the file's text (for what json.dumps never writes, e.g. NaN)."""

    def apply(folder: Path):
        (folder / rel).write_text((folder / rel).read_text().replace(old, new, 1))

    return apply


def symlink(rel: str, target: str):
    def apply(folder: Path):
        (folder / rel).unlink(missing_ok=True)
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, folder / rel)

    return apply


def copy_seed(src: str, dst: str):
    def apply(folder: Path):
        shutil.copytree(folder / src, folder / dst)

    return apply


DROP = object()
R = "imdb/seed0/results.json"
FIRST = min(TASKS["imdb"].metrics)  # results files list metrics sorted: the first "value": 0.5
VERSION = TASKS["imdb"].version  # read from tasks/imdb/task.yaml, never hard-coded
BAD = [
    (
        "schema_version",
        edit_results(R, schema_version=2),
        f"{R}: schema_version: must be 1, the only version this grue reads, got 2",
    ),
    (
        "unknown_task",
        edit_results(R, task="nope"),
        f'{R}: task: unknown task "nope"; known: {", ".join(sorted(TASKS))}',
    ),
    (
        "task_version",
        edit_results(R, task_version="0.0"),
        f'{R}: task_version: must be "{VERSION}", the version of tasks/imdb/task.yaml, got "0.0"; scores of another task '
        "version are not comparable: re-evaluate the run with the current grue",
    ),
    (
        "missing_metric",
        lambda f: edit_results(
            R, metrics={k: v for k, v in json.loads((f / R).read_text())["metrics"].items() if k != "perplexity"}
        )(f),
        f"{R}: metrics: missing perplexity (task imdb reports them); report each, or list it in skipped with the reason",
    ),
    (
        "non_finite",
        replace_text(R, '"value": 0.5', '"value": NaN'),
        f"{R}: metrics.{FIRST}.value: must be a finite number, got NaN",
    ),
    (
        "split",
        edit_results(R, split="validation"),
        f'{R}: split: must be "test", the benchmark split of imdb (benchmark_split in tasks/imdb/task.yaml), got "validation"',
    ),
    (
        "builtin",
        edit_results(R, split="builtin"),
        f"{R}: split: results of the task's built-in prompts (a smoke check of the run, not a benchmark result); evaluate "
        "the task's benchmark split with --data-dir DIR (or GRUE_DATA_DIR)",
    ),
    (
        "limit",
        edit_results(R, samples={"total": 50, "evaluated": 16}),
        f"{R}: samples.evaluated: evaluated 16 of the split's 50 examples (--limit); the leaderboard takes whole splits",
    ),
    (
        "reported_kind",
        edit_results(R, kind="reported", source="a paper", samples=None, runtime_seconds=None),
        f'{R}: kind: must be "evaluated" in a submission (numbers re-run with grue eval), got "reported"',
    ),
    (
        "no_seed",
        edit_results(R, seed=None),
        f"{R}: seed: must be an integer >= 0 in a submission (one results file per seed), got null",
    ),
    (
        "direction",
        edit_results(R, metrics__perplexity__higher_is_better=True),
        f"{R}: metrics.perplexity.higher_is_better: must be false for perplexity, got true",
    ),
    (
        "duplicate",
        copy_seed("imdb/seed0", "imdb/seed0-again"),
        "imdb/seed0/results.json: seed: duplicate of imdb/seed0-again/results.json (same task, algorithm, model and seed 0); "
        "keep one results file per task and seed",
    ),
    (
        "two_algorithms",
        lambda f: (
            copy_seed("imdb/seed0", "imdb/seed1")(f),
            edit_results("imdb/seed1/results.json", seed=1, algorithm="nlpo")(f),
        ),
        'imdb/seed1/results.json: algorithm: "nlpo" differs from "ppo" in imdb/seed0/results.json; a submission is one '
        "algorithm (open one submission per algorithm)",
    ),
    (
        "two_models",
        lambda f: (
            copy_seed("imdb/seed0", "imdb/seed1")(f),
            edit_results("imdb/seed1/results.json", seed=1, model__name="gpt2")(f),
        ),
        'imdb/seed1/results.json: model.name: "gpt2" differs from "tiny-gpt2" in imdb/seed0/results.json; all seeds of a '
        "task evaluate one model",
    ),
    (
        "results_too_big",
        write_file(R, b" " * (5 * 1024 * 1024 + 1)),
        f"{R}: larger than 5242880 bytes (5 MB), the limit for a results file",
    ),
    (
        "samples_too_big",
        write_file("imdb/seed0/samples.jsonl", b"\n" * (5 * 1024 * 1024 + 1)),
        "imdb/seed0/samples.jsonl: (file): larger than 5242880 bytes (5 MB), the limit for samples.jsonl",
    ),
    (
        "yaml_too_big",
        write_file("submission.yaml", "#" * (64 * 1024 + 1)),
        "submission.yaml: (file): larger than 65536 bytes, the limit for submission.yaml",
    ),
    (
        "bad_samples_line",
        write_file("imdb/seed0/samples.jsonl", '{"prompt": "p"}\n'),
        'imdb/seed0/samples.jsonl: line 1: must be an object with string "prompt" and "generation" and a list of strings "references"',
    ),
    (
        "javascript_link",
        with_meta(link="javascript:alert(1)"),
        'submission.yaml: link: must be an http:// or https:// URL, got "javascript:alert(1)"',
    ),
    ("missing_who", with_meta(who=DROP), "submission.yaml: who: missing (a required field)"),
    (
        "unknown_meta",
        with_meta(email="x@y"),
        "submission.yaml: email: unknown field; accepted: who, model, algorithm, link, notes, benchmark",
    ),
    ("meta_not_text", with_meta(model=["a"]), "submission.yaml: model: must be a non-empty string, got a list"),
    (
        "samples_not_json",
        write_file("imdb/seed0/samples.jsonl", '{"prompt": "p", "generation": "g", "references": []}\n{oops\n'),
        "imdb/seed0/samples.jsonl: line 2: invalid JSON: Expecting property name enclosed in double quotes",
    ),
    (
        "meta_not_yaml",
        write_file("submission.yaml", "who: [unclosed\n"),
        "submission.yaml: line 2: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "python_object_yaml",
        write_file("submission.yaml", "who: !!python/object/apply:os.system ['true']\n"),
        "submission.yaml: line 1: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),  # safe_load: nothing is executed
    (
        "no_meta",
        lambda f: (f / "submission.yaml").unlink(),
        "submission.yaml: (file): missing; it says who submitted, the model, algorithm, link and notes",
    ),
    (
        "stray_file",
        write_file("imdb/seed0/model.pt", b"\x80\x04"),
        "imdb/seed0/model.pt: (file): not part of a submission; it holds submission.yaml and folders with results.json "
        "(and the samples.jsonl beside it), e.g. imdb/seed0/results.json",
    ),
    (
        "symlink_to_passwd",
        symlink(R, "/etc/passwd"),
        f"{R}: (file): a symbolic link; links are not accepted, commit the file itself",
    ),
    (
        "symlinked_folder",
        symlink("imdb/seed1", "/etc"),
        "imdb/seed1: (file): a symbolic link; links are not accepted, commit the file itself",
    ),
    (
        "too_deep",
        copy_seed("imdb/seed0", "imdb/a/b/seed0"),
        "imdb/a/b: (folder): nested too deep; results files are at most 3 levels down, e.g. imdb/seed0/results.json",
    ),
]


@pytest.mark.parametrize("name, change, expected", BAD, ids=[b[0] for b in BAD])
def test_malformed_submission_is_rejected_with_its_message(tmp_path, name, change, expected):
    folder = write_submission(tmp_path, "sub", {("imdb", 0): {}})
    change(folder)
    assert problems_of(tmp_path) == [f"subs/sub/{expected}"]


def test_valid_submissions_are_accepted(tmp_path):
    write_submission(tmp_path, "ppo-run", {("imdb", 0): {}, ("imdb", 1): {}, ("wmt16", 0): {}}, model="tiny-t5")
    folder = write_submission(tmp_path, "no-link", {("imdb", 3): {}}, meta={"who": "B", "model": "m", "algorithm": "a"})
    (folder / "imdb" / "seed3" / "samples.jsonl").unlink()  # samples.jsonl is optional
    data = json.loads((folder / "imdb/seed3/results.json").read_text())
    data["metrics"].pop("perplexity")
    data["skipped"] = {"perplexity": "no reference model"}  # a skipped metric counts as reported
    (folder / "imdb/seed3/results.json").write_text(json.dumps(data))
    (tmp_path / "README.md").write_text("hello")
    subs, problems = load_submissions(tmp_path, TASKS, "subs")
    assert problems == []
    assert [s.name for s in subs] == ["no-link", "ppo-run"]
    assert [(e.results.task, e.results.seed) for e in subs[1].entries] == [("imdb", 0), ("imdb", 1), ("wmt16", 0)]
    assert subs[1].entries[0].samples == [{"prompt": "p", "generation": "g", "references": ["r"]}]


def test_external_generations_are_a_valid_submission(tmp_path):
    """`grue eval --predictions` rows: algorithm external, the model's size and revision unknown (null)."""
    folder = write_submission(tmp_path, "api-model", {("imdb", 0): {"perplexity": 30.0}}, algorithm="external")
    data = json.loads((folder / R).read_text())
    data["model"] = {"name": "some-lab/api-model", "revision": None, "parameters": None}
    data["metrics"].pop("perplexity")
    data["skipped"] = {"perplexity": "perplexity needs the evaluated model and its tokenizer"}
    (folder / R).write_text(json.dumps(data))
    subs, problems = load_submissions(tmp_path, TASKS, "subs")
    assert problems == [] and subs[0].entries[0].results.algorithm == "external"
    board = make_board(tmp_path, tmp_path / "none", "subs", "rep")
    row = next(r for r in board.rows if r.ref == "api-model")
    assert (row.algorithm, row.model) == ("external", "some-lab/api-model") and "perplexity" not in row.cells


def test_bad_folder_name_and_stray_root_file(tmp_path):
    write_submission(tmp_path, "bad name!", {("imdb", 0): {}})
    (tmp_path / "loose.json").write_text("{}")
    assert problems_of(tmp_path) == [
        "subs/loose.json: (file): not a submission folder; put your files in subs/<name>/",
        "subs/bad name!: (folder): a submission folder name is 1 to 80 letters, digits, '.', '_' or '-', starting "
        "with a letter or digit",
    ]


def test_symlinked_readme_is_flagged_by_validate_and_build_alike(tmp_path):
    """A README.md beside the submissions may be a plain file, never a link: both ways of listing the
    submissions folder (validate's paths, build's whole folder) sort its entries with the same rule."""
    write_submission(tmp_path, "good", {("imdb", 0): {}})
    (tmp_path / ".gitkeep").write_text("")
    os.symlink("/etc/passwd", tmp_path / "README.md")
    expected = ["subs/README.md: (file): not a submission folder; put your files in subs/<name>/"]
    assert problems_of(tmp_path) == expected
    assert submission_names(tmp_path, [str(tmp_path)], "subs") == (["good"], expected)
    given = str(tmp_path / "README.md")  # named as a path, the link is refused before the listing rule
    assert submission_names(tmp_path, [given], "subs") == (
        [],
        [f"{given}: (path): goes through the symbolic link README.md; links are not accepted"],
    )
    (tmp_path / "README.md").unlink()
    (tmp_path / "README.md").write_text("hello")  # the plain file is fine both ways
    assert problems_of(tmp_path) == [] and submission_names(tmp_path, [str(tmp_path)], "subs") == (["good"], [])


# ---- the command line


def test_cli_validate(tmp_path):
    subs = tmp_path / "subs"
    good = write_submission(subs, "good", {("imdb", 0): {}})
    bad = write_submission(subs, "bad", {("imdb", 0): {}})
    edit_results(R, split="train")(bad)
    os.symlink(good, subs / "alias")
    runner = CliRunner()
    ok = runner.invoke(app, ["leaderboard", "validate", "--submissions", str(subs), str(good / R)])
    assert ok.exit_code == 0 and "ok: 1 submission(s), 1 results file(s): good" in ok.output
    res = runner.invoke(
        app,
        [
            "leaderboard",
            "validate",
            "--submissions",
            str(subs),
            str(good),
            str(bad / R),
            f"{subs}/good/../../../etc/passwd",
            str(subs / "alias" / R),
        ],
    )
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert lines == [
        f"{subs}/good/../../../etc/passwd: (path): not inside the submissions folder {subs}; pass a submission "
        "folder or a file in one",
        f"{subs / 'alias' / R}: (path): goes through the symbolic link alias; links are not accepted",
        f'{subs}/bad/{R}: split: must be "test", the benchmark split of imdb (benchmark_split in tasks/imdb/task.yaml), '
        'got "train"',
        "3 problem(s); how to fix a submission: leaderboard/README.md",
    ]


def test_cli_build_through_the_console_entry_point(tmp_path):
    """The real `grue` process: the example builds; a broken submission folder fails with exit 1."""
    out = tmp_path / "site"
    res = run_cli("leaderboard", "build", "--submissions", str(EXAMPLE), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and (out / "index.html").is_file()
    broken = tmp_path / "subs"
    write_submission(broken, "x", {("imdb", 0): {}}, meta={"who": "me"})
    res = run_cli("leaderboard", "build", "--submissions", str(broken), "--out", str(out))
    assert res.returncode == 1
    assert f"{broken}/x/submission.yaml: model: missing (a required field)" in res.stderr


def test_cli_validates_a_submission_given_on_its_own(tmp_path):
    """No --submissions: a submission folder (or a file in one) is checked in the folder above it, from any
    current folder; a path in no submission says which flag to pass."""
    subs = tmp_path / "elsewhere"
    good = write_submission(subs, "good", {("imdb", 0): {}})
    bad = write_submission(subs, "bad", {("imdb", 0): {}})
    edit_results(R, split="train")(bad)
    res = run_cli("leaderboard", "validate", str(good), cwd=tmp_path)
    assert res.returncode == 0 and "ok: 1 submission(s), 1 results file(s): good" in res.stdout, res.stderr
    res = run_cli(
        "leaderboard",
        "validate",
        "elsewhere/bad/imdb/seed0/results.json",
        "elsewhere/good",
        str(tmp_path / "x.json"),
        cwd=tmp_path,
    )
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"{tmp_path / 'x.json'}: (path): no such file or folder",
        f'elsewhere/bad/{R}: split: must be "test", the benchmark split of imdb (benchmark_split in tasks/imdb/task.yaml), '
        'got "train"',
        "2 problem(s); how to fix a submission: leaderboard/README.md",
    ]
    (tmp_path / "loose.txt").write_text("hello")
    res = run_cli("leaderboard", "validate", "loose.txt", cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.splitlines()[0] == (
        "loose.txt: (path): in no submission folder (none at or above it holds submission.yaml); pass the submission "
        "folder, or --submissions DIR"
    )


def test_cli_validates_the_example_from_a_subfolder_of_the_checkout():
    """The README's command, run from tests/: the example's parent is its submissions folder."""
    res = run_cli("leaderboard", "validate", "../leaderboard/examples/tiny-ppo-smoke", cwd=REPO / "tests")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok: 1 submission(s), ") and res.stdout.rstrip().endswith(": tiny-ppo-smoke")


def test_cli_build_defaults_follow_the_checkout(tmp_path):
    """Without --submissions and --reported, build reads the checkout's folders from any of its sub-folders;
    outside a checkout it fails with one line naming the flag to pass."""
    res = run_cli("leaderboard", "build", "--out", str(tmp_path / "site"), cwd=REPO / "docs")
    assert res.returncode == 0, res.stderr
    reported = len(list(REPORTED.rglob("*.json")))
    assert f"0 submission(s) (0 complete), {reported} reported rows" in res.stdout
    res = run_cli("leaderboard", "build", "--out", str(tmp_path / "site2"), cwd=tmp_path)
    assert res.returncode == 2 and not (tmp_path / "site2").exists()
    assert res.stderr.splitlines() == [
        f"error: --submissions not given and {tmp_path} is not inside a grue checkout (whose leaderboard/submissions "
        "is the default); pass --submissions DIR"
    ]


# ---- aggregation, against values computed by hand


def test_mean_and_sample_std():
    # by hand: mean 0.7; deviations -0.2, 0, 0.2 -> (0.04 + 0 + 0.04) / (3 - 1) = 0.04 -> std 0.2
    mean, std = mean_std([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7) and std == pytest.approx(0.2)
    assert mean_std([0.3]) == (0.3, None)


def test_submission_rows_average_over_seeds(tmp_path):
    write_submission(tmp_path, "s", {("imdb", 0): {"perplexity": 30.0}, ("imdb", 1): {"perplexity": 34.0}})
    board = make_board(tmp_path, tmp_path / "none", "subs", "rep")
    row = next(r for r in board.rows if r.ref == "s")
    # by hand: mean 32; sqrt(((30-32)^2 + (34-32)^2) / 1) = sqrt(8) = 2.828...
    assert row.cells["perplexity"].mean == pytest.approx(32.0)
    assert row.cells["perplexity"].std == pytest.approx(math.sqrt(8))
    assert row.seeds == [0, 1] and row.cells["perplexity"].n == 2


def row(kind, group, task, algorithm, model, value, *, pool=True, skipped=None):
    metric = HEADLINE[task]
    return Row(
        kind,
        group,
        group,
        task,
        algorithm,
        model,
        "test",
        {metric: Cell(value, None, 1)},
        seeds=[0],
        headline_skipped=skipped,
        in_pool=pool,
    )


def test_overall_score_by_hand():
    rows = [
        row("reported", "Zero-Shot", "imdb", "Zero-Shot", "gpt2", 0.40),
        row("reported", "PPO", "imdb", "PPO", "gpt2", 0.60),
        row("reported", "PPO", "imdb", "PPO", "gpt2", 0.30),
        row("submission", "A", "imdb", "ppo", "gpt2", 0.55),
        row("submission", "B", "imdb", "ppo", "tiny", 0.50),
        row("submission", "C", "imdb", "ppo", "tiny", 0.90, pool=False, skipped="no classifier (seed 1 of 2)"),
        row("reported", "Zero-Shot", "wmt16", "Zero-Shot", "t5-base", 0.30),
        row("reported", "PPO", "wmt16", "PPO", "t5-base", 0.34),
        row("submission", "A", "wmt16", "ppo", "t5-base", 0.32),
    ]
    hib = {"sentiment_score": True, "sacrebleu": True}
    scores = {
        r.group + r.task + str(r.cells[HEADLINE[r.task]].mean): s
        for r in rows
        for i, s in row_scores(rows, hib).items()
        if i == id(r)
    }
    # imdb: best 0.60 (a seed of C skipped the headline: out of the pool); zero-shot of gpt2 0.40; tiny has none -> worst 0.30
    assert scores["Aimdb0.55"] == pytest.approx((0.55 - 0.40) / (0.60 - 0.40))  # 0.75
    assert scores["Bimdb0.5"] == pytest.approx((0.50 - 0.30) / (0.60 - 0.30))  # 2/3
    assert scores["Cimdb0.9"] == pytest.approx((0.90 - 0.30) / (0.60 - 0.30))  # 2.0, shown but not ranked
    assert scores["PPOimdb0.3"] == pytest.approx(-0.5)
    # wmt16: best 0.34, zero-shot of t5-base 0.30 -> A (0.32 - 0.30) / 0.04 = 0.5
    assert scores["Awmt160.32"] == pytest.approx(0.5)
    ranking = overall(rows, ["imdb", "wmt16"], hib)
    got = {
        kind: [(o.group, o.rank, o.complete, round(o.score, 6)) for o in ranking if o.kind == kind]
        for kind in ("submission", "reported")
    }
    assert got["submission"] == [
        ("A", 1, True, 0.625),  # (0.75 + 0.5) / 2
        ("C", None, False, 2.0),  # skipped and missing wmt16: below every complete one
        ("B", None, False, round(2 / 3, 6)),
    ]
    assert got["reported"] == [
        ("PPO", 1, True, 0.625),  # imdb (1.0 - 0.5) / 2 = 0.25, wmt16 1.0 -> 0.625
        ("Zero-Shot", 2, True, 0.0),
    ]
    assert [o.missing for o in ranking if o.group in "BC"] == [["wmt16"], ["wmt16"]]
    assert [o.skipped for o in ranking if o.group in "BC"] == [
        {"imdb": "sentiment_score skipped: no classifier (seed 1 of 2)"},
        {},
    ]


def test_task_score_follows_the_metric_direction():
    # ter, lower is better: best 0.50, worst 0.60; by hand (0.55 - 0.60) / (0.50 - 0.60) = 0.5
    rows = [
        Row("submission", g, g, "wmt16", "ppo", "m", "test", {"ter": Cell(v, None, 1)}, in_pool=True)
        for g, v in (("a", 0.50), ("b", 0.60))
    ]
    best, worst, zero = references(rows, "ter", higher=False)
    assert (best, worst, zero) == (0.50, 0.60, {})
    assert task_score(0.55, worst, best) == pytest.approx(0.5)
    assert task_score(0.3, 0.3, 0.3) == 0.0  # nothing beats the zero-shot reference


def test_every_task_has_a_headline_metric_it_reports():
    for task, info in TASKS.items():
        assert HEADLINE[task] in info.metrics, task


# ---- the paper's reported rows


def test_reported_rows_load_and_match_the_paper():
    rows, problems = load_reported(REPORTED, TASKS, "reported")
    assert problems == []
    files = {rel: r for rel, r in rows}
    assert not any("iwslt" in rel for rel in files)  # IWSLT2017 is not a GRUE task
    board_row = files["totto/totto-leaderboard--6-supervised-nlpo.json"]
    # printed x100 on the ToTTo leaderboard (BLEU 47.4, PARENT 59.6), stored on the 0-1 scale
    assert board_row.metrics["sacrebleu_overall"].value == 0.474 and board_row.metrics["parent_overall"].value == 0.596
    assert board_row.config["paper"]["printed"]["bleu_overall"] == "47.4"
    kl = files["imdb/arxiv-v2-table-05--3-ppo--target-kl-0-5.json"].metrics["perplexity"]
    assert (kl.value, kl.std, kl.higher_is_better) == (33.497, 0.447, False)  # Table 5 as printed
    cg = files["commongen/arxiv-v2-table-12--2-supervised.json"]
    assert "cider" not in cg.metrics and cg.metrics["cider_official_scale"].value == 16.385
    assert files["commongen/arxiv-v2-table-13--2-supervised.json"].split == "validation"  # dev
    assert all(r.kind == "reported" and r.source for r in files.values())


def reported_file(root: Path, name: str, algorithm: str, paper: dict) -> None:
    """A reported imdb file (one metric) with ``config.paper`` as leaderboard/tools/import_reported.py writes it."""
    results = Results(
        kind="reported",
        task="imdb",
        task_version=TASKS["imdb"].version,
        split="test",
        algorithm=algorithm,
        model=ModelInfo("gpt2", None, 117_000_000),
        seed=None,
        metrics={"sentiment_score": MetricValue(0.6, True)},
        samples=None,
        runtime_seconds=None,
        date="2024-05-01T12:00:00Z",
        grue_version="0.1.0",
        git_commit=None,
        source="a paper, Table 3",
        config={"paper": {"short": "arXiv v2 Table 3", **paper, "overall": True}},
    )
    write_results(results, root / "imdb" / name)


def test_bar_label_names_the_reward_not_the_variant(tmp_path):
    """A reported row's bar names its reward function from config.paper.reward, never another part of the note:
    a row with a variant and no reward is labelled by its algorithm alone."""
    (tmp_path / "subs").mkdir()
    reported_file(tmp_path / "rep", "a.json", "PPO", {"reward": "Sentiment", "variant": None})
    reported_file(tmp_path / "rep", "b.json", "Zero-Shot", {"reward": None, "variant": "headline"})
    reported_file(tmp_path / "rep", "c.json", "NLPO", {"reward": None, "variant": None})
    board = make_board(tmp_path / "subs", tmp_path / "rep", "subs", "rep")
    rows = {r.ref: r for r in board.rows}
    assert [(rows[k].reward, rows[k].note) for k in ("imdb/a.json", "imdb/b.json", "imdb/c.json")] == [
        ("Sentiment", "Sentiment · arXiv v2 Table 3"),
        ("", "headline · arXiv v2 Table 3"),
        ("", "arXiv v2 Table 3"),
    ]
    assert [label for label, *_ in task_bars(board, "imdb")] == [
        "PPO · Sentiment (paper)",
        "Zero-Shot (paper)",
        "NLPO (paper)",
    ]


def test_paper_baselines_overall_by_hand(tmp_path):
    (tmp_path / "subs").mkdir()
    board = make_board(tmp_path / "subs", REPORTED, "subs", "reported")
    ppo = next(o for o in board.ranking if o.group == "PPO")
    # IMDB Table 3: PPO 0.605, Zero-Shot 0.489, best Supervised+NLPO 0.645
    assert ppo.scores["imdb"] == pytest.approx((0.605 - 0.489) / (0.645 - 0.489))
    lead3 = next(o for o in board.ranking if o.group == "Lead-3")
    assert not lead3.complete and lead3.rank is None


def test_converter_regenerates_the_committed_files(tmp_path):
    source = REPO.parent / "shared" / "paper" / "grue_reported.json"
    if not source.is_file():
        pytest.skip("the recovered paper numbers (../shared/paper/grue_reported.json) are not here")
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_reported", REPO / "leaderboard/tools/import_reported.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(source), "--out", str(tmp_path)]) == 0
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert made == sorted(p.relative_to(REPORTED).as_posix() for p in REPORTED.rglob("*.json"))
    for rel in made:
        new, old = json.loads((tmp_path / rel).read_text()), json.loads((REPORTED / rel).read_text())
        assert {**new, "date": None} == {**old, "date": None}, rel


# ---- the build


def test_build_is_byte_identical_and_removes_stale_pages(tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(EXAMPLE, subs)
    write_submission(subs, "two-seeds", {("imdb", 0): {"sentiment_score": 0.6}, ("imdb", 1): {"sentiment_score": 0.7}})
    build(subs, REPORTED, tmp_path / "a")
    build(subs, REPORTED, tmp_path / "b")
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in sorted((tmp_path / "a").rglob("*")) if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in sorted((tmp_path / "b").rglob("*")) if p.is_file()}
    assert a == b and Path("submissions/two-seeds.html") in a and Path("plots/imdb.svg") in a
    shutil.rmtree(subs / "two-seeds")
    build(subs, REPORTED, tmp_path / "a")
    assert not (tmp_path / "a/submissions/two-seeds.html").exists()
    assert (tmp_path / "a/submissions/tiny-ppo-smoke.html").exists()


def test_the_example_is_never_on_the_default_board(tmp_path):
    board = make_board(REPO / "leaderboard/submissions", REPORTED, "leaderboard/submissions", "leaderboard/reported")
    files = render(board)
    assert "tiny-ppo-smoke" not in files["index.html"] and not any("tiny-ppo-smoke" in f for f in files)
    if not board.submissions:  # the paper's files are dated too, but they are no result
        assert "No submissions yet." in files["index.html"] and "Latest result" not in files["index.html"]


def test_the_example_builds_and_is_marked(tmp_path):
    board = make_board(EXAMPLE, REPORTED, "examples", "reported")
    example = next(o for o in board.ranking if o.kind == "submission")
    assert example.group == "tiny-ppo-smoke" and not example.complete and example.rank is None
    # every task is there: incomplete only because the classifiers of IMDB and DailyDialog are not available offline,
    # which the page says
    assert example.missing == [] and list(example.skipped) == ["dailydialog", "imdb"]
    files = render(board)
    why = "incomplete: dailydialog: intent_accuracy skipped: "
    assert why in files["index.html"] and why.replace("_", "\\_") in files["leaderboard.md"]
    assert "; imdb: sentiment_score skipped: " in files["index.html"]
    assert "missing imdb" not in files["index.html"] and "partial" not in files["index.html"]
    assert f"Latest result: {max(e.results.date for e in board.submissions[0].entries)}." in files["index.html"]


def test_hostile_submission_renders_as_text(tmp_path):
    subs = tmp_path / "subs"
    write_submission(
        subs,
        "evil",
        {("imdb", 0): {}},
        model=HOSTILE,
        meta={
            "who": '"><img src=x onerror=alert(1)>',
            "model": HOSTILE,
            "algorithm": "</td></tr></table>",
            "link": 'https://example.org/"onmouseover="alert(1)',
            "notes": "[x](javascript:alert(1))",
        },
        samples=[{"prompt": HOSTILE, "generation": "<iframe src=javascript:alert(1)>", "references": ["=1+1"]}],
    )
    files = render(make_board(subs, REPORTED, "subs", "reported"))
    for name in ("index.html", "submissions/evil.html"):
        page = files[name]
        assert HOSTILE not in page and "<img" not in page and "<iframe" not in page
        assert page.count("<script>") == 1  # only the page's own sorting script
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="https://example.org/&quot;onmouseover=&quot;alert(1)"' in files["submissions/evil.html"]
    for name in ("index.html", "submissions/evil.html"):  # the notes' javascript: link stays text, never a link
        assert 'href="javascript:' not in files[name] and "href='javascript:" not in files[name]
    assert "[x](javascript:alert(1))" in files["submissions/evil.html"]  # shown as the text it is
    assert HOSTILE not in files["leaderboard.md"] and "&lt;script&gt;" in files["leaderboard.md"]
    assert HOSTILE in files["leaderboard.csv"]  # CSV holds the raw text (a spreadsheet does not run HTML)
    assert all(HOSTILE not in v for k, v in files.items() if k.endswith(".svg"))


def test_links_are_http_only():
    assert link("javascript:alert(1)", "x") == "x"
    assert link("data:text/html,hi", "<b>") == "&lt;b&gt;"
    assert (
        link("https://a.org/p?q=1&r=2", "t")
        == '<a href="https://a.org/p?q=1&amp;r=2" rel="nofollow noopener noreferrer">t</a>'
    )


def test_csv_cells_never_start_a_formula(tmp_path):
    subs = tmp_path / "subs"
    write_submission(subs, "s", {("imdb", 0): {}}, model='=HYPERLINK("http://x")')
    text = render(make_board(subs, REPORTED, "subs", "reported"))["leaderboard.csv"]
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_build_refuses_to_write_into_its_input(tmp_path):
    (tmp_path / "subs").mkdir()
    with pytest.raises(GrueError, match="inside the input folder") as err:
        build(tmp_path / "subs", REPORTED, tmp_path / "subs" / "site")
    assert not isinstance(err.value, ProblemsError)  # one bad option, not a list of input problems
    assert not (tmp_path / "subs" / "site").exists()
    with pytest.raises(LeaderboardError):
        build(tmp_path / "missing", REPORTED, tmp_path / "site")


def test_example_submission_matches_the_current_tasks(data_dir):
    """The example's files were made from the local samples, each on the whole of its task's benchmark split (ToTTo:
    validation): their splits, counts and versions are today's."""
    from grue.tasks import TASKS as TASK_MODULES

    files = sorted((EXAMPLE / "tiny-ppo-smoke").glob("*/seed*/results.json"))
    assert {f.parts[-3] for f in files} == set(TASKS) and TASKS["totto"].benchmark_split == "validation"
    for f in files:
        results = load_results(f)
        assert results.task_version == TASKS[results.task].version, f
        assert results.split == TASKS[results.task].benchmark_split, f
        examples = len(TASK_MODULES[results.task].load(results.split, data_dir, builtin=False))
        assert results.samples.total == results.samples.evaluated == examples, f


# ---- what the pages never show: local paths, "-0.000", a cut label, an axis stretched by one entry

LOCAL = [
    "/tmp/runs/x/checkpoint",
    "~",
    "~/models/ppo",
    "~alice/ckpt",
    "./runs/a",
    "../ckpt",
    "runs/imdb-ppo-0-2024",
    "C:\\Users\\alice\\ckpt",
    "D:/data",
    "\\\\server\\share\\x",
    "file:///home/alice/x",
    "a/b/c",
]
NOT_LOCAL = [
    "gpt2",
    "microsoft/deberta-xlarge-mnli",
    "lvwerra/gpt2-imdb",
    "https://huggingface.co/a/b/c",
    "and/or",
    "n/a",
    "rouge_1",
    "~5%",
    "/",
    "-0.5",
    "t5-base",
    ".hidden",
    "runsx/y",
    "</td></tr></table>",
]


@pytest.mark.parametrize("text", LOCAL)
def test_local_paths_are_recognised(text):
    assert is_local_path(text) and scrub_text(text) == LOCAL_PATH


@pytest.mark.parametrize("text", NOT_LOCAL)
def test_hub_ids_urls_and_words_are_kept(text):
    assert not is_local_path(text) and scrub_text(text) == text


def test_scrub_replaces_paths_in_text_and_under_place_keys():
    assert scrub_text("could not load /home/alice/.cache/x: gone (see ~/notes.txt).") == (
        f"could not load {LOCAL_PATH}: gone (see {LOCAL_PATH})."
    )
    config = {
        "run": {"data_dir": "data", "output_dir": "", "model": "gpt2", "ref_model": "/m", "seed": 3},
        "evaluated_weights": "my-run/checkpoint",
        "predictions": {"file": "preds.jsonl", "sha256": "ab"},
        "eval": {"bertscore_model": "microsoft/deberta-xlarge-mnli", "bertscore_layers": None},
    }
    assert scrub(config) == {
        "run": {"data_dir": LOCAL_PATH, "output_dir": "", "model": "gpt2", "ref_model": LOCAL_PATH, "seed": 3},
        "evaluated_weights": LOCAL_PATH,
        "predictions": {"file": LOCAL_PATH, "sha256": "ab"},
        "eval": {"bertscore_model": "microsoft/deberta-xlarge-mnli", "bertscore_layers": None},
    }


def test_no_local_path_reaches_the_site(tmp_path):
    """A results file as a real run writes it (its run folder, data folder and weights), a model evaluated from
    disk and a skip reason naming a cache: the site shows none of the paths, anywhere."""
    subs = tmp_path / "subs"
    folder = write_submission(subs, "mine", {("imdb", 0): {}}, model="/home/alice/ckpt/final")
    data = json.loads((folder / R).read_text())
    data["config"] = {
        "run": {"task": "imdb", "data_dir": "/home/alice/data", "output_dir": "runs/imdb-ppo-0-2024"},
        "evaluated_weights": "/home/alice/runs/imdb/checkpoint",
        "eval": {"sentiment_model": "lvwerra/distilbert-imdb"},
    }
    data["metrics"].pop("perplexity")
    data["skipped"] = {"perplexity": "could not load /home/alice/.cache/huggingface/gpt2"}
    (folder / R).write_text(json.dumps(data))
    files = render(make_board(subs, REPORTED, "subs", "reported"))
    for name, text in files.items():
        assert "alice" not in text and "runs/imdb" not in text, name
    page = files["submissions/mine.html"]
    assert page.count(LOCAL_PATH) == 5 and "lvwerra/distilbert-imdb" in page  # model, 3 config paths, the reason
    assert LOCAL_PATH in files["index.html"] and LOCAL_PATH in files["leaderboard.csv"]


def test_numbers_that_round_to_zero_have_no_sign(tmp_path):
    assert [fmt(x) for x in (-0.0, -0.0004, -0.0005001, 0.0004, -1234.4, None)] == [
        "0.000",
        "0.000",
        "-0.001",
        "0.000",
        "-1234",
        "—",
    ]
    subs = tmp_path / "subs"
    write_submission(subs, "s", {("imdb", 0): {"sentiment_score": -0.0001, "distinct_1": -0.0002}})
    files = render(make_board(subs, REPORTED, "subs", "reported"))
    shown = re.compile(r"-0\.000(?!\d)")  # as printed; data-v="-0.0001" (the sort key) is the exact value
    assert not any(
        shown.search(files[k]) for k in ("index.html", "submissions/s.html", "leaderboard.md", "plots/imdb.svg")
    )
    assert 'data-v="-0.0001">0.000<' in files["index.html"]


def test_labels_wrap_whole():
    label = "a-submission-name-of-eighty-characters-" + "x" * 41
    assert wrap(label, 30) == [label[:30], label[30:60], label[60:]]
    assert wrap("PPO · Sentiment (paper)", 12) == ["PPO ·", "Sentiment", "(paper)"]
    svg = bar_svg("t", [(label, 0.5, None, False)], (0.0, 1.0))
    lines = re.findall(r">([^<]*)</text>", svg)  # title, the label's lines, the value, the axis' ends
    assert len(lines) == 1 + 2 + 1 + 2 and "".join(lines[1:3]) == label and "…" not in svg


def test_overall_axis_is_cut_and_out_of_range_scores_are_explained(tmp_path):
    # by hand: [0, 1] widened to the lowest (-4) and highest (0.8) score, but never beyond [-0.25, 1.25]
    assert score_axis([-4.0, 0.8]) == (-0.25, 1.0) and score_axis([0.2, 0.5]) == (0.0, 1.0)
    assert score_axis([-0.1, 1.1]) == (-0.1, 1.1) and score_axis([2.0]) == (0.0, 1.25)
    # the example is the worst row of each task, so its own zero-shot reference: 0. A zero-shot submission of its
    # models halfway between it and the best row puts it far below 0
    subs = tmp_path / "subs"
    shutil.copytree(EXAMPLE, subs)
    alone = make_board(subs, REPORTED, "subs", "reported")
    halfway = {}
    for r in alone.task_rows("commongen", "submission") + alone.task_rows("wmt16", "submission"):
        best = references([x for x in alone.rows if x.task == r.task and x.split == "test"], HEADLINE[r.task], True)[0]
        halfway[(r.task, 0)] = {HEADLINE[r.task]: (r.cells[HEADLINE[r.task]].mean + best) / 2}
    write_submission(subs, "zero-shot-t5", halfway, model="tiny-t5", algorithm="zero-shot")
    board = make_board(subs, REPORTED, "subs", "reported")
    files = render(board)
    example = next(o for o in board.ranking if o.group == "tiny-ppo-smoke")
    assert example.score < -0.25  # the tiny smoke models are far below their zero-shot reference
    svg = files["plots/overall.svg"]
    assert ">-0.250</text>" in svg and f">{fmt(example.score)}</text>" in svg and "arrowhead" in svg
    assert 'id="out-of-range">† A score below 0 means' in files["index.html"]
    assert f"{fmt(example.score)}\u00a0†</td>" in files["index.html"]
    assert (
        "† A score below 0 means" in files["leaderboard.md"]
        and f"| {fmt(example.score)} † |" in files["leaderboard.md"]
    )


def test_samples_whose_text_holds_unicode_line_separators_are_valid():
    """JSON Lines separates rows with "\n" alone: a generation or prompt holding U+0085 or U+2028 (IMDB reviews do,
    and json.dumps(ensure_ascii=False) writes them as they are) is one row, not three broken ones."""
    from grue.leaderboard.submissions import check_samples

    row = {"prompt": "a\u0085b", "generation": "c\u2028d\u2029e", "references": ["f\x85"]}
    raw = (json.dumps(row, ensure_ascii=False) + "\r\n" + json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    rows, problems = check_samples(raw, "s.jsonl")
    assert problems == [] and rows == [row, row]
