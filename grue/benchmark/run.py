"""``grue benchmark run``: plan the cells, keep what is done, launch the rest, write submission.yaml.

1. Plan every cell (grue.benchmark.plan) and check it before anything runs.
2. Compare with what an earlier launch left in the work folder and the submission folder: a cell made with other
   settings is refused, with the settings that differ, unless ``--force-rerun`` (then it is made again).
3. Launch the cells that are not done (grue.benchmark.launch); a failed cell does not stop the others.
4. Write submission.yaml from the cells' records; name the failed cells and exit non-zero if any.
"""

from __future__ import annotations

import dataclasses
import getpass
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from grue.benchmark import state
from grue.benchmark.launch import LAUNCHERS, Launch, require
from grue.benchmark.plan import Cell, Options, plan
from grue.errors import GrueError
from grue.fingerprint import differences
from grue.files import atomic_write_text
from grue.leaderboard.submissions import META_FILE


def cost_table(cells: list[Cell], options: Options, work: Path) -> None:
    """--dry-run: each cell's commands and its cost per iteration, in a table; then the totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"benchmark {options.name}: {len(cells)} cells ({options.algorithm()}, {options.seeds} seeds)")
    for col, just in (
        ("cell", "left"),
        ("iterations", "right"),
        ("tokens/it", "right"),
        ("episodes/it", "right"),
        ("passes/it", "right"),
        ("commands", "left"),
    ):
        table.add_column(col, justify=just, overflow="fold")
    total_tokens = total_passes = 0
    for c in cells:
        run_dir = state.cell_dir(work, c.id) / "run"
        first = state.cell_dir(work, c.after) / "run" if c.after else None
        commands = c.train_command(run_dir, first, options) + (f"\n{c.eval_command(run_dir)}" if c.final else "")
        k = c.cost
        total_tokens += k["tokens"] * k["iterations"]
        total_passes += (k["passes"] or 0) * k["iterations"]
        table.add_row(
            c.id,
            str(k["iterations"]),
            f"{k['tokens']:,}",
            f"{k['episodes']:,}",
            "–" if k["passes"] is None else f"{k['passes']:,}",
            commands,
        )
    Console(width=200).print(table)
    print(
        f"in all: {total_tokens:,} generated tokens and {total_passes:,} teacher-forced episode passes over "
        f"{len(cells)} cells (tokens: every completion at max_new_tokens; supervised passes depend on the data)"
    )


def preflight_cells(cells: list[Cell]) -> None:
    """What ``grue train --dry-run`` checks (grue.preflight: the reward and metrics import, the training data on disk
    is well-formed, the tracker is installed), once per task and stage, before any cell is launched."""
    from grue.algorithms import from_dict
    from grue.preflight import preflight

    seen = set()
    for c in cells:
        if (c.task, c.stage) not in seen:
            seen.add((c.task, c.stage))
            try:
                preflight(from_dict(c.config, c.id), resume=c.id)  # its run directory is the benchmark's own
            except GrueError as e:
                raise GrueError(f"cell {c.id}: {e}") from None


def conflicts(cells: list[Cell], work: Path, out: Path) -> list[str]:
    """One line per cell that an earlier launch made (or began) with other settings, or whose submitted
    results.json this benchmark did not write."""
    old = {c["id"]: c for c in (state.read_json(work / state.PLAN) or {}).get("cells", [])}
    lines = []
    for c in cells:
        folder = state.cell_dir(work, c.id)
        began = (folder / "run").exists() or (folder / "done.json").exists()
        if began and c.id in old and old[c.id].get("key") != c.key:
            named = differences(old[c.id]["config"], c.config) or [f"it starts from {c.after}, which changes"]
            lines.append(f"{c.id}: made with other settings ({'; '.join(named)})")
            continue
        target = state.submitted(out, c.task, c.seed)
        record = state.read_json(folder / "done.json") or {}
        if c.final and target.exists() and state.sha256(target) != record.get("results_sha256"):
            lines.append(f"{c.id}: {target} exists and was not written by this benchmark")
    return lines


def forget(cells: list[Cell], ids: set[str], work: Path, out: Path) -> None:
    """--force-rerun: remove what the cells ``ids`` made, so that they are made again."""
    for c in cells:
        if c.id in ids:
            shutil.rmtree(state.cell_dir(work, c.id), ignore_errors=True)
            target = state.submitted(out, c.task, c.seed)
            for path in (target, target.parent / "samples.jsonl"):
                path.unlink(missing_ok=True)


def who() -> str:
    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    return name or getpass.getuser() or "unknown"


def write_submission(plan: dict, out: Path, work: Path, submitter: str | None, link: str | None) -> Path | None:
    """submission.yaml from the done cells' records (None when no final cell is done yet)."""
    from grue import __version__
    from grue.evaluation import git_commit

    options = Options(**plan["options"])
    records = {c["id"]: state.done_record(work, out, c) for c in plan["cells"]}
    done = [c for c in plan["cells"] if records[c["id"]] is not None]
    final = [c for c in done if c["final"]]
    if not final:
        return None
    settings: dict[str, str] = {}
    for c in final:
        fp = records[c["id"]]["results_settings"]
        if settings.setdefault(c["task"], fp) != fp:
            raise GrueError(
                f"the seeds of {c['task']} were evaluated with different settings ({settings[c['task']]} and "
                f"{fp}); rerun with --force-rerun"
            )
    models = sorted({c["config"]["run"].get("base_model") or c["config"]["run"]["model"] for c in final})
    cells = [
        {
            "task": c["task"],
            "seed": c["seed"],
            "stage": c["stage"],
            "settings": c["settings"],
            "wall_seconds": records[c["id"]]["wall_seconds"],
            "device_hours": records[c["id"]]["device_hours"],
        }
        for c in done
    ]
    hardware = sorted({records[c["id"]]["hardware"] for c in done})
    data = {
        "who": submitter or who(),
        "model": ", ".join(models),
        "algorithm": options.algorithm(),
        **({"link": link} if link else {}),
        "notes": f"Made by `grue benchmark run`: {options.seeds} seed(s) per task"
        + (f", preset {options.preset}" if options.preset else "")
        + ".",
        "benchmark": {
            "name": options.name,
            "command": options.command(),
            "grue_version": __version__,
            "git_commit": git_commit(),
            "hardware": "; ".join(hardware),
            "seeds": list(range(options.seeds)),
            "settings": dict(sorted(settings.items())),
            "wall_seconds": round(sum(c["wall_seconds"] for c in cells), 3),
            "device_hours": round(sum(c["device_hours"] for c in cells), 6),
            "cells": cells,
        },
    }
    path = out / META_FILE
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
    return path


def run_benchmark(
    options: Options,
    launch: Launch,
    out: Path,
    work: Path,
    *,
    submitter: str | None = None,
    link: str | None = None,
    force_rerun: bool = False,
    dry_run: bool = False,
    say=print,
) -> int:
    """The whole command; returns its exit code (0: every cell done)."""
    t0 = time.time()
    # 1. Plan and check.
    require(launch.launcher)
    if launch.jobs < 1:
        raise GrueError(f"--jobs {launch.jobs}: cells at once, at least 1")
    cells = plan(options)
    preflight_cells(cells)
    if dry_run:
        cost_table(cells, options, work)
        return 0
    # 2. What earlier launches left.
    found = conflicts(cells, work, out)
    if found and not force_rerun:
        raise GrueError(
            f"{len(found)} cell(s) would not be reused: {found[0]}"
            + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
            + "; pass --force-rerun to make them again, or another --name"
        )
    if found:
        forget(cells, {line.split(":", 1)[0] for line in found}, work, out)
    saved = {
        "options": dataclasses.asdict(options),
        "out": str(out.resolve()),
        "cells": [dataclasses.asdict(c) for c in cells],
    }
    state.write_json(work / state.PLAN, saved)
    for c in cells:
        state.cell_dir(work, c.id).mkdir(parents=True, exist_ok=True)
    todo = [c for c in saved["cells"] if state.done_record(work, out, c) is None]
    say(
        f"benchmark {options.name}: {len(cells)} cells, {len(cells) - len(todo)} already done; work folder {work}, "
        f"submission {out}"
    )
    # 3. Launch what is not done.
    if todo:
        LAUNCHERS[launch.launcher](work, todo, launch, say)
    else:
        say("every cell is done: nothing was retrained")
    # 4. submission.yaml, and the verdict.
    path = write_submission(saved, out, work, submitter, link)
    failed = [c["id"] for c in saved["cells"] if state.done_record(work, out, c) is None]
    took = time.time() - t0
    if failed:
        say(
            f"{len(failed)} cell(s) not done after {took:.0f} s: {', '.join(failed)}; see `grue benchmark status {work}`"
        )
        return 1
    say(f"done in {took:.0f} s: wrote {path}; check it with `grue leaderboard validate {out}`")
    return 0
