"""Lexical diversity of the generations (no references), after GEM-metrics' definitions (used by RL4LMs).

Tokens: each generation split by ``grue.metrics.text.word_tokens`` (lower-cased words, every
punctuation character on its own). N-grams are taken inside each generation (never across
two) and counted over the whole corpus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from grue.metrics import EvalBatch, MetricOptions, MetricResult
from grue.metrics.text import check_batch, ngrams, word_tokens

MSTTR_SEGMENT = 100


def corpus_ngrams(token_lists: Sequence[list[str]], n: int) -> Counter:
    """Corpus counts of the n-grams (tuples) inside each token list (``ngrams`` summed over the lists)."""
    counts: Counter = Counter()
    for toks in token_lists:
        counts.update(ngrams(toks, n))
    return counts


def distinct(counts: Counter) -> float:
    """Distinct n-grams / total n-grams (0 when there are none)."""
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def unique(counts: Counter) -> int:
    """How many n-grams occur exactly once in the corpus."""
    return sum(1 for c in counts.values() if c == 1)


def entropy(counts: Counter) -> float:
    """Shannon entropy in bits of the n-gram frequency distribution: ``-sum p log2 p``, ``p = count / total``."""
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def msttr(tokens: Sequence[str], segment: int = MSTTR_SEGMENT) -> float:
    """Mean type-token ratio over consecutive ``segment``-token pieces of ``tokens``.

    The last, incomplete piece is dropped; with fewer than ``segment`` tokens the
    result is the type-token ratio of all of them (0 for no tokens).
    """
    pieces = [tokens[i : i + segment] for i in range(0, len(tokens) - segment + 1, segment)]
    if not pieces:
        return len(set(tokens)) / len(tokens) if tokens else 0.0
    return sum(len(set(p)) / segment for p in pieces) / len(pieces)


def diversity_stats(generations: Sequence[str]) -> dict[str, float]:
    """distinct_1/2, unique_1/2, h1/h2, msttr, vocab_size and mean_output_length (tokens) of ``generations``."""
    token_lists = [word_tokens(g) for g in generations]
    uni, bi = corpus_ngrams(token_lists, 1), corpus_ngrams(token_lists, 2)
    stream = [t for toks in token_lists for t in toks]
    return {
        "distinct_1": distinct(uni), "distinct_2": distinct(bi),
        "unique_1": float(unique(uni)), "unique_2": float(unique(bi)),
        "h1": entropy(uni), "h2": entropy(bi),
        "msttr": msttr(stream),
        "vocab_size": float(len(uni)),
        "mean_output_length": len(stream) / len(token_lists) if token_lists else 0.0,
    }


def diversity(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """The diversity group over ``batch.generations`` (see ``diversity_stats``)."""
    check_batch(batch, references=False)
    return MetricResult(diversity_stats(batch.generations))
