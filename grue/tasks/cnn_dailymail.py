"""CNN/DailyMail abstractive news summarization (GRUE task ``cnn_dailymail``).

The prompt is ``"Summarize: "`` followed by a news article (cut to the first 512
tokens by the rollout: ``generation.truncation_side: right``); the reference is the
article's highlights, its bullet-point summary.

Data: Hugging Face ``cnn_dailymail`` config ``3.0.0`` (fields ``article``,
``highlights``, ``id``), or local JSON Lines ``<data-dir>/cnn_dailymail/{train,
validation,test}.jsonl`` with the same fields in the "fairseq BART" text format. The
two forms write highlights differently, and ``normalize_highlights`` makes them equal.
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.tasks.common import Example, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "cnn_dailymail", "3.0.0"
PREFIX = "Summarize: "  # RL4LMs scripts/training/task_configs/summarization/t5_*.yml: prompt_prefix
FIELDS = ("article", "highlights")


def build_prompt(article: str) -> str:
    """``"Summarize: " + article`` (no truncation here: the rollout cuts the tokens)."""
    return PREFIX + article


def normalize_highlights(text: str) -> str:
    """The highlights in the local sample's form: bullets joined by one space, each ending in ``.`` not `` .``.

    Hugging Face 3.0.0 joins the bullets with ``"\\n"`` and appends `` .`` to a bullet
    without final punctuation; the local sample joins with ``" "`` and appends ``"."``.
    So ``"Cats nap .\\nDogs bark!"`` and ``"Cats nap. Dogs bark!"`` both give
    ``"Cats nap. Dogs bark!"``. Whitespace around bullets is dropped, empty lines too.
    """
    bullets = [b.strip() for b in text.split("\n")]
    bullets = [b[:-2] + "." if b.endswith(" .") else b for b in bullets if b]
    return " ".join(bullets)


def _check_row(row: dict, n: int, split: str) -> None:
    """A one-line error for a row without the CNN/DailyMail fields (row ``n`` counts from 1)."""
    if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in FIELDS):
        raise GrueError(f"cnn_dailymail {split} row {n}: expected string fields 'article' and 'highlights' (and 'id') "
                        f"as in Hugging Face cnn_dailymail 3.0.0, got {sorted(row) if isinstance(row, dict) else type(row).__name__}")


def rows_to_examples(rows: list[dict], split: str = "") -> list[Example]:
    """One Example per row: prompt ``"Summarize: " + article``, reference = normalised highlights.

    meta: ``{"id": str or None, "index": i}`` (the local train sample has no id for most rows).
    """
    examples = []
    for i, row in enumerate(rows):
        _check_row(row, i + 1, split)
        examples.append(Example(prompt=build_prompt(row["article"]), references=[normalize_highlights(row["highlights"])],
                                meta={"id": row.get("id"), "index": i}))
    return examples


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/cnn_dailymail/<split>.jsonl`` or the Hub (3.0.0)."""
    rows = source_rows("cnn_dailymail", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return rows_to_examples(rows, split)
