"""IMDB sentiment-guided continuation (GRUE task ``imdb``).

A prompt is the first half of a review's words; the policy continues it and is
rewarded for positive sentiment. The reference is the review's second half.
"""

from __future__ import annotations

import numpy as np

from grue.errors import GrueError
from grue.tasks.common import Example, read_jsonl_split

SPLITS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 20231  # fixed: the validation split is part of the task version, not of a run

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


def build_prompt(text: str) -> tuple[str, str]:
    """Split a review into (prompt = first half of its words, reference = the rest).

    HTML line breaks (``<br />``) become spaces before the split.
    """
    words = text.replace("<br />", " ").split()
    half = len(words) // 2
    return " ".join(words[:half]), " ".join(words[half:])


def _rows_to_examples(rows) -> list[Example]:
    examples = []
    for i, row in enumerate(rows):
        prompt, reference = build_prompt(row["text"])
        examples.append(Example(prompt=prompt, references=[reference], meta={"label": int(row["label"]), "index": i}))
    return examples


def _split_train(rows: list[dict], split: str) -> list[dict]:
    """Deterministic, disjoint 80/20 train/validation split of the original train set."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_val = int(round(len(rows) * VALIDATION_FRACTION))
    chosen = order[:n_val] if split == "validation" else order[n_val:]
    return [rows[i] for i in sorted(chosen)]


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/imdb/*.jsonl``, the Hub, or the built-in openings."""
    if builtin:
        return [Example(prompt=o, references=[""], meta={"label": -1, "index": i}) for i, o in enumerate(BUILTIN_OPENINGS)]
    if split not in SPLITS:
        raise GrueError(f"task 'imdb' has no split '{split}'; accepted: {', '.join(SPLITS)}")
    source = "test" if split == "test" else "train"
    if data_dir:
        rows = read_jsonl_split(data_dir, "imdb", source)
    else:
        from grue.tasks.common import load_hub_split

        rows = load_hub_split("imdb", None, source)
    if split != "test":
        rows = _split_train(rows, split)
    return _rows_to_examples(rows)


def supervised_examples(examples: list[Example]) -> list[Example]:
    """The examples ``grue train imdb --algo supervised`` learns from: the positive reviews (label 1).

    The GRUE paper fine-tunes its IMDB "Supervised" baseline on positive reviews only
    (RL4LMs imdb_text_continuation/gpt2_supervised.yml: ``positive_ratio: 1.0``).
    Built-in prompts (label -1) have no reference to learn from.
    """
    if any(e.meta.get("label") == -1 for e in examples):
        raise GrueError("supervised training needs references, and the built-in prompts have none; "
                        "pass --data-dir DIR (or set GRUE_DATA_DIR) with imdb/train.jsonl, or use the Hugging Face Hub")
    return [e for e in examples if e.meta.get("label") == 1]
