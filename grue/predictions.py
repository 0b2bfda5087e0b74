"""Generations made elsewhere (``grue eval --predictions FILE``): reading and checking the file."""

from __future__ import annotations

import json
from pathlib import Path

from grue.errors import GrueError, option


def read_predictions(path: str, n: int, total: int, limit: int | None) -> list[str]:
    """The ``generation`` strings of a JSONL file of predictions: one JSON object per example of the split, in
    split order; extra fields are allowed, an ``index`` must equal the row number (from 0). The file holds
    the ``n`` examples evaluated, or with ``--limit`` the whole split (``total`` rows; the first ``n`` are
    scored). Every problem is one line naming ``file:line``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 may stand inside a string
    except OSError as e:
        raise GrueError(f"{option('predictions', str(path))}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise GrueError(
            f"{option('predictions', str(path))}: not UTF-8 text (invalid byte at offset {e.start})"
        ) from None
    out: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue  # blank lines (a trailing one) hold no example
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise GrueError(
                f'{where}: invalid JSON: {getattr(e, "msg", e)}; each line is one JSON object {{"generation": "..."}}'
            ) from None
        if not isinstance(row, dict):
            raise GrueError(f'{where}: must be a JSON object with a string "generation", got {type(row).__name__}')
        if not isinstance(row.get("generation"), str):
            got = "nothing" if "generation" not in row else json.dumps(row["generation"])[:60]
            raise GrueError(f'{where}: "generation" must be a string, got {got}')
        if "index" in row and (row["index"] != len(out) or isinstance(row["index"], bool)):
            raise GrueError(
                f'{where}: "index" is {json.dumps(row["index"])[:60]}, but this is row {len(out)} '
                "(rows follow the split's order, from 0)"
            )
        out.append(row["generation"])
    if len(out) == n or (limit and len(out) == total):
        return out[:n]
    expected = (
        f"{n} (the first {n} examples, {option('limit', str(limit))}) or {total} (the whole split)"
        if limit
        else f"{total}, one per example of the split"
    )
    hint = (
        f"; to score only the first {len(out)}, pass {option('limit', str(len(out)))}"
        if not limit and 0 < len(out) < total
        else ""
    )
    raise GrueError(f"{option('predictions', str(path))}: {len(out)} rows, expected {expected}{hint}")
