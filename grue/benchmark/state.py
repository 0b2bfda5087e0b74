"""The benchmark's work folder, and ``grue benchmark status``.

    WORK/plan.json                 the options and every cell (id, task, seed, stage, settings, planned config)
    WORK/cells/<id>/run/           the cell's training run (config.yaml, checkpoint/, metrics.jsonl)
    WORK/cells/<id>/eval/          its evaluation (results.json, samples.jsonl), before the copy into the submission
    WORK/cells/<id>/log.txt        what the cell printed
    WORK/cells/<id>/lock           held (flock) while a process works on the cell
    WORK/cells/<id>/done.json      written last: key and settings, results.json's SHA-256, wall time, device-hours, hardware
    WORK/cells/<id>/failed.json    the exit code and the log's last line of a cell that failed

A cell is done when done.json names the planned key (its settings, and a second stage's first stage's) and the submission's results.json still has the SHA-256
it recorded: a file that is merely there does not count.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from grue.errors import GrueError
from grue.files import atomic_write_text

PLAN = "plan.json"


def cell_dir(work: Path, cell_id: str) -> Path:
    return Path(work) / "cells" / cell_id


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when it is missing or unreadable (a state file written atomically is
    either whole or absent)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def submitted(out: Path, task: str, seed: int) -> Path:
    """Where a cell's results.json goes in the submission folder."""
    return Path(out) / task / f"seed{seed}" / "results.json"


def done_record(work: Path, out: Path, cell: dict) -> dict | None:
    """The cell's done.json when the cell is done (see the module docstring), else None."""
    record = read_json(cell_dir(work, cell["id"]) / "done.json")
    if record is None or record.get("key") != cell["key"]:
        return None
    if cell["final"] and sha256(submitted(out, cell["task"], cell["seed"])) != record.get("results_sha256"):
        return None
    return record


@contextlib.contextmanager
def cell_lock(work: Path, cell_id: str, wait: bool = True):
    """Hold the cell's lock: two processes never work on one cell (a relaunched benchmark waits for a cell that is
    still running elsewhere, e.g. a SLURM job of an earlier launch). ``wait=False``: yield False when it is held."""
    path = cell_dir(work, cell_id) / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def load_plan(work: Path) -> dict:
    plan = read_json(Path(work) / PLAN)
    if plan is None:
        raise GrueError(
            f"{work}: not a benchmark work folder (no readable {PLAN}); pass the folder that "
            "`grue benchmark run` printed (default runs/benchmark/NAME)"
        )
    return plan


def last_line(path: Path) -> str:
    """The last non-empty line of a log file (at most its last 64 KB are read)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 65536))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def cell_states(work: Path) -> list[tuple[dict, str, str]]:
    """(cell, state, detail) for every cell of the plan: ``done`` (wall time), ``running`` (its lock is held),
    ``failed`` (the log's last line), ``waiting``."""
    plan = load_plan(work)
    out = []
    for cell in plan["cells"]:
        folder = cell_dir(work, cell["id"])
        record = done_record(work, Path(plan["out"]), cell)
        if record is not None:
            out.append((cell, "done", f"{record['wall_seconds']:.0f} s, {record['device_hours']:.4f} device-h"))
            continue
        with cell_lock(work, cell["id"], wait=False) as free:
            if not free:
                out.append((cell, "running", last_line(folder / "log.txt")))
                continue
        failed = read_json(folder / "failed.json")
        if failed is not None:
            out.append((cell, "failed", failed.get("last_line") or f"exit {failed.get('exit_code')}"))
        else:
            out.append((cell, "waiting", f"after {cell['after']}" if cell.get("after") else ""))
    return out


def print_status(work: Path) -> dict[str, int]:
    """The status table of a benchmark's work folder; returns the count of cells in each state."""
    from rich.console import Console
    from rich.table import Table

    plan = load_plan(work)
    table = Table(title=f"benchmark {plan['options']['name']}: {plan['out']}")
    for col in ("cell", "task", "seed", "stage", "state", "detail"):
        table.add_column(col, overflow="fold")
    counts: dict[str, int] = {}
    for cell, state, detail in cell_states(work):
        counts[state] = counts.get(state, 0) + 1
        table.add_row(cell["id"], cell["task"], str(cell["seed"]), cell["stage"], state, detail)
    Console(width=160).print(table)
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return counts
