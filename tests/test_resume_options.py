"""`grue train ... --resume RUN`: the original command's options are accepted when they agree with the run's saved
config, only conflicting ones are refused (named); a run stopped by a broken reward resumes from its last checkpoint.
The CLI runs in this process (typer's runner), so torch is imported once."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from grue.checkpoint import latest, load_state
from grue.algorithms import resolve
from grue_cli.main import app

SMALL = [
    x
    for s in (
        "ppo.batch_unit=completions",
        "ppo.rollout_size=8",
        "ppo.rollout_batch_size=8",
        "ppo.minibatch_size=8",
        "ppo.epochs=1",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
        "run.reward=reward_fixtures:breaks_when_told",
    )
    for x in ("--set", s)
]


def grue(*args: str):
    return CliRunner().invoke(app, list(args))


def iterations(run) -> list[int]:
    return [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_original_command_resumes_and_a_broken_reward_leaves_the_checkpoint_resumable(tmp_path, monkeypatch):
    run, flag = tmp_path / "run", tmp_path / "break"
    monkeypatch.setenv("GRUE_TEST_BREAK_REWARD", str(flag))
    original = ["train", "imdb", "--algo", "ppo", "--preset", "smoke", "--quiet", *SMALL, "--output-dir", str(run)]
    r = grue(*original, "--iterations", "1")
    assert r.exit_code == 0, r.output
    flag.touch()  # the reward now raises: the run stops at iteration 2, naming the reward and the batch
    r = grue(*original, "--resume", str(run), "--iterations", "2")
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "error: reward function 'reward_fixtures:breaks_when_told' raised RuntimeError: told to break on the rollout "
        "of iteration 2"
    ], r.output
    assert load_state(latest(run))["iteration"] == 1 and iterations(run) == [1]
    flag.unlink()
    r = grue(*original, "--resume", str(run), "--iterations", "2")
    assert r.exit_code == 0, r.output
    assert iterations(run) == [1, 2] and load_state(latest(run))["iteration"] == 2


@pytest.fixture
def saved_run(tmp_path):
    """A run directory's config.yaml as `grue train imdb --preset smoke --seed 0` writes it (no training needed:
    the options are checked before anything runs)."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = resolve("imdb", "ppo", preset="smoke", flags={"run.seed": 0, "run.output_dir": str(run)})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    return run


@pytest.mark.parametrize(
    "args,named",
    [
        (["--seed", "3"], "run.seed=3 (saved: 0)"),
        (["--preset", "smoke", "--set", "ppo.lr=0.5", "--set", "ppo.gamma=0.5"], "ppo.lr=0.5 (saved: "),
        (["--model", "tiny-t5"], "run.model='tiny-t5' (saved: 'tiny-gpt2')"),
        (["--algo", "nlpo"], "--algo nlpo conflicts with the run's saved algorithm 'ppo'"),
        (["--output-dir", "elsewhere"], "--output-dir elsewhere is another directory"),
    ],
)
def test_only_conflicting_options_are_refused_and_named(saved_run, args, named):
    r = grue("train", "imdb", "--resume", str(saved_run), *args)
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: --resume {saved_run}: ") and named in line, line
    if "--preset" in args:  # the preset agrees: only the two --set keys conflict
        assert line.count("(saved: ") == 2 and "ppo.gamma=0.5 (saved: " in line, line
