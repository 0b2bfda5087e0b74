"""Reported rows: numbers copied from a paper, stored as results files of kind ``reported``.

They live in ``leaderboard/reported/<task>/*.json`` (written by
``leaderboard/tools/import_reported.py``) and are checked like submissions where it
applies: a valid results file, kind ``reported``, a known task at its current version,
in the folder of its task. Missing cells stay missing: no metric is required.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from grue.leaderboard.safe_files import link_below, read_limited, walk
from grue.leaderboard.submissions import TaskInfo, check_task
from grue.results import MAX_BYTES, Results, ResultsError, from_bytes

MAX_REPORTED_FILES = 2000


def check_reported(results: Results, rel: str, source: str, tasks: dict[str, TaskInfo]) -> list[str]:
    """The rules of a reported file beyond the schema."""
    out = []
    if results.kind != "reported":
        out.append(
            f'kind: must be "reported" in the reported folder (re-run results are submissions), got "{results.kind}"'
        )
    out += check_task(results, tasks, fix="regenerate with leaderboard/tools/import_reported.py")
    if PurePosixPath(rel).parts[0] != results.task:
        out.append(f'task: "{results.task}" is not the folder it is in ({PurePosixPath(rel).parts[0]}/)')
    return [f"{source}: {p}" for p in out]


def load_reported(
    root: Path, tasks: dict[str, TaskInfo], show_root: str
) -> tuple[list[tuple[str, Results]], list[str]]:
    """Every reported file below ``root`` as (path in root, Results), sorted by path, and all problems.
    A missing folder holds no reported rows."""
    root = Path(root)
    if not root.exists():
        return [], []
    if link_below(root.parent, root) is not None or not root.is_dir():
        return [], [f"{show_root}: (folder): not a folder (or a symbolic link)"]
    files, out = walk(root, show_root, MAX_REPORTED_FILES)
    rows = []
    for f in (f for f in files if not f.link):
        path, source = PurePosixPath(f.rel), f"{show_root}/{f.rel}"
        if path.suffix != ".json":
            if path.name != "README.md":
                out.append(f"{source}: (file): not a reported results file (<task>/<name>.json)")
            continue
        if len(path.parts) != 2:
            out.append(f"{source}: (file): reported files are <task>/<name>.json")
            continue
        try:
            results = from_bytes(read_limited(root / f.rel, MAX_BYTES), source)
        except ResultsError as e:
            out += e.problems
            continue
        except OSError as e:
            out.append(f"{source}: (file): cannot read it: {e.strerror or e}")
            continue
        problems = check_reported(results, f.rel, source, tasks)
        out += problems
        if not problems:
            rows.append((f.rel, results))
    return rows, out
