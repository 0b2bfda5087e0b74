"""The Python API (issue 11): the README's examples run as they are; grue.load_results reads results files."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import grue
from conftest import REPO
from grue.results import load_results


def readme_examples() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = readme_examples()
    assert len(blocks) == 2
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the README's own examples
    assert scope["summary"]["iterations"] == 1 and (tmp_path / "runs" / "api-demo" / "config.yaml").is_file()
    assert scope["results"].algorithm == "ppo" and scope["results"].samples.evaluated == 4
    frame = scope["frame"]
    assert list(frame["algorithm"]) == ["ppo"] and frame["distinct_1"][0] == scope["results"].metrics["distinct_1"].value
    assert "runs/api-demo" in capsys.readouterr().out


def test_load_results_one_row_per_file():
    examples = REPO / "leaderboard" / "examples" / "tiny-ppo-smoke"
    frame = grue.load_results(examples)
    files = sorted(examples.rglob("results.json"))
    assert list(frame["path"]) == [str(f) for f in files] and len(files) == 9
    assert list(frame.columns[:9]) == ["path", "task", "task_version", "split", "algorithm", "model", "seed", "kind", "evaluated"]
    first = load_results(files[0])
    row = frame.iloc[0]
    assert all(row[k] == m.value for k, m in first.metrics.items())
    assert frame.loc[frame["task"] != first.task, list(first.metrics)].isna().any(axis=None)  # other tasks lack them


def test_import_grue_stays_light():
    code = "import sys, grue; print(sorted(m for m in ('torch', 'pandas', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_grue_results_prints_the_frame(tmp_path):
    from conftest import cli_in_process

    examples = REPO / "leaderboard" / "examples" / "tiny-ppo-smoke"
    frame = grue.load_results([examples / "wmt16", examples / "imdb"])
    p = cli_in_process("results", str(examples / "wmt16"), str(examples / "imdb"), "--csv")
    assert p.returncode == 0 and p.stdout == frame.to_csv(index=False)
    p = cli_in_process("results", str(examples / "imdb"), "--markdown")
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and len(lines) == 3 and lines[0].startswith("| path | task |") and "| imdb | 2.0 |" in lines[2]
    p = cli_in_process("results", str(examples / "imdb"), str(examples / "wmt16"))
    files = grue.load_results([examples / "imdb", examples / "wmt16"])["path"].tolist()
    assert p.returncode == 0 and "3 results files" in p.stdout  # wmt16 has two seeds
    assert p.stdout.splitlines()[-3:] == [f"#{i}: {f}" for i, f in enumerate(files, 1)]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in p.stdout.splitlines() if line.count("│") == 5}
    assert rows["task"] == ["imdb", "wmt16", "wmt16"] and rows["seed"] == ["0", "0", "1"]  # a column per file, a row per field
    assert all(c == "–" or float(c) >= 0 for c in rows["bleu"])
    for args, message in ((["--csv", "--markdown"], "pass one of them"), ([], "no such file or directory")):
        p = cli_in_process("results", str(examples / "imdb") if args else str(tmp_path / "nope"), *args)
        assert p.returncode == 2 and message in p.stderr, p.stderr


def test_help_and_tasks_import_no_torch():
    code = ("import sys; from typer.testing import CliRunner; from grue_cli.main import app; "
            "codes = [CliRunner().invoke(app, args).exit_code for args in (['--help'], ['tasks'])]; "
            "print(codes, sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[0, 0] []", out.stdout + out.stderr
