"""Diversity metrics (grue/metrics/diversity.py) against GEM-metrics 431a817, the paper's implementation."""

from __future__ import annotations

import math

import pytest

from grue.metrics import EvalBatch, MetricOptions, metric_function
from grue.metrics.diversity import diversity_stats, diversity_tokens, msttr

# GEM-metrics' names for grue's (gem_metrics 431a817 msttr.py:29-45, ngrams.py:35-67)
GEM_NAMES = {
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "unique_1": "unique-1",
    "unique_2": "unique-2",
    "h1": "entropy-1",
    "h2": "entropy-2",
    "msttr": "msttr-100",
    "vocab_size": "vocab_size-1",
    "mean_output_length": "mean_pred_length",
}

SMALL = [
    "The cat sat on the mat.",
    "Don't stop! The cat's toy is NOT the dog's toy.",
    'Mr. Smith went to Washington. He said: "hello there" -- twice.',
    "",
]
LONG = [
    "A dog runs in the park and the dog barks at a cat.",
    "The boy's dog can't swim, but it runs very fast.",
    "Two men play chess at a table in the park.",
    "A woman cuts vegetables in the kitchen; she is cooking dinner.",
    "People walk down a busy city street at night.",
    "The child eats an ice cream cone and smiles!",
    "A plate of rice and broccoli on a white table.",
    "Dr. Brown arrived at 5 p.m. He was late.",
    "It's a sunny day, so the kids play outside in the yard.",
    "The chef cooks pasta in a big pot of boiling water.",
    "Birds sing in the trees while the sun rises over the hill.",
    "He doesn't like coffee; he prefers tea with milk and honey.",
]
# RL4LMs 97df0bd metric.py:333-358 (DiversityMetrics: gem_metrics Predictions, MSTTR(window_size=100),
# NGramStats) run on SMALL and LONG with gem_metrics 431a817 and nltk 3.7 (Punkt English from NLTK's parameters).
GEM_SMALL = {
    "msttr-100": math.nan,
    "mean_pred_length": 9.5,
    "distinct-1": 0.7631578947368421,
    "vocab_size-1": 29,
    "unique-1": 24,
    "entropy-1": 4.668980145022534,
    "distinct-2": 0.9428571428571428,
    "unique-2": 31,
    "entropy-2": 5.014997302659249,
}
GEM_LONG = {
    "msttr-100": 0.66,
    "mean_pred_length": 12.333333333333334,
    "distinct-1": 0.6283783783783784,
    "vocab_size-1": 93,
    "unique-1": 75,
    "entropy-1": 6.023048128879337,
    "distinct-2": 0.9558823529411765,
    "unique-2": 127,
    "entropy-2": 6.9726860730559395,
}


@pytest.mark.parametrize("gens,expected", [(SMALL, GEM_SMALL), (LONG, GEM_LONG)])
def test_diversity_matches_gem_metrics(gens, expected):
    stats = metric_function("diversity")(EvalBatch([""] * len(gens), gens, []), MetricOptions()).values
    assert set(stats) == set(GEM_NAMES)
    for name, gem in GEM_NAMES.items():
        if math.isnan(expected[gem]):
            assert math.isnan(stats[name]), name
        else:
            assert stats[name] == pytest.approx(expected[gem], abs=1e-12), name


def test_tokens_are_nltk_word_tokenize_lower_cased():
    # the token lists GEM-metrics' list_tokenized_lower gave for SMALL under nltk 3.7 (texts.py:88-96)
    assert diversity_tokens(SMALL[1]) == [
        "do",
        "n't",
        "stop",
        "!",
        "the",
        "cat",
        "'s",
        "toy",
        "is",
        "not",
        "the",
        "dog",
        "'s",
        "toy",
        ".",
    ]
    assert diversity_tokens(SMALL[2]) == [
        "mr.",
        "smith",
        "went",
        "to",
        "washington",
        ".",
        "he",
        "said",
        ":",
        "``",
        "hello",
        "there",
        "''",
        "--",
        "twice",
        ".",
    ]
    assert diversity_tokens(LONG[1])[3:6] == ["dog", "ca", "n't"]
    assert diversity_tokens("") == []


def test_diversity_hand_computed():
    gens = ["The cat sat.", "the cat ran!"]
    # tokens: [the cat sat .] [the cat ran !]; unigrams the:2 cat:2 sat . ran !:1 (8 in all);
    # bigrams inside each generation: (the cat):2, (cat sat) (sat .) (cat ran) (ran !):1 (6 in all)
    stats = diversity_stats(gens)
    assert diversity_tokens(gens[0]) == ["the", "cat", "sat", "."]
    assert stats["distinct_1"] == pytest.approx(6 / 8) and stats["distinct_2"] == pytest.approx(5 / 6)
    assert stats["unique_1"] == 4 and stats["unique_2"] == 4
    assert stats["h1"] == pytest.approx(2 * 0.25 * 2 + 4 * 0.125 * 3)  # -sum p log2 p: 2 x 1/4, 4 x 1/8
    assert stats["h2"] == pytest.approx(math.log2(3) / 3 + 2 / 3 * math.log2(6))  # 1 x 2/6, 4 x 1/6
    assert math.isnan(stats["msttr"])  # fewer than 100 tokens: no segment (gem_metrics msttr.py:63-71)
    assert stats["vocab_size"] == 6 and stats["mean_output_length"] == 4


def test_msttr_drops_the_incomplete_segment_and_rounds():
    tokens = ["a"] * 100 + [f"w{i}" for i in range(100)] + ["b"] * 50
    # hand: segment 1 has 1 type in 100 tokens, segment 2 100 in 100; the last 50 tokens are dropped
    assert msttr(tokens) == pytest.approx((0.01 + 1.0) / 2, abs=1e-15)
    assert diversity_stats([" ".join(tokens)])["msttr"] == pytest.approx(0.505, abs=1e-15)
    # three segments with 1, 2 and 2 types: mean 5/300 = 0.016666..., rounded to 5 decimals (msttr.py:31-36)
    three = ["a"] * 100 + ["a"] * 99 + ["b"] + ["c"] * 99 + ["d"]
    assert msttr(three) == 0.01667
    assert math.isnan(msttr([]))


def test_empty_generations():
    stats = diversity_stats(["", ""])
    assert stats["vocab_size"] == 0 and stats["distinct_1"] == 0 and stats["h1"] == 0  # ngrams.py:53-55, 80-87
    assert stats["mean_output_length"] == 0 and math.isnan(stats["msttr"])
