"""Local paths kept off the site.

A results file records where its author's run lived (``run.output_dir``, ``run.data_dir``,
``evaluated_weights``, a model loaded from disk, a skip reason naming a cache folder).
Those say nothing about the result and may name a person's machine, so every string the
site shows from an input goes through :func:`scrub` first, and each local path becomes
LOCAL_PATH.

A local path is a whole value, or a word of free text, that is

- absolute: ``/...``, ``~`` or ``~user/...``, ``C:\\...`` or ``C:/...``, ``\\\\host\\...``;
- relative to a working folder: ``./...``, ``../...``, or under ``runs/`` (grue's default run folder);
- a ``file:`` URL;

a whole value of two or more ``/``-separated names (``a/b/c``: a Hugging Face id has one ``/``);
or any non-empty value of a key that names a place (``data_dir``, ``output_dir``, ``evaluated_weights``,
``file``, ``*_path``, ...). Hub ids, http(s) URLs and ordinary text are kept.
"""

from __future__ import annotations

import re

LOCAL_PATH = "[local path]"
"""What the site shows instead of a local path."""
_PATH_START = re.compile(r"""(/|~([A-Za-z0-9._-]*/|$)|\.\.?[/\\]|[A-Za-z]:[/\\]|\\\\|runs[/\\]|file:)""", re.IGNORECASE)
_NESTED = re.compile(r"[\w.@+-]+(/[\w.@+-]+){2,}/?")
"""Relative with two or more '/' (``a/b/c``): no Hugging Face id (``owner/name``), no URL (it has a ':')."""
_PATH_KEY = re.compile(r"(^|_)(dir|dirs|path|paths|file|files|folder|weights|checkpoint)$")
_EDGES = re.compile(r"^[\"'`(\[{]+|[\"'`)\]},;:.]+$")
"""Punctuation around a path in a sentence, not part of it."""


def is_local_path(text: str) -> bool:
    """True when the whole of ``text`` (spaces around it ignored) is a local path, as the module says."""
    text = text.strip()
    if len(text) < 2 and text != "~":
        return False
    if _PATH_START.match(text):
        return True
    return bool(_NESTED.fullmatch(text))


def scrub_text(text: str) -> str:
    """``text`` with each local path replaced by LOCAL_PATH: the whole value when it is one, else every
    word that starts like one (``/``, ``~``, ``./``, ``C:\\``, ``runs/``, ``file:``)."""
    if is_local_path(text):
        return LOCAL_PATH
    words = re.split(r"(\s+)", text)
    for i, word in enumerate(words):
        core = _EDGES.sub("", word)
        if len(core) > 1 and _PATH_START.match(core):
            words[i] = word.replace(core, LOCAL_PATH, 1)
    return "".join(words)


def scrub(value, key: str = ""):
    """A copy of ``value`` (a string, or JSON-like data) with every local path replaced; any non-empty string
    under a key that names a place is replaced whole. Other values are returned as they are."""
    if isinstance(value, str):
        return LOCAL_PATH if value.strip() and _PATH_KEY.search(key.lower()) else scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, key) for v in value)
    return value
