"""Experiment trackers (``run.report_to``): TensorBoard or Weights & Biases, through accelerate's tracker classes.

The main process opens them once the run directory is known, logs each metrics.jsonl row under the same names
(step = iteration) and a table of the iteration's sample generations (a wandb Table; TensorBoard: a markdown
table in its text tab), and closes them at the end. TensorBoard writes into ``RUN/tensorboard/``; wandb into
``$WANDB_DIR``, else ``RUN/``, in the mode ``WANDB_MODE`` says (``offline``: no network, ``wandb sync`` later).
"""

from __future__ import annotations

import os
from pathlib import Path

from grue.errors import GrueError, option

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""Each tracker's package: what ``pip install`` needs (all of them: ``pip install 'grue[trackers]'``)."""


def check_available(name: str) -> None:
    """A one-line error when tracker ``name`` (other than ``none``) is not installed, naming the package."""
    if name == "none":
        return
    import importlib

    try:
        importlib.import_module(PACKAGES[name])
    except ImportError:
        raise GrueError(
            f"{option('report_to', name)} needs the {PACKAGES[name]} package, which is not installed: "
            f"pip install {PACKAGES[name]} (or pip install 'grue[trackers]')"
        ) from None


def flat_config(config: dict, prefix: str = "") -> dict:
    """``{"run": {"seed": 0}}`` -> ``{"run.seed": 0}``; values other than numbers, strings and booleans become
    strings (TensorBoard's hyper-parameters accept only those)."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat_config(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def open_tracker(name: str, run_dir: Path, config: dict):
    """The accelerate tracker of ``name`` for a run, started, with the run's ``config`` recorded; None for ``none``.
    Call on the main process only."""
    if name == "none":
        return None
    check_available(name)
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    if name == "tensorboard":
        tracker = TensorBoardTracker("tensorboard", str(run_dir))
    else:
        kwargs = {"name": Path(run_dir).name}
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(run_dir)
        tracker = WandBTracker("grue", **kwargs)
    if hasattr(tracker, "start"):  # accelerate >= 1.4 starts a tracker apart from building it
        tracker.start()
    tracker.store_init_configuration(flat_config(config))
    return tracker


def markdown_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """``rows`` as a markdown table (TensorBoard's text tab renders it); ``|`` and newlines escaped."""

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |\n" for r in rows)


SAMPLE_COLUMNS = ("iteration", "prompt", "completion", "score")


def log(tracker, metrics: dict, samples: list[dict]) -> None:
    """One iteration: the metrics row (step = its iteration), and its sample generations as a table."""
    if tracker is None:
        return
    step = int(metrics["iteration"])
    tracker.log({k: v for k, v in metrics.items() if k != "iteration"}, step=step)
    if not samples:
        return
    if tracker.name == "wandb":
        tracker.log_table(
            "samples",
            columns=list(SAMPLE_COLUMNS),
            data=[[r.get(c) for c in SAMPLE_COLUMNS] for r in samples],
            step=step,
        )
    else:
        tracker.writer.add_text("samples", markdown_table(samples, SAMPLE_COLUMNS), global_step=step)
        tracker.writer.flush()


def close(tracker) -> None:
    if tracker is not None:
        tracker.finish()
