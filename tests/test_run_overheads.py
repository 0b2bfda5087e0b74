"""Work a run does not need (issue 27, the smoke run's time): plots/curves.png is drawn once per checkpoint, not again
at the end for the same rows; a `grue` command freezes the garbage collector at exit, so that the interpreter's
shutdown does not walk the objects torch and transformers made (about 1.2 s of a CPU per command)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

import grue.session
from grue_cli.main import app

TINY = [
    x
    for s in (
        "ppo.batch_unit=completions",
        "ppo.rollout_size=8",
        "ppo.rollout_batch_size=8",
        "ppo.minibatch_size=4",
        "ppo.epochs=1",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
    )
    for x in ("--set", s)
]


def test_the_curves_are_drawn_at_each_checkpoint_and_not_again_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setenv("GRUE_PLOTS", "1")
    drawn = []
    real = grue.session.write_curves

    def counting(run_dir):
        drawn.append(sum(1 for _ in open(run_dir / "metrics.jsonl")))  # the rows this picture shows
        return real(run_dir)

    monkeypatch.setattr(grue.session, "write_curves", counting)
    run = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "imdb",
            "--preset",
            "smoke",
            "--quiet",
            *TINY,
            "--iterations",
            "3",
            "--set",
            "run.checkpoint_every=2",
            "--output-dir",
            str(run),
        ],
    )
    assert r.exit_code == 0, r.output
    assert drawn == [2, 3]  # checkpoints 2 and 3 (the last); the end's picture would have shown the same 3 rows
    assert (run / "plots" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_end_draws_rows_that_came_after_the_last_picture(tmp_path, monkeypatch):
    monkeypatch.setenv("GRUE_PLOTS", "1")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"iteration": 1, "reward/mean": 0.5}\n')
    stamp = grue.session.curves(run)
    assert stamp == grue.session.metrics_stamp(run) and (run / "plots" / "curves.png").is_file()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 2, "reward/mean": 0.7}\n')
    assert grue.session.metrics_stamp(run) != stamp  # so Session.finish draws again
    monkeypatch.setenv("GRUE_PLOTS", "0")
    assert grue.session.curves(run) is None  # nothing drawn: no stamp to skip the end's picture with


def test_a_grue_command_freezes_the_garbage_collector_last_at_exit():
    # the probe is registered before grue_cli.main is imported, so it runs after grue's handler (last in, first out)
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "from grue_cli.main import app\n"
        "app(['tasks'])\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.splitlines()[-1] == "frozen True", (p.stdout[-500:], p.stderr[-2000:])
