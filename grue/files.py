"""Atomic file writes, free of heavy imports (no torch), for every module that writes a file.

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed
over the target: a reader sees the old file or the new one, never half of one. The file ends
with the permissions a plain ``open(path, "w")`` would give it (0666 less the umask): the
temporary file's own are owner-only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process's umask. Python can only read it by setting it, so it is set and put back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(is_dir: bool = False) -> int:
    """The mode ``open()`` (0666) or ``mkdir()`` (0777) gives a new file or folder under the current umask."""
    return (0o777 if is_dir else 0o666) & ~umask()


def settle_tree(root: Path) -> None:
    """Give ``root`` and everything under it the permissions a plain ``open()``/``mkdir()`` would, and fsync
    every file: for a folder built by tools that create owner-only files (``tempfile.mkdtemp``, safetensors)
    before it is renamed into place."""
    root = Path(root)
    files, dirs = plain_mode(), plain_mode(is_dir=True)
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        if p.is_dir():
            os.chmod(p, dirs)
        else:
            os.chmod(p, files)
            with p.open("rb") as f:
                os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, an fsync and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), plain_mode())  # mkstemp makes it 0600
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
