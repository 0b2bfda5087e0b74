"""From results files to table rows and the overall GRUE score.

Per task, a row is one submission (its results files averaged over seeds) or one
reported file (a row of a paper's table). The overall score of an entry (a submission,
or one of the paper's algorithms) is

    task score  s_t = (x_t - z_t) / (b_t - z_t)        (0 when b_t = z_t)
    overall     S   = mean of s_t over the GRUE tasks

where x_t is the entry's value of the task's headline metric (HEADLINE), z_t the zero-shot
reference (the worst zero-shot row of the task with the same model, else the worst row of
the task) and b_t the best row of the task, both taken over the *pool*: complete
submission rows and the paper's main-table rows. Best and worst follow the metric's
direction, so the formula also holds where lower is better. The GRUE tasks of the overall score are those whose
benchmark split is ``test`` (OVERALL_TASKS): a task scored on another split (ToTTo, whose test references are hidden,
on validation) cannot be normalised against the paper's test-split rows and is shown apart. An entry without a
results file for every one of them (``missing``), or whose results skipped a task's headline metric (``skipped``),
is incomplete: it is shown, with the mean over the tasks it has, but ranked below every complete one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from grue.leaderboard.comparable import algorithm_label
from grue.leaderboard.submissions import Submission
from grue.results import Results
from grue.tasks import builtin_tasks

HEADLINE = {t.name: t.headline for t in builtin_tasks() if t.headline}
"""Task -> the one metric the overall score reads (``headline`` in its task.yaml). A task without one is not part of
the overall score."""
BENCHMARK_SPLIT = {t.name: t.benchmark_split for t in builtin_tasks()}
"""Task -> the split the leaderboard takes results of (``benchmark_split`` in its task.yaml)."""
OVERALL_TASKS = tuple(t for t in sorted(HEADLINE) if BENCHMARK_SPLIT[t] == "test")
"""The tasks of the overall GRUE score: a headline metric and the test split as benchmark split."""


@dataclass
class Cell:
    """A metric of a row: ``mean`` over ``n`` seeds (or the reported value, n = 1), ``std`` the sample
    standard deviation over seeds (n - 1 in the denominator; None for one seed) or the printed std."""

    mean: float
    std: float | None
    n: int


@dataclass
class Row:
    """One line of a task table."""

    kind: str
    """``submission`` or ``reported``."""
    group: str
    """The overall entry it counts for: the submission's name, or the paper's algorithm."""
    ref: str
    """The submission's name, or the reported file's path in the reported folder."""
    task: str
    algorithm: str
    model: str
    split: str
    cells: dict[str, Cell]
    skipped: dict[str, str] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    examples: int | None = None
    """Examples in the split (every seed scored all of them), or None for a reported row."""
    headline_skipped: str | None = None
    """Why the task's headline metric is absent from some of the row's files (their skip reason), else None."""
    in_pool: bool = False
    """Counts for the normalisation and the overall score."""
    note: str = ""
    """Reported rows: reward function, variant and table, as the paper names them."""
    source: str | None = None
    reward: str = ""
    """Reported rows: the paper's reward function ('' when the row names none)."""
    score: float | None = None
    """The task score (see :func:`row_scores`), set by ``make_board``; None without the headline metric."""
    version: str = ""
    """The task version of its results files."""
    config: dict = field(default_factory=dict)
    """The recorded config of its (first) results file: a grue run's settings, or a paper row's ``paper`` block."""
    raw_algorithm: str = ""
    """results.json's ``algorithm`` (``algorithm`` is the name shown: "NLPO (as published)" for mask_refresh paper)."""
    comparable_to: list[str] = field(default_factory=list)
    """Submission rows: the paper rows (reported files) it is comparable with (grue.leaderboard.comparable)."""
    not_comparable: list[str] = field(default_factory=list)
    """Submission rows: per paper row of its task and algorithm that it is not comparable with, the settings that differ."""


@dataclass
class Overall:
    """One line of an overall table."""

    kind: str
    group: str
    models: list[str]
    scores: dict[str, float]
    """Task -> task score, for the tasks the entry has."""
    score: float | None
    """Mean of ``scores`` (over the tasks it has); None when it has none."""
    complete: bool
    missing: list[str]
    """Overall tasks without any results file of the entry."""
    skipped: dict[str, str]
    """Overall task -> why its headline metric is absent: ``sentiment_score skipped: <reason>``."""
    rank: int | None = None
    """1 for the best complete entry; None when incomplete."""


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation) of n >= 1 values: sum(x)/n and sqrt(sum((x - mean)^2) / (n - 1)),
    the std None when n = 1."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))


def fsum_mean(values) -> float:
    """sum(values) / n, the sum exactly rounded (math.fsum): the same number whatever the values' order."""
    values = list(values)
    return math.fsum(values) / len(values)


def submission_rows(sub: Submission) -> list[Row]:
    """One row per task of ``sub``: each metric averaged over the seeds that computed it (a pandas group-by of the
    (task, metric, value) table of its results files; the reducer is ``mean_std``)."""
    import pandas as pd

    values = pd.DataFrame(
        [(e.results.task, name, m.value) for e in sub.entries for name, m in e.results.metrics.items()],
        columns=["task", "metric", "value"],
    )
    stats = values.groupby(["task", "metric"], sort=True)["value"].agg(lambda v: (*mean_std(v.tolist()), len(v)))
    by_task: dict[str, list[Results]] = {}
    for e in sub.entries:
        by_task.setdefault(e.results.task, []).append(e.results)
    rows = []
    for task, runs in sorted(by_task.items()):
        cells = {name: Cell(*stat) for (t, name), stat in stats.items() if t == task}
        skipped = {m: reason for r in runs for m, reason in sorted(r.skipped.items()) if m not in cells}
        gap = headline_gap(task, runs)
        rows.append(
            Row(
                "submission",
                sub.name,
                sub.name,
                task,
                algorithm_label(runs[0].algorithm, runs[0].config),
                runs[0].model.name,
                runs[0].split,
                cells,
                skipped,
                sorted(r.seed for r in runs),
                max(r.samples.total for r in runs),
                headline_skipped=gap,
                in_pool=task in OVERALL_TASKS and gap is None and HEADLINE[task] in cells,
                version=runs[0].task_version,
                config=runs[0].config,
                raw_algorithm=runs[0].algorithm,
            )
        )
    return rows


def headline_gap(task: str, runs: list[Results]) -> str | None:
    """Why the headline metric of ``task`` is absent from some of ``runs`` (a task's files of one entry): the first
    such file's skip reason, naming its seeds when others computed the metric; None when every file has it."""
    metric = HEADLINE.get(task)
    without = [r for r in runs if metric is not None and metric not in r.metrics]
    if not without:
        return None
    reason = without[0].skipped.get(metric) or "not in the results file"
    seeds = "" if len(without) == len(runs) else f" (seed {', '.join(str(r.seed) for r in without)} of {len(runs)})"
    return f"{reason}{seeds}"


def reported_row(rel: str, results: Results) -> Row:
    """A reported file as a row; its ``config.paper`` (written by leaderboard/tools/import_reported.py) gives
    the reward function, variant, table and whether it is one of the paper's main-table rows."""
    paper = results.config.get("paper") if isinstance(results.config.get("paper"), dict) else {}
    note = " · ".join(str(paper[k]) for k in ("reward", "variant", "short") if isinstance(paper.get(k), str))
    reward = paper["reward"] if isinstance(paper.get("reward"), str) else ""
    cells = {k: Cell(m.value, m.std, 1) for k, m in results.metrics.items()}
    return Row(
        "reported",
        results.algorithm,
        rel,
        results.task,
        results.algorithm,
        results.model.name,
        results.split,
        cells,
        dict(results.skipped),
        in_pool=paper.get("overall") is True and results.task in OVERALL_TASKS and results.split == "test",
        note=note,
        source=results.source,
        reward=reward,
        headline_skipped=headline_gap(results.task, [results]),
        version=results.task_version,
        config=results.config,
        raw_algorithm=results.algorithm,
    )


def references(rows: list[Row], metric: str, higher: bool) -> tuple[float, float, dict[str, float]] | None:
    """(best, worst, worst zero-shot value by model) of ``metric`` over the pool rows of one task; None when
    no pool row has it."""
    pool = [r for r in rows if r.in_pool and metric in r.cells]
    if not pool:
        return None
    better = max if higher else min
    worse = min if higher else max
    values = [r.cells[metric].mean for r in pool]
    zero: dict[str, float] = {}
    for r in pool:
        if r.algorithm.lower() == "zero-shot":
            x = r.cells[metric].mean
            zero[r.model] = worse(zero[r.model], x) if r.model in zero else x
    return better(values), worse(values), zero


def task_score(x: float, zero: float, best: float) -> float:
    """(x - zero) / (best - zero): 0 at the zero-shot reference, 1 at the best row; 0 when best == zero."""
    return 0.0 if best == zero else (x - zero) / (best - zero)


def row_scores(rows: list[Row], higher_is_better: dict[str, bool]) -> dict[int, float]:
    """id(row) -> task score, for every test-split row with its task's headline metric (pool or not), of the
    overall tasks (OVERALL_TASKS) only."""
    out = {}
    for task in sorted({r.task for r in rows} & set(OVERALL_TASKS)):
        metric = HEADLINE[task]
        task_rows = [r for r in rows if r.task == task and r.split == "test"]
        refs = references(task_rows, metric, higher_is_better.get(metric, True) is not False)
        if refs is None:
            continue
        best, worst, zero = refs
        for r in task_rows:
            if metric in r.cells:
                out[id(r)] = task_score(r.cells[metric].mean, zero.get(r.model, worst), best)
    return out


def overall(
    rows: list[Row], tasks: list[str], higher_is_better: dict[str, bool], scores: dict[int, float] | None = None
) -> list[Overall]:
    """The overall entries, ranked: complete ones by score (best first), then incomplete ones by score.

    A submission scores on every overall task it has (an entry of a submission with none of them is still listed);
    a reported algorithm on its main-table rows (``in_pool``),
    averaging its rows of one task (the paper reports one row per reward function). ``scores``: the
    :func:`row_scores` of ``rows`` when already computed."""
    tasks = [t for t in tasks if t in OVERALL_TASKS]
    if scores is None:
        scores = row_scores(rows, higher_is_better)
    import pandas as pd

    entries = [r for r in rows if r.kind == "submission" or r.in_pool]
    table = pd.DataFrame(
        [(r.kind, r.group, r.task, scores[id(r)]) for r in entries if id(r) in scores and r.task in tasks],
        columns=["kind", "group", "task", "score"],
    )
    # a task's score of an entry: the mean over its rows of that task (a reported algorithm has one per reward)
    per_task = table.groupby(["kind", "group", "task"], sort=True)["score"].agg(fsum_mean)
    keys = pd.DataFrame([(r.kind, r.group) for r in entries], columns=["kind", "group"])
    out = []
    for (kind, group), positions in sorted(keys.groupby(["kind", "group"]).indices.items()):
        members = [entries[i] for i in positions]
        task_scores = {t: float(v) for (k, g, t), v in per_task.items() if (k, g) == (kind, group)}
        missing = [t for t in tasks if not any(r.task == t for r in members)]
        skipped = {
            r.task: f"{HEADLINE[r.task]} skipped: {r.headline_skipped}"
            for r in sorted(members, key=lambda r: r.ref)
            if r.task in tasks and r.headline_skipped is not None
        }
        score = fsum_mean(task_scores.values()) if task_scores else None
        out.append(
            Overall(
                kind,
                group,
                sorted({r.model for r in members}),
                task_scores,
                score,
                not missing and not skipped,
                missing,
                dict(sorted(skipped.items())),
            )
        )
    out.sort(key=lambda o: (not o.complete, -o.score if o.score is not None else math.inf, o.group))
    # ranks of the complete entries of each kind: 1 for the best, ties share the better rank, entries without a
    # score after the others (all 0 when none of the kind has a score)
    ranked = pd.DataFrame(
        [(i, o.kind, o.score) for i, o in enumerate(out) if o.complete], columns=["i", "kind", "score"]
    )
    ranked["score"] = ranked["score"].astype(float)
    ranked["rank"] = ranked.groupby("kind")["score"].rank(method="min", ascending=False, na_option="bottom")
    scored = ranked.groupby("kind")["score"].transform(lambda v: v.notna().any())
    for i, rank, any_score in zip(ranked["i"], ranked["rank"], scored):
        out[i].rank = int(rank) if any_score else 0
    return out
