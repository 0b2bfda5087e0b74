"""NarrativeQA abstractive question answering over a story summary (GRUE task ``narrativeqa``).

Given a question about a book or film and the Wikipedia summary of its story, write a
short free-form answer. The prompt is UnifiedQA's input format, which
``allenai/unifiedqa-t5-base`` (RL4LMs' start for Supervised+RL) was trained on and which RL4LMs reads from
UnifiedQA's NarrativeQA files: ``question \\n summary``, all lower-cased, where ``\\n``
is the literal two characters backslash + n between spaces (T5's tokenizer drops real
line breaks, so UnifiedQA writes the separator out). Line breaks inside the summary are
removed, as UnifiedQA's encoder removed them (its ``replace("\\n", "")``).

References: the answers of the question, lower-cased and stripped (as RL4LMs
normalises them). One example per distinct prompt: RL4LMs' ``NarrativeQA`` data pool (97df0bd
rl4lms/data_pools/custom_text_generation_pools.py) groups its (prompt, answer) lines by the
prompt text, so questions whose whole prompt is identical become one example with all their
answers, in order of first appearance; meta holds ``index``.

Data: Hugging Face ``narrativeqa`` (``document.summary.text``, ``question.text``,
``answers`` = list of {``text``, ``tokens``}), or local JSON Lines
``<data-dir>/narrativeqa/<split>.jsonl`` with the subset of those fields the GRUE sample
has (``document.summary.text``, ``question.text``, ``answers`` = list of {``text``}).
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.tasks.common import Example, one_per_reference, place, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "narrativeqa", None
SEPARATOR = " \\n "  # space, backslash, "n", space: UnifiedQA's question/context separator


def build_prompt(question: str, summary: str) -> str:
    """``(question.strip() + " \\\\n " + summary without line breaks, stripped).lower()``.

    ``build_prompt("Who wins?", "Ann races.\\nAnn wins.") == "who wins? \\\\n ann races.ann wins."``
    (the separator is a literal backslash + n; the summary's real line break is dropped).
    """
    return (question.strip() + SEPARATOR + summary.replace("\n", "").strip()).lower()


def _text(value, where: str, name: str) -> str:
    """``value["text"]`` (Hugging Face / GRUE sample) or the string itself; anything else is an error."""
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    if isinstance(value, str):
        return value
    raise GrueError(
        f"{where}: {name} must be a string or a dict with a 'text' string "
        f"(Hugging Face narrativeqa schema), got {value!r:.80}"
    )


def rows_to_examples(rows: list[dict], split: str = "") -> list[Example]:
    """One Example per distinct prompt (``build_prompt``), in order of first appearance; references =
    the answers of every row with that prompt, lower-cased and stripped, in row order."""
    grouped: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        where = place(row, f"narrativeqa {split} row {i + 1}")
        if not isinstance(row, dict) or not all(k in row for k in ("document", "question", "answers")):
            raise GrueError(
                f"{where}: expected the fields document, question, answers (Hugging Face narrativeqa "
                f"schema), got {sorted(row) if isinstance(row, dict) else type(row).__name__}"
            )
        document = row["document"] if isinstance(row["document"], dict) else {}
        summary = _text(document.get("summary"), where, "document.summary")
        question = _text(row["question"], where, "question")
        answers = row["answers"] if isinstance(row["answers"], list) else []
        refs = [_text(a, where, "each answer").strip().lower() for a in answers]
        if not refs or not all(refs):
            raise GrueError(f"{where}: needs a non-empty list of non-empty answers, got {row['answers']!r:.80}")
        grouped.setdefault(build_prompt(question, summary), []).extend(refs)
    return [Example(prompt=p, references=refs, meta={"index": i}) for i, (p, refs) in enumerate(grouped.items())]


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/narrativeqa/<split>.jsonl`` or the Hub."""
    rows = source_rows("narrativeqa", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return rows_to_examples(rows, split)


supervised_examples = one_per_reference  # one training example per (input, reference), as the paper
