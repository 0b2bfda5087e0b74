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
    first = scope["summary"]
    for block in blocks:  # run again (issue 25): the finished run's summary, a fresh evaluation, no error
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    assert scope["summary"] == first and scope["results"].samples.evaluated == 4
    assert scope["results"].algorithm == "ppo" and scope["results"].samples.evaluated == 4
    frame = scope["frame"]
    assert (
        list(frame["algorithm"]) == ["ppo"] and frame["distinct_1"][0] == scope["results"].metrics["distinct_1"].value
    )
    assert "runs/api-demo" in capsys.readouterr().out


def test_load_results_one_row_per_file():
    examples = REPO / "leaderboard" / "examples" / "tiny-ppo-smoke"
    frame = grue.load_results(examples)
    files = sorted(examples.rglob("results.json"))
    assert list(frame["path"]) == [str(f) for f in files] and len(files) == 9
    assert list(frame.columns[:9]) == [
        "path",
        "task",
        "task_version",
        "split",
        "algorithm",
        "model",
        "seed",
        "kind",
        "evaluated",
    ]
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
    assert (
        p.returncode == 0
        and len(lines) == 3
        and lines[0].startswith("| path | task |")
        and "| imdb | 2.0 |" in lines[2]
    )
    p = cli_in_process("results", str(examples / "imdb"), str(examples / "wmt16"))
    files = grue.load_results([examples / "imdb", examples / "wmt16"])["path"].tolist()
    assert p.returncode == 0 and "3 results files" in p.stdout  # wmt16 has two seeds
    assert p.stdout.splitlines()[-3:] == [f"#{i}: {f}" for i, f in enumerate(files, 1)]
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in p.stdout.splitlines()
        if line.count("│") == 5
    }
    assert rows["task"] == ["imdb", "wmt16", "wmt16"] and rows["seed"] == [
        "0",
        "0",
        "1",
    ]  # a column per file, a row per field
    assert all(c == "–" or float(c) >= 0 for c in rows["bleu"])
    for args, message in ((["--csv", "--markdown"], "pass one of them"), ([], "no such file or directory")):
        p = cli_in_process("results", str(examples / "imdb") if args else str(tmp_path / "nope"), *args)
        assert p.returncode == 2 and message in p.stderr, p.stderr


def test_help_and_tasks_import_no_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from grue_cli.main import app; "
        "codes = [CliRunner().invoke(app, args).exit_code for args in (['--help'], ['tasks'])]; "
        "print(codes, sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[0, 0] []", out.stdout + out.stderr


def short_words(prompts, completions, references, meta):
    return [1.0 / (1 + max((len(w) for w in c.split()), default=0)) for c in completions]


def api_run(out, **options):
    return grue.train("imdb", algo="ppo", preset="smoke", reward=short_words, output_dir=str(out), **options)


def lines(path) -> list[dict]:
    import json

    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/") and k != "tokens_per_s"}
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


@pytest.mark.slow
def test_the_api_resumes_as_the_cli_does_and_speaks_python(tmp_path):
    """grue.train(resume=...) (issue 25): a second call on a used output_dir is refused with Python's words; resume=True
    continues a stopped run to the same metrics as a straight run and, once finished, returns its summary untrained."""
    straight = api_run(tmp_path / "straight", iterations=3)
    api_run(tmp_path / "run", iterations=2)
    with pytest.raises(grue_errors().GrueError) as e:
        api_run(tmp_path / "run", iterations=2)
    assert f"use resume='{tmp_path / 'run'}' or another output_dir" in str(e.value) and "--" not in str(e.value)
    resumed = api_run(tmp_path / "run", iterations=3, resume=True)
    assert resumed["iterations"] == 3 and lines(tmp_path / "run" / "metrics.jsonl") == lines(
        tmp_path / "straight" / "metrics.jsonl"
    )
    assert resumed["policy_sha256_per_rank"] == straight["policy_sha256_per_rank"]
    before = (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns
    assert api_run(tmp_path / "run", iterations=3, resume=True) == resumed  # finished: nothing trains again
    assert (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns == before
    with pytest.raises(grue_errors().GrueError, match=r"pass iterations=N with N > 3$"):
        api_run(tmp_path / "run", iterations=3, resume=str(tmp_path / "run"))
    with pytest.raises(grue_errors().GrueError, match=r"^init_from='.*nowhere': no checkpoint there.*as model\)$"):
        api_run(tmp_path / "other", init_from=str(tmp_path / "nowhere"))
    with pytest.raises(grue_errors().GrueError, match=r"^resume=True continues the run in output_dir="):
        grue.train("imdb", preset="smoke", resume=True)


def grue_errors():
    import grue.errors

    return grue.errors


def test_evaluate_speaks_python_and_the_cli_speaks_flags(tmp_path):
    """The same library error, raised through grue.evaluate and through `grue eval`."""
    from conftest import cli_in_process

    with pytest.raises(grue_errors().GrueError) as e:
        grue.evaluate(task="imdb", model="tiny-gpt2", limit=0)
    assert str(e.value) == "limit must be >= 1, got 0"
    r = cli_in_process("eval", "--task", "imdb", "--model", "tiny-gpt2", "--limit", "0")
    assert (r.returncode, r.stderr.strip()) == (2, "error: --limit must be >= 1, got 0")
    with pytest.raises(
        grue_errors().GrueError, match=r"^an evaluation needs checkpoint=RUN_DIR, or task=TASK with model=NAME_OR_PATH"
    ):
        grue.evaluate()


def test_transformers_progress_bars_stay_out_of_an_api_run(tmp_path):
    """grue.train prints no "Loading weights" / "Writing model shards" bars of transformers (issue 25), in a fresh
    interpreter where nothing else has quietened transformers' logging."""
    code = (
        "import grue; grue.train('imdb', preset='smoke', iterations=1, output_dir=%r, show=True, "
        "overrides={'ppo.rollout_size': 8, 'ppo.minibatch_size': 8, 'generation.max_new_tokens': 4, "
        "'generation.min_new_tokens': 4})" % str(tmp_path / "run")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").is_file()
    assert not [w for w in ("Loading weights", "Writing model shards", "it/s]") if w in out.stdout + out.stderr], (
        out.stderr[-2000:]
    )
