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


def train(
    task: str,
    algo: str | None = None,
    model: str | None = None,
    preset: str | None = None,
    reward: str | Callable | None = None,
    overrides: dict[str, Any] | None = None,
    output_dir: str | None = None,
    show: bool = False,
    *,
    resume: str | bool | None = None,
    init_from: str | None = None,
    iterations: int | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    config_file: str | None = None,
    report_to: str | None = None,
) -> dict:
    """Train ``algo`` (default ppo) on ``task`` (a built-in task's name or a task folder's path) and return the run's
    summary (``run_dir``, ``iterations``, ``reward/first_20pct``, ``reward/last_20pct``, ...), as ``grue train`` does.

    ``reward``: a reward's name (grue.rewards.REWARDS or ``package.module:function``) or a Python callable
    ``fn(prompts, completions, references, meta) -> list[float]`` (one float per completion). The run's
    config.yaml names a callable by ``module:qualified_name``, so a module-level function can be resumed from the CLI.
    ``overrides``: ``{"section.key": value}``, as ``--set`` takes them (e.g. ``{"ppo.iterations": 2}``).
    ``resume``: a run directory to continue from its last checkpoint (``--resume``), or True: continue the run in
    ``output_dir`` if there is one (and return its summary if it has finished), else start it there. ``init_from``
    (a run directory whose checkpoint the policy starts from), ``iterations``, ``seed``, ``data_dir``,
    ``config_file`` and ``report_to`` are ``grue train``'s options of those names.
    """
    from grue import rewards
    from grue.errors import GrueError, api_spelling
    from grue.training import finished, train_run, training_config

    with api_spelling():
        reuse = False  # resume=True on a run that has finished: its summary, untrained
        if resume is True:
            if not output_dir:
                raise GrueError(
                    "resume=True continues the run in output_dir=; pass output_dir='DIR' (or resume='RUN_DIR')"
                )
            reuse = (Path(output_dir) / "config.yaml").is_file()
            resume = output_dir if reuse else None
        resume = resume or None
        name = reward
        if callable(reward):
            name = f"{getattr(reward, '__module__', 'python')}:{getattr(reward, '__qualname__', 'reward')}"
        sets = _sets(overrides) + ([f"run.reward={json.dumps(name)}"] if name is not None else [])
        cfg = training_config(
            task,
            algo,
            model=model,
            init_from=init_from,
            preset=preset,
            config_file=config_file,
            sets=sets,
            iterations=iterations,
            seed=seed,
            data_dir=data_dir,
            output_dir=output_dir,
            report_to=report_to,
            resume=resume,
        )
        if reuse and finished(resume, cfg) and (Path(resume) / "summary.json").is_file():
            return json.loads((Path(resume) / "summary.json").read_text(encoding="utf-8"))
        registered = callable(reward) and name not in rewards.REWARDS
        if registered:  # a local function or lambda cannot be imported by name: lend it the name for this run
            rewards.REWARDS[name] = reward
        try:
            return train_run(cfg, resume, show=show)
        finally:
            if registered:
                rewards.REWARDS.pop(name, None)


def evaluate(
    checkpoint: str | None = None,
    task: str | None = None,
    model: str | None = None,
    split: str = "test",
    limit: int | None = None,
    output_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    data_dir: str | None = None,
    overwrite: bool = False,
    show: bool = False,
    *,
    batch_size: int | None = None,
    seed: int | None = None,
    predictions: str | None = None,
    model_name: str | None = None,
):
    """Evaluate a run (``checkpoint``: its directory), a model as it is (``task`` and ``model``), or generations made
    elsewhere (``task``, ``predictions``: a JSONL file with a "generation" per example, and ``model_name``) on
    ``split``, write results.json and samples.jsonl (default: ``RUN/eval/<split>/``) and return the
    ``grue.results.Results``, as ``grue eval`` does. ``overrides``: ``{"eval.batch_size": 8}``, keys of run,
    generation and eval; ``batch_size`` and ``seed`` are ``grue eval``'s options of those names."""
    from grue.errors import api_spelling
    from grue.evaluation import evaluate as run
    from grue.models import quiet_libraries

    with api_spelling():
        quiet_libraries()
        _, results = run(
            checkpoint=checkpoint,
            task=task,
            model=model,
            split=split,
            limit=limit,
            output_dir=output_dir,
            sets=_sets(overrides),
            data_dir=data_dir,
            overwrite=overwrite,
            show=show,
            batch_size=batch_size,
            seed=seed,
            predictions=predictions,
            model_name=model_name,
        )
    return results


def load_results(paths: str | Path | Iterable[str | Path]):
    """A pandas DataFrame with one row per results.json found in ``paths`` (files, or directories searched
    recursively), in path order: ``path``, ``task``, ``task_version``, ``split``, ``algorithm``, ``model``,
    ``seed``, ``kind``, ``evaluated``, then one column per metric (NaN where a file lacks it)."""
    from grue.frames import results_frame

    return results_frame(paths)
