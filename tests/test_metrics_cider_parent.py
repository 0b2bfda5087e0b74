"""CIDEr-D and the SPICE wrapper (grue/metrics/cider.py, spice.py); PARENT is in test_metrics_totto.py."""

from __future__ import annotations

import json
import math

import pytest

from grue.errors import GrueError
from grue.metrics import (
    METRICS,
    EvalBatch,
    MetricOptions,
    MetricSkipped,
    metric_function,
)
from grue.metrics import spice as spice_mod
from grue.metrics.cider import cider_per_sample
from grue.metrics.spacy_tokens import spacy_tokens

# ---------------------------------------------------------------------------------------------
# CIDEr-D

CIDER_GENS = [
    "A man is riding a horse on the beach.",
    "Two dogs play with a red ball in the park",
    "a woman cuts vegetables, in the kitchen",
    "The cat sleeps.",
    "people walking down a busy city street at night",
    "A child eats an ice cream cone; the child smiles!",
    "",
    "a plate of food with broccoli and rice and rice",
]
CIDER_REFS = [
    [
        "A man rides a horse along the beach.",
        "Someone is riding a brown horse on the sand.",
        "A horse and rider on a beach.",
    ],
    ["Two dogs are playing with a ball in a park.", "Dogs chase a red ball on the grass."],
    [
        "A woman is cutting vegetables in a kitchen.",
        "A cook chops carrots on a board.",
        "Someone slicing vegetables in the kitchen.",
    ],
    ["A cat is sleeping on a sofa."],
    [
        "Pedestrians walk along a crowded street at night.",
        "People walking on a busy city street.",
        "A busy street with many people at night.",
    ],
    ["A little child eating an ice cream cone.", "A smiling kid with ice cream!"],
    ["A red bus parked by the road.", "A bus on the street."],
    ["A plate of rice and broccoli.", "Food on a white plate with broccoli.", "A dish of rice, chicken and broccoli."],
]
# The paper's CIDEr on the texts above: RL4LMs 97df0bd rl4lms/envs/text_generation/caption_metrics/cider.py
# (CiderScorer, lines 70-196, after its tokenize, lines 220-231) run with spaCy 3.0.6's English tokenizer.
CIDER_CORPUS = 1.5670445121125054
CIDER_SAMPLES = [
    2.5782378614174757,
    2.1262301935281407,
    1.4084855564217755,
    0.6411160352328281,
    2.584129652328589,
    1.8116495346536265,
    0.0,
    1.3865072633176077,
]


def test_spacy_tokens_are_spacy_30s():
    # spaCy 3.0.6 (RL4LMs' pin) spacy.blank("en") tokens, run on this machine; case kept,
    # whitespace tokens dropped (RL4LMs joins the token texts with spaces, then splits).
    assert spacy_tokens("It was in May.") == ["It", "was", "in", "May."]
    assert spacy_tokens("These theses are fine.") == ["These", "these", "s", "are", "fine", "."]
    assert spacy_tokens("Don't stop-motion, U.S. kids' toys cost $5.50!") == [
        "Do",
        "n't",
        "stop",
        "-",
        "motion",
        ",",
        "U.S.",
        "kids",
        "'",
        "toys",
        "cost",
        "$",
        "5.50",
        "!",
    ]
    assert spacy_tokens("a  b\nc") == ["a", "b", "c"]
    assert spacy_tokens("ice-cream (1990s) e.g. 3pm") == ["ice", "-", "cream", "(", "1990s", ")", "e.g.", "3", "pm"]
    assert spacy_tokens("  ") == []


def test_cider_matches_rl4lms_own_example():
    # RL4LMs 97df0bd caption_metrics/cider.py:238-245 (__main__), printed by that code with spaCy 3.0.6's tokenizer
    gens = ["The dog is the boy's cat.", "A boy is picking apples from trees and put them into bags."]
    refs = [["The dog is the boy's cat.", "The dog eats the cat of the boy."], ["A boy is picking apples from trees."]]
    assert cider_per_sample(gens, refs) == pytest.approx([6.248312903893759, 4.492345650332553], abs=1e-9)
    result = metric_function("cider")(EvalBatch(["cat#dog#boy", "apple#tree#boy"], gens, refs), MetricOptions())
    assert result.values["cider"] == pytest.approx(5.370329277113156, abs=1e-9)


def test_cider_matches_reference_values():
    scores = cider_per_sample(CIDER_GENS, CIDER_REFS)
    assert scores == pytest.approx(CIDER_SAMPLES, abs=1e-9)
    result = metric_function("cider")(EvalBatch([""] * 8, CIDER_GENS, CIDER_REFS), MetricOptions())
    assert set(result.values) == set(METRICS["cider"].names)
    assert result.values["cider"] == pytest.approx(CIDER_CORPUS, abs=1e-9)
    assert result.per_sample["cider"] == pytest.approx(CIDER_SAMPLES, abs=1e-9)


def test_cider_matches_pycocoevalcap_live():
    cider_mod = pytest.importorskip("pycocoevalcap.cider.cider")

    def tok(s):
        return " ".join(spacy_tokens(s))

    gts = {i: [tok(r) for r in refs] for i, refs in enumerate(CIDER_REFS)}
    res = {i: [tok(g)] for i, g in enumerate(CIDER_GENS)}
    corpus, samples = cider_mod.Cider().compute_score(gts, res)
    assert cider_per_sample(CIDER_GENS, CIDER_REFS) == pytest.approx(list(samples), abs=1e-9)
    assert sum(CIDER_SAMPLES) / 8 == pytest.approx(float(corpus), abs=1e-9)


def test_cider_hand_checked_cases():
    # One-example corpus: every idf is log(1) - log(1) = 0, so pycocoevalcap's CIDEr-D is 0.
    assert cider_per_sample(["a cat"], [["a cat"]]) == [0.0]
    # Two examples with disjoint vocabularies, each generation equal to its one reference:
    # every n-gram has df = 1, weights log 2 for all; cosine 1 per order, no length gap -> 10.
    assert cider_per_sample(
        ["a cat sat here", "dogs run fast now"], [["a cat sat here"], ["dogs run fast now"]]
    ) == pytest.approx([10.0, 10.0])


def test_cider_bad_input():
    with pytest.raises(GrueError, match="reference lists"):
        cider_per_sample(["a"], [["a"], ["b"]])
    with pytest.raises(GrueError, match="non-empty list"):
        cider_per_sample(["a", "b"], [["a"], []])
    with pytest.raises(GrueError, match="at least one"):
        cider_per_sample([], [])
    with pytest.raises(GrueError, match="non-empty list of str"):
        cider_per_sample(["a"], [[1]])


@pytest.mark.parametrize("group", ["cider", "parent", "spice"])
def test_empty_batch_is_skipped(group):
    with pytest.raises(MetricSkipped, match="no examples"):
        metric_function(group)(EvalBatch([], [], []), MetricOptions())
    with pytest.raises(GrueError, match="reference lists"):
        metric_function(group)(EvalBatch(["p"], ["g"], []), MetricOptions())


# ---------------------------------------------------------------------------------------------
# SPICE (its setup and skip reason: test_metrics_spice.py)


def test_spice_missing_files(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "spice-1.0.jar").write_bytes(b"")
    (tmp_path / "lib" / "stanford-corenlp-3.6.0.jar").write_bytes(b"")
    assert spice_mod.missing_files(tmp_path) == ["lib/stanford-corenlp-3.6.0-models.jar"]
    (tmp_path / "lib" / "stanford-corenlp-3.6.0-models.jar").write_bytes(b"")
    assert spice_mod.missing_files(tmp_path) == []


def test_spice_input_and_output_helpers():
    records = spice_mod.spice_input(["A dog runs.", "two cats"], [["a dog's running"], ["Cats!", "two  cats sit"]])
    # RL4LMs 97df0bd caption_metrics/spice/spice.py:36-47: spaCy token texts joined by spaces, case kept
    assert records == [
        {"image_id": 0, "test": "A dog runs .", "refs": ["a dog 's running"]},
        {"image_id": 1, "test": "two cats", "refs": ["Cats !", "two cats sit"]},
    ]
    # SPICE 1.0's -out format (-subset adds the per-category entries); records out of order, one NaN.
    out = json.loads("""[
      {"image_id": 2, "scores": {"All": {"pr": NaN, "re": NaN, "f": NaN, "fn": 0, "fp": 0, "tp": 0, "numImages": 1}}},
      {"image_id": 0, "scores": {"All": {"pr": 0.5, "re": 0.25, "f": 0.3333333333, "fn": 3, "fp": 1, "tp": 1,
                                         "numImages": 1},
                                 "Object": {"pr": 1.0, "re": 0.5, "f": 0.6666666667, "fn": 1, "fp": 0, "tp": 1,
                                            "numImages": 1}}},
      {"image_id": 1, "scores": {"All": {"pr": 1.0, "re": 1.0, "f": 1.0, "fn": 0, "fp": 0, "tp": 2, "numImages": 1}}}
    ]""")
    scores = spice_mod.parse_spice_output(out, 3)
    assert scores[:2] == [0.3333333333, 1.0] and math.isnan(scores[2])
    assert spice_mod.corpus_mean(scores) == pytest.approx((0.3333333333 + 1.0) / 2)
    assert math.isnan(spice_mod.corpus_mean([math.nan]))
    with pytest.raises(GrueError, match="no score for examples"):
        spice_mod.parse_spice_output(out, 4)
    with pytest.raises(GrueError, match="scores.All.f"):
        spice_mod.parse_spice_output([{"image_id": 0}], 1)
    with pytest.raises(GrueError, match="non-empty list"):
        spice_mod.spice_input(["a"], [[]])
    with pytest.raises(GrueError, match="reference lists"):
        spice_mod.spice_input(["a", "b"], [["a"]])
