"""Results files as a pandas DataFrame (``grue.load_results``, ``grue results``). Light: pandas, no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from grue.errors import GrueError
from grue.results import FILENAME, load_results

COLUMNS = ["path", "task", "task_version", "split", "algorithm", "model", "seed", "kind", "evaluated"]
"""The columns before the metrics, in order."""


def results_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The results files of ``paths``: each file as given, each directory's results.json files (recursively),
    sorted within a directory; a path that does not exist is a one-line error."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            out += sorted(item.rglob(FILENAME))
        elif item.is_file():
            out.append(item)
        else:
            raise GrueError(f"{item}: no such file or directory; pass results.json files or directories holding them")
    return out


def results_frame(paths: str | Path | Iterable[str | Path]):
    """One row per results file of ``paths`` (see ``results_files``): the ``COLUMNS``, then one column per metric
    name, sorted (NaN where a file lacks the metric)."""
    import pandas as pd

    rows = []
    for path in results_files(paths):
        r = load_results(path)
        rows.append(
            {
                "path": str(path),
                "task": r.task,
                "task_version": r.task_version,
                "split": r.split,
                "algorithm": r.algorithm,
                "model": r.model.name,
                "seed": r.seed,
                "kind": r.kind,
                "evaluated": r.samples.evaluated if r.samples else None,
                **{k: m.value for k, m in r.metrics.items()},
            }
        )
    frame = pd.DataFrame(rows)
    metrics = sorted(c for c in frame.columns if c not in COLUMNS)
    return frame.reindex(columns=COLUMNS + metrics)


def markdown_table(frame) -> str:
    """``frame`` as a Markdown table (pipes in text escaped; floats with 4 decimals; missing values empty)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.4f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
