"""`grue benchmark run` end to end on the local launcher: the whole protocol, a rerun that retrains nothing, a
changed setting refused by name, a benchmark killed mid-way (parent and one cell, SIGKILL) that finishes with the
results of an uninterrupted one, and Supervised+PPO in two stages.

The cells train tiny models with the smoke presets (3 iterations) on the first 16 rows of each split of the real GRUE
samples (written to a temporary data folder, so that each evaluation covers its whole split, as the leaderboard asks).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, cli_env, run_cli

ROWS = 16
SETS = ["ppo.iterations=3", "run.checkpoint_every=1"]  # every smoke preset but imdb's already runs 3; a checkpoint each


def small_data(src: Path, dst: Path) -> Path:
    """The first ROWS rows of every split of the GRUE samples, in ``dst`` (the whole split of a cell's evaluation)."""
    for task in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / task.name).mkdir(parents=True, exist_ok=True)
        for split in task.glob("*.jsonl"):
            with open(split, encoding="utf-8") as f:
                rows = [line for _, line in zip(range(ROWS), f)]
            (dst / task.name / split.name).write_text("".join(rows), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    from conftest import DATA_DIR

    if not DATA_DIR or not Path(DATA_DIR).is_dir():
        pytest.skip("GRUE_DATA_DIR is not set to a directory with the GRUE data samples (../shared/data)")
    return small_data(Path(DATA_DIR), tmp_path_factory.mktemp("data"))


def bench(
    root: Path, name: str, tasks: str, data: Path, *extra: str, seeds: int = 2, jobs: int = 2, timeout: int = 900
) -> subprocess.CompletedProcess:
    args = [
        "benchmark",
        "run",
        "--algo",
        "ppo",
        "--name",
        name,
        "--preset",
        "smoke",
        "--tasks",
        tasks,
        "--seeds",
        str(seeds),
        "--data-dir",
        str(data),
        "--jobs",
        str(jobs),
        "--out",
        str(root / "submissions" / name),
        "--work-dir",
        str(root / "work" / name),
        "--who",
        "grue tests",
        *extra,
    ]
    if "--set" not in extra:
        args += [item for s in SETS for item in ("--set", s)]
    return run_cli(*args, timeout=timeout)


def metrics_of(folder: Path) -> dict:
    """(task, seed) -> the metrics of every results.json of a submission folder."""
    out = {}
    for path in sorted(folder.glob("*/seed*/results.json")):
        data = json.loads(path.read_text())
        out[(data["task"], data["seed"])] = data["metrics"]
    return out


@pytest.fixture(scope="module")
def protocol(small, tmp_path_factory):
    """All 7 tasks x 2 seeds on the local launcher, 2 cells at once: (root, completed process, wall seconds)."""
    root = tmp_path_factory.mktemp("bench")
    t0 = time.time()
    done = bench(root, "tiny-ppo", "all", small)
    return root, done, time.time() - t0


@pytest.mark.slow
def test_the_whole_protocol_validates_and_scores(protocol):
    root, done, seconds = protocol
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sub = root / "submissions" / "tiny-ppo"
    assert len(list(sub.glob("*/seed*/results.json"))) == 14
    meta = yaml.safe_load((sub / "submission.yaml").read_text())
    b = meta["benchmark"]
    assert meta["algorithm"] == "ppo" and b["seeds"] == [0, 1] and len(b["cells"]) == 14
    assert b["command"].startswith("grue benchmark run --algo ppo --name tiny-ppo --seeds 2 --preset smoke")
    assert set(b["settings"]) == {"imdb", "commongen", "cnn_dailymail", "totto", "wmt16", "dailydialog", "narrativeqa"}
    assert b["device_hours"] > 0 and all(c["wall_seconds"] > 0 for c in b["cells"])
    totto = json.loads((sub / "totto" / "seed0" / "results.json").read_text())
    assert totto["split"] == "validation"  # its test references are hidden: the benchmark split
    ok = run_cli("leaderboard", "validate", str(sub))
    assert ok.returncode == 0, ok.stderr
    site = root / "site"
    built = run_cli("leaderboard", "build", "--submissions", str(root / "submissions"), "--out", str(site))
    assert built.returncode == 0, built.stderr
    with open(site / "leaderboard.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["entry"] == "tiny-ppo"]
    overall = [r for r in rows if r["section"] == "overall"]
    assert overall and overall[0]["mean"] not in ("", "nan"), overall
    page = (site / "submissions" / "tiny-ppo.html").read_text()
    assert "grue benchmark run --algo ppo --name tiny-ppo --seeds 2 --preset smoke" in page
    assert b["settings"]["imdb"] in page
    print(f"7 tasks x 2 seeds, --jobs 2: {seconds:.0f} s")


@pytest.mark.slow
def test_a_finished_benchmark_retrains_nothing_and_refuses_other_settings(protocol, small):
    root, done, _ = protocol
    assert done.returncode == 0
    sub = root / "submissions" / "tiny-ppo"
    before = {p: p.stat().st_mtime_ns for p in sub.glob("*/seed*/results.json")}
    again = bench(root, "tiny-ppo", "all", small)
    assert again.returncode == 0, again.stderr
    assert "14 cells, 14 already done" in again.stdout and "nothing was retrained" in again.stdout
    assert "started" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in sub.glob("*/seed*/results.json")} == before
    changed = bench(root, "tiny-ppo", "all", small, "--set", "ppo.iterations=4")
    assert changed.returncode == 2
    assert (
        changed.stderr.startswith("error: 14 cell(s) would not be reused")
        and "ppo.iterations: 3 -> 4" in changed.stderr
    )
    assert "Traceback" not in changed.stderr and len(changed.stderr.strip().splitlines()) == 1
    # A results file that this benchmark did not write is never taken as one of its cells.
    status = run_cli("benchmark", "status", str(root / "work" / "tiny-ppo"))
    assert status.returncode == 0 and "14 done" in status.stdout


def children(pid: int, needle: str) -> list[int]:
    """The processes whose parent is ``pid`` and whose command line holds ``needle``."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and needle in cmd:
            out.append(int(proc.name))
    return out


@pytest.mark.slow
def test_a_killed_benchmark_finishes_with_the_uninterrupted_results(protocol, small):
    root, done, _ = protocol
    assert done.returncode == 0
    name, tasks = "killed", "wmt16,narrativeqa"
    args = [
        "benchmark",
        "run",
        "--algo",
        "ppo",
        "--name",
        name,
        "--preset",
        "smoke",
        "--tasks",
        tasks,
        "--seeds",
        "2",
        "--data-dir",
        str(small),
        "--jobs",
        "2",
        "--out",
        str(root / "submissions" / name),
        "--work-dir",
        str(root / "work" / name),
        "--who",
        "grue tests",
        "--set",
        SETS[0],
        "--set",
        SETS[1],
    ]
    parent = subprocess.Popen(
        [sys.executable, "-m", "grue_cli.main", *args],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    work = root / "work" / name
    deadline = time.time() + 300
    found = []
    while not found and time.time() < deadline:
        found = list(work.glob("cells/*/run/checkpoint/trainer/state.json"))  # a cell's first checkpoint (of 3)
        time.sleep(0.05)
    assert found, "no cell wrote a checkpoint"
    cell_id = found[0].parts[-5]  # cells/<id>/run/checkpoint/trainer/state.json
    cells = children(parent.pid, cell_id)
    assert cells, f"cell {cell_id} was not running"
    os.kill(cells[0], signal.SIGKILL)  # that cell, mid-training
    parent.kill()  # and the benchmark itself: its other cells get SIGTERM (they stop at a checkpoint)
    parent.wait(timeout=60)
    assert not (work / "cells" / "narrativeqa-s1-ppo" / "done.json").exists(), "the benchmark ended before the kill"
    again = run_cli(*args, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (work / "cells" / cell_id / "log.txt").read_text()
    assert "continuing" in log and "from its last checkpoint" in log, log[-2000:]  # its training was resumed
    resumed, straight = metrics_of(root / "submissions" / name), metrics_of(root / "submissions" / "tiny-ppo")
    assert len(resumed) == 4
    for key, metrics in resumed.items():
        assert metrics == straight[key], key
    assert run_cli("leaderboard", "validate", str(root / "submissions" / name)).returncode == 0


@pytest.mark.slow
def test_supervised_then_ppo_runs_in_order_and_validates(small, tmp_path):
    done = bench(tmp_path, "sup-ppo", "wmt16", small, "--init-from-algo", "supervised", seeds=1, jobs=2)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = tmp_path / "work" / "sup-ppo" / "cells"
    # the second stage's run began (its config.yaml) after the first stage was done
    assert (work / "wmt16-s0-supervised" / "done.json").stat().st_mtime <= (
        work / "wmt16-s0-ppo" / "run" / "config.yaml"
    ).stat().st_mtime
    config = yaml.safe_load((work / "wmt16-s0-ppo" / "run" / "config.yaml").read_text())
    assert config["run"]["init_algo"] == "supervised" and config["run"]["init_from"] == str(
        work / "wmt16-s0-supervised" / "run"
    )
    results = json.loads((tmp_path / "submissions" / "sup-ppo" / "wmt16" / "seed0" / "results.json").read_text())
    assert results["algorithm"] == "supervised+ppo"
    meta = yaml.safe_load((tmp_path / "submissions" / "sup-ppo" / "submission.yaml").read_text())
    assert [c["stage"] for c in meta["benchmark"]["cells"]] == ["supervised", "ppo"]
    assert run_cli("leaderboard", "validate", str(tmp_path / "submissions" / "sup-ppo")).returncode == 0
    # A changed first stage changes the second stage's starting point: both are refused, then made again on request.
    other = ["--init-from-algo", "supervised", "--set", "supervised.lr=0.002", *(i for s in SETS for i in ("--set", s))]
    refused = bench(tmp_path, "sup-ppo", "wmt16", small, *other, seeds=1, jobs=2)
    assert (
        refused.returncode == 2
        and "2 cell(s) would not be reused: wmt16-s0-supervised: made with other settings "
        "(supervised.lr: 0.001 -> 0.002)"
        in refused.stderr
    ), refused.stderr
    forced = bench(tmp_path, "sup-ppo", "wmt16", small, *other, "--force-rerun", seeds=1, jobs=2)
    assert forced.returncode == 0 and "2 cells, 0 already done" in forced.stdout, forced.stdout + forced.stderr
    config = yaml.safe_load((work / "wmt16-s0-supervised" / "run" / "config.yaml").read_text())
    assert config["supervised"]["lr"] == 0.002
    assert run_cli("leaderboard", "validate", str(tmp_path / "submissions" / "sup-ppo")).returncode == 0


def test_a_failed_cell_does_not_stop_the_others_and_is_made_on_the_next_run(small, tmp_path):
    """The fast variant: two tasks, one seed. wmt16's test split is missing at first (its smoke preset trains on
    validation): its cell trains, then fails to evaluate; narrativeqa's is done; the command exits 1 naming the failed
    cell and status shows why. With the split there, the next run evaluates wmt16's finished training, nothing more."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small, data)
    held = tmp_path / "wmt16-test.jsonl"
    (data / "wmt16" / "test.jsonl").rename(held)
    first = bench(tmp_path, "fast", "wmt16,narrativeqa", data, seeds=1)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "1 cell(s) not done" in first.stdout and "wmt16-s0-ppo" in first.stdout.splitlines()[-1]
    status = run_cli("benchmark", "status", str(tmp_path / "work" / "fast"))
    assert status.returncode == 0 and "1 done, 1 failed" in status.stdout
    assert "wmt16" in status.stdout and "error:" in status.stdout  # the failed cell's last line
    held.rename(data / "wmt16" / "test.jsonl")
    second = bench(tmp_path, "fast", "wmt16,narrativeqa", data, seeds=1)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 cells, 1 already done" in second.stdout and "wmt16-s0-ppo: started" in second.stdout
    assert "narrativeqa-s0-ppo: started" not in second.stdout
    assert (
        "finished its training before"
        in (tmp_path / "work" / "fast" / "cells" / "wmt16-s0-ppo" / "log.txt").read_text()
    )
    ok = run_cli("leaderboard", "validate", str(tmp_path / "submissions" / "fast"))
    assert ok.returncode == 0, ok.stderr


def test_a_reward_that_cannot_be_imported_is_refused_before_any_cell_runs(small, tmp_path):
    done = bench(tmp_path, "badreward", "wmt16", small, "--set", "run.reward=nowhere.mod:fn", seeds=1)
    assert (
        done.returncode == 2 and done.stderr.startswith("error: cell wmt16-s0-ppo: ") and "nowhere.mod" in done.stderr
    )
    assert not (tmp_path / "work" / "badreward").exists()


@pytest.mark.slow
def test_a_cell_trains_with_several_processes(small, tmp_path):
    """--processes 2: the cell trains under torchrun (two CPU processes, gloo), then evaluates once."""
    done = bench(
        tmp_path, "ddp", "wmt16", small, "--processes", "2", *(i for s in SETS for i in ("--set", s)), seeds=1, jobs=1
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "work" / "ddp" / "cells" / "wmt16-s0-ppo" / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["world_size"] == 2
    cell = yaml.safe_load((tmp_path / "submissions" / "ddp" / "submission.yaml").read_text())["benchmark"]["cells"][0]
    assert cell["device_hours"] == pytest.approx(2 * cell["wall_seconds"] / 3600, rel=1e-3)
    assert run_cli("leaderboard", "validate", str(tmp_path / "submissions" / "ddp")).returncode == 0
