"""Everything a page shows, computed once: the loaded inputs, the rows, scores and ranking, and the
number formats shared by the HTML, Markdown and CSV writers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from grue.leaderboard.aggregate import (
    OVERALL_TASKS,
    Cell,
    Overall,
    Row,
    overall,
    reported_row,
    row_scores,
    submission_rows,
)
from grue.leaderboard.comparable import mark_comparable
from grue.leaderboard.reported import load_reported
from grue.leaderboard.scrub import scrub
from grue.leaderboard.submissions import (
    LeaderboardError,
    Submission,
    TaskInfo,
    known_tasks,
    load_submissions,
)
from grue.metrics import METRICS, reported_names

FORMULA = (
    "task score s = (x − z) / (b − z), overall S = mean of s over the GRUE tasks scored on their test split; x: the entry's "
    "headline metric on the task (mean over seeds), z: the worst zero-shot result of the task with the "
    "same model (else the worst result of the task), b: the best result of the task; z and b are taken "
    "over complete submissions and the paper's main-table rows, and follow the metric's direction "
    "(s = 0 when b = z)"
)
REPORTED_MARK = "reported in the paper, not re-run here"
OUT_OF_RANGE = (
    "A score below 0 means the entry did worse on the task than its zero-shot reference z; above 1, "
    "better than the best result b. Both happen: b and z are taken over complete submissions and the "
    "paper's main-table rows only, so an incomplete entry can beat b, and any row worse than "
    "zero-shot (one of the paper's, or a small model after a short run, like the example's tiny smoke "
    "models) falls below 0, far below when b and z are close. Such scores are marked †; the chart cuts "
    "them at its axis"
)
DIVERSITY = tuple(METRICS["diversity"].names)
"""The diversity and length statistics: shown apart from the task's other metrics, which measure quality."""


@dataclass
class Board:
    tasks: dict[str, TaskInfo]
    submissions: list[Submission]
    rows: list[Row]
    ranking: list[Overall]
    directions: dict[str, bool | None]
    """Metric name -> higher_is_better."""
    latest: str | None
    """The latest ``date`` of the submissions' results files (the only time the site shows); None without one."""

    def task_rows(self, task: str, kind: str, split: str | None = None) -> list[Row]:
        """Rows of one table (``split`` default: the task's benchmark split): submissions ordered by task score
        (best first), reported rows by file path."""
        split = split or self.tasks[task].benchmark_split
        rows = [r for r in self.rows if r.task == task and r.kind == kind and r.split == split]
        if kind == "submission":
            return sorted(rows, key=lambda r: (r.score is None, -(r.score or 0.0), r.ref))
        return sorted(rows, key=lambda r: r.ref)

    def overall_tasks(self) -> list[str]:
        """The tasks of the overall score: a headline metric and the test split as benchmark split."""
        return [t for t in self.tasks if t in OVERALL_TASKS]

    def benchmark(self, name: str):
        """The provenance (``benchmark`` block) of submission ``name``; None when assembled by hand."""
        return next((s.meta.benchmark for s in self.submissions if s.name == name), None)


def make_board(submissions_dir: Path, reported_dir: Path, show_submissions: str, show_reported: str) -> Board:
    """Load and check every input; LeaderboardError lists all problems when any input is invalid."""
    tasks = known_tasks()
    subs, problems = load_submissions(Path(submissions_dir), tasks, show_submissions)
    reported, more = load_reported(Path(reported_dir), tasks, show_reported)
    if problems or more:
        raise LeaderboardError(problems + more)
    rows = [r for s in subs for r in submission_rows(s)] + [reported_row(rel, res) for rel, res in reported]
    directions = dict(reported_names(METRICS))
    dates = [e.results.date for s in subs for e in s.entries]  # the paper's files' dates are no results
    for _, res in reported:
        for name, m in sorted(res.metrics.items()):
            directions.setdefault(name, m.higher_is_better)
    hib = {k: v is not False for k, v in directions.items()}
    mark_comparable(rows)
    scores = row_scores(rows, hib)
    for r in rows:
        r.score = scores.get(id(r))
    ranking = overall(rows, list(tasks), hib, scores)
    without_local_paths(subs, rows, ranking)
    return Board(tasks, subs, rows, ranking, directions, max(dates) if dates else None)


def without_local_paths(subs: list[Submission], rows: list[Row], ranking: list[Overall]) -> None:
    """Replace, in place, every local path in what the pages show (grue.leaderboard.scrub): the results' model,
    skip reasons, source and configuration, submission.yaml's text, and the rows and entries built from them.
    Done after scoring, so that two models on disk never merge into one zero-shot reference."""
    for s in subs:
        s.meta = replace(s.meta, **{k: scrub(getattr(s.meta, k)) for k in ("who", "model", "algorithm", "notes")})
        if s.meta.benchmark is not None:
            b = s.meta.benchmark
            s.meta.benchmark = replace(b, command=scrub(b.command), hardware=scrub(b.hardware), name=scrub(b.name))
        for e in s.entries:
            r = e.results
            e.results = replace(
                r,
                algorithm=scrub(r.algorithm),
                model=replace(r.model, name=scrub(r.model.name)),
                skipped=scrub(r.skipped),
                source=scrub(r.source),
                notes=scrub(r.notes),
                config=scrub(r.config),
            )
    for r in rows:
        r.algorithm, r.model, r.skipped, r.note, r.source = (
            scrub(r.algorithm),
            scrub(r.model),
            scrub(r.skipped),
            scrub(r.note),
            scrub(r.source),
        )
    for o in ranking:
        o.models = sorted({scrub(m) for m in o.models})
        o.skipped = scrub(o.skipped)


def fmt(x: float | None) -> str:
    """A number as the tables print it: 3 decimals (0 from 1000 on); '—' for a missing one. A value that
    rounds to zero prints without a sign (never '-0.000')."""
    if x is None:
        return "—"
    text = f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


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
    return [head(m, h) for m, h in info.metrics.items()]


def head(metric: str, higher: bool | None) -> str:
    """A metric column's header: 'name ↑' (↓ lower is better; no arrow when descriptive)."""
    return f"{metric} {arrow(higher)}".strip()


def out_of_range(score: float | None) -> bool:
    """True for a task or overall score outside [0, 1] (see OUT_OF_RANGE)."""
    return score is not None and not 0.0 <= round(score, 3) <= 1.0  # as printed: 1.0000001 shows 1.000


def examples_text(row: Row) -> str:
    """The examples of the split a submission row's seeds each scored in full ('500'); '' for a reported row."""
    return "" if row.examples is None else str(row.examples)


def status(o: Overall) -> str:
    """'complete', or why the entry is not ranked: the overall tasks it has no results file of ('missing ...'), and
    each task whose headline metric its results skipped, with the reason."""
    if o.complete:
        return "complete"
    why = (["missing " + ", ".join(o.missing)] if o.missing else []) + [f"{t}: {text}" for t, text in o.skipped.items()]
    return "incomplete: " + "; ".join(why)
