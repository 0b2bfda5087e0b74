"""Algorithms, looked up by name. Each module has ``CONFIG`` (its config dataclass) and ``train(cfg, resume_dir, show)``.

``NAMES`` lists them without importing anything; ``ALGORITHMS`` (name -> module) imports the
modules, and with them torch, on first use, so that commands that only list names start at once.
``resolve`` and ``from_dict`` build a run's config with the algorithm's config class (grue.config
knows no algorithm: it sits below them).
"""

from __future__ import annotations

import importlib
from typing import Any

from grue import config
from grue.errors import GrueError, did_you_mean
from grue.tasks import find_task

NAMES = ("ppo", "nlpo", "a2c", "supervised", "grpo", "rloo", "trpo")


def __getattr__(name: str):
    if name == "ALGORITHMS":
        modules = {n: importlib.import_module(f"grue.algorithms.{n}") for n in NAMES}
        globals()["ALGORITHMS"] = modules
        return modules
    raise AttributeError(f"module 'grue.algorithms' has no attribute '{name}'")


def check_names(task: str, algo: str | None = None) -> None:
    """A one-line error (with a "did you mean") for an unknown task or algorithm; imports no algorithm (no torch)."""
    find_task(task)
    if algo is not None and algo not in NAMES:
        raise GrueError(f"unknown algorithm '{algo}'{did_you_mean(algo, NAMES)}; accepted: {', '.join(NAMES)}")


def config_class(algo: str) -> type:
    """The config dataclass of algorithm ``algo`` (imports its module)."""
    return importlib.import_module(f"grue.algorithms.{algo}").CONFIG


def resolve(task: str, algo: str, **options: Any) -> config.Config:
    """``grue.config.resolve`` for the algorithm called ``algo`` (options: preset, config_file, flags, sets)."""
    check_names(task, algo)
    return config.resolve(task, algo, config_class(algo), others=tuple(n for n in NAMES if n != algo), **options)


def from_dict(data: dict, source: str) -> config.Config:
    """``grue.config.from_dict`` with every algorithm's config class."""
    return config.from_dict(data, source, {n: config_class(n) for n in NAMES})
