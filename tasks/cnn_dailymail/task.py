"""CNN/DailyMail abstractive news summarization (GRUE task ``cnn_dailymail``).

The prompt is ``"Summarize: "`` followed by a news article (cut to the first 512
tokens by the rollout: ``generation.truncation_side: right``); the reference is the
article's highlights, its bullet-point summary, exactly as the data gives them. This is
RL4LMs' ``CNNDailyMail`` data pool (97df0bd rl4lms/data_pools/custom_text_generation_pools.py,
with the configs' ``prompt_prefix: "Summarize: "``, no article truncation, every row).

Data: Hugging Face ``cnn_dailymail`` config ``3.0.0`` (fields ``article``,
``highlights``, ``id``; highlights are bullets joined by ``"\n"``, an unpunctuated
bullet ending in `` .``), or local JSON Lines ``<data-dir>/cnn_dailymail/{train,
validation,test}.jsonl`` with the same fields in the "fairseq BART" text format (bullets
joined by a space, ``.`` appended without a space). Neither is rewritten into the other.
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.tasks.common import Example, place, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "cnn_dailymail", "3.0.0"
PREFIX = "Summarize: "  # RL4LMs scripts/training/task_configs/summarization/t5_*.yml: prompt_prefix
FIELDS = ("article", "highlights")


def build_prompt(article: str) -> str:
    """``"Summarize: " + article`` (no truncation here: the rollout cuts the tokens)."""
    return PREFIX + article


def _check_row(row: dict, n: int, split: str) -> None:
    """A one-line error for a row without the CNN/DailyMail fields (row ``n`` counts from 1)."""
    if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in FIELDS):
        raise GrueError(
            f"{place(row, f'cnn_dailymail {split} row {n}')}: expected string fields 'article' and 'highlights' (and 'id') "
            f"as in Hugging Face cnn_dailymail 3.0.0, got {sorted(row) if isinstance(row, dict) else type(row).__name__}"
        )


def rows_to_examples(rows: list[dict], split: str = "") -> list[Example]:
    """One Example per row: prompt ``"Summarize: " + article``, reference = the highlights unchanged.

    meta: ``{"id": str or None, "index": i}`` (the local train sample has no id for most rows).
    """
    examples = []
    for i, row in enumerate(rows):
        _check_row(row, i + 1, split)
        examples.append(
            Example(
                prompt=build_prompt(row["article"]),
                references=[row["highlights"]],
                meta={"id": row.get("id"), "index": i},
            )
        )
    return examples


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/cnn_dailymail/<split>.jsonl`` or the Hub (3.0.0)."""
    rows = source_rows("cnn_dailymail", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return rows_to_examples(rows, split)
