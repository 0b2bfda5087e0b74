"""`grue train --dry-run` refuses what the run would refuse before its first iteration, without model weights:
the reward's import, the metrics' import, the data files, the tracker's package, the run directory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import cli_env, cli_in_process
from grue.errors import GrueError
from grue.metrics import Metric
from grue.preflight import check_metrics


def dry(*args, data_dir=None):
    r = cli_in_process("train", "imdb", "--dry-run", *args, data_dir=data_dir)
    assert "Traceback" not in r.stderr
    return r


def refused(r, message):
    assert r.returncode == 2, (r.stdout[-500:], r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_a_reward_that_does_not_import_is_refused():
    refused(dry("--set", "run.reward=mypkg.mod:fn"), "cannot import reward 'mypkg.mod:fn': ModuleNotFoundError")
    refused(dry("--set", "run.reward=reward_fixtures:nope"), "cannot import reward 'reward_fixtures:nope'")
    refused(
        dry("--set", "run.reward=lexicon", "--set", "run.reward_args={temperature: 2}"),
        "takes no argument 'temperature'",
    )
    assert (
        dry("--set", "run.reward=reward_fixtures:wrong_length").returncode == 0
    )  # it imports; what it returns shows at run time


def test_a_metric_group_that_does_not_import_is_one_line():
    check_metrics(["sentiment", "perplexity", "diversity"])  # imdb's
    table = {"broken": Metric(function="no_such_grue_metrics_module:score", names={"x": True})}
    with pytest.raises(
        GrueError,
        match=r"^metric group 'broken' cannot be imported: ModuleNotFoundError: .*no_such_grue_metrics_module",
    ):
        check_metrics(["broken"], table)


def test_data_files_missing_or_malformed_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "imdb").mkdir(parents=True)
    refused(dry("--preset", "smoke", "--data-dir", str(data)), f"no data file {data / 'imdb' / 'train.jsonl'}")
    (data / "imdb" / "train.jsonl").write_text('{"text": "a fine film", "label": 1}\nnot json\n')
    refused(dry("--preset", "smoke", "--data-dir", str(data)), f"{data / 'imdb' / 'train.jsonl'}:2: not valid JSON")
    (data / "imdb" / "train.jsonl").write_text('{"text": "a fine film", "label": 1}\n[1, 2]\n')
    refused(dry("--preset", "smoke", "--data-dir", str(data)), "train.jsonl:2: expected one JSON object per line")


def test_good_data_passes(data_dir):
    r = dry("--preset", "smoke", data_dir=str(data_dir))
    assert r.returncode == 0 and "task: imdb" in r.stdout, r.stderr


def test_a_tracker_that_is_not_installed_is_refused(tmp_path):
    # A `tensorboard` that cannot be imported, ahead of the real one on the path: as if it were not installed.
    fake = tmp_path / "fake"
    (fake / "tensorboard").mkdir(parents=True)
    (fake / "tensorboard" / "__init__.py").write_text("raise ImportError('tensorboard is broken here')\n")
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(fake), env["PYTHONPATH"]])
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "grue_cli.main",
            "train",
            "imdb",
            "--preset",
            "smoke",
            "--report-to",
            "tensorboard",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 2 and p.stderr.strip() == (
        "error: --report-to tensorboard needs the tensorboard package, which is not "
        "installed: pip install tensorboard (or pip install 'grue[trackers]')"
    ), p.stderr


def test_an_unusable_run_directory_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused(
        dry("--preset", "smoke", "--output-dir", str(afile)),
        f"cannot make the run directory {afile}: {afile} is a file",
    )
    refused(dry("--preset", "smoke", "--output-dir", str(afile / "run")), f"{afile} is a file, not a folder")
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    refused(
        dry("--preset", "smoke", "--output-dir", str(used)), f"run directory {used} already exists and is not empty"
    )
    fresh = tmp_path / "new" / "run"
    assert dry("--preset", "smoke", "--output-dir", str(fresh)).returncode == 0 and not (tmp_path / "new").exists()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): no folder is unwritable")
        refused(dry("--preset", "smoke", "--output-dir", str(locked / "run")), f"{locked} is not writable")
    finally:
        locked.chmod(0o700)
