"""Re-make the example submission leaderboard/examples/tiny-ppo-smoke/ from grue's own smoke runs.

    python leaderboard/tools/make_example.py [--data-dir ../shared/data] [--work /tmp/grue-example]

For each (task, seed) below: `grue train TASK --algo ppo --preset smoke --seed S`, then
`grue eval --checkpoint RUN --split SPLIT` on the whole of the task's benchmark split
(`benchmark_split` in its task.yaml: test, validation for totto, whose test references are
hidden), and the results.json is copied into the example (the samples.jsonl is not: it
quotes the datasets). Run it after a task's version changes; it takes several minutes of CPU.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from grue.tasks import find_task

PLAN = {
    "imdb": (0,),
    "commongen": (0, 1),
    "cnn_dailymail": (0,),
    "wmt16": (0, 1),
    "dailydialog": (0,),
    "narrativeqa": (0,),
    "totto": (0,),
}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny-ppo-smoke"


def grue(*args: str) -> None:
    """Run one grue command quietly; stop with its error output when it fails."""
    cmd = [sys.executable, "-m", "grue_cli.main", *args, "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")


def make_cell(task: str, seed: int, work: Path, data_dir: str) -> Path:
    """Train and evaluate one (task, seed) on the task's whole benchmark split; the example's results.json."""
    run = work / f"{task}-s{seed}"
    split = find_task(task).benchmark_split
    grue(
        "train",
        task,
        "--algo",
        "ppo",
        "--preset",
        "smoke",
        "--seed",
        str(seed),
        "--data-dir",
        data_dir,
        "--output-dir",
        str(run),
    )
    grue("eval", "--checkpoint", str(run), "--split", split, "--data-dir", data_dir)
    target = EXAMPLE / task / f"seed{seed}" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "eval" / split / "results.json", target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ap.add_argument("--work", default="/tmp/grue-example")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    for task, seeds in PLAN.items():
        for seed in seeds:
            print(f"{task} seed {seed}: {make_cell(task, seed, work, args.data_dir)}", flush=True)


if __name__ == "__main__":
    main()
