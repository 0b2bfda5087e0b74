"""Lexical diversity of the generations (no references), as the paper computed it: GEM-metrics
(commit 431a817) ``MSTTR(window_size=100)`` and ``NGramStats`` over the generations (RL4LMs
97df0bd ``DiversityMetrics``).

Tokens: each generation split by nltk 3.7's ``word_tokenize`` (English Punkt sentences,
then Treebank words: ``"Don't stop!"`` -> ``Do n't stop !``; ``grue.metrics.nltk37``), then
lower-cased, punctuation kept (GEM-metrics' ``list_tokenized_lower``; the paper's tables use
these numbers, not the ``_nopunct`` variants). N-grams are taken inside each generation
(never across two) and counted over the whole corpus; MSTTR reads all generations' tokens
as one stream.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from grue.metrics import EvalBatch, MetricOptions, MetricResult
from grue.metrics.text import check_batch, ngrams

MSTTR_SEGMENT = 100
MSTTR_DECIMALS = 5  # GEM-metrics rounds MSTTR to 5 decimals


def diversity_tokens(text: str) -> list[str]:
    """nltk 3.7 ``word_tokenize`` of ``text``, each token lower-cased (tokenised before lower-casing, as GEM-metrics)."""
    from grue.metrics.nltk37 import word_tokenize

    return [t.lower() for t in word_tokenize(text)]


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
    """Mean type-token ratio over consecutive ``segment``-token pieces of ``tokens``, rounded to 5 decimals.

    The last, incomplete piece is dropped; with fewer than ``segment`` tokens there is no
    piece and the result is NaN (GEM-metrics' value; the evaluation records it as skipped).
    """
    pieces = [tokens[i : i + segment] for i in range(0, len(tokens) - segment + 1, segment)]
    if not pieces:
        return math.nan
    return round(sum(len(set(p)) / segment for p in pieces) / len(pieces), MSTTR_DECIMALS)


def diversity_stats(generations: Sequence[str]) -> dict[str, float]:
    """distinct_1/2, unique_1/2, h1/h2, msttr, vocab_size and mean_output_length (tokens) of ``generations``.

    GEM-metrics' names: distinct-N, unique-N, entropy-N, msttr-100, vocab_size-1, mean_pred_length.
    """
    token_lists = [diversity_tokens(g) for g in generations]
    uni, bi = corpus_ngrams(token_lists, 1), corpus_ngrams(token_lists, 2)
    stream = [t for toks in token_lists for t in toks]
    return {
        "distinct_1": distinct(uni),
        "distinct_2": distinct(bi),
        "unique_1": float(unique(uni)),
        "unique_2": float(unique(bi)),
        "h1": entropy(uni),
        "h2": entropy(bi),
        "msttr": msttr(stream),
        "vocab_size": float(len(uni)),
        "mean_output_length": len(stream) / len(token_lists) if token_lists else 0.0,
    }


def diversity(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """The diversity group over ``batch.generations`` (see ``diversity_stats``)."""
    check_batch(batch, references=False)
    return MetricResult(diversity_stats(batch.generations))
