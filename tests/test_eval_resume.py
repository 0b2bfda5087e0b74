"""A killed `grue eval`, run again with the same arguments, continues where it stopped and ends with the
results of an uninterrupted evaluation (IMDB decodes by sampling: the random state is carried over)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from grue.eval_progress import PARTIAL
from grue.results import load_results
from conftest import REPO, cli_env, cli_in_process


def outcome(out) -> tuple:
    res = load_results(out / "results.json")
    return res.metrics, res.skipped, res.samples, (out / "samples.jsonl").read_text(encoding="utf-8")


def test_a_killed_evaluation_continues_where_it_stopped(tmp_path, data_dir):
    args = [
        "eval",
        "--task",
        "imdb",
        "--model",
        "tiny-gpt2",
        "--limit",
        "40",
        "--batch-size",
        "2",
        "--data-dir",
        str(data_dir),
        "--quiet",
    ]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli_in_process(*args, "--output-dir", str(whole)).returncode == 0
    assert not (whole / PARTIAL).exists(), "the progress file goes once results.json is written"

    proc = subprocess.Popen(
        [sys.executable, "-m", "grue_cli.main", *args, "--output-dir", str(killed)],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial, deadline = killed / PARTIAL, time.time() + 120
    while time.time() < deadline and not (partial.exists() and len(partial.read_text().splitlines()) >= 3):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists(), "the evaluation finished before the kill: give it more to do"
    lines = partial.read_text().splitlines()
    made = sum(len(json.loads(line)["generations"]) for line in lines[1:] if line.endswith("}"))
    assert 4 <= made < 40

    p = cli_in_process(*args, "--output-dir", str(killed))
    assert p.returncode == 0, p.stderr
    assert f"continuing the stopped evaluation in {killed}: " in p.stdout
    assert outcome(killed) == outcome(whole) and not partial.exists()


def test_a_progress_file_of_another_evaluation_is_set_aside(tmp_path, data_dir):
    out = tmp_path / "e"
    out.mkdir()
    (out / PARTIAL).write_text('{"fingerprint": "not this one"}\n{"generations": ["x", "y"], "rng": {}}\n')
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
        "--quiet",
        "--output-dir",
        str(out),
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "eval.min_new_tokens=8",
    ]
    p = cli_in_process(*args)
    assert p.returncode == 0 and "continuing" not in p.stdout, p.stderr
    assert "x" not in [json.loads(line)["generation"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert (out / (PARTIAL + ".other")).read_text().startswith('{"fingerprint": "not this one"}')
