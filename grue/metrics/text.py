"""N-gram and edit-distance metrics from their reference libraries (nltk, rouge-score, sacrebleu).

Every group function is ``fn(batch: EvalBatch, opts: MetricOptions) -> MetricResult`` and
reports on the GRUE paper's 0-1 scale (sacrebleu's 0-100 numbers are divided by 100).
The per-sample functions are also the task rewards (``grue.rewards``).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.tasks.totto import overlap_flag


def check_texts(generations: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise GrueError unless ``generations`` (N str) and ``references`` (N non-empty lists of str) match."""
    if len(generations) != len(references):
        raise GrueError(f"{len(generations)} generations but {len(references)} reference lists; "
                        f"one list of references per generation is accepted")
    for i, (g, refs) in enumerate(zip(generations, references)):
        if not isinstance(g, str):
            raise GrueError(f"generation {i} is a {type(g).__name__}; a str is accepted")
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
            raise GrueError(f"references of example {i} must be a non-empty list of str, got {refs!r:.60}")


def check_batch(batch: EvalBatch, references: bool = True) -> None:
    """One prompt, generation (str) and meta entry (when meta is given) per example; the batch is not empty.

    With ``references`` (metrics that read them) also ``check_texts``; reference-free
    metrics only need as many reference lists as examples.
    """
    n = len(batch.generations)
    if references:
        check_texts(batch.generations, batch.references)
    elif len(batch.references) not in (0, n) or not all(isinstance(g, str) for g in batch.generations):
        raise GrueError(f"batch has {n} generations and {len(batch.references)} reference lists; "
                        f"str generations and one reference list per example are accepted")
    if len(batch.prompts) != n or (batch.meta and len(batch.meta) != n):
        raise GrueError(f"batch has {len(batch.prompts)} prompts, {n} generations and {len(batch.meta)} meta "
                        f"entries; one each per example (meta may be empty) is accepted")
    if n == 0:
        raise MetricSkipped("the batch has no examples")


def mean(xs: Sequence[float]) -> float:
    """The arithmetic mean of ``xs`` (0 for none)."""
    return float(sum(xs) / len(xs)) if xs else 0.0


# ---------------------------------------------------------------- word tokens and n-grams

_WORD_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: ``re.findall(r"\\w+|[^\\w\\s]", text.lower())``.

    Runs of word characters are tokens, and so is every other non-space character on its
    own (``"Don't!"`` -> ``don ' t !``). The one tokenisation rule of CIDEr, PARENT and the
    diversity metrics.
    """
    return _WORD_TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    """Counts of the n-grams (tuples of exactly ``n`` tokens) of ``tokens``, in order of first occurrence."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


# ---------------------------------------------------------------- ToTTo subsets


def subset_flags(meta: Sequence[dict]) -> list[bool | None]:
    """Each example's ToTTo ``meta["overlap_subset"]`` as True / False, or None for every example when none has one.

    Accepted flags: a bool or the strings "True" / "False" (``grue.tasks.totto.overlap_flag``);
    a missing key, None or "none" (ToTTo's train rows) is no flag. GrueError when some
    examples have a flag and others do not, or when a flag is anything else.
    """
    raw = [m.get("overlap_subset") for m in meta]
    if all(_no_flag(f) for f in raw):
        return [None] * len(raw)
    flags = [overlap_flag(f) for f in raw]
    bad = [i for i, f in enumerate(flags) if f is None]
    if bad:
        raise GrueError(f"example {bad[0]} has overlap_subset {raw[bad[0]]!r}; accepted: True or False (or the "
                        f"strings 'True'/'False') on every example, or no flag (None) on any")
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
    from grue.metrics.wordnet import ensure_wordnet

    ensure_wordnet()
    from nltk.translate.meteor_score import single_meteor_score

    from grue.metrics.nltk37 import word_tokenize

    return [float(single_meteor_score(word_tokenize(str(list(refs))), word_tokenize(g), alpha=0.9, beta=3.0, gamma=0.5))
            for g, refs in zip(generations, references)]


def meteor(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``meteor``: the mean of the per-sample METEOR (as the paper's HF ``meteor`` metric reports it)."""
    check_batch(batch)
    scores = meteor_per_sample(batch.generations, batch.references)
    return MetricResult({"meteor": mean(scores)}, {"meteor": scores})


# ---------------------------------------------------------------- ROUGE

ROUGE_NAMES = {"rouge1": "rouge_1", "rouge2": "rouge_2", "rougeL": "rouge_l", "rougeLsum": "rouge_lsum"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> str:
    """``text`` with a newline after every ``.``, ``!`` or ``?`` that is followed by whitespace.

    rouge-score's rougeLsum reads one sentence per line; its own splitter needs nltk's
    punkt data, so this simple rule stands in (existing newlines stay boundaries). It
    changes nothing for rouge1/2/L, whose tokenizer treats newlines as spaces.
    """
    return _SENTENCE_END.sub("\n", text.strip())


@functools.lru_cache(maxsize=4)
def _rouge_scorer(kinds: tuple[str, ...]):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)


def _check_kind(kind: str) -> None:
    if not (kind in ("rougeL", "rougeLsum") or re.fullmatch(r"rouge[1-9]", kind)):
        raise GrueError(f"unknown ROUGE kind '{kind}'; accepted: rouge1..rouge9, rougeL, rougeLsum")


def rouge_scores(generations: Sequence[str], references: Sequence[Sequence[str]],
                 kinds: Sequence[str]) -> dict[str, list[float]]:
    """ROUGE F-measures (rouge-score, Porter stemming) per kind: kind -> N floats, each the best over the references."""
    check_texts(generations, references)
    for kind in kinds:
        _check_kind(kind)
    scorer = _rouge_scorer(tuple(kinds))
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for g, refs in zip(generations, references):
        best = scorer.score_multi([split_sentences(r) for r in refs], split_sentences(g))
        for k in kinds:
            out[k].append(float(best[k].fmeasure))
    return out


def rouge_per_sample(generations: Sequence[str], references: Sequence[Sequence[str]], kind: str = "rougeL") -> list[float]:
    """ROUGE-``kind`` F-measure of each generation, the maximum over its references (N floats in [0, 1])."""
    return rouge_scores(generations, references, [kind])[kind]


def rouge(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``rouge_1``, ``rouge_2``, ``rouge_l``, ``rouge_lsum``: means of the per-sample F-measures."""
    check_batch(batch)
    scores = rouge_scores(batch.generations, batch.references, list(ROUGE_NAMES))
    per = {ROUGE_NAMES[k]: v for k, v in scores.items()}
    return MetricResult({name: mean(v) for name, v in per.items()}, per)


def rouge_lmax(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``rouge_lmax``: the mean over examples of the best ROUGE-L F-measure over each example's references."""
    check_batch(batch)
    scores = rouge_per_sample(batch.generations, batch.references, kind="rougeL")
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


def bleu_score(generations: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 1]: sacrebleu, 13a tokenisation, no smoothing, multi-reference.

    The GRUE paper's "BLEU" came from the TF-NMT implementation (HF ``bleu``), whose
    brevity penalty uses each example's shortest reference; sacrebleu uses the closest.
    They agree whenever each example has one reference.
    """
    from sacrebleu.metrics import BLEU

    return _corpus(BLEU(tokenize="13a", smooth_method="none"), generations, references)


def sacrebleu_score(generations: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu's default corpus BLEU (13a, exp smoothing) in [0, 1]."""
    from sacrebleu.metrics import BLEU

    return _corpus(BLEU(), generations, references)


def bleu(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``bleu``: see ``bleu_score``."""
    check_batch(batch)
    return MetricResult({"bleu": bleu_score(batch.generations, batch.references)})


def sacrebleu(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``sacrebleu``: see ``sacrebleu_score``."""
    check_batch(batch)
    return MetricResult({"sacrebleu": sacrebleu_score(batch.generations, batch.references)})


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


def totto_sacrebleu(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """ToTTo's sacrebleu (default corpus BLEU, 0-1) overall and on the overlap / non-overlap subsets.

    The subsets are the examples whose ``meta["overlap_subset"]`` is true / false (see
    ``subset_flags``). A subset with no examples is left out of the result (the evaluator
    then records it as skipped); with no flags at all the group is skipped.
    """
    check_batch(batch)
    flags = subset_flags(batch.meta)
    if all(f is None for f in flags):
        raise MetricSkipped("no overlap_subset flags in the examples' meta (ToTTo data has them)")
    values = {"sacrebleu_overall": sacrebleu_score(batch.generations, batch.references)}
    for name, want in (("sacrebleu_overlap", True), ("sacrebleu_nonoverlap", False)):
        idx = [i for i, f in enumerate(flags) if f is want]
        if idx:
            values[name] = sacrebleu_score([batch.generations[i] for i in idx], [batch.references[i] for i in idx])
    return MetricResult(values)
