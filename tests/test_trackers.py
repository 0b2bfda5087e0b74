"""`--report-to tensorboard|wandb` (grue.trackers), read back offline, and `grue plot` (grue.plots)."""

from __future__ import annotations

import json
import sys
import time

import pytest
from typer.testing import CliRunner

from grue import trackers
from grue_cli.main import app

PNG = b"\x89PNG\r\n\x1a\n"
TINY = [
    x
    for s in (
        "ppo.batch_unit=completions",
        "ppo.rollout_size=8",
        "ppo.rollout_batch_size=8",
        "ppo.minibatch_size=8",
        "ppo.epochs=1",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
        "run.reward=reward_fixtures:letter_e",
    )
    for x in ("--set", s)
]


def grue(*args: str):
    return CliRunner().invoke(app, list(args))


def test_tensorboard_gets_the_metrics_jsonl_names_and_the_samples(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'grue[trackers]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    r = grue(
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--quiet",
        *TINY,
        "--iterations",
        "2",
        "--report-to",
        "tensorboard",
        "--output-dir",
        str(run),
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {k for k in rows[0] if k != "iteration"} <= scalars, set(rows[0]) - scalars
    for key in ("reward/mean", "kl/mean", "warnings/clipfrac_high"):
        assert [(e.step, pytest.approx(e.value)) for e in events.Scalars(key)] == [
            (m["iteration"], m[key]) for m in rows
        ], key
    samples = events.Tensors("samples/text_summary")  # the markdown table of the iteration's generations
    assert [e.step for e in samples] == [1, 2]
    first = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert first["completion"].replace("|", "\\|").replace("\n", " ") in samples[0].tensor_proto.string_val[0].decode()


def test_wandb_offline_run_holds_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'grue[trackers]')")
    from accelerate import PartialState

    PartialState()  # accelerate's trackers log on the main process, which this is
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = trackers.open_tracker(
        "wandb", tmp_path / "run", {"run": {"task": "imdb", "reward_args": {}}, "ppo": {"lr": 0.1}}
    )
    trackers.log(
        tracker,
        {"iteration": 1, "reward/mean": 0.25, "warnings/negative_kl": 0},
        [{"iteration": 1, "prompt": "p", "completion": "c", "score": 0.25}],
    )
    trackers.close(tracker)
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    (log,) = folder.glob("run-*.wandb")
    for _ in range(60):  # wandb's own service process writes the file; on a loaded machine it may lag finish()
        data = log.read_bytes()
        if b"samples" in data:
            break
        time.sleep(0.5)
    assert b"reward/mean" in data and b"warnings/negative_kl" in data and b"samples" in data


def test_a_tracker_that_is_not_installed_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: `import wandb` raises ImportError
    r = grue("train", "imdb", "--preset", "smoke", "--report-to", "wandb", "--output-dir", str(tmp_path / "run"))
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "error: --report-to wandb needs the wandb package, which is not installed: "
        "pip install wandb (or pip install 'grue[trackers]')"
    ]
    assert not (tmp_path / "run").exists()
    r = grue("train", "imdb", "--preset", "smoke", "--report-to", "mlflow")
    assert r.exit_code == 2 and "run.report_to: 'mlflow' is not one of: none, tensorboard, wandb" in r.stderr


def metrics_file(run, rewards: list[float]) -> None:
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "iteration": i + 1,
                    "reward/mean": r,
                    "kl/mean": 0.01 * i,
                    "kl/coef": 0.1,
                    "policy/entropy": 3.0 - 0.1 * i,
                    "policy/clipfrac": 0.1,
                    "response/length": 16.0,
                }
            )
            + "\n"
            for i, r in enumerate(rewards)
        )
    )


def test_grue_plot_overlays_runs_in_one_png(tmp_path):
    from matplotlib.image import imread

    metrics_file(tmp_path / "ppo", [0.1, 0.2, 0.4])
    metrics_file(tmp_path / "nlpo", [0.1, 0.3, 0.5, 0.6])
    out = tmp_path / "pics" / "both.png"
    r = grue("plot", str(tmp_path / "ppo"), str(tmp_path / "nlpo"), "--out", str(out))
    assert r.exit_code == 0 and r.stdout.strip() == f"wrote {out}", r.output
    assert out.read_bytes()[:8] == PNG and imread(out).shape[:2] == (700, 1300)
    assert not list(out.parent.glob(".*"))  # written atomically: no temporary file left


@pytest.mark.parametrize(
    "make,says",
    [
        (lambda p: None, "is not a directory"),
        (lambda p: p.mkdir(), "is not a run directory (no metrics.jsonl)"),
        (lambda p: (p.mkdir(), (p / "metrics.jsonl").write_text("")), "holds no iteration yet"),
    ],
)
def test_grue_plot_of_a_bad_run_directory_is_one_line(tmp_path, make, says):
    bad = tmp_path / "bad"
    make(bad)
    r = grue("plot", str(bad), "--out", str(tmp_path / "x.png"))
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line, line
    assert not (tmp_path / "x.png").exists()
