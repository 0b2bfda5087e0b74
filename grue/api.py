"""grue's Python API: ``grue.train``, ``grue.evaluate`` and ``grue.load_results`` (re-exported by ``grue``).

They do what ``grue train``, ``grue eval`` and ``grue results`` do, in this process, and return Python values.
Each imports what it needs when called, so ``import grue`` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable


def _sets(overrides: dict[str, Any] | None) -> list[str]:
    """``{"ppo.lr": 1e-5}`` as ``--set`` items (values written as JSON, which YAML reads back unchanged)."""
    return [f"{key}={json.dumps(value)}" for key, value in (overrides or {}).items()]


def train(task: str, algo: str = "ppo", model: str | None = None, preset: str | None = None,
          reward: str | Callable | None = None, overrides: dict[str, Any] | None = None,
          output_dir: str | None = None, show: bool = False) -> dict:
    """Train ``algo`` on ``task`` (a built-in task's name or a task folder's path) and return the run's summary
    (``run_dir``, ``iterations``, ``reward/first_20pct``, ``reward/last_20pct``, ...).

    ``reward``: a reward's name (grue.rewards.REWARDS or ``package.module:function``) or a Python callable
    ``fn(prompts, completions, references, meta) -> list[float]`` (one float per completion). The run's
    config.yaml names a callable by ``module:qualified_name``, so a module-level function can be resumed from the CLI.
    ``overrides``: ``{"section.key": value}``, as ``--set`` takes them (e.g. ``{"ppo.iterations": 2}``).
    """
    from grue import rewards
    from grue.algorithms import ALGORITHMS, resolve

    name = reward
    if callable(reward):
        name = f"{getattr(reward, '__module__', 'python')}:{getattr(reward, '__qualname__', 'reward')}"
    flags = {k: v for k, v in {"run.model": model, "run.reward": name, "run.output_dir": output_dir}.items() if v is not None}
    cfg = resolve(task, algo, preset=preset, flags=flags, sets=_sets(overrides))
    registered = callable(reward) and name not in rewards.REWARDS
    if registered:  # a local function or lambda cannot be imported by name: lend it the name for this run
        rewards.REWARDS[name] = reward
    try:
        return ALGORITHMS[algo].train(cfg, resume_dir=None, show=show)
    finally:
        if registered:
            rewards.REWARDS.pop(name, None)


def evaluate(checkpoint: str | None = None, task: str | None = None, model: str | None = None, split: str = "test",
             limit: int | None = None, output_dir: str | None = None, overrides: dict[str, Any] | None = None,
             data_dir: str | None = None, overwrite: bool = False, show: bool = False):
    """Evaluate a run (``checkpoint``: its directory) or a model as it is (``task`` and ``model``) on ``split``,
    write results.json and samples.jsonl (default: ``RUN/eval/<split>/``) and return the ``grue.results.Results``.
    ``overrides``: ``{"eval.batch_size": 8}``, keys of run, generation and eval."""
    from grue.evaluation import evaluate as run

    _, results = run(checkpoint=checkpoint, task=task, model=model, split=split, limit=limit, output_dir=output_dir,
                     sets=_sets(overrides), data_dir=data_dir, overwrite=overwrite, show=show)
    return results


def load_results(paths: str | Path | Iterable[str | Path]):
    """A pandas DataFrame with one row per results.json found in ``paths`` (files, or directories searched
    recursively), in path order: ``path``, ``task``, ``task_version``, ``split``, ``algorithm``, ``model``,
    ``seed``, ``kind``, ``evaluated``, then one column per metric (NaN where a file lacks it)."""
    from grue.frames import results_frame

    return results_frame(paths)
