"""Algorithms, looked up by name. Each module has ``CONFIG`` (its config dataclass) and ``train(cfg, resume_dir, show)``.

``NAMES`` lists them without importing anything; ``ALGORITHMS`` (name -> module) imports the
modules, and with them torch, on first use, so that commands that only list names start at once.
"""

import importlib

NAMES = ("ppo", "nlpo", "a2c", "supervised", "grpo", "rloo", "trpo")


def __getattr__(name: str):
    if name == "ALGORITHMS":
        modules = {n: importlib.import_module(f"grue.algorithms.{n}") for n in NAMES}
        globals()["ALGORITHMS"] = modules
        return modules
    raise AttributeError(f"module 'grue.algorithms' has no attribute '{name}'")
