"""Pictures of runs: the training curves of metrics.jsonl, one panel per metric, several runs overlaid.

``grue plot RUN [RUN...]`` draws them. Every RL run draws its own ``plots/curves.png`` at its checkpoints
(grue.session.Session.save) and at the end when rows came after the last checkpoint, unless the environment
variable ``GRUE_PLOTS`` is ``0`` (the test suite sets it: its hundred short runs would each pay for a picture).
matplotlib is imported inside the functions (``grue --help`` stays light) and draws through its Agg canvas,
without pyplot: no window, no global figure state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from grue.errors import GrueError
from grue.files import plain_mode

PANELS = (
    ("reward/mean", "reward"),
    ("kl/mean", "KL"),
    ("kl/coef", "KL coefficient"),
    ("policy/entropy", "entropy"),
    ("policy/clipfrac", "clip fraction"),
    ("response/length", "response length"),
)
"""The metrics drawn (metrics.jsonl names) and their panel titles, in reading order (2 rows of 3)."""


def curves_enabled() -> bool:
    """Whether runs draw their own plots/curves.png: yes unless ``GRUE_PLOTS=0``."""
    return os.environ.get("GRUE_PLOTS", "1").strip() != "0"


def read_run(run_dir: Path) -> list[dict]:
    """The metrics.jsonl rows of a run directory, or a one-line error saying what is missing. A line torn by a
    kill mid-write (the last one) is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise GrueError(f"{run_dir} is not a directory; pass run directories made by `grue train`")
    if not path.is_file():
        raise GrueError(
            f"{run_dir} is not a run directory (no metrics.jsonl); pass run directories made by `grue train`"
        )
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    rows = [r for r in rows if isinstance(r, dict) and "iteration" in r]
    if not rows:
        raise GrueError(f"{path} holds no iteration yet; nothing to plot")
    return rows


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Iterations and values of ``key`` in ``rows`` (rows without it are skipped)."""
    pts = [(r["iteration"], float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def flat_limits(values: list[float]) -> tuple[float, float] | None:
    """The y range of a panel whose values are all one value ``v`` (a fixed KL coefficient, a clip fraction of 0):
    from 0 to ``2v`` (``-1..1`` for 0), so that the line sits mid-panel at its true scale; None for a panel that
    varies, which matplotlib scales. (matplotlib's own range for a flat line is ``v`` +- 4%, e.g. 0.0096-0.0104,
    which reads as a varying quantity.)"""
    if not values or max(values) != min(values):
        return None
    v = values[0]
    return (-1.0, 1.0) if v == 0 else (min(0.0, 2 * v), max(0.0, 2 * v))


def figure(runs: dict[str, list[dict]]):
    """The matplotlib Figure of the ``PANELS`` (2 x 3 grid), each run a line labelled with its name."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(13, 7))
    fig.subplots_adjust(
        left=0.06, right=0.98, top=0.95, bottom=0.14, hspace=0.35, wspace=0.25
    )  # fixed: a layout engine doubles the cost
    axes = fig.subplots(2, 3).flatten()
    for ax, (key, title) in zip(axes, PANELS):
        drawn: list[float] = []
        for name, rows in runs.items():
            xs, ys = series(rows, key)
            if xs:
                ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=name)
                drawn += ys
        limits = flat_limits(drawn)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = next(
            (a.get_legend_handles_labels() for a in axes if a.get_legend_handles_labels()[0]), ([], [])
        )
    if handles:
        fig.legend(handles, labels, loc="lower center", ncols=min(len(labels), 4), frameon=False)
    return fig


def draw(runs: dict[str, list[dict]], out: Path) -> Path:
    """One PNG of ``figure(runs)``, written atomically."""
    fig = figure(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        os.chmod(tmp, plain_mode())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def run_names(dirs: list[Path]) -> list[str]:
    """Legend names: each directory's name, or its path when two runs share a name (numbered if that is shared too)."""
    names = [Path(d).name or str(d) for d in dirs]
    names = [str(d) if names.count(n) > 1 else n for d, n in zip(dirs, names)]
    return [f"{n} ({i + 1})" if names.count(n) > 1 else n for i, n in enumerate(names)]


def plot_runs(dirs: list[str | Path], out: str | Path) -> Path:
    """``grue plot``: the curves of the runs in ``dirs`` overlaid in one PNG at ``out``."""
    dirs = [Path(d) for d in dirs]
    runs = {name: read_run(d) for name, d in zip(run_names(dirs), dirs)}
    return draw(runs, Path(out))


def write_curves(run_dir: Path) -> Path | None:
    """A run's own ``plots/curves.png``; None while it has no iteration, or when ``GRUE_PLOTS=0``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not curves_enabled() or not path.is_file() or not path.stat().st_size:
        return None
    return draw({Path(run_dir).name: read_run(run_dir)}, Path(run_dir) / "plots" / "curves.png")
