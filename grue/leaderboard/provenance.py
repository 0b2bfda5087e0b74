"""Provenance: the optional ``benchmark`` block of ``submission.yaml``, and the check that the results match it.

``grue benchmark run`` writes the block: the command that reproduces the submission, the grue version and commit,
the hardware, the seeds, each task's settings fingerprint (grue.fingerprint) and the time each trained (task, seed,
stage) cell took. A submission assembled by hand has no block and is shown as such. When the block is there, every
results file must carry it out: its config's settings fingerprint is the block's for its task, its seed one of the
block's seeds. Every problem reads ``<file>: <field>: <what is wrong>``, one line each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from grue.fingerprint import LENGTH, fingerprint
from grue.results import TRAINING_ALGORITHMS, Results, show_value

COMMAND = "grue benchmark run"
"""What the reproducing command starts with."""
NOT_RECORDED = "not recorded (assembled by hand)"
"""What the site shows of a submission without a ``benchmark`` block."""
_TASK = re.compile(r"[a-z][a-z0-9_]*")
_HASH = re.compile(f"[0-9a-f]{{{LENGTH}}}")
_COMMIT = re.compile(r"[0-9a-f]{7,64}(-dirty)?")


@dataclass(frozen=True)
class BenchmarkCell:
    """One trained (task, seed, stage) of the benchmark: ``stage`` an algorithm (``supervised`` then ``ppo`` for a
    Supervised+PPO submission), ``settings`` the fingerprint of that stage's settings."""

    task: str
    seed: int
    stage: str
    settings: str
    wall_seconds: float
    device_hours: float


@dataclass(frozen=True)
class Benchmark:
    """``submission.yaml``'s ``benchmark`` block, checked (:func:`check_benchmark`)."""

    name: str
    command: str
    grue_version: str
    git_commit: str | None
    hardware: str
    seeds: list[int]
    settings: dict[str, str]
    """Task -> the settings fingerprint its results files were evaluated with."""
    wall_seconds: float
    device_hours: float
    cells: list[BenchmarkCell] = field(default_factory=list)

    def task_hours(self, task: str) -> float:
        """The device-hours of the cells of ``task``."""
        return sum(c.device_hours for c in self.cells if c.task == task)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _text(longest: int):
    return (
        lambda v: isinstance(v, str) and bool(v.strip()) and len(v) <= longest,
        f"a non-empty string of at most {longest} characters",
    )


_SECONDS = (lambda v: _is_number(v) and v >= 0, "a finite number >= 0")
_SEED = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")
_FINGERPRINT = (
    lambda v: isinstance(v, str) and _HASH.fullmatch(v) is not None,
    f"a settings fingerprint: {LENGTH} lowercase hex digits, quoted",
)
# field -> (accepts, what is accepted); seeds, settings and cells are checked on their own
FIELDS = {
    "name": _text(80),
    "command": (
        lambda v: _text(2000)[0](v) and v.split()[:3] == COMMAND.split(),
        f'the command that reproduces the submission, "{COMMAND} ..." (at most 2000 characters)',
    ),
    "grue_version": _text(100),
    "git_commit": (
        lambda v: v is None or (isinstance(v, str) and _COMMIT.fullmatch(v) is not None),
        "7 to 64 lowercase hex digits (optionally + '-dirty'), quoted, or null",
    ),
    "hardware": _text(500),
    "seeds": (lambda v: isinstance(v, list) and bool(v), "a non-empty list of distinct integers >= 0"),
    "settings": (lambda v: isinstance(v, dict) and bool(v), "a mapping of task -> settings fingerprint"),
    "wall_seconds": _SECONDS,
    "device_hours": _SECONDS,
    "cells": (lambda v: isinstance(v, list), "a list of {task, seed, stage, settings, wall_seconds, device_hours}"),
}
CELL_FIELDS = {
    "task": (lambda v: isinstance(v, str) and _TASK.fullmatch(v) is not None, "a task name"),
    "seed": _SEED,
    "stage": (lambda v: v in TRAINING_ALGORITHMS, "one of " + ", ".join(TRAINING_ALGORITHMS)),
    "settings": _FINGERPRINT,
    "wall_seconds": _SECONDS,
    "device_hours": _SECONDS,
}
MAX_CELLS = 1000


def _fields(obj: dict, path: str, spec: dict) -> list[str]:
    """Unknown, missing and wrong fields of ``obj`` against ``spec``, each as ``path.key: problem``."""
    out = [f"{path}.{k}: unknown field; accepted: {', '.join(spec)}" for k in obj if k not in spec]
    for key, (accepts, what) in spec.items():
        if key not in obj:
            out.append(f"{path}.{key}: missing (a required field of the benchmark block)")
        elif not accepts(obj[key]):
            out.append(f"{path}.{key}: must be {what}, got {show_value(obj[key], yaml=True)}")
    return out


def _seeds(seeds: list) -> list[str]:
    bad = [s for s in seeds if not _SEED[0](s)]
    if bad:
        return [f"benchmark.seeds: must be integers >= 0, got {show_value(bad[0], yaml=True)}"]
    return [] if len(set(seeds)) == len(seeds) else [f"benchmark.seeds: each seed once, got {show_value(seeds)}"]


def _settings(settings: dict, tasks) -> list[str]:
    out = []
    for task, value in settings.items():
        if task not in tasks:
            out.append(f"benchmark.settings.{str(task)[:40]}: unknown task; known: {', '.join(sorted(tasks))}")
        elif not _FINGERPRINT[0](value):
            out.append(f"benchmark.settings.{task}: must be {_FINGERPRINT[1]}, got {show_value(value, yaml=True)}")
    return out


def _cells(cells: list, seeds: list | None) -> list[str]:
    """The problems of the cells; ``seeds`` the block's seeds when they are valid (else cells' seeds are not compared)."""
    if len(cells) > MAX_CELLS:
        return [f"benchmark.cells: at most {MAX_CELLS} cells, got {len(cells)}"]
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            out.append(
                f"benchmark.cells[{i}]: must be a mapping {{{', '.join(CELL_FIELDS)}}}, got "
                f"{show_value(cell, yaml=True)}"
            )
            continue
        out += _fields(cell, f"benchmark.cells[{i}]", CELL_FIELDS)
        seed = cell.get("seed")
        if _SEED[0](seed) and seeds is not None and seed not in seeds:
            out.append(f"benchmark.cells[{i}].seed: {seed} is not one of benchmark.seeds")
    return out


def check_benchmark(data: Any, source: str, tasks) -> tuple[Benchmark | None, list[str]]:
    """The parsed ``benchmark`` block of ``submission.yaml`` (``source``) -> (Benchmark, []) or (None, problems);
    ``tasks`` the known task names."""
    if not isinstance(data, dict):
        return None, [
            f"{source}: benchmark: must be a mapping with {', '.join(FIELDS)}, got {show_value(data, yaml=True)}"
        ]
    out = _fields(data, "benchmark", FIELDS)
    seeds = data.get("seeds") if FIELDS["seeds"][0](data.get("seeds")) else None
    if seeds is not None:
        problems = _seeds(seeds)
        out += problems
        seeds = None if problems else seeds
    if FIELDS["settings"][0](data.get("settings")):
        out += _settings(data["settings"], tasks)
    if FIELDS["cells"][0](data.get("cells")):
        out += _cells(data["cells"], seeds)
    if out:
        return None, [f"{source}: {p}" for p in out]
    cells = [BenchmarkCell(**{k: c[k] for k in CELL_FIELDS}) for c in data["cells"]]
    values = {k: data[k] for k in FIELDS if k != "cells"}
    return Benchmark(**values, cells=cells), []


def check_results(benchmark: Benchmark, results: Results, source: str) -> list[str]:
    """The trust check of one results file of a submission with a benchmark block: its settings fingerprint is the
    block's for its task, and its seed one of the block's seeds."""
    out = []
    expected = benchmark.settings.get(results.task)
    actual = fingerprint(results.config)
    if expected is None:
        out.append(
            f"{source}: task: {results.task} has no settings fingerprint in submission.yaml's benchmark.settings "
            f"(this file's is {actual}): the file was not made by this benchmark"
        )
    elif actual != expected:
        out.append(
            f"{source}: config: settings fingerprint {actual} differs from submission.yaml's "
            f"benchmark.settings.{results.task} {expected}: the file was not made by this benchmark's settings"
        )
    if results.seed not in benchmark.seeds:
        out.append(
            f"{source}: seed: {results.seed} is not one of submission.yaml's benchmark.seeds "
            f"({', '.join(map(str, benchmark.seeds))}): the file was not made by this benchmark"
        )
    return out


def summary(benchmark: Benchmark | None) -> str:
    """One line for a table cell: '5 seeds, 0.68 device-hours', or NOT_RECORDED."""
    if benchmark is None:
        return NOT_RECORDED
    n = len(benchmark.seeds)
    return f"{n} seed{'s' if n != 1 else ''}, {benchmark.device_hours:.3g} device-hours"
