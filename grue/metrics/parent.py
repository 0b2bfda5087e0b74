"""PARENT (Dhingra et al., ACL 2019, "Handling Divergent Reference Texts when Evaluating
Table-to-Text Generation"), as ToTTo's official evaluation computes it (the paper's PARENT:
RL4LMs 97df0bd rl4lms/data_pools/task_utils/totto/eval_utils/totto_parent_eval.py, run by
``totto_parent_eval.sh``; a variant of Google's language/table_text_eval).

With the word-overlap entailment model, for a generation ``g``, one reference ``r``, the
precision table ``T`` (the whole table with its titles and section text) and the recall
table ``H`` (the highlighted cells with the titles), all (attribute, value) entries of
token lists::

    w(x)    = |{tokens of n-gram x that occur in some value of T}| / |x|     (entailment)
    P_n     = sum_x c_g(x) (p(x) + (1 - p(x)) w(x)) / sum_x c_g(x),   p(x) = min(1, c_r(x) / c_g(x))
    Rr_n    = sum_x c_r(x) w(x) min(1, c_g(x) / c_r(x)) / sum_x c_r(x) w(x)    (1 when the sum is 0)
    P, Rr   = geometric means over n = 1..4 (zero values of orders 2..4 replaced by 1e-5;
              P = 0 if P_1 = 0; Rr = 1e-5 if Rr_1 = 0)
    Rt      = mean over entries of H of LCS(value, g) / |value|     (1e-5 if 0)
    lambda  = 1 - mean over entries of H of LCS(value, r) / |value|    (lambda_weight=None,
              the scripts' setting)
    R       = Rr^(1 - lambda) * Rt^lambda,     F = 2 P R / (P + R + 1e-8)

The example's F is the largest over its three references (ToTTo's: the first three, ``<null>``
for a missing one, ``grue.metrics.totto.totto_references``); the corpus score is the mean F
over examples (0..1; the scripts print it times 100). An empty generation is scored as
``<null>``. Without a precision table the recall table stands in for it.

Tokenisation: ``grue.metrics.totto.totto_tokens`` (sacrebleu's 13a tokenizer on the
lower-cased text) for generations, references and every table attribute and value. Table
entries whose value has no token are left out (the reference divides by zero on them).

The generation-only parts (its n-gram counts, the table recall Rt) are computed once per
example (``generation_side``) and reused for each of its references.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.metrics.text import check_batch, check_texts, mean, ngrams, subset_flags
from grue.metrics.totto import totto_prediction, totto_references, totto_tokens

# why hand-written: the reference is a script in google-research/language, not a package; ~150 lines.
MAX_ORDER = 4
SMOOTHING = 1e-5
Table = list[tuple[list[str], list[str]]]


def lcs_length(x: Sequence[str], y: Sequence[str]) -> int:
    """Length of the longest common subsequence of token sequences x and y (O(|x| |y|) DP)."""
    prev = [0] * (len(y) + 1)
    for a in x:
        cur = [0]
        for j, b in enumerate(y):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def entailment_probability(ngram: tuple[str, ...], table_values: set[str]) -> float:
    """Word-overlap entailment: the fraction of the n-gram's tokens found among the table's value tokens."""
    return sum(tok in table_values for tok in ngram) / len(ngram)


def mention_probability(value: list[str], text: list[str]) -> float:
    """How much of a table value the text mentions: LCS(value, text) / |value|."""
    return lcs_length(value, text) / len(value)


def _geometric_mean(values: list[float]) -> float:
    """exp(mean(log v)) over the orders (math.fsum, as the reference)."""
    return math.exp(math.fsum(math.log(v) / len(values) for v in values))


def ngram_precision_recall(gen: Counter, ref: Counter, table_values: set[str]) -> tuple[float, float]:
    """Entailed precision P_n and entailed reference recall Rr_n of one n-gram order (see module doc).

    ``gen`` and ``ref`` are the ``ngrams`` counts of that order of the generation and the reference.
    """
    num = den = 0.0
    for ngram, count in gen.items():
        in_ref = min(1.0, ref.get(ngram, 0) / count)
        num += count * (in_ref + (1.0 - in_ref) * entailment_probability(ngram, table_values))
        den += count
    precision = num / den if den else 0.0
    num = den = 0.0
    for ngram, count in ref.items():
        w = entailment_probability(ngram, table_values)
        num += count * w * min(1.0, gen.get(ngram, 0) / count)
        den += count * w
    recall = num / den if den else 1.0
    return precision, recall


class GenerationSide(NamedTuple):
    """What PARENT needs of one generation and its tables, whatever the reference."""

    ngrams: list[Counter]
    """The generation's ``ngrams`` counts of orders 1..max_order."""
    values: set[str]
    """Every token of every value of the precision table."""
    table_recall: float
    """Rt: mean over the recall table's entries of LCS(value, generation) / |value| (SMOOTHING if 0)."""


def generation_side(
    generation: list[str], table: Table, max_order: int = MAX_ORDER, precision_table: Table | None = None
) -> GenerationSide:
    """The reference-independent part of PARENT for one tokenised generation, its tokenised recall ``table``
    and precision table (``table`` when None)."""
    entailing = table if precision_table is None else precision_table
    return GenerationSide(
        ngrams=[ngrams(generation, n) for n in range(1, max_order + 1)],
        values={tok for _, value in entailing for tok in value},
        table_recall=mean([mention_probability(v, generation) for _, v in table]) or SMOOTHING,
    )


def parent_against(
    side: GenerationSide, reference: list[str], table: Table, lambda_weight: float | None = None
) -> tuple[float, float, float]:
    """(precision, recall, F) of a prepared generation (``generation_side``) against one tokenised reference;
    ``table`` is the recall table (it sets lambda)."""
    precs, recs = [], []
    for order, gen in enumerate(side.ngrams, start=1):
        p, r = ngram_precision_recall(gen, ngrams(reference, order), side.values)
        precs.append(p if p or order == 1 else SMOOTHING)
        recs.append(r if r or order == 1 else SMOOTHING)
    precision = 0.0 if precs[0] == 0.0 else _geometric_mean(precs)
    ref_recall = SMOOTHING if recs[0] == 0.0 else _geometric_mean(recs)
    if lambda_weight is None:
        lambda_weight = 1.0 - mean([mention_probability(v, reference) for _, v in table])
    recall = math.exp((1.0 - lambda_weight) * math.log(ref_recall) + lambda_weight * math.log(side.table_recall))
    return precision, recall, 2.0 * precision * recall / (precision + recall + 1e-8)


def parent_one(
    generation: list[str],
    reference: list[str],
    table: Table,
    lambda_weight: float | None = None,
    max_order: int = MAX_ORDER,
    precision_table: Table | None = None,
) -> tuple[float, float, float]:
    """(precision, recall, F) of one tokenised generation against one tokenised reference, recall ``table``
    and precision table (``table`` when None)."""
    side = generation_side(generation, table, max_order, precision_table)
    return parent_against(side, reference, table, lambda_weight)


def tokenize_table(table, index: int = 0) -> Table:
    """[(attribute, value) strings] -> [(attribute tokens, value tokens)], dropping entries whose value has no token."""
    if isinstance(table, (str, dict)) or not isinstance(table, Sequence):
        raise GrueError(
            f"PARENT: table {index} is a {type(table).__name__}; a table is a list of (attribute, value) string pairs"
        )
    out = []
    for entry in table:
        if (
            isinstance(entry, str)
            or not isinstance(entry, Sequence)
            or len(entry) != 2
            or not all(isinstance(x, str) for x in entry)
        ):
            raise GrueError(
                f"PARENT: table {index} has the entry {entry!r}; "
                "each entry must be an (attribute, value) pair of strings"
            )
        value = totto_tokens(entry[1])
        if value:
            out.append((totto_tokens(entry[0]), value))
    if not out:
        raise GrueError(
            f"PARENT: table {index} has no entry with a non-empty value ({table!r}); "
            "each table needs at least one (attribute, value) pair with a value"
        )
    return out


def parent_per_sample(
    generations: list[str],
    references: list[list[str]],
    tables: list,
    lambda_weight: float | None = None,
    precision_tables: list | None = None,
) -> list[float]:
    """PARENT F of each generation (best over its three ToTTo references) given its tables.

    generations: N strings; references: N non-empty lists of strings; tables: N recall tables
    and precision_tables: N precision tables (None: the recall tables stand in), each a list
    of (attribute, value) string pairs. lambda_weight None sets lambda per reference (module
    doc). Returns N floats in [0, 1].
    """
    precision_tables = tables if precision_tables is None else precision_tables
    if not len(generations) == len(references) == len(tables) == len(precision_tables):
        raise GrueError(
            f"PARENT got {len(generations)} generations, {len(references)} reference lists, "
            f"{len(tables)} tables and {len(precision_tables)} precision tables; give one of each per example"
        )
    check_texts(generations, references)
    scores = []
    for i, (gen, refs, table, full) in enumerate(zip(generations, references, tables, precision_tables)):
        tab = tokenize_table(table, i)
        side = generation_side(totto_tokens(totto_prediction(gen)), tab, precision_table=tokenize_table(full, i))
        scores.append(max(parent_against(side, totto_tokens(r), tab, lambda_weight)[2] for r in totto_references(refs)))
    return scores


def parent(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """Mean PARENT F over all examples (parent_overall) and over the examples whose
    ``meta["overlap_subset"]`` is true / false (``grue.metrics.text.subset_flags``).

    Each example's recall table is ``meta["table"]`` and its precision table
    ``meta["precision_table"]`` (when every example has one; else the recall tables stand in).
    A subset with no example is not reported, and neither subset is when no example has the flag.
    """
    check_batch(batch)
    meta = batch.meta or [{} for _ in batch.generations]
    has_table = [m.get("table") is not None for m in meta]
    if not any(has_table):
        raise MetricSkipped("PARENT needs each example's table in meta['table'] and no example has one")
    if not all(has_table):
        raise GrueError(
            f"PARENT: {has_table.count(False)} of {len(meta)} examples lack meta['table']; "
            "give every example its table (list of (attribute, value) pairs)"
        )
    flags = subset_flags(meta)
    full = [m["precision_table"] for m in meta] if all(m.get("precision_table") for m in meta) else None
    scores = parent_per_sample(batch.generations, batch.references, [m["table"] for m in meta], precision_tables=full)
    values = {"parent_overall": mean(scores)}
    for name, want in (("parent_overlap", True), ("parent_nonoverlap", False)):
        subset = [s for s, f in zip(scores, flags) if f is want]
        if subset:
            values[name] = mean(subset)
    return MetricResult(values, {"parent_overall": scores})
