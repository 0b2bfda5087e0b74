"""`grue benchmark run` on a real one-node SLURM (slurmctld + slurmd started by the test, jobs through submitit) and on
a local Ray cluster started by the test: two tasks, Supervised+PPO in two stages, each second stage after its first.
Each test skips, with the reason, where its engine cannot start (tests/clusters.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from clusters import ray_cluster, slurm_cluster
from conftest import run_cli
from test_benchmark import small  # noqa: F401  (the module fixture: 16 rows per split)

TASKS = "wmt16,narrativeqa"
CELLS = ["wmt16-s0-supervised", "wmt16-s0-ppo", "narrativeqa-s0-supervised", "narrativeqa-s0-ppo"]


def check_two_stages(root: Path, name: str) -> None:
    """Every cell done, each PPO run started after its supervised run, and the folder validates."""
    cells = root / "work" / name / "cells"
    for cell in CELLS:
        assert (cells / cell / "done.json").is_file(), (cells / cell / "log.txt").read_text()[-2000:]
    for task in ("wmt16", "narrativeqa"):
        first = (cells / f"{task}-s0-supervised" / "done.json").stat().st_mtime
        assert first <= (cells / f"{task}-s0-ppo" / "run" / "config.yaml").stat().st_mtime
        results = json.loads((root / "sub" / name / task / "seed0" / "results.json").read_text())
        assert results["algorithm"] == "supervised+ppo"
    meta = yaml.safe_load((root / "sub" / name / "submission.yaml").read_text())
    assert meta["benchmark"]["command"].endswith("--init-from-algo supervised --preset smoke --set ppo.iterations=3")
    ok = run_cli("leaderboard", "validate", str(root / "sub" / name))
    assert ok.returncode == 0, ok.stderr


@pytest.mark.slow
def test_slurm_launcher_runs_two_stages_as_dependent_jobs(small, tmp_path):  # noqa: F811
    with slurm_cluster(tmp_path / "cluster") as cluster:
        t0 = time.time()
        done = run_cli(
            "benchmark",
            "run",
            "--algo",
            "ppo",
            "--init-from-algo",
            "supervised",
            "--name",
            "slurm-sup-ppo",
            "--preset",
            "smoke",
            "--set",
            "ppo.iterations=3",
            "--tasks",
            TASKS,
            "--seeds",
            "1",
            "--data-dir",
            str(small),
            "--launcher",
            "slurm",
            "--slurm-partition",
            cluster.partition,
            "--slurm-cpus-per-job",
            "1",
            "--slurm-time",
            "20",
            "--out",
            str(tmp_path / "sub" / "slurm-sup-ppo"),
            "--work-dir",
            str(tmp_path / "work" / "slurm-sup-ppo"),
            "--who",
            "grue tests",
            timeout=900,
        )
        seconds = time.time() - t0
        # a first stage that fails (its model cannot be loaded): its second stage's job is cancelled, the command says so
        failing = run_cli(
            "benchmark",
            "run",
            "--algo",
            "ppo",
            "--init-from-algo",
            "supervised",
            "--name",
            "nodata",
            "--preset",
            "smoke",
            "--tasks",
            "narrativeqa",
            "--seeds",
            "1",
            "--data-dir",
            str(small),
            "--model",
            str(tmp_path / "no-such-model"),
            "--launcher",
            "slurm",
            "--slurm-partition",
            cluster.partition,
            "--slurm-cpus-per-job",
            "1",
            "--out",
            str(tmp_path / "sub" / "nodata"),
            "--work-dir",
            str(tmp_path / "work" / "nodata"),
            timeout=600,
        )
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "narrativeqa-s0-supervised: failed" in failing.stdout and "narrativeqa-s0-ppo: SLURM job" in failing.stdout
    assert "2 cell(s) not done" in failing.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("SLURM job") == 4
    check_two_stages(tmp_path, "slurm-sup-ppo")
    print(f"slurm: 4 cells in {seconds:.0f} s")


@pytest.mark.slow
def test_ray_launcher_runs_two_stages_as_dependent_tasks(small, tmp_path, capsys):  # noqa: F811
    from grue.benchmark.launch import Launch
    from grue.benchmark.plan import Options
    from grue.benchmark.run import run_benchmark

    options = Options(
        algo="ppo",
        name="ray-sup-ppo",
        tasks=TASKS.split(","),
        seeds=1,
        preset="smoke",
        sets=["ppo.iterations=3"],
        init_from_algo="supervised",
        data_dir=str(small),
    )
    with ray_cluster(num_cpus=2):
        t0 = time.time()
        code = run_benchmark(
            options,
            Launch(launcher="ray", jobs=2),
            tmp_path / "sub" / "ray-sup-ppo",
            tmp_path / "work" / "ray-sup-ppo",
            submitter="grue tests",
        )
        seconds = time.time() - t0
        failing = Options(
            algo="ppo",
            name="nodata",
            tasks=["narrativeqa"],
            seeds=1,
            preset="smoke",
            data_dir=str(small),
            init_from_algo="supervised",
            model=str(tmp_path / "no-such-model"),
        )
        failed = run_benchmark(
            failing, Launch(launcher="ray", jobs=2), tmp_path / "sub" / "nodata", tmp_path / "work" / "nodata"
        )
    out = capsys.readouterr().out
    assert failed == 1 and "narrativeqa-s0-supervised: failed" in out and "narrativeqa-s0-ppo: not run" in out, out[
        -3000:
    ]
    assert code == 0, out[-3000:]
    check_two_stages(tmp_path, "ray-sup-ppo")
    print(f"ray: 4 cells in {seconds:.0f} s")


def test_a_missing_engine_names_its_extra(tmp_path, monkeypatch):
    """Without submitit (or ray) importable, one line names the extra to install."""
    import importlib.util

    from grue.benchmark.launch import require
    from grue.errors import GrueError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("submitit", "ray") else real(name, *a)
    )
    with pytest.raises(GrueError, match=r"--launcher slurm needs submitit: pip install 'grue\[slurm\]'"):
        require("slurm")
    with pytest.raises(GrueError, match=r"--launcher ray needs ray: pip install 'grue\[ray\]'"):
        require("ray")
