"""Reading untrusted submission folders without ever leaving them.

A path is accepted only when, written without ``..``, it lies inside the folder it belongs
to and no part of it below that folder is a symbolic link; files are then opened with
``O_NOFOLLOW`` and read up to a size limit, so neither a crafted argument
(``submissions/x/../../../etc/passwd``) nor a link planted in a pull request
(``results.json -> /etc/passwd``) makes the leaderboard read anything outside.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 200
"""Files and folders in one submission, at most."""
MAX_DEPTH = 3
"""Folder levels below a submission, at most (``imdb/seed0/results.json`` is 3)."""
MAX_TOTAL_BYTES = 50 * 1024 * 1024
"""Bytes in one submission, at most."""


@dataclass(frozen=True)
class Found:
    """One file under a folder: ``rel`` its POSIX path inside it, ``size`` its size in bytes; ``link`` True
    for a symbolic link (reported as a problem, never read)."""

    rel: str
    size: int
    link: bool = False


def inside(root: Path, path: str | Path) -> Path | None:
    """``path`` made absolute and normalised (``..`` removed by text, links not followed) when it lies in
    ``root`` (or is ``root``); None when it points outside."""
    base = Path(os.path.abspath(root))
    full = Path(os.path.abspath(path))
    return full if full == base or base in full.parents else None


def link_below(root: Path, path: Path) -> Path | None:
    """The first part of ``path`` (inside ``root``) that is a symbolic link, or None; a missing part is no link."""
    base = Path(os.path.abspath(root))
    current = base
    for part in Path(os.path.abspath(path)).relative_to(base).parts:
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except FileNotFoundError:
            return None
    return None


def read_limited(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path``, never through a link (OSError otherwise)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would block or never end
            raise OSError(f"{path}: not a regular file")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def walk(folder: Path, show: str, max_files: int = MAX_FILES) -> tuple[list[Found], list[str]]:
    """Every file below ``folder`` (sorted; links marked) and the problems met: links, special files, folders nested
    deeper than MAX_DEPTH, more than ``max_files`` entries or MAX_TOTAL_BYTES bytes. ``show`` is how problems
    name the folder. Nothing is followed or read."""
    found: list[Found] = []
    problems: list[str] = []
    entries, total = 0, 0
    stack = [(Path(folder), 0)]
    while stack:
        current, depth = stack.pop()
        try:
            children = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as e:
            problems.append(f"{show}/{_rel(folder, current)}: cannot list the folder: {e.strerror or e}")
            continue
        for entry in children:
            rel = _rel(folder, Path(entry.path))
            entries += 1
            if entries > max_files:
                return found, problems + [
                    f"{show}: (folder): more than {max_files} files and folders; a submission "
                    "holds submission.yaml and one folder per task and seed"
                ]
            if entry.is_symlink():
                problems.append(
                    f"{show}/{rel}: (file): a symbolic link; links are not accepted, commit the file itself"
                )
                found.append(Found(rel, 0, link=True))
            elif entry.is_dir(follow_symlinks=False):
                if depth + 1 >= MAX_DEPTH:
                    problems.append(
                        f"{show}/{rel}: (folder): nested too deep; results files are at most "
                        f"{MAX_DEPTH} levels down, e.g. imdb/seed0/results.json"
                    )
                else:
                    stack.append((Path(entry.path), depth + 1))
            elif entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                total += size
                found.append(Found(rel, size))
            else:
                problems.append(f"{show}/{rel}: (file): not a regular file or folder")
    if total > MAX_TOTAL_BYTES:
        problems.append(f"{show}: (folder): {total} bytes in all, more than the {MAX_TOTAL_BYTES} (50 MB) allowed")
    return sorted(found, key=lambda f: f.rel), problems


def _rel(folder: Path, path: Path) -> str:
    return Path(path).relative_to(folder).as_posix()
