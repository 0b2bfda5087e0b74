"""CIDEr-D (Vedantam et al., CVPR 2015), computed as ``pycocoevalcap``'s ``Cider`` computes it.

For each example with candidate ``c`` and references ``r_1..r_m`` (over a corpus of ``N``
examples)::

    g_n(x)[w] = tf_x(w) * (log N - log max(1, df(w)))     for every n-gram w of order n
    df(w)     = number of examples whose references contain w (the evaluated corpus's own refs)
    sim_n(c, r) = sum_w min(g_n(c)[w], g_n(r)[w]) * g_n(r)[w] / (|g_n(c)| |g_n(r)|)   (clipping)
                  * exp(-(l_c - l_r)^2 / (2 sigma^2))                                (length penalty)
    CIDEr-D(c) = 10 * mean_{n=1..4} (1/m) sum_j sim_n(c, r_j)

and the corpus score is the mean over examples. As in pycocoevalcap, the "length" ``l`` in
the penalty is the number of bigrams of the text (``len(tokens) - 1``), the cosine is left
undivided when either norm is zero, and a one-example corpus scores 0 (``log N = 0``).

Tokenisation: as the paper's CIDEr (RL4LMs 97df0bd caption_metrics/cider.py), every text is
split by spaCy's English tokenizer, case kept (``grue.metrics.spacy_tokens``):
``"The boy's cat."`` -> ``The boy 's cat .``. (pycocoevalcap's own PTB tokenizer, which
lower-cases and drops punctuation, is not used: the paper did not use it.)

Corpus: the document frequencies come from the evaluated examples, one per example. RL4LMs
keyed its dictionaries by prompt text, so examples with the same prompt collapsed into one;
GRUE's CommonGen evaluation splits have no repeated prompt, where the two agree.
"""

from __future__ import annotations

import math
from collections import Counter

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult
from grue.metrics.spacy_tokens import spacy_tokens
from grue.metrics.text import check_batch, check_texts, mean, ngrams

# why hand-written: pycocoevalcap is unmaintained since 2020 and drags pycocotools/Java in; we need ~100 lines.
MAX_ORDER = 4
SIGMA = 6.0


def ngrams_up_to(tokens: list[str], max_order: int = MAX_ORDER) -> Counter:
    """Counts of all n-grams (tuples) of orders 1..max_order in ``tokens`` in one Counter, shorter orders first."""
    counts: Counter = Counter()
    for n in range(1, max_order + 1):
        counts.update(ngrams(tokens, n))
    return counts


def document_frequency(reference_counts: list[list[Counter]]) -> Counter:
    """df(w): for each n-gram, the number of examples with at least one reference containing it.

    ``reference_counts[i][j]`` is the n-gram Counter of reference j of example i.
    """
    df: Counter = Counter()
    for refs in reference_counts:
        df.update(set().union(*(r.keys() for r in refs)))
    return df


def tfidf_vector(
    counts: Counter, df: Counter, log_corpus_size: float, max_order: int = MAX_ORDER
) -> tuple[list[dict], list[float], int]:
    """TF-IDF vectors of one text, by order.

    Returns ``(vectors, norms, length)``: ``vectors[n-1]`` maps each n-gram of order n to
    ``tf * (log N - log max(1, df))``, ``norms[n-1]`` is that vector's Euclidean norm, and
    ``length`` is the text's number of bigrams (pycocoevalcap's length for the penalty).
    """
    vectors: list[dict] = [{} for _ in range(max_order)]
    squares = [0.0] * max_order
    length = 0
    for ngram, tf in counts.items():
        order = len(ngram) - 1
        weight = float(tf) * (log_corpus_size - math.log(max(1.0, float(df.get(ngram, 0)))))
        vectors[order][ngram] = weight
        squares[order] += weight**2
        if order == 1:
            length += tf
    return vectors, [math.sqrt(s) for s in squares], length


def clipped_similarity(
    hyp: tuple[list[dict], list[float], int], ref: tuple[list[dict], list[float], int], sigma: float = SIGMA
) -> list[float]:
    """Per order n: clipped cosine ``sum_w min(h[w], r[w]) * r[w] / (|h| |r|)`` times the Gaussian length penalty."""
    (hv, hn, hl), (rv, rn, rl) = hyp, ref
    penalty = math.exp(-(float(hl - rl) ** 2) / (2 * sigma**2))
    out = []
    for n in range(len(hv)):
        val = 0.0
        for ngram, weight in hv[n].items():
            r = rv[n].get(ngram, 0.0)
            val += min(weight, r) * r
        if hn[n] != 0 and rn[n] != 0:
            val /= hn[n] * rn[n]
        out.append(val * penalty)
    return out


def cider_per_sample(
    generations: list[str], references: list[list[str]], max_order: int = MAX_ORDER, sigma: float = SIGMA
) -> list[float]:
    """CIDEr-D of each generation, with document frequencies from this corpus's references.

    generations: N strings; references: N non-empty lists of strings. Returns N floats (>= 0).
    """
    check_texts(generations, references)
    if not generations:
        raise GrueError("CIDEr needs at least one example; got none")
    hyp_counts = [ngrams_up_to(spacy_tokens(g), max_order) for g in generations]
    ref_counts = [[ngrams_up_to(spacy_tokens(r), max_order) for r in refs] for refs in references]
    df = document_frequency(ref_counts)
    log_n = math.log(float(len(generations)))
    scores = []
    for hyp, refs in zip(hyp_counts, ref_counts):
        h = tfidf_vector(hyp, df, log_n, max_order)
        per_order = [0.0] * max_order
        for ref in refs:
            sims = clipped_similarity(h, tfidf_vector(ref, df, log_n, max_order), sigma)
            per_order = [a + b for a, b in zip(per_order, sims)]
        scores.append(10.0 * (sum(per_order) / max_order) / len(refs))
    return scores


def cider(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """Corpus CIDEr-D ("cider": mean of the per-example scores) and the per-example scores."""
    check_batch(batch)
    scores = cider_per_sample(batch.generations, batch.references)
    return MetricResult({"cider": mean(scores)}, {"cider": scores})
