"""What ``grue train --dry-run`` checks besides the configuration: everything a run checks before its first
iteration that needs no model weights, in the order the run meets it, each a one-line error.

- the experiment tracker's package (``--report-to``) is installed;
- the reward resolves: a name of ``grue.rewards.REWARDS``, or ``package.module:function`` imported as the run
  imports it, with ``run.reward_model`` / ``run.reward_args`` bound to arguments it takes;
- the task's metric groups import (their modules, and the packages they import at the top);
- the training split's data is there and well-formed, when it is on disk (``--data-dir``/``$GRUE_DATA_DIR``, the
  built-in prompts, a task folder's own files): read as the run reads it, every row. Data the run would fetch
  from the Hugging Face Hub is not fetched;
- the run directory can be made: no file where a folder goes, not an earlier run's non-empty folder, and the
  nearest existing folder above it is writable.
"""

from __future__ import annotations

import os
from pathlib import Path

from grue.errors import GrueError, option


def check_metrics(groups: list[str], table: dict | None = None) -> None:
    """Import each metric group's function (of ``table``, default ``grue.metrics.METRICS``), as an evaluation would."""
    from grue.metrics import metric_function

    for group in groups:
        try:
            metric_function(group, table)
        except (ImportError, AttributeError) as e:
            raise GrueError(f"metric group '{group}' cannot be imported: {type(e).__name__}: {e}") from None


def data_is_local(cfg) -> bool:
    """Whether the run reads its training split from disk (and not from the Hub)."""
    from grue.tasks import find_task
    from grue.tasks.common import data_dir_from

    return bool(data_dir_from(cfg.run.data_dir) or cfg.run.builtin_prompts or not find_task(cfg.run.task).builtin)


def check_output_dir(output_dir: str | None) -> None:
    """The run directory ``output_dir`` (default: a new folder under ``runs/``) can be made and is no earlier run's."""
    from grue.run_log import unstarted

    path = Path(output_dir) if output_dir else Path("runs") / "new-run"
    if path.is_dir():
        if output_dir and any(path.iterdir()) and not unstarted(path):
            raise GrueError(
                f"run directory {path} already exists and is not empty; use {option('resume', str(path))} or another {option('output_dir')}"
            )
        return
    above = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), Path("."))
    if not above.is_dir():
        raise GrueError(
            f"cannot make the run directory {path}: {above} is a file, not a folder; pass {option('output_dir', 'DIR')}"
        )
    if not os.access(above, os.W_OK | os.X_OK):
        raise GrueError(
            f"cannot make the run directory {path}: {above} is not writable; pass {option('output_dir', 'DIR')}"
        )


def preflight(cfg, resume: str | None = None) -> None:
    """Run the checks of the module docstring on the resolved ``cfg``; ``resume``: the run directory resumed (its
    folder is not checked as a new one)."""
    from grue import trackers
    from grue.rewards import resolve_reward
    from grue.data import load_examples
    from grue.tasks import find_task

    trackers.check_available(cfg.run.report_to)
    resolve_reward(cfg.run.reward, cfg.run.reward_model, cfg.run.reward_args)
    check_metrics(find_task(cfg.run.task).metrics)
    if data_is_local(cfg):
        load_examples(cfg, cfg.run.train_split)
    if not resume:
        check_output_dir(cfg.run.output_dir)
