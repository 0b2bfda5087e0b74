"""What the leaderboard takes (issue "grue benchmark: a submission the leaderboard can trust"): whole benchmark
splits only (never built-in prompts, a --limit evaluation, another split or an old task version, each refused with
its own line), a skipped headline metric shown as the reason the entry is incomplete, ToTTo on its validation split
apart from the overall score, and the provenance of ``grue benchmark run`` checked against the results and shown."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
import yaml
from conftest import REPO, cli_in_process, run_cli
from test_leaderboard import HOSTILE, REPORTED, TASKS, edit_results, problems_of, write_submission

from grue.fingerprint import fingerprint
from grue.leaderboard.board import make_board
from grue.leaderboard.build import render
from grue.leaderboard.provenance import NOT_RECORDED
from grue.results import load_results

R = "imdb/seed0/results.json"
COMMAND = "grue benchmark run --algo ppo --model tiny-gpt2 --name prov --seeds 2"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The Quickstart, really run: a tiny IMDB smoke run (2 iterations) evaluated on its built-in prompts, no data."""
    run = tmp_path_factory.mktemp("quickstart") / "smoke"
    p = cli_in_process(
        "train",
        "imdb",
        "--algo",
        "ppo",
        "--preset",
        "smoke",
        "--set",
        "ppo.iterations=2",
        "--output-dir",
        str(run),
        "--quiet",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    p = cli_in_process("eval", "--checkpoint", str(run), "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    return run, p.stdout


def test_builtin_prompts_evaluate_into_eval_builtin_with_split_builtin(smoke_run):
    run, stdout = smoke_run
    assert not (run / "eval" / "test").exists()
    results = load_results(run / "eval" / "builtin" / "results.json")
    assert results.split == "builtin" and results.samples.evaluated == results.samples.total
    assert "not a split of the task's data" in results.notes and "the leaderboard refuses it" in results.notes
    assert (
        stdout.splitlines()[0].startswith("imdb (built-in prompts, ") and f"{run}/eval/builtin/results.json" in stdout
    )


def test_the_quickstart_evaluation_is_refused_with_one_line(smoke_run, tmp_path):
    """Copied into a submission as the README once let one do, it is refused, naming the file and why."""
    run, _ = smoke_run
    folder = write_submission(tmp_path / "subs", "mine", {})
    (folder / "imdb" / "seed0").mkdir(parents=True)
    shutil.copyfile(run / "eval" / "builtin" / "results.json", folder / R)
    p = run_cli("leaderboard", "validate", str(folder))
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f"{tmp_path / 'subs'}/mine/{R}: split: results of the task's built-in prompts (a smoke check of the run, not a "
        "benchmark result); evaluate the task's benchmark split with --data-dir DIR (or GRUE_DATA_DIR)",
        "1 problem(s); how to fix a submission: leaderboard/README.md",
    ]
    p = run_cli("leaderboard", "build", "--submissions", str(tmp_path / "subs"), "--out", str(tmp_path / "site"))
    assert p.returncode == 1 and "built-in prompts" in p.stderr and not (tmp_path / "site").exists()


def test_each_file_that_is_not_a_whole_benchmark_split_gets_its_own_line(tmp_path):
    """A --limit evaluation, a validation-split file of a test-split task, an old task version, and a file of built-in
    prompts written before the split "builtin" existed (split test, run.builtin_prompts): one line each."""
    runs = {("imdb", 0): {}, ("imdb", 1): {}, ("imdb", 2): {}, ("imdb", 3): {}}
    folder = write_submission(tmp_path, "sub", runs)
    edit_results("imdb/seed0/results.json", samples={"total": 50, "evaluated": 16})(folder)
    edit_results("imdb/seed1/results.json", split="validation")(folder)
    edit_results("imdb/seed2/results.json", task_version="1.0")(folder)
    edit_results("imdb/seed3/results.json", config={"run": {"task": "imdb", "builtin_prompts": True}})(folder)
    version = TASKS["imdb"].version
    assert problems_of(tmp_path) == [
        "subs/sub/imdb/seed0/results.json: samples.evaluated: evaluated 16 of the split's 50 examples (--limit); the "
        "leaderboard takes whole splits",
        'subs/sub/imdb/seed1/results.json: split: must be "test", the benchmark split of imdb (benchmark_split in '
        'tasks/imdb/task.yaml), got "validation"',
        f'subs/sub/imdb/seed2/results.json: task_version: must be "{version}", the version of tasks/imdb/task.yaml, got '
        '"1.0"; scores of another task version are not comparable: re-evaluate the run with the current grue',
        "subs/sub/imdb/seed3/results.json: split: results of the task's built-in prompts (a smoke check of the run, not "
        "a benchmark result); evaluate the task's benchmark split with --data-dir DIR (or GRUE_DATA_DIR)",
    ]


# ---- a skipped headline metric


def skip_headline(folder, rel: str, reason: str) -> None:
    data = json.loads((folder / rel).read_text())
    data["metrics"].pop("sentiment_score")
    data["skipped"] = {"sentiment_score": reason}
    (folder / rel).write_text(json.dumps(data))


def test_a_skipped_headline_metric_makes_the_entry_incomplete_and_says_why(tmp_path):
    every = {(t, 0): {} for t in TASKS}
    folder = write_submission(tmp_path, "all-tasks", every)
    edit_results("totto/seed0/results.json", split="validation")(folder)
    skip_headline(folder, R, "could not load the sentiment classifier <offline>")
    board = make_board(tmp_path, REPORTED, "subs", "reported")
    (entry,) = [o for o in board.ranking if o.kind == "submission"]
    assert not entry.complete and entry.rank is None and entry.missing == []
    assert entry.skipped == {"imdb": "sentiment_score skipped: could not load the sentiment classifier <offline>"}
    files = render(board)
    status = "incomplete: imdb: sentiment_score skipped: could not load the sentiment classifier "
    assert status + "&lt;offline&gt;" in files["index.html"]
    assert status.replace("_", "\\_") + "&lt;offline&gt;" in files["leaderboard.md"]  # Markdown-escaped
    assert "missing" not in files["leaderboard.md"].split("### Paper baselines")[0]
    shutil.rmtree(folder / "imdb")  # no imdb file at all: now it is missing
    (entry,) = [o for o in make_board(tmp_path, REPORTED, "subs", "reported").ranking if o.kind == "submission"]
    assert (entry.missing, entry.skipped) == (["imdb"], {})


# ---- ToTTo: its validation split, apart from the overall score


def test_totto_takes_validation_results_and_stays_out_of_the_overall_score(tmp_path):
    folder = write_submission(tmp_path, "totto-only", {("totto", 0): {}})
    assert problems_of(tmp_path) == [
        'subs/totto-only/totto/seed0/results.json: split: must be "validation", the benchmark split of totto '
        '(benchmark_split in tasks/totto/task.yaml), got "test"'
    ]
    edit_results("totto/seed0/results.json", split="validation")(folder)
    write_submission(tmp_path, "complete", {(t, 0): {} for t in TASKS if t != "totto"})
    board = make_board(tmp_path, REPORTED, "subs", "reported")
    assert "totto" not in board.overall_tasks() and len(board.overall_tasks()) == len(TASKS) - 1
    ranking = {o.group: o for o in board.ranking if o.kind == "submission"}
    assert ranking["complete"].complete and ranking["complete"].rank == 1  # no ToTTo file, yet complete
    assert "totto" not in ranking["totto-only"].scores and ranking["totto-only"].missing == board.overall_tasks()
    assert all("totto" not in o.scores for o in board.ranking)  # the paper's algorithms too
    (row,) = board.task_rows("totto", "submission")
    assert row.split == "validation" and row.score is None
    html = render(board)["index.html"]
    assert "totto is shown apart, outside the overall score: its test references are hidden" in html
    assert "<h3>Submissions (validation split)</h3>" in html.split('id="task-totto"')[1]
    assert (
        "Paper baselines: reported in the paper, not re-run here (validation split)" in html.split('id="task-totto"')[1]
    )


# ---- provenance: the benchmark block of grue benchmark run


def benchmark_block(folder, tasks: list[str], seeds: list[int], **changes) -> dict:
    """A benchmark block that matches the submission's results files (their settings fingerprints)."""
    settings = {
        t: fingerprint(json.loads(next((folder / t).glob("seed*/results.json")).read_text())["config"]) for t in tasks
    }
    cells = [
        {"task": t, "seed": s, "stage": "ppo", "settings": settings[t], "wall_seconds": 60.0, "device_hours": 0.017}
        for t in tasks
        for s in seeds
    ]
    return {
        "name": folder.name,
        "command": COMMAND,
        "grue_version": "0.2.0",
        "git_commit": "0123abc",
        "hardware": "2 CPU cores (AMD EPYC 7B13), no GPU; torch 2.13.0",
        "seeds": seeds,
        "settings": settings,
        "wall_seconds": 60.0 * len(cells),
        "device_hours": round(0.017 * len(cells), 3),
        "cells": cells,
        **changes,
    }


def with_block(folder, block: dict) -> None:
    meta = yaml.safe_load((folder / "submission.yaml").read_text())
    (folder / "submission.yaml").write_text(yaml.safe_dump({**meta, "benchmark": block}, sort_keys=False))


def test_a_benchmark_block_that_matches_the_results_is_accepted(tmp_path):
    folder = write_submission(tmp_path, "prov", {("imdb", 0): {}, ("imdb", 1): {}})
    with_block(folder, benchmark_block(folder, ["imdb"], [0, 1]))
    assert problems_of(tmp_path) == []


def test_a_results_file_not_made_by_the_benchmark_is_refused(tmp_path):
    folder = write_submission(tmp_path, "prov", {("imdb", 0): {}, ("imdb", 1): {}})
    block = benchmark_block(folder, ["imdb"], [0])
    with_block(folder, {**block, "settings": {"imdb": "3f2a9c0b1d2e4f56"}})
    actual = block["settings"]["imdb"]
    assert problems_of(tmp_path) == [
        f"subs/prov/imdb/seed0/results.json: config: settings fingerprint {actual} differs from submission.yaml's "
        "benchmark.settings.imdb 3f2a9c0b1d2e4f56: the file was not made by this benchmark's settings",
        f"subs/prov/imdb/seed1/results.json: config: settings fingerprint {actual} differs from submission.yaml's "
        "benchmark.settings.imdb 3f2a9c0b1d2e4f56: the file was not made by this benchmark's settings",
        "subs/prov/imdb/seed1/results.json: seed: 1 is not one of submission.yaml's benchmark.seeds (0): the file was "
        "not made by this benchmark",
    ]


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            {"colour": "red"},
            "benchmark.colour: unknown field; accepted: name, command, grue_version, git_commit, hardware, "
            "seeds, settings, wall_seconds, device_hours, cells",
        ),
        (
            {"command": "python train.py"},
            "benchmark.command: must be the command that reproduces the submission, "
            '"grue benchmark run ..." (at most 2000 characters), got "python train.py"',
        ),
        (
            {"git_commit": "HEAD"},
            "benchmark.git_commit: must be 7 to 64 lowercase hex digits (optionally + '-dirty'), "
            'quoted, or null, got "HEAD"',
        ),
        ({"seeds": [0, 0]}, "benchmark.seeds: each seed once, got [0, 0]"),
        ({"seeds": [-1]}, "benchmark.seeds: must be integers >= 0, got -1"),
        (
            {"settings": {"imdb": "XYZ"}},
            'benchmark.settings.imdb: must be a settings fingerprint: 16 lowercase hex digits, quoted, got "XYZ"',
        ),
        (
            {"settings": {"nope": "3f2a9c0b1d2e4f56"}},
            "benchmark.settings.nope: unknown task; known: " + ", ".join(sorted(TASKS)),
        ),
        ({"device_hours": -1}, "benchmark.device_hours: must be a finite number >= 0, got -1"),
        ({"wall_seconds": ".nan"}, 'benchmark.wall_seconds: must be a finite number >= 0, got ".nan"'),
        (
            {
                "cells": [
                    {
                        "task": "imdb",
                        "seed": 7,
                        "stage": "ppo",
                        "settings": "3f2a9c0b1d2e4f56",
                        "wall_seconds": 1,
                        "device_hours": 0,
                    }
                ]
            },
            "benchmark.cells[0].seed: 7 is not one of benchmark.seeds",
        ),
        (
            {
                "cells": [
                    {
                        "task": "imdb",
                        "seed": 0,
                        "stage": "sft",
                        "settings": "3f2a9c0b1d2e4f56",
                        "wall_seconds": 1,
                        "device_hours": 0,
                    }
                ]
            },
            'benchmark.cells[0].stage: must be one of supervised, ppo, nlpo, a2c, grpo, rloo, trpo, got "sft"',
        ),
        (
            {"cells": "all"},
            'benchmark.cells: must be a list of {task, seed, stage, settings, wall_seconds, device_hours}, got "all"',
        ),
    ],
)
def test_a_malformed_benchmark_block_is_one_line_per_problem(tmp_path, change, problem):
    folder = write_submission(tmp_path, "prov", {("imdb", 0): {}})
    with_block(folder, {**benchmark_block(folder, ["imdb"], [0]), **change})
    assert problems_of(tmp_path) == [f"subs/prov/submission.yaml: {problem}"]


def test_the_site_shows_the_provenance_of_each_submission(tmp_path):
    benched = write_submission(tmp_path, "prov", {("imdb", 0): {}, ("imdb", 1): {}, ("wmt16", 0): {}, ("wmt16", 1): {}})
    block = benchmark_block(
        benched, ["imdb", "wmt16"], [0, 1], command=COMMAND + f" --notes '{HOSTILE}' --data-dir /home/al/d"
    )
    with_block(benched, block)
    write_submission(tmp_path, "by-hand", {("imdb", 0): {}})
    files = render(make_board(tmp_path, REPORTED, "subs", "reported"))
    index, page, md = files["index.html"], files["submissions/prov.html"], files["leaderboard.md"]
    assert "2 seeds, 0.068 device-hours" in index and NOT_RECORDED in index  # overall table: seeds, device-hours
    for task in ("imdb", "wmt16"):  # each task row: its settings fingerprint
        assert (
            f'<td class="t"><code>{block["settings"][task]}</code></td>'
            in index.split(f'id="task-{task}"')[1].split("</section>")[0]
        )
    shown = "grue benchmark run --algo ppo --model tiny-gpt2 --name prov --seeds 2 --notes &#x27;&lt;script&gt;"
    assert shown in page and shown.replace("&#x27;", "'") in md and HOSTILE not in page + index + md
    assert "/home/al" not in page + md + files["leaderboard.csv"]  # a local path in the command is not published
    for text in (
        "0.2.0, commit 0123abc",
        "2 CPU cores (AMD EPYC 7B13)",
        "2: 0, 1",
        "0.068 device-hours",
        block["settings"]["wmt16"],
    ):
        assert text in page, text
    assert NOT_RECORDED in files["submissions/by-hand.html"]
    rows = list(csv.DictReader(io.StringIO(files["leaderboard.csv"])))
    overall = next(
        r for r in rows if r["section"] == "overall" and r["entry"] == "prov" and r["metric"] == "overall_score"
    )
    assert (overall["benchmark_seeds"], float(overall["device_hours"])) == ("2", 0.068)
    assert overall["command"].startswith(COMMAND)
    task_row = next(r for r in rows if r["section"] == "task" and r["entry"] == "prov" and r["task"] == "wmt16")
    assert task_row["settings"] == block["settings"]["wmt16"] and float(task_row["device_hours"]) == pytest.approx(
        0.034
    )
    hand = next(r for r in rows if r["entry"] == "by-hand")
    assert hand["command"] == NOT_RECORDED and hand["settings"] == hand["device_hours"] == ""


def test_the_readme_example_block_validates():
    """The block shown in leaderboard/README.md is what check_benchmark accepts."""
    from grue.leaderboard.provenance import check_benchmark

    text = (REPO / "leaderboard" / "README.md").read_text(encoding="utf-8")
    block = text.split("```yaml\nbenchmark:")[1].split("```")[0]
    data = yaml.safe_load("benchmark:" + block)["benchmark"]
    benchmark, problems = check_benchmark(data, "submission.yaml", set(TASKS))
    assert problems == [] and benchmark.seeds == [0, 1, 2, 3, 4]
