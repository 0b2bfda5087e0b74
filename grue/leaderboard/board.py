"""Everything a page shows, computed once: the loaded inputs, the rows, scores and ranking, and the
number formats shared by the HTML, Markdown and CSV writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grue.leaderboard.aggregate import (
    HEADLINE,
    Cell,
    Overall,
    Row,
    overall,
    reported_row,
    row_scores,
    submission_rows,
)
from grue.leaderboard.reported import load_reported
from grue.leaderboard.submissions import (
    LeaderboardError,
    Submission,
    TaskInfo,
    known_tasks,
    load_submissions,
)
from grue.metrics import METRICS, reported_names

FORMULA = ("task score s = (x − z) / (b − z), overall S = mean of s over the GRUE tasks; x: the entry's "
           "headline metric on the task (mean over seeds), z: the worst zero-shot result of the task with the "
           "same model (else the worst result of the task), b: the best result of the task; z and b are taken "
           "over complete submissions and the paper's main-table rows, and follow the metric's direction "
           "(s = 0 when b = z)")
REPORTED_MARK = "reported in the paper, not re-run here"


@dataclass
class Board:
    tasks: dict[str, TaskInfo]
    submissions: list[Submission]
    rows: list[Row]
    ranking: list[Overall]
    directions: dict[str, bool | None]
    """Metric name -> higher_is_better."""
    latest: str | None
    """The latest ``date`` of the input files (the only time the site shows)."""

    def task_rows(self, task: str, kind: str, split: str = "test") -> list[Row]:
        """Rows of one table: submissions ordered by task score (best first), reported rows by file path."""
        rows = [r for r in self.rows if r.task == task and r.kind == kind and r.split == split]
        if kind == "submission":
            return sorted(rows, key=lambda r: (r.score is None, -(r.score or 0.0), r.ref))
        return sorted(rows, key=lambda r: r.ref)

    def overall_tasks(self) -> list[str]:
        return [t for t in self.tasks if t in HEADLINE]


def make_board(submissions_dir: Path, reported_dir: Path, show_submissions: str, show_reported: str) -> Board:
    """Load and check every input; LeaderboardError lists all problems when any input is invalid."""
    tasks = known_tasks()
    subs, problems = load_submissions(Path(submissions_dir), tasks, show_submissions)
    reported, more = load_reported(Path(reported_dir), tasks, show_reported)
    if problems or more:
        raise LeaderboardError(problems + more)
    rows = [r for s in subs for r in submission_rows(s)] + [reported_row(rel, res) for rel, res in reported]
    directions = dict(reported_names(METRICS))
    dates = [e.results.date for s in subs for e in s.entries] + [res.date for _, res in reported]
    for _, res in reported:
        for name, m in sorted(res.metrics.items()):
            directions.setdefault(name, m.higher_is_better)
    hib = {k: v is not False for k, v in directions.items()}
    scores = row_scores(rows, hib)
    for r in rows:
        r.score = scores.get(id(r))
    return Board(tasks, subs, rows, overall(rows, list(tasks), hib, scores), directions, max(dates) if dates else None)


def fmt(x: float | None) -> str:
    """A number as the tables print it: 3 decimals (0 from 1000 on); '—' for a missing one."""
    if x is None:
        return "—"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3f}"


def fmt_cell(cell: Cell | None, seeds: int | None = None) -> str:
    """'mean ± std' (std when known), with '(n=k)' when only k of the row's ``seeds`` computed the metric."""
    if cell is None:
        return "—"
    text = fmt(cell.mean) + (f" ± {fmt(cell.std)}" if cell.std is not None else "")
    return text + (f" (n={cell.n})" if seeds is not None and cell.n != seeds else "")


def arrow(higher: bool | None) -> str:
    return {True: "↑", False: "↓"}.get(higher, "")


def metric_heads(info: TaskInfo) -> list[str]:
    """The metric columns' headers of a task table: 'name ↑' (↓ lower is better; no arrow when descriptive)."""
    return [f"{m} {arrow(h)}".strip() for m, h in info.metrics.items()]


def examples_text(row: Row) -> str:
    """'16 of 500 (partial)', '500', or '' for a reported row."""
    if row.examples is None:
        return ""
    fewest, total = row.examples
    return f"{fewest} of {total} (partial)" if row.partial else str(total)


def status(o: Overall) -> str:
    """'complete', or why the entry is not ranked."""
    if o.complete:
        return "complete"
    why = []
    if o.missing:
        why.append("missing " + ", ".join(o.missing))
    if o.partial:
        why.append("partial evaluation of " + ", ".join(o.partial))
    return "incomplete: " + "; ".join(why)
