"""One cell of a benchmark, as its own process: ``python -m grue.benchmark.cell WORK CELL_ID``.

Every launcher runs this same command (a local subprocess, a SLURM job, a Ray task), so a cell behaves the same
wherever it runs:

1. Take the cell's lock (a second launch waits for a cell still running elsewhere); stop at once if it is done.
2. Train: continue the run from its last checkpoint when there is one (grue's exact resume), else start it; a
   second stage starts from its first stage's checkpoint (``--init-from``). ``--processes N`` trains under torchrun.
3. Evaluate the final stage on the task's benchmark split with the task's own settings (a stopped evaluation
   continues where it stopped), then copy samples.jsonl and results.json into the submission folder, atomically.
4. Write done.json last: the settings, the results' SHA-256, wall time, device-hours and hardware.

Exit codes: 0 done, 1 failed (failed.json says why), 128 + N stopped by signal N after a checkpoint.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from grue.benchmark.plan import Options, benchmark_split, stage_config
from grue.benchmark.state import (
    cell_dir,
    cell_lock,
    done_record,
    load_plan,
    read_json,
    sha256,
    submitted,
    write_json,
)
from grue.errors import GrueError, one_line
from grue.fingerprint import differences, fingerprint
from grue.files import atomic_write_bytes


def hardware() -> str:
    """This machine in a few words: its CPU and core count, its GPUs, the torch version."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    gpu = f"{len(gpus)} x {gpus[0]}" if gpus else "no GPU"
    return f"{cores} CPU cores ({cpu}), {gpu}; torch {torch.__version__.split('+')[0]}"


def resolved(cell: dict, options: Options, work: Path, plan: dict):
    """The cell's config for a new run; a second stage's model is its first stage's checkpoint."""
    from grue.checkpoint import latest

    first = None
    if cell["after"]:
        before = next(c for c in plan["cells"] if c["id"] == cell["after"])
        if done_record(work, Path(plan["out"]), before) is None:
            raise GrueError(f"cell {cell['id']} starts from cell {before['id']}, which is not done")
        first = before["config"]
    cfg = stage_config(cell["task"], cell["stage"], cell["seed"], options, first)
    if first is not None:
        cfg.run.model = str(latest(cell_dir(work, cell["after"]) / "run"))
        from grue.config import record_lineage

        record_lineage(cfg.run)
    return cfg


def train(cell: dict, options: Options, work: Path, plan: dict) -> Path:
    """Train the cell's run to its end (resuming it when it has a checkpoint); returns its run directory."""
    from grue.algorithms import from_dict
    from grue.checkpoint import latest
    from grue.yamlfile import load_yaml
    from grue.training import finished, train_run

    run_dir = cell_dir(work, cell["id"]) / "run"
    resume = None
    try:
        latest(run_dir)
        resume = str(run_dir)
    except GrueError:
        shutil.rmtree(run_dir, ignore_errors=True)  # killed before its first checkpoint: nothing to keep
    if resume:
        cfg = from_dict(load_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    else:
        cfg = resolved(cell, options, work, plan)
        cfg.run.output_dir = str(run_dir)
    if fingerprint(cfg.to_dict()) != cell["settings"]:
        raise GrueError(
            f"cell {cell['id']}: the run's settings differ from the plan's "
            f"({'; '.join(differences(cell['config'], cfg.to_dict()))})"
        )
    if resume and finished(run_dir, cfg):
        print(f"{run_dir} finished its training before", flush=True)
    elif options.processes > 1:
        train_processes(cfg, resume, options.processes)
    else:
        if resume:
            print(f"continuing {run_dir} from its last checkpoint", flush=True)
        train_run(cfg, resume, show=False)
    return run_dir


def train_processes(cfg, resume: str | None, processes: int) -> None:
    """Train under torchrun with ``processes`` processes (DDP through accelerate), through ``grue train``."""
    import tempfile

    import yaml

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "-m",
        "grue_cli.main",
        "train",
        cfg.run.task,
        "--quiet",
    ]
    if resume:
        cmd += ["--resume", resume]
        done = subprocess.run(cmd)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            sections = {k: v for k, v in cfg.to_dict().items() if isinstance(v, dict) and k != "eval"}
            sections["run"] = {
                k: v for k, v in sections["run"].items() if k not in ("init_from", "init_algo", "base_model")
            }
            yaml.safe_dump(sections, f)
        try:
            done = subprocess.run(
                cmd + ["--algo", cfg.run.algo, "--config", f.name, "--output-dir", cfg.run.output_dir]
            )
        finally:
            os.unlink(f.name)
    if done.returncode:
        raise GrueError(f"training under torchrun exited with {done.returncode}")


def copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, src.read_bytes())


def evaluate(cell: dict, run_dir: Path, work: Path, out: Path) -> Path:
    """Evaluate the run on the task's benchmark split (or reuse a finished evaluation) and copy the files into the
    submission; returns the submitted results.json."""
    from grue.evaluation import evaluate as run_eval

    folder = cell_dir(work, cell["id"]) / "eval"
    if not (folder / "results.json").is_file():
        run_eval(checkpoint=str(run_dir), split=benchmark_split(cell["task"]), output_dir=str(folder), show=False)
    target = submitted(out, cell["task"], cell["seed"])
    copy_atomic(folder / "samples.jsonl", target.parent / "samples.jsonl")
    copy_atomic(folder / "results.json", target)
    return target


def elapsed(folder: Path, start: float) -> float:
    """Seconds this cell has run over all its attempts: earlier ones (an attempt that was killed ended when its log
    was last written) and this one since ``start``."""
    record = read_json(folder / "elapsed.json") or {}
    total = float(record.get("seconds", 0.0))
    if record.get("open") is not None:
        try:
            total += max(0.0, (folder / "log.txt").stat().st_mtime - float(record["open"]))
        except OSError:
            pass
    return total + (time.time() - start)


def run_cell(work: Path, cell_id: str) -> int:
    plan = load_plan(work)
    cell = next((c for c in plan["cells"] if c["id"] == cell_id), None)
    if cell is None:
        raise GrueError(f"{work}: no cell {cell_id} in the plan")
    options, out, folder = Options(**plan["options"]), Path(plan["out"]), cell_dir(work, cell_id)
    # 1. The lock, then whether there is anything to do.
    with cell_lock(work, cell_id):
        if done_record(work, out, cell) is not None:
            print(f"cell {cell_id}: already done", flush=True)
            return 0
        (folder / "failed.json").unlink(missing_ok=True)
        start = time.time()
        before = elapsed(folder, 0.0) - time.time()  # earlier attempts only
        write_json(folder / "elapsed.json", {"seconds": before, "open": start})
        # 2-3. Train, then (final stage) evaluate and submit.
        run_dir = train(cell, options, work, plan)
        target = evaluate(cell, run_dir, work, out) if cell["final"] else None
        # 4. Done, written last.
        seconds = before + time.time() - start
        write_json(folder / "elapsed.json", {"seconds": seconds, "open": None})
        record = {
            "key": cell["key"],
            "settings": cell["settings"],
            "wall_seconds": round(seconds, 3),
            "device_hours": round(seconds * options.processes / 3600, 6),
            "hardware": hardware(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if target is not None:
            from grue.results import load_results

            results = load_results(target)
            record.update(results_sha256=sha256(target), results_settings=fingerprint(results.config))
        write_json(folder / "done.json", record)
        print(f"cell {cell_id}: done in {seconds:.1f} s", flush=True)
        return 0


def main(argv: list[str]) -> int:
    from grue.interrupt import Interrupted

    if len(argv) != 2:
        print("usage: python -m grue.benchmark.cell WORK_DIR CELL_ID", file=sys.stderr)
        return 2
    work, cell_id = Path(argv[0]), argv[1]
    try:
        return run_cell(work, cell_id)
    except Interrupted as e:
        print(str(e), file=sys.stderr, flush=True)
        return e.exit_code
    except Exception as e:  # recorded for `grue benchmark status`, one line; the traceback stays in the log
        import traceback

        traceback.print_exc()
        line = (
            f"{type(e).__name__}: {one_line(str(e))}" if not isinstance(e, GrueError) else f"error: {one_line(str(e))}"
        )
        write_json(cell_dir(work, cell_id) / "failed.json", {"exit_code": 1, "last_line": line})
        print(line, file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the log holds grue's lines, not per-file progress bars
    hf_logging.set_verbosity_error()
    sys.exit(main(sys.argv[1:]))
