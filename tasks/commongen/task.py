"""CommonGen generative commonsense reasoning (GRUE task ``commongen``).

Given a set of 3-5 everyday concepts ("dog frisbee catch"), write one plausible
sentence that uses all of them. The examples are RL4LMs' ``CommonGen`` data pool (97df0bd
rl4lms/data_pools/custom_text_generation_pools.py), which reads GEM's ``common_gen``:

- train: one example per (concept set, sentence) row, that sentence its one reference
  (a concept set with five sentences is five examples);
- validation / test: one example per concept set, whose one reference is its first
  sentence (GEM's ``target``; GEM lists the others in ``references``, which RL4LMs did not
  read).

Data: the Hugging Face Hub's ``GEM/common_gen`` (GEM's schema: ``concept_set_id``,
``concepts`` in the order of the official files, ``target``, ``references``; one row per
sentence in train and per concept set in validation and test), or local JSON Lines
``<data-dir>/commongen/{train,validation,test}.jsonl`` in the schema of Hugging Face
``common_gen`` (``concept_set_idx``, ``concepts``, ``target``; one row per sentence, in the
official files' sentence order). GEM's test split has empty targets, so it cannot be scored:
loading it from the Hub is an error; the local sample's test split (CommonGen v1.0) has
its sentences.
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.tasks.common import Example, one_per_reference, place, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "GEM/common_gen", None  # RL4LMs: load_dataset("gem", "common_gen")
# RL4LMs scripts/training/task_configs/common_gen/t5_*.yml, datapool args: prefix
# "generate a sentence with: ", concept_separator_token " ", concept_end_token ".".
PREFIX = "generate a sentence with: "
ID_FIELDS = ("concept_set_idx", "concept_set_id")  # local (HF common_gen) and Hub (GEM) names of the set's id


def build_prompt(concepts: list[str]) -> str:
    """``"generate a sentence with: " + " ".join(concepts) + "."``, e.g. ``generate a sentence with: dog frisbee catch.``"""
    return PREFIX + " ".join(concepts) + "."


def _row(row: dict, n: int, split: str) -> tuple[int, list[str], str]:
    """(concept set id, concepts, target) of row ``n`` (from 1), or a one-line error naming the fields."""
    where = place(row, f"commongen {split} row {n}")
    key = next((k for k in ID_FIELDS if isinstance(row, dict) and k in row), None)
    if key is None or any(k not in row for k in ("concepts", "target")):
        raise GrueError(
            f"{where}: expected the fields concept_set_idx (or GEM's concept_set_id), "
            f"concepts, target, got {sorted(row) if isinstance(row, dict) else type(row).__name__}"
        )
    if isinstance(row[key], bool) or not isinstance(row[key], int):
        raise GrueError(f"{where}: '{key}' must be an integer, got {row[key]!r:.80}")
    concepts = row["concepts"]
    if not isinstance(concepts, list) or not concepts or not all(isinstance(c, str) for c in concepts):
        raise GrueError(f"{where}: 'concepts' must be a non-empty list of words (strings), got {concepts!r:.80}")
    if not isinstance(row["target"], str):
        raise GrueError(f"{where}: 'target' must be a string, got {row['target']!r:.80}")
    target = row["target"]
    if not target.strip():
        raise GrueError(
            f"{where}: concept set {row[key]} has an empty target: GEM's common_gen "
            "test split has no references; evaluate on 'validation', or pass --data-dir DIR with the "
            "CommonGen v1.0 test files as DIR/commongen/test.jsonl"
        )
    return row[key], list(concepts), target


def rows_to_examples(rows: list[dict], split: str = "") -> list[Example]:
    """RL4LMs' examples (see the module docstring): one per row in train, else one per concept set.

    Outside train, rows are grouped by concept set id in order of first appearance and the set's
    first sentence is its one reference. ``meta = {"concepts": list[str], "concept_set_idx": int,
    "index": i}``. A concept set id naming two concept lists, or an empty target, is an error.
    """
    seen: dict[int, list[str]] = {}
    examples = []
    for n, row in enumerate(rows, 1):
        idx, concepts, target = _row(row, n, split)
        if idx in seen:
            if seen[idx] != concepts:
                raise GrueError(
                    f"commongen {split} row {n}: concept set {idx} has concepts {concepts} here "
                    f"and {seen[idx]} earlier; one concept set id must name one concept list"
                )
            if split != "train":
                continue
        seen[idx] = concepts
        examples.append(
            Example(
                prompt=build_prompt(concepts),
                references=[target],
                meta={"concepts": concepts, "concept_set_idx": idx, "index": len(examples)},
            )
        )
    return examples


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/commongen/<split>.jsonl`` or the Hub (``GEM/common_gen``)."""
    if not data_dir and not builtin and split == "test":  # checked before any download: every GEM test target is ""
        raise GrueError(
            "GEM's common_gen test split has empty targets, so it cannot be scored; use split "
            "'validation', or pass --data-dir DIR with the CommonGen v1.0 test files as DIR/commongen/test.jsonl"
        )
    rows = source_rows("commongen", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return rows_to_examples(rows, split)


supervised_examples = one_per_reference  # train examples already have one reference each, as RL4LMs trained
