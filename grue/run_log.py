"""The run directory, metrics.jsonl, samples.jsonl and the live terminal display.

Metric names are stable; each metrics.jsonl line is one iteration:

- ``iteration``, ``world_size``, ``samples`` (seen so far, all processes)
- ``reward/mean``, ``reward/std``: the task score of the rollout's completions
- ``reward/total``: mean of the summed per-token rewards (score plus KL penalty)
- ``kl/mean``: mean per-token KL(policy || reference); ``kl/coef``: the beta used; ``kl/support_logmass`` (PPO, NLPO,
  A2C): mean ``log p(a) - log q(a)`` of the sampled tokens, p the raw policy, q the distribution sampled from (at
  temperature 1 the log of p's probability on q's support: 0 without top-k, top-p, mask or EOS ban; grue.stability)
- ``loss/policy``, ``loss/value``, ``loss/total``
- ``policy/entropy``, ``policy/clipfrac``, ``policy/approx_kl``, ``policy/grad_norm``
- ``value/mean``, ``value/clipfrac``, ``response/length``
- ``loss/kl``: GRPO's KL term to the reference (before ``kl/coef``); ``trpo/kl``, ``trpo/accepted``,
  ``trpo/step_fraction``: TRPO's measured mean KL to the old policy, whether the line search took a step,
  and the fraction of the full step it took (0 when none). Algorithms without a critic log no ``value/*``
- ``time/rollout_s``, ``time/update_s``, ``tokens_per_s`` (generated tokens, all
  processes, per second of rollout plus update)
- ``warnings/negative_kl``, ``warnings/kl_over_target``, ``warnings/entropy_collapse``, ``warnings/clipfrac_high``,
  ``warnings/length_hacking``, ``warnings/value_loss_growing``: 1 when the iteration raised that stability
  warning, else 0 (grue.stability documents each check and its ``run.warn_*`` threshold)
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from grue.files import atomic_write_text
from grue.errors import GrueError, option
from grue.stability import raised

SHOWN = ("reward/mean", "kl/mean", "kl/coef", "loss/policy", "loss/value", "policy/entropy")


STARTED_FILES = ("config.yaml", "metrics.jsonl", "steps.jsonl", "samples.jsonl")
"""What grue writes into a run directory before its first iteration is logged (the logs, still empty)."""
_made: list[tuple[Path, bool]] = []
"""Run directories ``new_run_dir`` opened in this process, and whether it made the folder itself."""


def new_run_dir(output_dir: str, task: str, algo: str, seed: int) -> Path:
    """A fresh run directory. An existing non-empty one is refused, never overwritten, unless it holds only a run
    that never completed an iteration (``unstarted``): that one is started again."""
    path = Path(output_dir or f"runs/{task}-{algo}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    if path.exists() and any(path.iterdir()) and not unstarted(path):
        raise GrueError(
            f"run directory {path} already exists and is not empty; use {option('resume', str(path))} or another {option('output_dir')}"
        )
    made = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    _made.append((path, made))
    return path


def unstarted(path: Path, logs_ok: bool = False) -> bool:
    """Whether ``path`` holds a run that never completed an iteration, and nothing else: a config.yaml that grue
    wrote (it records ``grue_version`` and ``world_size``), empty logs, temporary checkpoint folders; no metrics
    line and no checkpoint. ``logs_ok``: the logs may hold lines (a run stopped before its first checkpoint)."""
    path = Path(path)
    for p in path.iterdir():
        if p.name.startswith(".checkpoint-") and p.is_dir():
            continue
        if (
            p.name not in STARTED_FILES
            or not p.is_file()
            or (p.name != "config.yaml" and p.stat().st_size and not logs_ok)
        ):
            return False
    try:
        saved = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(saved, dict) and {"grue_version", "world_size"} <= set(saved)


def discard_unstarted_runs(since: int = 0) -> list[Path]:
    """After a failure: remove what grue wrote into the run directories opened in this process (from the
    ``since``-th on) that never completed an iteration, and each folder it made itself once empty. Nothing
    else in them is touched. Returns the folders cleaned."""
    cleaned = []
    for path, made in _made[since:]:
        if not path.is_dir() or not unstarted(path):
            continue
        for p in path.iterdir():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if made and not any(path.iterdir()):
            path.rmdir()
        cleaned.append(path)
    del _made[since:]
    return cleaned


def cleans_up_unstarted(train):
    """Decorate an algorithm's ``train(cfg, resume_dir, show)``: when it fails (an error, Ctrl-C) before the run
    it started logged an iteration, what grue wrote for that run is removed (``discard_unstarted_runs``), so
    the same command can simply be run again. A resumed run is never touched."""

    @functools.wraps(train)
    def wrapper(*args, **kwargs):
        since = len(_made)
        try:
            return train(*args, **kwargs)
        except BaseException:
            discard_unstarted_runs(since)
            raise

    return wrapper


def write_config(run_dir: Path, config: dict) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def truncate_jsonl(path: Path, last_iteration: int) -> None:
    """Drop lines past ``last_iteration`` (a resumed run rewrites them), and a last line torn by a kill mid-write."""
    if path.is_file():
        lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l]
        if lines and not lines[-1].endswith("}"):
            lines.pop()  # cut off mid-write: every complete line is one JSON object
        keep = [l for l in lines if json.loads(l)["iteration"] <= last_iteration]
        atomic_write_text(path, "".join(l + "\n" for l in keep))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


def learning_summary(rewards: list[float]) -> dict:
    """Mean reward of the first and the last 20% of iterations (at least one each)."""
    n = max(1, len(rewards) // 5)
    first, last = sum(rewards[:n]) / n, sum(rewards[-n:]) / n
    return {"reward/first_20pct": first, "reward/last_20pct": last, "reward/gain": last - first}


def table_rows(history: list[dict], rows: int) -> list[dict | None]:
    """The iterations the live table shows: all while they fit in ``rows``, then the first (the start to compare
    with), a gap (None) and the latest ``rows - 2``."""
    if len(history) <= rows:
        return list(history)
    return [history[0], None, *history[len(history) - (rows - 2) :]]


class Display:
    """A rich progress bar and a table of the first and the recent iterations; one plain line each when not a terminal."""

    def __init__(self, total: int, start: int, title: str, enabled: bool = True, rows: int = 10):
        self.enabled, self.rows, self.history = enabled, rows, []
        self.console = Console(stderr=False)
        self.live_mode = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn(f"[bold]{title}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("train", total=total, completed=start)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4) if self.live_mode else None

    def _render(self):
        table = Table(
            box=None,
            header_style="bold cyan",
            caption=self._warned(),
            caption_style="bold yellow",
            caption_justify="left",
        )
        for col in ("iter",) + SHOWN:
            table.add_column(col, justify="right")
        for m in table_rows(self.history, self.rows):
            if m is None:
                table.add_row("…", *("" for _ in SHOWN))
            else:
                table.add_row(str(m["iteration"]), *(f"{m.get(k, float('nan')):.4g}" for k in SHOWN))
        return Group(self.progress, table)

    def _warned(self) -> str | None:
        """The stability warnings the latest iteration raised (grue.stability), one line, or None."""
        names = raised(self.history[-1]) if self.history else []
        return f"warnings (iteration {self.history[-1]['iteration']}): {', '.join(names)}" if names else None

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def update(self, metrics: dict) -> None:
        if not self.enabled:
            return
        self.history.append(metrics)
        self.progress.update(self.task, completed=metrics["iteration"])
        if self.live:
            self.live.update(self._render())
        else:
            parts = " ".join(f"{k}={metrics[k]:.4g}" for k in SHOWN if k in metrics)
            warned = f" warnings: {', '.join(raised(metrics))}" if raised(metrics) else ""
            print(
                f"iter {metrics['iteration']}: {parts} ({metrics['time/rollout_s'] + metrics['time/update_s']:.1f}s){warned}",
                flush=True,
            )

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)
        sys.stdout.flush()
