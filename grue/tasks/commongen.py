"""CommonGen generative commonsense reasoning (GRUE task ``commongen``).

Given a set of 3-5 everyday concepts ("dog frisbee catch"), write one plausible
sentence that uses all of them. One example per concept set: its prompt lists the
concepts, and every human-written sentence for that set is a reference.

Data: Hugging Face ``common_gen`` (CommonGen v1.1), or local JSON Lines
``<data-dir>/commongen/{train,validation,test}.jsonl`` with the same fields
(``concept_set_idx``, ``concepts``, ``target``; one row per sentence). The Hub's v1.1
test split has empty targets, so it cannot be scored: loading it is an error; the local
sample's test split (CommonGen v1.0) has its references.
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.tasks.common import Example, one_per_reference, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "common_gen", None
# RL4LMs scripts/training/task_configs/common_gen/t5_*.yml, datapool args: prefix
# "generate a sentence with: ", concept_separator_token " ", concept_end_token ".".
PREFIX = "generate a sentence with: "
FIELDS = ("concept_set_idx", "concepts", "target")


def build_prompt(concepts: list[str]) -> str:
    """``"generate a sentence with: " + " ".join(concepts) + "."``, e.g. ``generate a sentence with: dog frisbee catch.``"""
    return PREFIX + " ".join(concepts) + "."


def _check_row(row: dict, n: int, split: str) -> None:
    """A one-line error for a row without the CommonGen fields (row ``n`` counts from 1)."""
    if not isinstance(row, dict) or any(k not in row for k in FIELDS):
        raise GrueError(f"commongen {split} row {n}: expected the fields {', '.join(FIELDS)} "
                        f"(Hugging Face common_gen schema), got {sorted(row) if isinstance(row, dict) else type(row).__name__}")
    if not isinstance(row["concepts"], list) or not row["concepts"]:
        raise GrueError(f"commongen {split} row {n}: 'concepts' must be a non-empty list of words, got {row['concepts']!r}")


def group_concept_sets(rows: list[dict], split: str = "") -> list[Example]:
    """One Example per concept set, in order of first appearance; all its targets are the references.

    rows: one dict per (concept set, sentence). Returns ``len(set(concept_set_idx))`` examples
    with ``meta = {"concepts": list[str], "concept_set_idx": int, "index": i}``. Sentences
    keep their order within a set. An empty target is an error (the Hub's v1.1 test split
    has only empty ones).
    """
    groups: dict[int, dict] = {}  # concept_set_idx -> {"concepts": [...], "targets": [...]}; dicts keep insertion order
    for n, row in enumerate(rows, 1):
        _check_row(row, n, split)
        idx = int(row["concept_set_idx"])
        target = str(row["target"]).strip()
        if not target:
            raise GrueError(f"commongen {split} row {n} (concept set {idx}) has an empty target: the Hugging Face "
                            "common_gen (v1.1) test split has no references; evaluate on 'validation', or pass "
                            "--data-dir DIR with the CommonGen v1.0 test files as DIR/commongen/test.jsonl")
        group = groups.setdefault(idx, {"concepts": list(row["concepts"]), "targets": []})
        if group["concepts"] != list(row["concepts"]):
            raise GrueError(f"commongen {split} row {n}: concept set {idx} has concepts {row['concepts']} here "
                            f"and {group['concepts']} earlier; one concept_set_idx must name one concept list")
        group["targets"].append(target)
    return [Example(prompt=build_prompt(g["concepts"]), references=g["targets"],
                    meta={"concepts": g["concepts"], "concept_set_idx": idx, "index": i})
            for i, (idx, g) in enumerate(groups.items())]


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` (one per concept set) from ``data_dir/commongen/<split>.jsonl`` or the Hub."""
    if not data_dir and not builtin and split == "test":  # checked before any download: every v1.1 test target is ""
        raise GrueError("the Hugging Face common_gen (v1.1) test split has empty targets, so it cannot be scored; "
                        "use split 'validation', or pass --data-dir DIR with the CommonGen v1.0 test files "
                        "as DIR/commongen/test.jsonl")
    rows = source_rows("commongen", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return group_concept_sets(rows, split)


supervised_examples = one_per_reference  # one training example per (input, reference), as the paper
