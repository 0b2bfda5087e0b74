#!/usr/bin/env python
"""`grue benchmark run` on each launcher: the wall time of one benchmark and what the launcher adds per cell.

The workload is the test suite's: all 7 tasks x 2 seeds of PPO with the smoke presets (3 iterations each), on the
first 16 rows of every split of the GRUE samples ($GRUE_DATA_DIR, copied to a temporary folder), so that each
evaluation covers its whole (small) split. Each launcher runs it from scratch in its own folders:

- ``local-1``: local, one cell at a time; ``local-2``: local, two at once (one CPU thread each);
- ``slurm``: a one-node SLURM started here (tests/clusters.py: slurmctld + slurmd), a job of 1 CPU per cell;
- ``ray``: a local Ray cluster started here, 2 CPUs, a task of 1 CPU per cell.

Per launcher: the command's wall seconds, the sum of the cells' own wall seconds (what each cell measured from its
lock to its done.json: the training and evaluation, without starting Python), and the overhead per cell,
(wall x cells at once - sum of cells) / cells: the process start and imports, the scheduler's delays, idle slots.
A launcher whose engine is missing or cannot start is recorded as skipped with the reason.

    python benchmarks/bench_launchers.py [--launchers local-1,local-2,slurm,ray] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from bench_ppo import write_json  # noqa: E402

LAUNCHERS = {"local-1": ("local", 1), "local-2": ("local", 2), "slurm": ("slurm", 2), "ray": ("ray", 2)}


def run_one(name: str, data: Path, folder: Path) -> dict:
    """One whole benchmark on launcher ``name``: wall time, cell times, overhead per cell."""
    import contextlib

    from grue.benchmark import state
    from grue.benchmark.launch import Launch
    from grue.benchmark.plan import Options, parse_tasks
    from grue.benchmark.run import run_benchmark

    launcher, at_once = LAUNCHERS[name]
    options = Options(
        algo="ppo",
        name=f"bench-{name}",
        tasks=parse_tasks("all"),
        seeds=2,
        preset="smoke",
        sets=["ppo.iterations=3"],
        data_dir=str(data),
    )
    launch = Launch(launcher=launcher, jobs=at_once)
    with contextlib.ExitStack() as stack:
        if launcher == "slurm":
            from clusters import slurm_cluster

            cluster = stack.enter_context(slurm_cluster(folder / "cluster"))
            launch.slurm_partition, launch.slurm_cpus_per_job = cluster.partition, 1
        elif launcher == "ray":
            from clusters import ray_cluster

            stack.enter_context(ray_cluster(num_cpus=2))
        work = folder / "work"
        t0 = time.time()
        code = run_benchmark(options, launch, folder / "submission", work, submitter="bench", say=lambda line: None)
        wall = time.time() - t0
    plan = state.load_plan(work)
    records = [state.done_record(work, Path(plan["out"]), c) for c in plan["cells"]]
    cell_seconds = sum(r["wall_seconds"] for r in records if r)
    cells = len(plan["cells"])
    return {
        "launcher": name,
        "exit_code": code,
        "cells": cells,
        "cells_done": sum(r is not None for r in records),
        "cells_at_once": at_once,
        "wall_seconds": round(wall, 1),
        "cell_seconds": round(cell_seconds, 1),
        "overhead_per_cell_seconds": round((wall * at_once - cell_seconds) / cells, 2),
        "load_average_after": os.getloadavg(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--launchers", default=",".join(LAUNCHERS), help=f"comma-separated, of: {', '.join(LAUNCHERS)}")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_launchers.json"))
    args = p.parse_args()
    source = os.environ.get("GRUE_DATA_DIR")
    if not source or not Path(source).is_dir():
        print("bench_launchers needs GRUE_DATA_DIR: the GRUE samples (../shared/data)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from test_benchmark import small_data

    results = []
    with tempfile.TemporaryDirectory(prefix="grue-bench-launchers-") as tmp:
        data = small_data(Path(source), Path(tmp) / "data")
        for name in args.launchers.split(","):
            try:
                row = run_one(name, data, Path(tmp) / name)
            except BaseException as e:  # pytest.skip (no SLURM, no Ray) is a BaseException
                if type(e).__name__ not in ("Skipped", "ImportError", "ModuleNotFoundError"):
                    raise
                row = {"launcher": name, "skipped": str(e)}
            results.append(row)
            print(row, flush=True)
    write_json(
        Path(args.out),
        {"workload": "7 tasks x 2 seeds, PPO smoke presets at 3 iterations, 16 rows per split", "results": results},
        announce=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
