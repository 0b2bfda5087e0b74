"""The code of a task folder without ``task.py``: its examples are JSON Lines files named in task.yaml.

    data:
      splits:                       # split -> file, relative to the task folder
        train: data/train.jsonl
        test: data/test.jsonl
      prompt_field: prompt          # the field holding the prompt text (default: prompt)
      references_field: references  # a reference text or a list of them (default: references)

Each line is one JSON object; its other fields go to the example's ``meta`` (rewards receive them), with
``index``, the example's position in the file. A ``--data-dir DIR`` holding ``DIR/<task>/<split>.jsonl`` is read
instead of the task's own file.
"""

from __future__ import annotations

from pathlib import Path

from grue.errors import GrueError
from grue.tasks.common import Example, place, read_jsonl

DATA_KEYS = ("splits", "prompt_field", "references_field")


def check_data(data, folder: Path, card_file: Path) -> dict:
    """task.yaml's ``data`` section as ``{"splits": {split: Path}, "prompt_field", "references_field"}``, or a
    one-line error naming ``card_file`` and the field (a missing file included)."""
    if not isinstance(data, dict):
        raise GrueError(
            f"{card_file}: data: a task without task.py needs a data section naming its JSON Lines files "
            "(data: {splits: {train: train.jsonl, test: test.jsonl}}), got " + repr(data)
        )
    unknown = [k for k in data if k not in DATA_KEYS]
    if unknown:
        raise GrueError(f"{card_file}: data.{unknown[0]}: unknown key; accepted: {', '.join(DATA_KEYS)}")
    splits = data.get("splits")
    if (
        not isinstance(splits, dict)
        or not splits
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in splits.items())
    ):
        raise GrueError(
            f"{card_file}: data.splits: expected a mapping of split name to file (train: train.jsonl), got {splits!r}"
        )
    for split, name in splits.items():
        if not (folder / name).is_file():
            raise GrueError(f"{card_file}: data.splits.{split}: no file {folder / name}")
    fields = {}
    for key, default in (("prompt_field", "prompt"), ("references_field", "references")):
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise GrueError(f"{card_file}: data.{key}: expected a field name, got {value!r}")
        fields[key] = value
    return {"splits": {k: folder / v for k, v in splits.items()}, **fields}


def row_example(row: dict, i: int, prompt_field: str, references_field: str, where: str) -> Example:
    """One Example of a JSON object: the prompt text, the references (a str becomes a list of one), the other
    fields and ``index`` (``i``) as meta."""
    prompt, refs = row.get(prompt_field), row.get(references_field, [])
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(prompt, str) or not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise GrueError(
            f'{place(row, where)}: expected {{"{prompt_field}": str, "{references_field}": str or list of str}}, '
            f"got {str(dict(row))[:80]}"
        )
    meta = {k: v for k, v in row.items() if k not in (prompt_field, references_field)}
    return Example(prompt=prompt, references=refs, meta={**meta, "index": i})


class JsonlTask:
    """A task's code made from task.yaml's ``data`` section: ``SPLITS`` and ``load``, like a task.py module."""

    def __init__(self, name: str, folder: Path, data, card_file: Path):
        self.name = name
        self.data = check_data(data, Path(folder), card_file)
        self.SPLITS = tuple(self.data["splits"])

    def load(self, split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
        """Examples of ``split``: ``data_dir/<task>/<split>.jsonl`` when that exists, else the task's own file."""
        if builtin:
            raise GrueError(f"task '{self.name}' has no built-in prompts; leave run.builtin_prompts false")
        if split not in self.SPLITS:
            raise GrueError(f"task '{self.name}' has no split '{split}'; accepted: {', '.join(self.SPLITS)}")
        path = self.data["splits"][split]
        if data_dir and (Path(data_dir) / self.name / f"{split}.jsonl").is_file():
            path = Path(data_dir) / self.name / f"{split}.jsonl"
        rows = read_jsonl(path)
        return [
            row_example(r, i, self.data["prompt_field"], self.data["references_field"], f"{path}")
            for i, r in enumerate(rows)
        ]
