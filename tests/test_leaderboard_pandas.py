"""The leaderboard's pandas aggregation (issue 11) gives exactly what its hand-written loops gave: those loops are
kept here as the oracle (grue 48522bf grue/leaderboard/aggregate.py submission_rows and overall; since then, an entry
is incomplete for a missing task or a skipped headline metric instead of a partial split, its submission rows are on
each task's benchmark split, and the CSV has the provenance columns instead of ``partial``), and both run on the
example submission and the paper's reported rows."""

from __future__ import annotations

import math
from pathlib import Path

from grue.leaderboard.aggregate import OVERALL_TASKS, Cell, mean_std, overall, row_scores, submission_rows
from grue.leaderboard.board import make_board

REPO = Path(__file__).resolve().parent.parent


def loop_cells(sub) -> dict[str, dict[str, Cell]]:
    """task -> metric -> Cell, by the loops of 48522bf."""
    by_task: dict = {}
    for e in sub.entries:
        by_task.setdefault(e.results.task, []).append(e.results)
    out = {}
    for task, runs in sorted(by_task.items()):
        out[task] = {}
        for name in sorted({m for r in runs for m in r.metrics}):
            values = [r.metrics[name].value for r in runs if name in r.metrics]
            out[task][name] = Cell(*mean_std(values), len(values))
    return out


def loop_overall(rows, tasks, scores) -> list[tuple]:
    """(kind, group, task scores, score, rank) of each overall entry, by the loops of 48522bf."""
    tasks = [t for t in tasks if t in OVERALL_TASKS]
    groups: dict = {}
    for r in rows:
        if r.kind == "submission" or r.in_pool:
            groups.setdefault((r.kind, r.group), []).append(r)
    out = []
    for (kind, group), members in sorted(groups.items()):
        per_task: dict = {}
        for r in members:
            if id(r) in scores and r.task in tasks:
                per_task.setdefault(r.task, []).append(scores[id(r)])
        task_scores = {t: math.fsum(v) / len(v) for t, v in sorted(per_task.items())}
        complete = all(any(r.task == t for r in members) for t in tasks) and not any(
            r.headline_skipped for r in members if r.task in tasks
        )
        score = math.fsum(task_scores.values()) / len(task_scores) if task_scores else None
        out.append([kind, group, task_scores, score, complete, None])
    out.sort(key=lambda o: (not o[4], -o[3] if o[3] is not None else math.inf, o[1]))
    for kind in ("submission", "reported"):
        rank, previous = 0, None
        for i, o in enumerate(o for o in out if o[0] == kind and o[4]):
            if o[3] != previous:
                rank, previous = i + 1, o[3]
            o[5] = rank
    return [(k, g, t, s, r) for k, g, t, s, _, r in out]


def test_pandas_aggregation_equals_the_loops_it_replaced(tmp_path):
    board = make_board(REPO / "leaderboard" / "examples", REPO / "leaderboard" / "reported", "examples", "reported")
    assert board.submissions, "the example submission is read"
    for sub in board.submissions:
        assert {r.task: r.cells for r in submission_rows(sub)} == loop_cells(sub)
    hib = {k: v is not False for k, v in board.directions.items()}  # as make_board reads them
    scores = row_scores(board.rows, hib)
    got = [(o.kind, o.group, o.scores, o.score, o.rank) for o in overall(board.rows, list(board.tasks), hib, scores)]
    assert got == loop_overall(board.rows, list(board.tasks), scores) and len(got) > 3


def loop_csv(board) -> str:
    """leaderboard.csv by the csv.writer loops of 48522bf grue/leaderboard/export.py csv_text."""
    import csv
    import io

    from grue.leaderboard.export import _text
    from grue.leaderboard.provenance import NOT_RECORDED

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "section",
            "task",
            "kind",
            "entry",
            "algorithm",
            "model",
            "split",
            "seeds",
            "metric",
            "mean",
            "std",
            "n",
            "command",
            "settings",
            "device_hours",
            "benchmark_seeds",
            "comparable_to",
        ]
    )
    for o in board.ranking:  # the example has no benchmark block: "not recorded" for a submission, else empty
        prov = [NOT_RECORDED if o.kind == "submission" else "", "", "", "", ""]
        base = ["overall", "", o.kind, _text(o.group), "", _text(", ".join(o.models)), "test", ""]
        for t, s in o.scores.items():
            w.writerow(base[:1] + [t] + base[2:] + ["task_score", repr(s), "", ""] + prov)
        w.writerow(base + ["overall_score", "" if o.score is None else repr(o.score), "", ""] + prov)
    for r in sorted(board.rows, key=lambda r: (r.task, r.kind, r.split, r.ref)):
        prov = [
            NOT_RECORDED if r.kind == "submission" else "",
            "",
            "",
            "",
            "" if r.kind != "submission" else "; ".join(r.comparable_to) or "none",
        ]
        base = [
            "task",
            r.task,
            r.kind,
            _text(r.ref),
            _text(r.algorithm),
            _text(r.model),
            r.split,
            " ".join(map(str, r.seeds)),
        ]
        if r.score is not None:
            w.writerow(base + ["task_score", repr(r.score), "", ""] + prov)
        for name, c in sorted(r.cells.items()):
            w.writerow(base + [name, repr(c.mean), "" if c.std is None else repr(c.std), str(c.n)] + prov)
    return buf.getvalue()


def test_pandas_csv_equals_the_loops_it_replaced_even_for_awkward_text():
    """The CSV export is pandas' to_csv of a long frame; quoting (commas, quotes, line breaks) and the
    formula guard come out as the csv.writer loops wrote them."""
    import dataclasses

    from grue.leaderboard.export import csv_text, long_frame

    board = make_board(REPO / "leaderboard" / "examples", REPO / "leaderboard" / "reported", "examples", "reported")
    assert csv_text(board) == loop_csv(board)
    awkward = ['a, "quoted"\nname', "=1+1", " lead", "", "ü-€"]
    board.rows = [
        dataclasses.replace(r, ref=awkward[i % len(awkward)], model=awkward[(i + 1) % len(awkward)])
        for i, r in enumerate(board.rows)
    ]
    assert csv_text(board) == loop_csv(board)
    import csv
    import io

    parsed = list(csv.reader(io.StringIO(csv_text(board))))
    assert len(parsed) == len(long_frame(board)) + 1 and {p[3] for p in parsed[1:] if p[0] == "task"} == set(
        awkward
    ) - {"=1+1"} | {"'=1+1"}
    board.rows, board.ranking = [], []
    assert csv_text(board) == loop_csv(board) == ",".join(long_frame(board).columns) + "\n"
