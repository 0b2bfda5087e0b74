"""IMDB sentiment-guided continuation (GRUE task ``imdb``).

A prompt is the first half of a review's space-separated words, the raw text with its
``<br />`` tags; the policy continues it and is rewarded for positive sentiment. The
reference is the whole review (what the paper's perplexity reads). This is RL4LMs'
``IMDB`` data pool (rl4lms/data_pools/custom_text_generation_pools.py at 97df0bd):

- prompt = ``" ".join(words[:int(len(words) * 0.5)])`` with ``words = text.split(" ")``;
- references = ``[text]``, the whole raw review;
- train / validation: the original train set in the order of ``Dataset.shuffle(seed=42)``
  (``np.random.default_rng(42).permutation``, datasets 2.5.1), the first ``int(0.8 * N)``
  rows train and the rest validation (disjoint);
- test: the original test set in the order of ``shuffle(seed=42)``, its first 5000 rows.

The supervised baseline (RL4LMs ``IMDBForSeq2Seq``) learns the second half of the words
given the first, from the positive training reviews: ``supervised_examples``.
"""

from __future__ import annotations

import numpy as np

from grue.errors import GrueError
from grue.tasks.common import Example, place, read_jsonl_split

SPLITS = ("train", "validation", "test")
SPLIT_SEED = 42  # RL4LMs imdb_text_continuation/gpt2_*.yml: datapool seed 42
TRAIN_FRACTION = 0.8  # RL4LMs IMDB.prepare: train_ratio 0.8 of the original train set
TEST_SIZE = 5000  # RL4LMs IMDB.prepare: the first 5000 shuffled test reviews

# Openings of movie reviews written for this project, for offline smoke runs when no
# data directory is given. They are deliberately mixed in sentiment.
BUILTIN_OPENINGS = (
    "I went into this film with low expectations and",
    "The first twenty minutes of this movie are",
    "My friends told me to skip this one, but",
    "As a fan of the original novel, I found the adaptation",
    "The director clearly had a vision, and the result is",
    "I have seen a lot of horror movies, and this one",
    "The acting in this picture is",
    "Halfway through the second act I realised that",
    "This is the kind of comedy that",
    "The soundtrack alone makes this film",
    "I rented this on a rainy Sunday and",
    "The plot twists in this thriller are",
    "Every scene with the lead actress feels",
    "It is hard to describe how this documentary",
    "The special effects have aged, yet the story",
    "After reading the reviews, I expected",
    "This sequel tries to recapture the magic of the first and",
    "The dialogue in this script is",
    "I watched this with my kids, and they",
    "From the opening shot, the cinematography",
    "The pacing of this drama is",
    "Nobody in the cast seems to",
    "The villain of the story is",
    "This low budget western turned out to be",
    "I laughed more than once, but overall the movie",
    "The ending of this film left me",
    "The performances are uneven, and the screenplay",
    "Watching this again after ten years, I think it",
    "The trailer promised an adventure, and the film",
    "Even the best scenes in this musical are",
    "The characters never become more than",
    "This animated feature is",
    "Critics loved it, but to me the story",
    "The war scenes are staged with",
    "I cannot recommend this movie because",
    "I can recommend this movie because",
    "The romance at the heart of the story is",
    "The editing makes every action sequence",
    "For a film about friendship, it",
    "By the time the credits rolled I",
)


def split_review(text: str) -> tuple[str, str]:
    """(first half, second half) of a review's words, split on single spaces as RL4LMs did.

    ``words = text.split(" ")``, ``k = int(len(words) * 0.5)``; returns
    ``(" ".join(words[:k]), " ".join(words[k:]))``. Nothing is cleaned: ``<br />`` tags and
    runs of spaces stay, so ``"a  b<br />c d"`` gives ``("a ", "b<br />c d")``.
    """
    words = text.split(" ")
    k = int(len(words) * 0.5)
    return " ".join(words[:k]), " ".join(words[k:])


def check_rows(rows: list, source: str) -> list:
    """``rows`` unchanged, or a one-line error for the first without a string ``text`` and an integer ``label``
    (Hugging Face imdb schema); checked before the shuffle, so a Hub row is named by its place in ``source``."""
    for n, row in enumerate(rows, 1):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or isinstance(label, bool) or not isinstance(label, int):
            raise GrueError(
                f"{place(row, f'imdb {source} row {n}')}: expected a string 'text' and an integer 'label' "
                f"(Hugging Face imdb schema), got text={text!r:.40}, label={label!r:.20}"
            )
    return rows


def _rows_to_examples(rows) -> list[Example]:
    """One Example per review: prompt = its first half, references = [the whole review]."""
    return [
        Example(
            prompt=split_review(row["text"])[0], references=[row["text"]], meta={"label": int(row["label"]), "index": i}
        )
        for i, row in enumerate(rows)
    ]


def shuffled(rows: list, seed: int = SPLIT_SEED) -> list:
    """``rows`` in the order of datasets' ``Dataset.shuffle(seed)``: ``np.random.default_rng(seed).permutation(len(rows))``."""
    return [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]


def split_rows(rows: list, split: str) -> list:
    """The rows of ``split``: train / validation from the original train rows, test from the test rows.

    train = the first ``int(0.8 * N)`` shuffled train rows, validation = the rest (disjoint);
    test = the first 5000 shuffled test rows (all of them when there are fewer).
    """
    order = shuffled(rows)
    if split == "test":
        return order[:TEST_SIZE]
    cut = int(len(order) * TRAIN_FRACTION)
    return order[:cut] if split == "train" else order[cut:]


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/imdb/*.jsonl``, the Hub, or the built-in openings."""
    if builtin:
        return [
            Example(prompt=o, references=[""], meta={"label": -1, "index": i}) for i, o in enumerate(BUILTIN_OPENINGS)
        ]
    if split not in SPLITS:
        raise GrueError(f"task 'imdb' has no split '{split}'; accepted: {', '.join(SPLITS)}")
    source = "test" if split == "test" else "train"
    if data_dir:
        rows = read_jsonl_split(data_dir, "imdb", source)
    else:
        from grue.tasks.common import load_hub_split

        rows = load_hub_split("imdb", None, source, "imdb")
    return _rows_to_examples(split_rows(check_rows(rows, source), split))


def supervised_targets(examples: list[Example]) -> list[Example]:
    """Each example with the second half of its review's words as the reference (RL4LMs ``IMDBForSeq2Seq``):
    what the supervised baseline learns and is validated on. Built-in prompts (label -1) have no review."""
    if any(e.meta.get("label") == -1 for e in examples):
        raise GrueError(
            "supervised training needs references, and the built-in prompts have none; "
            "pass --data-dir DIR (or set GRUE_DATA_DIR) with imdb/train.jsonl, or use the Hugging Face Hub"
        )
    return [
        Example(prompt=e.prompt, references=[split_review(e.references[0])[1]], meta=dict(e.meta)) for e in examples
    ]


def supervised_examples(examples: list[Example]) -> list[Example]:
    """The examples ``grue train imdb --algo supervised`` learns from: ``supervised_targets`` of the positive
    reviews (label 1; RL4LMs imdb_text_continuation/gpt2_supervised.yml ``positive_ratio: 1.0`` keeps them all).
    Prompt + reference give back the review, less the one space ``split_review`` dropped between the
    halves, as RL4LMs' causal text did."""
    return supervised_targets([e for e in examples if e.meta.get("label") != 0])
