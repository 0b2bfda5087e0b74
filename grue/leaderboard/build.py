"""``grue leaderboard build``: every accepted result -> a static site, byte-identical for the same input.

Writes into the output folder: ``index.html`` (self-contained), ``submissions/<name>.html``,
``leaderboard.md``, ``leaderboard.csv``, ``plots/<name>.svg`` and ``fidelity.md`` (what differs from the
paper's code, docs/fidelity.md). Pages, plots and files
are written in sorted order with no build time in them; stale submission pages and plots of
an earlier build are removed.
"""

from __future__ import annotations

from pathlib import Path

from grue.errors import GrueError
from grue.files import atomic_write_text
from grue.leaderboard.board import Board, make_board
from grue.leaderboard.charts import svgs
from grue.leaderboard.export import csv_text, markdown
from grue.leaderboard.safe_files import inside
from grue.leaderboard.site import index_html, submission_html

DEFAULT_SUBMISSIONS = Path("leaderboard/submissions")
DEFAULT_REPORTED = Path("leaderboard/reported")
DEFAULT_OUT = Path("leaderboard/site")


def fidelity_text() -> str:
    """docs/fidelity.md: how grue's numbers relate to the paper's (grue/_docs in a wheel, docs/ in a checkout)."""
    root = Path(__file__).resolve().parent.parent
    for path in (root / "_docs" / "fidelity.md", root.parent / "docs" / "fidelity.md"):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise GrueError("docs/fidelity.md is missing from this grue installation; reinstall grue")


def render(board: Board) -> dict[str, str]:
    """Output path (POSIX, relative to the site folder) -> text."""
    plots = svgs(board)
    files = {
        "index.html": index_html(board, plots),
        "leaderboard.md": markdown(board),
        "leaderboard.csv": csv_text(board),
        "fidelity.md": fidelity_text(),
    }
    files.update({f"plots/{name}.svg": svg for name, svg in plots.items()})
    files.update({f"submissions/{s.name}.html": submission_html(board, s) for s in board.submissions})
    return dict(sorted(files.items()))


def build(submissions: Path = DEFAULT_SUBMISSIONS, reported: Path = DEFAULT_REPORTED, out: Path = DEFAULT_OUT) -> Board:
    """Validate every submission and reported file, then write the site into ``out``; LeaderboardError lists
    the problems (nothing is written then)."""
    for folder in (submissions, reported):
        if inside(folder, out) is not None:
            raise GrueError(
                f"--out {out}: inside the input folder {folder}; write the site elsewhere (default {DEFAULT_OUT})"
            )
    board = make_board(Path(submissions), Path(reported), str(submissions).rstrip("/"), str(reported).rstrip("/"))
    files = render(board)
    out = Path(out)
    for sub in ("submissions", "plots"):  # what an earlier build wrote and this one does not
        folder = out / sub
        if folder.is_dir() and not folder.is_symlink():
            for old in sorted(folder.iterdir()):
                if f"{sub}/{old.name}" not in files and old.suffix in (".html", ".svg") and old.is_file():
                    old.unlink()
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return board
