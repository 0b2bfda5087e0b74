"""SIGINT and SIGTERM: the iteration in progress ends with a checkpoint, the run says how to resume and
exits with 128 + the signal's number; a second signal acts at once; resuming continues exactly there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import reward_fixtures
from grue.algorithms import ALGORITHMS
from grue.checkpoint import latest, load_state
from grue.algorithms import resolve
from grue.interrupt import Interrupted, asked, graceful
from conftest import FAST, REPO, cli_env, run_cli


def iterations(run) -> list[int]:
    return [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_graceful_records_the_first_signal_and_lets_the_second_through():
    # Start from Python's own handler: a library an earlier test loaded in this process may have put its own in place,
    # and graceful() hands the second signal to whatever handler it found (in the full suite, one that did not raise).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with graceful():
            os.kill(os.getpid(), signal.SIGINT)
            assert asked() == signal.SIGINT  # asked, not stopped
            with pytest.raises(KeyboardInterrupt):  # the second acts at once (Python's own handler is back)
                os.kill(os.getpid(), signal.SIGINT)
        assert asked() is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


SMALL = {
    "ppo": [
        "ppo.batch_unit=completions",
        "ppo.rollout_size=8",
        "ppo.rollout_batch_size=8",
        "ppo.minibatch_size=8",
        "ppo.epochs=1",
    ],
    "grpo": ["grpo.rollout_size=8", "grpo.rollout_batch_size=8", "grpo.group_size=4", "grpo.minibatch_size=8"],
    "trpo": [
        "trpo.batch_unit=completions",
        "trpo.rollout_size=8",
        "trpo.rollout_batch_size=8",
        "trpo.minibatch_size=8",
        "trpo.cg_max_steps=2",
        "trpo.n_critic_updates=1",
    ],
}


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_a_signal_mid_iteration_ends_it_with_a_checkpoint(tmp_path, monkeypatch, algo):
    """The signal arrives inside iteration 1's reward call; checkpoint_every is far away, yet iteration 1 is saved,
    with its picture (a checkpoint redraws plots/curves.png; the run never reaches its end)."""
    monkeypatch.setattr(reward_fixtures, "_signalled", [])
    monkeypatch.setenv("GRUE_PLOTS", "1" if algo == "ppo" else "0")
    run = tmp_path / "run"
    sets = SMALL[algo] + [
        "run.reward=reward_fixtures:signals_once",
        "run.checkpoint_every=1000",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
    ]
    cfg = resolve("imdb", algo, preset="smoke", flags={"run.output_dir": str(run), "algo.iterations": 5}, sets=sets)
    with graceful(), pytest.raises(Interrupted) as e:
        ALGORITHMS[algo].train(cfg, show=False)
    assert e.value.exit_code == 130 and str(e.value) == (
        f"stopped by SIGINT after iteration 1, checkpoint saved; continue with: grue train imdb --resume {run}"
    )
    assert iterations(run) == [1] and load_state(latest(run))["iteration"] == 1
    assert not (run / "summary.json").exists()
    assert (run / "plots" / "curves.png").is_file() == (algo == "ppo")


def test_supervised_stops_at_the_end_of_its_epoch(tmp_path, monkeypatch, data_dir):
    monkeypatch.setattr(reward_fixtures, "_signalled", [])
    run = tmp_path / "sft"
    cfg = resolve(
        "imdb",
        "supervised",
        preset="smoke",
        flags={"run.output_dir": str(run), "algo.epochs": 3, "run.data_dir": str(data_dir)},
        sets=[
            "run.reward=reward_fixtures:signals_once",
            "supervised.train_limit=32",
            "supervised.eval_limit=8",
            "run.checkpoint_every=1000",
        ],
    )
    with graceful(), pytest.raises(Interrupted, match="after epoch 1, checkpoint saved"):
        ALGORITHMS["supervised"].train(cfg, show=False)
    assert iterations(run) == [1] and load_state(latest(run))["epoch"] == 1


def test_sigterm_to_the_command_saves_says_how_to_resume_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "grue_cli.main",
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--quiet",
        "--iterations",
        "30",
        "--output-dir",
        str(run),
        "--set",
        "run.checkpoint_every=1000",
        *FAST,
    ]
    proc = subprocess.Popen(args, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    done = load_state(latest(run))["iteration"]
    assert 1 <= done < 30 and iterations(run) == list(range(1, done + 1)) and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"stopped by SIGTERM after iteration {done}, checkpoint saved; continue with: grue train imdb --resume {run}"
    )
    p = run_cli("train", "imdb", "--resume", str(run), "--iterations", str(done + 1), "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    assert iterations(run) == list(range(1, done + 2))


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}


@pytest.mark.slow
def test_ten_kills_at_seeded_random_moments_lose_nothing(tmp_path):
    """SIGKILL at 10 seeded random moments of one run (rollout, update or checkpoint write: a checkpoint every
    iteration), each followed by --resume: every kill leaves a readable, intact checkpoint (or none yet), and the
    finished run's metrics equal an uninterrupted run's."""
    import random

    # Enough iterations that ten kills land before the run ends: each kill lets the run go on up to 0.6 s after a
    # new metrics line, several iterations of this workload on a fast CPU (20 were not enough on an AVX-512 EPYC).
    total = 50
    common = [
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--quiet",
        "--iterations",
        str(total),
        "--set",
        "run.checkpoint_every=1",
        *FAST,
    ]
    straight, run = tmp_path / "straight", tmp_path / "killed"
    assert run_cli(*common, "--output-dir", str(straight)).returncode == 0
    rng = random.Random(14)
    kills = 0
    for k in range(10):
        # the first start, then always the resume command (a run killed before its first checkpoint starts over)
        args = common + ["--output-dir", str(run)] if k == 0 else ["train", "imdb", "--resume", str(run), "--quiet"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "grue_cli.main", *args],
            env=cli_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        start = len(iterations(run)) if (run / "metrics.jsonl").exists() else 0
        deadline = time.time() + 120  # once training has started (a new metrics line), wait a random moment
        while (
            time.time() < deadline
            and proc.poll() is None
            and (len(iterations(run)) if (run / "metrics.jsonl").exists() else 0) <= start
        ):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if (run / "checkpoint").exists() or (run / "checkpoint.old").exists():
            load_state(latest(run))  # never unreadable, never damaged
    assert kills >= 8, "the run finished before most kills landed: the moments are too late"
    if load_state(latest(run))["iteration"] < total:
        p = run_cli("train", "imdb", "--resume", str(run), "--quiet")
        assert p.returncode == 0, p.stderr[-2000:]
    a = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [comparable(r) for r in b] == [comparable(r) for r in a]
