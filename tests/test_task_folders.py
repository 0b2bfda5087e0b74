"""A task is one folder (issue 11): the built-in ones and a user's are read by the same function; a malformed folder
gets one line naming the file and field; `grue new-task` writes a folder that trains at once."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from conftest import cli_in_process
from grue.algorithms import resolve
from grue.errors import GrueError
from grue.leaderboard.aggregate import HEADLINE
from grue.tasks import builtin_tasks, find_task, load_task, task_names
from grue.tasks.skeleton import write_skeleton


def test_every_builtin_task_is_one_folder_with_its_code_and_headline():
    for t in builtin_tasks():
        assert {p.name for p in t.folder.iterdir()} >= {"task.yaml", "task.py", "README.md", "presets", "ppo.yaml"}
        assert t.module.load and t.module.SPLITS and HEADLINE[t.name] == t.headline
        assert t.benchmark_split in t.module.SPLITS and t.benchmark_split == (
            "validation" if t.name == "totto" else "test"
        )
    assert set(HEADLINE) == set(task_names())


def small_task(tmp_path, **card):
    """A Python-free task folder: two JSON Lines splits and a task.yaml (``card`` replaces its keys)."""
    folder = tmp_path / "mine"
    (folder / "d").mkdir(parents=True)
    (folder / "d" / "train.jsonl").write_text(
        json.dumps({"text": "a b", "gold": "c", "topic": 3})
        + "\n\n"
        + json.dumps({"text": "d", "gold": ["e", "f"]})
        + "\n"
    )
    base = {
        "version": "1",
        "metrics": ["rouge"],
        "headline": "rouge_1",
        "run": {"reward": "rouge1"},
        "data": {"splits": {"train": "d/train.jsonl"}, "prompt_field": "text", "references_field": "gold"},
    }
    (folder / "task.yaml").write_text(yaml.safe_dump({**base, **card}))
    return folder


def test_a_task_without_python_reads_its_jsonl_files(tmp_path):
    task = find_task(str(small_task(tmp_path)))
    examples = task.module.load("train", None)
    assert [(e.prompt, e.references, e.meta) for e in examples] == [
        ("a b", ["c"], {"topic": 3, "index": 0}),
        ("d", ["e", "f"], {"index": 1}),
    ]
    cfg = resolve(str(tmp_path / "mine"), "ppo")  # no ppo.yaml: PPO's defaults
    assert cfg.run.task == str((tmp_path / "mine").resolve()) and cfg.run.reward == "rouge1" and cfg.task_version == "1"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"metrics": ["rouge", "nope"]}, "task.yaml: metrics: unknown metric group 'nope'"),
        ({"metrics": "rouge"}, "task.yaml: metrics: expected a list"),
        ({"headline": "bleu"}, "task.yaml: headline: 'bleu' is not reported"),
        ({"version": ["1"]}, "task.yaml: version: expected a string"),
        ({"data": {"splits": {"train": "d/missing.jsonl"}}}, "task.yaml: data.splits.train: no file"),
        ({"data": {"splits": {"train": "d/train.jsonl"}, "prompt": "x"}}, "task.yaml: data.prompt: unknown key"),
        ({"colour": 1}, "task.yaml: unknown key 'colour'"),
        (
            {"benchmark_split": "train"},
            "task.yaml: benchmark_split: the split the leaderboard takes results of must be one "
            "of validation, test, got 'train'",
        ),
        ({"run": {"reward": "nope"}}, "task.yaml: run.reward: unknown reward 'nope'"),
        ({"run": {"seed": "x"}}, "task.yaml: run.seed: expected int"),
    ],
)
def test_a_malformed_task_folder_is_one_line_with_exit_2(tmp_path, change, message):
    folder = small_task(tmp_path, **change)
    p = cli_in_process("train", str(folder), "--dry-run")
    out = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(out) == 1 and message in out[0], p.stderr


def test_missing_task_yaml_and_unknown_name(tmp_path):
    with pytest.raises(GrueError, match=r"task.yaml: missing"):
        load_task(tmp_path)
    with pytest.raises(GrueError, match=r"unknown task 'imbd'.*did you mean 'imdb'"):
        find_task("imbd")


def test_tasks_path_and_env_list_a_users_task(tmp_path, monkeypatch):
    small_task(tmp_path)
    listed = cli_in_process("tasks", "--path", str(tmp_path))
    assert listed.returncode == 0 and "mine" in listed.stdout and "imdb" in listed.stdout
    monkeypatch.setenv("GRUE_TASKS_PATH", str(tmp_path))
    assert find_task("mine").folder == tmp_path / "mine" and "mine" in cli_in_process("tasks").stdout


@pytest.mark.slow
def test_new_task_skeleton_trains_and_evaluates_at_once(tmp_path):
    folder = write_skeleton(tmp_path / "toy")
    with pytest.raises(GrueError, match="already exists"):
        write_skeleton(folder)
    run = tmp_path / "run"
    p = cli_in_process("train", str(folder), "--algo", "ppo", "--preset", "smoke", "--quiet", "--output-dir", str(run))
    assert p.returncode == 0 and "done: 2 iterations" in p.stdout, p.stderr
    p = cli_in_process("eval", "--checkpoint", str(run), "--limit", "2")
    assert p.returncode == 0, p.stderr
    res = json.loads((run / "eval" / "test" / "results.json").read_text())
    assert (res["task"], res["algorithm"], res["samples"]["evaluated"]) == ("toy", "ppo", 2)


def doc_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of docs/extending.md's "A task" section, in order."""
    import re

    from conftest import REPO

    text = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    section = text[text.index("## A task") : text.index("## A reward")]
    return [textwrap.dedent(b) for b in re.findall(rf"```{language}\n(.*?)```", section, re.S)]


@pytest.mark.slow
def test_the_task_folder_of_docs_extending_trains_and_evaluates_outside_the_repo(tmp_path, monkeypatch):
    """issue 11's "done when": a folder written from docs/extending.md alone (its task.yaml, JSON Lines rows in the
    form it shows, its smoke preset), outside the repository, trains and evaluates through the CLI and through
    grue.train / grue.evaluate, with the Python block run as the page gives it."""
    import grue

    task_yaml, preset = doc_blocks("yaml")
    (row,) = doc_blocks("json")
    folder = tmp_path / "my_task"
    (folder / "data").mkdir(parents=True)
    (folder / "presets").mkdir()
    (folder / "task.yaml").write_text(task_yaml)
    (folder / "presets" / "smoke.yaml").write_text(preset)
    shape = json.loads(row)
    rows = [
        {"prompt": f"Summarise: item {i} is {w}.", "references": [f"Item {i} {w}."]}
        for i, w in enumerate("red blue green tall short wide".split())
    ]
    assert all(set(r) == set(shape) for r in rows)
    for split in ("train", "test"):
        (folder / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    p = cli_in_process(
        "train",
        "./my_task",
        "--algo",
        "ppo",
        "--preset",
        "smoke",
        "--quiet",
        "--iterations",
        "1",
        "--output-dir",
        "runs/mine",
    )
    assert p.returncode == 0 and "done: 1 iterations" in p.stdout, p.stderr
    p = cli_in_process("eval", "--checkpoint", "runs/mine", "--limit", "3")
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "runs" / "mine" / "eval" / "test" / "results.json").read_text())
    assert (res["task"], res["samples"]["evaluated"]) == ("my_task", 3) and "rouge_1" in res["metrics"]
    (python,) = doc_blocks("python")
    python = python.replace('preset="smoke"', 'preset="smoke", overrides={"ppo.iterations": 1}')
    scope: dict = {}
    exec(compile(python, "docs/extending.md", "exec"), scope)  # noqa: S102 - the page's own example
    assert scope["summary"]["iterations"] == 1 and scope["results"].task == "my_task"
    assert 0.0 <= scope["results"].metrics["rouge_1"].value <= 1.0
    assert grue.load_results([tmp_path / "runs"])["task"].tolist() == ["my_task", "my_task"]
