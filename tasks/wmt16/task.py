"""WMT16 English-to-German news translation (GRUE task ``wmt16``).

The prompt is ``"translate English to German: "`` (T5's own task prefix) followed by
an English sentence; the reference is its German translation.

Data: Hugging Face ``wmt16`` config ``de-en`` (``translation = {"de": ..., "en": ...}``;
source ``en``, target ``de``), or local JSON Lines ``<data-dir>/wmt16/<split>.jsonl``
with the same field. The GRUE sample holds only ``validation`` (newstest2015) and
``test`` (newstest2016); training data comes from the Hub.
"""

from __future__ import annotations

from pathlib import Path

from grue.errors import GrueError
from grue.tasks.common import Example, place, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "wmt16", "de-en"
SOURCE, TARGET = "en", "de"
PREFIX = "translate English to German: "  # RL4LMs translation configs (t5_*.yml): prompt_prefix


def build_prompt(source: str) -> str:
    """``"translate English to German: " + source``."""
    return PREFIX + source


def _pair(row: dict, n: int, split: str) -> tuple[str, str]:
    """(English, German) of a row ``{"translation": {"en": str, "de": str}}``, or a one-line error (``n`` from 1)."""
    pair = row.get("translation") if isinstance(row, dict) else None
    if not isinstance(pair, dict) or not all(isinstance(pair.get(k), str) for k in (SOURCE, TARGET)):
        raise GrueError(
            f'{place(row, f"wmt16 {split} row {n}")}: expected {{"translation": {{"de": str, "en": str}}}} '
            f"(Hugging Face wmt16 de-en schema), got {str(row)[:80]}"
        )
    return pair[SOURCE], pair[TARGET]


def rows_to_examples(rows: list[dict], split: str = "") -> list[Example]:
    """One Example per row: prompt ``"translate English to German: " + en``, reference ``de``; meta ``{"index": i}``."""
    examples = []
    for i, row in enumerate(rows):
        source, target = _pair(row, i + 1, split)
        examples.append(Example(prompt=build_prompt(source), references=[target], meta={"index": i}))
    return examples


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/wmt16/<split>.jsonl`` or the Hub (``wmt16``, ``de-en``)."""
    path = Path(data_dir or ".") / "wmt16" / f"{split}.jsonl"
    if data_dir and not builtin and split == "train" and not path.is_file():
        raise GrueError(
            f"no data file {path}; the GRUE sample has no wmt16 training data: train from the "
            "Hugging Face Hub (no --data-dir), or set run.train_split=validation"
        )
    rows = source_rows("wmt16", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return rows_to_examples(rows, split)
