"""What every task loader shares: the example type and reading local or Hub splits."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from grue.errors import GrueError


@dataclass
class Example:
    """One task example: the prompt text, its reference texts, and per-example metadata."""

    prompt: str
    references: list[str]
    meta: dict = field(default_factory=dict)


def data_dir_from(explicit: str | None) -> str | None:
    """The local data directory: the explicit one, else ``$GRUE_DATA_DIR``, else None (the Hub)."""
    return explicit or os.environ.get("GRUE_DATA_DIR") or None


class Row(dict):
    """One JSON object read from a data file; ``where`` (``"path:line"``) is where it was read, for error messages."""

    where = ""


def place(row, fallback: str) -> str:
    """Where ``row`` came from for an error message: ``"path:line"`` for a row of a data file, else ``fallback``
    (e.g. ``"totto validation row 3"`` for a Hub row)."""
    return getattr(row, "where", "") or fallback


def parse_jsonl_line(raw: bytes, where: str) -> Row | None:
    """One line of a JSON Lines file as a Row (None for a blank line), or a one-line ``where: what is wrong``
    error for bytes that are not UTF-8, text that is not JSON, or JSON that is not an object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GrueError(
            f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
            "data files must be UTF-8 JSON Lines"
        ) from None
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise GrueError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(value, dict):
        raise GrueError(f"{where}: expected one JSON object per line, got a JSON {type(value).__name__}")
    row = Row(value)
    row.where = where
    return row


def read_jsonl_split(data_dir: str, task: str, split: str) -> list[dict]:
    """Rows (Rows: dicts that know their ``path:line``) of ``data_dir/task/split.jsonl``; blank lines are not rows.
    A missing file, an empty one, or a bad line is a one-line error (``path:line: what is wrong``)."""
    path = Path(data_dir) / task / f"{split}.jsonl"
    if not path.is_file():
        raise GrueError(f"no data file {path}; expected JSON Lines at <data-dir>/{task}/{split}.jsonl")
    return read_jsonl(path)


def read_jsonl(path: Path) -> list[dict]:
    """Rows (Rows: dicts that know their ``path:line``) of the JSON Lines file ``path``; blank lines are not rows.
    An empty file or a bad line is a one-line error (``path:line: what is wrong``)."""
    with path.open("rb") as f:
        rows = [row for n, raw in enumerate(f, 1) if (row := parse_jsonl_line(raw, f"{path}:{n}")) is not None]
    if not rows:
        raise GrueError(f"{path}:1: the file holds no examples; expected one JSON object per line")
    return rows


PARQUET_EXPORT = "refs/convert/parquet"  # the Hub's Parquet conversion of a dataset that ships a loading script


def load_hub_split(name: str, config: str | None, split: str, task: str | None = None) -> list[dict]:
    """Rows of a Hugging Face dataset split, or a one-line error naming the offline alternative
    (``--data-dir DIR`` with ``DIR/<task>/<split>.jsonl``; ``task`` defaults to ``name``).

    ``datasets`` 4 and later run no loading scripts; a dataset that still ships one (e.g. GEM's
    ``common_gen``, the source RL4LMs read) is read from the Hub's Parquet conversion instead.
    """
    from grue import hub

    def load() -> list[dict]:
        import datasets

        try:
            return list(datasets.load_dataset(name, config, split=split))
        except RuntimeError as e:
            if "scripts are no longer supported" not in str(e):
                raise
            return list(datasets.load_dataset(name, config or "default", split=split, revision=PARQUET_EXPORT))

    setting = f"--data-dir DIR (or set GRUE_DATA_DIR) with DIR/{task or name}/{split}.jsonl"
    try:
        return hub.load("dataset", name, setting, load)
    except hub.LoadFailed as e:
        raise GrueError(str(e)) from e


def source_rows(
    task: str, split: str, splits, data_dir: str | None, builtin: bool, hub_name: str, hub_config: str | None
) -> list[dict]:
    """Raw rows of a task's split: ``data_dir/<task>/<split>.jsonl`` when a data directory is
    given, else the Hugging Face dataset ``hub_name`` (``hub_config``); one-line errors for a
    request of built-in prompts (the task has none) or an unknown split."""
    if builtin:
        raise GrueError(
            f"task '{task}' has no built-in prompts; pass --data-dir DIR (or set GRUE_DATA_DIR), "
            "or leave run.builtin_prompts false to use the Hugging Face Hub"
        )
    if split not in splits:
        raise GrueError(f"task '{task}' has no split '{split}'; accepted: {', '.join(splits)}")
    if data_dir:
        return read_jsonl_split(data_dir, task, split)
    return load_hub_split(hub_name, hub_config, split, task)


def one_per_reference(examples: list[Example]) -> list[Example]:
    """One training example per (input, reference), as the paper's supervised baselines train.

    Each gets its input's prompt, ``references=[that reference]`` (the supervised trainer's
    target is ``references[0]``) and a copy of its meta plus ``reference_index``.
    Returns ``sum(len(e.references) for e in examples)`` examples, inputs in order.
    """
    return [
        Example(prompt=e.prompt, references=[ref], meta={**e.meta, "reference_index": j})
        for e in examples
        for j, ref in enumerate(e.references)
    ]
