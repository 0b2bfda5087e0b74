"""N-gram and edit-distance metrics from their reference libraries (nltk, rouge-score, sacrebleu).

Every group function is ``fn(batch: EvalBatch, opts: MetricOptions) -> MetricResult`` and
reports on the GRUE paper's 0-1 scale (sacrebleu's 0-100 numbers are divided by 100).
The per-sample functions are also the task rewards (``grue.rewards``).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Sequence

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped, check_batch, check_texts  # noqa: F401


def overlap_flag(value) -> bool | None:
    """ToTTo's ``overlap_subset`` as a bool: True/False, "True"/"False"; None when absent or "none" (train)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def mean(xs: Sequence[float]) -> float:
    """The arithmetic mean of ``xs`` (0 for none)."""
    return float(sum(xs) / len(xs)) if xs else 0.0


# ---------------------------------------------------------------- word tokens and n-grams


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    """Counts of the n-grams (tuples of exactly ``n`` tokens) of ``tokens``, in order of first occurrence."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


# ---------------------------------------------------------------- ToTTo subsets


def subset_flags(meta: Sequence[dict]) -> list[bool | None]:
    """Each example's ToTTo ``meta["overlap_subset"]`` as True / False, or None for every example when none has one.

    Accepted flags: a bool or the strings "True" / "False" (``overlap_flag``);
    a missing key, None or "none" (ToTTo's train rows) is no flag. GrueError when some
    examples have a flag and others do not, or when a flag is anything else.
    """
    raw = [m.get("overlap_subset") for m in meta]
    if all(_no_flag(f) for f in raw):
        return [None] * len(raw)
    flags = [overlap_flag(f) for f in raw]
    bad = [i for i, f in enumerate(flags) if f is None]
    if bad:
        raise GrueError(
            f"example {bad[0]} has overlap_subset {raw[bad[0]]!r}; accepted: True or False (or the "
            f"strings 'True'/'False') on every example, or no flag (None) on any"
        )
    return flags


def _no_flag(value) -> bool:
    """None or the string "none": how ToTTo marks an example outside both subsets (train)."""
    return value is None or (isinstance(value, str) and value.strip().lower() == "none")


# ---------------------------------------------------------------- METEOR


def meteor_per_sample(generations: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """METEOR of each generation as the paper's HF ``meteor`` computed it (N floats in [0, 1]).

    HF ``meteor`` 2.5.1 declares one reference string per example, so an example's
    reference LIST reaches nltk as its Python repr (``"['A dog.', 'A cat.']"``, brackets
    and quotes included). Per example: nltk ``single_meteor_score(word_tokenize(str(refs)),
    word_tokenize(generation), alpha=0.9, beta=3, gamma=0.5)`` with nltk 3.7's
    ``word_tokenize`` (``grue.metrics.nltk37``); ``meteor = Fmean * (1 - 0.5 * frag^3)``,
    ``Fmean = 10PR / (R + 9P)``, exact, Porter-stem and WordNet-synonym matches of
    lower-cased words.
    """
    check_texts(generations, references)
    from grue.metrics.wordnet import english_wordnet

    wn = english_wordnet()
    from nltk.translate.meteor_score import single_meteor_score

    from grue.metrics.nltk37 import word_tokenize

    return [
        float(
            single_meteor_score(
                word_tokenize(str(list(refs))), word_tokenize(g), alpha=0.9, beta=3.0, gamma=0.5, wordnet=wn
            )
        )
        for g, refs in zip(generations, references)
    ]


def meteor(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``meteor``: the mean of the per-sample METEOR (as the paper's HF ``meteor`` metric reports it)."""
    check_batch(batch)
    scores = meteor_per_sample(batch.generations, batch.references)
    return MetricResult({"meteor": mean(scores)}, {"meteor": scores})


# ---------------------------------------------------------------- ROUGE

ROUGE_NAMES = {"rouge1": "rouge_1", "rouge2": "rouge_2", "rougeL": "rouge_l", "rougeLsum": "rouge_lsum"}
# eval.rouge_references: what each generation is scored against
ROUGE_REFERENCES = ("first", "stringified_list", "best")


@functools.lru_cache(maxsize=4)
def _rouge_scorer(kinds: tuple[str, ...]):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)


def _check_kind(kind: str) -> None:
    if not (kind in ("rougeL", "rougeLsum") or re.fullmatch(r"rouge[1-9]", kind)):
        raise GrueError(f"unknown ROUGE kind '{kind}'; accepted: rouge1..rouge9, rougeL, rougeLsum")


def rouge_targets(refs: Sequence[str], mode: str) -> list[str]:
    """The text(s) one generation is scored against, by ``eval.rouge_references``.

    ``first``: ``[refs[0]]`` (RL4LMs ``use_single_ref``, its default); ``stringified_list``:
    ``[str(refs)]``, the Python repr of the list (what HF ``rouge`` 2.5.1 made of a list
    where a config set ``use_single_ref: False``); ``best``: every reference (the score is
    then the best of them).
    """
    if mode == "first":
        return [refs[0]]
    if mode == "stringified_list":
        return [str(list(refs))]
    if mode == "best":
        return list(refs)
    raise GrueError(f"unknown rouge_references '{mode}'; accepted: {', '.join(ROUGE_REFERENCES)}")


def rouge_scores(
    generations: Sequence[str], references: Sequence[Sequence[str]], kinds: Sequence[str], mode: str = "first"
) -> dict[str, list[float]]:
    """ROUGE F-measures per kind: kind -> N floats (rouge-score, Porter stemming, ``score(target, generation)``).

    Each example is scored against ``rouge_targets(refs, mode)``, keeping the best
    F-measure when there are several. Texts go in as they are: rougeLsum reads their
    own newlines as sentence ends and is rougeL on one-line texts (HF 2.5.1 split nothing).
    """
    check_texts(generations, references)
    for kind in kinds:
        _check_kind(kind)
    scorer = _rouge_scorer(tuple(kinds))
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for g, refs in zip(generations, references):
        scores = [scorer.score(t, g) for t in rouge_targets(refs, mode)]
        for k in kinds:
            out[k].append(max(float(s[k].fmeasure) for s in scores))
    return out


def rouge_per_sample(
    generations: Sequence[str], references: Sequence[Sequence[str]], kind: str = "rougeL", mode: str = "first"
) -> list[float]:
    """ROUGE-``kind`` F-measure of each generation against ``rouge_targets(refs, mode)`` (N floats in [0, 1])."""
    return rouge_scores(generations, references, [kind], mode)[kind]


def rouge(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``rouge_1``, ``rouge_2``, ``rouge_l``, ``rouge_lsum``: means of the per-sample F-measures.

    The paper's HF ``rouge`` reported the median of 1000 unseeded bootstrap means instead
    (BootstrapAggregator "mid"); the plain mean is its deterministic centre.
    """
    check_batch(batch)
    scores = rouge_scores(batch.generations, batch.references, list(ROUGE_NAMES), opts.rouge_references)
    per = {ROUGE_NAMES[k]: v for k, v in scores.items()}
    return MetricResult({name: mean(v) for name, v in per.items()}, per)


def rouge_lmax(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``rouge_lmax``: the mean over examples of py-rouge's ROUGE-L, the best over each example's references.

    See ``grue.metrics.pyrouge`` (RL4LMs ``RougeLMax`` with the NarrativeQA settings).
    """
    check_batch(batch)
    from grue.metrics.pyrouge import rouge_l_max

    scores = rouge_l_max(batch.generations, batch.references)
    return MetricResult({"rouge_lmax": mean(scores)}, {"rouge_lmax": scores})


# ---------------------------------------------------------------- sacrebleu


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: R streams of N references (R = most references of any example).

    An example with fewer references is padded with None, which sacrebleu drops
    (an empty string would count as a real, empty reference).
    """
    width = max((len(refs) for refs in references), default=0)
    return [[refs[j] if j < len(refs) else None for refs in references] for j in range(width)]


def _corpus(metric, generations: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """A sacrebleu metric object's corpus score on the 0-1 scale."""
    check_texts(generations, references)
    return float(metric.corpus_score(list(generations), reference_streams(references)).score) / 100.0


def nmt_bleu(generations: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4) -> float:
    """Corpus BLEU of the paper's HF ``bleu`` (TF-NMT ``compute_bleu``) over ``str.split()`` words, in [0, 1].

    ``p_n = sum_i clip_n(i) / sum_i max(0, c_i - n + 1)`` for n = 1..4, where ``clip_n``
    counts hypothesis n-grams at most as often as the most any one reference has them;
    ``BLEU = exp(mean_n log p_n) * BP`` (0 when any p_n is 0, no smoothing);
    ``BP = 1 if c > r else exp(1 - r / c)`` with ``c = sum_i c_i`` hypothesis words and
    ``r = sum_i`` of each example's SHORTEST reference length. When c or r is 0 (e.g. every
    generation empty) HF raised and RL4LMs logged "n/a"; no n-gram can match then and this
    returns 0.0.
    """
    # Hand-written: nltk's corpus_bleu and sacrebleu take the CLOSEST reference length for the
    # brevity penalty, while the paper's metric took the shortest.
    check_texts(generations, references)
    matches, possible = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for g, refs in zip(generations, references):
        hyp, ref_words = g.split(), [r.split() for r in refs]
        hyp_len += len(hyp)
        ref_len += min(len(r) for r in ref_words)
        for n in range(1, max_order + 1):
            most = Counter()
            for r in ref_words:
                most |= ngrams(r, n)
            matches[n - 1] += sum((ngrams(hyp, n) & most).values())
            possible[n - 1] += max(0, len(hyp) - n + 1)
    if hyp_len == 0 or ref_len == 0 or min(matches) == 0:
        return 0.0
    log_mean = sum(math.log(m / p) / max_order for m, p in zip(matches, possible))
    ratio = hyp_len / ref_len
    brevity = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return float(math.exp(log_mean) * brevity)


SACREBLEU_TOKENIZERS = ("13a", "intl", "none", "zh", "char", "ja-mecab", "ko-mecab", "spm", "flores101", "flores200")


def sacrebleu_score(generations: Sequence[str], references: Sequence[Sequence[str]], tokenize: str = "13a") -> float:
    """sacrebleu's corpus BLEU (exp smoothing, ``tokenize`` as given; RL4LMs' default 13a) in [0, 1]."""
    from sacrebleu.metrics import BLEU

    if tokenize not in SACREBLEU_TOKENIZERS:
        raise GrueError(f"unknown sacrebleu tokenize '{tokenize}'; accepted: {', '.join(SACREBLEU_TOKENIZERS)}")
    return _corpus(BLEU(tokenize=tokenize), generations, references)


def bleu(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``bleu``: see ``nmt_bleu``."""
    check_batch(batch)
    return MetricResult({"bleu": nmt_bleu(batch.generations, batch.references)})


def sacrebleu(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``sacrebleu``: see ``sacrebleu_score``, with ``eval.sacrebleu_tokenize``."""
    check_batch(batch)
    return MetricResult({"sacrebleu": sacrebleu_score(batch.generations, batch.references, opts.sacrebleu_tokenize)})


def chrf(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``chrf``: sacrebleu's corpus chrF (character 6-grams, beta 2) in [0, 1]."""
    check_batch(batch)
    from sacrebleu.metrics import CHRF

    return MetricResult({"chrf": _corpus(CHRF(), batch.generations, batch.references)})


def ter(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``ter``: sacrebleu's corpus TER (total edits / total reference words) as a fraction; lower is better."""
    check_batch(batch)
    from sacrebleu.metrics import TER

    return MetricResult({"ter": _corpus(TER(), batch.generations, batch.references)})


def ter_per_sample(generations: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """sacrebleu's sentence TER of each generation as a fraction (N floats >= 0; above 1 when edits outnumber words)."""
    check_texts(generations, references)
    from sacrebleu.metrics import TER

    metric = TER()
    return [float(metric.sentence_score(g, list(refs)).score) / 100.0 for g, refs in zip(generations, references)]
