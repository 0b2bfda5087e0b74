"""Where the leaderboard's folders are when the command line is not told: the grue checkout's own
``leaderboard/submissions``, ``leaderboard/reported`` and ``leaderboard/site`` (found from any of its
sub-folders), and the submissions folder of a submission given on its own (its parent).

Paths are normalised as text (``os.path.abspath``: ``..`` removed, links not followed), like
:func:`grue.leaderboard.safe_files.inside`; the loader then refuses links wherever they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from grue.errors import GrueError
from grue.leaderboard.safe_files import inside
from grue.leaderboard.submissions import META_FILE

DEFAULTS = {"submissions": "leaderboard/submissions", "reported": "leaderboard/reported", "out": "leaderboard/site"}
"""Command-line flag -> its default folder, relative to the checkout."""


def checkout(start: Path | None = None) -> Path | None:
    """The grue checkout that holds ``start`` (default: the current folder): the nearest folder at or above
    it with pyproject.toml, grue/__init__.py and leaderboard/; None outside one."""
    here = Path(os.path.abspath(start or Path.cwd()))
    for folder in (here, *here.parents):
        if (
            (folder / "pyproject.toml").is_file()
            and (folder / "grue" / "__init__.py").is_file()
            and (folder / "leaderboard").is_dir()
        ):
            return folder
    return None


def shown(path: Path, like: str = "") -> str:
    """How problems name a folder: absolute when ``like`` (the path as the user gave it) is, else relative to
    the current folder."""
    full = os.path.abspath(path)
    return full if os.path.isabs(like) else os.path.relpath(full)


def default_folder(flag: str, start: Path | None = None) -> Path:
    """The checkout's folder for ``--flag`` (see DEFAULTS); GrueError outside a checkout, naming the flag."""
    root = checkout(start)
    if root is None:
        raise GrueError(
            f"--{flag} not given and {os.path.abspath(start or Path.cwd())} is not inside a grue checkout "
            f"(whose {DEFAULTS[flag]} is the default); pass --{flag} DIR"
        )
    return Path(shown(root / DEFAULTS[flag]))


def submissions_root(path: str, default: Path | None) -> Path | None:
    """The submissions folder of ``path`` given to ``validate`` without --submissions: ``default`` (the
    checkout's) when the path is in it; else the parent of the nearest folder at or above the path that
    holds submission.yaml; else, for a folder, the folder itself when a sub-folder holds submission.yaml (a
    submissions folder) or its parent (a submission lacking submission.yaml); None for a file in none."""
    if default is not None and inside(default, path) is not None:
        return default
    full = Path(os.path.abspath(path))
    for folder in (full, *full.parents):
        if (folder / META_FILE).is_file():
            return folder.parent
    if full.is_symlink():
        return full.parent  # the loader refuses the link with its own message
    if not full.is_dir():
        return None
    if any(c.is_dir() and not c.is_symlink() and (c / META_FILE).is_file() for c in sorted(full.iterdir())):
        return full
    return full.parent


def group_paths(paths: list[str], submissions: Path | None) -> tuple[dict[Path, list[str]], list[str]]:
    """``validate``'s PATHs by submissions folder (all in ``submissions`` when given, else each in its own, see
    :func:`submissions_root`) and a problem for each PATH in no submission."""
    if submissions is not None:
        return {Path(submissions): list(paths)}, []
    root = checkout()
    default = Path(shown(root / DEFAULTS["submissions"])) if root is not None else None
    groups: dict[Path, list[str]] = {}
    out = []
    for given in paths:
        folder = submissions_root(given, default)
        if folder is None and not os.path.lexists(given):
            out.append(f"{given}: (path): no such file or folder")
        elif folder is None:
            out.append(
                f"{given}: (path): in no submission folder (none at or above it holds {META_FILE}); pass the "
                "submission folder, or --submissions DIR"
            )
        else:
            groups.setdefault(folder if folder == default else Path(shown(folder, given)), []).append(given)
    return dict(sorted(groups.items())), out
