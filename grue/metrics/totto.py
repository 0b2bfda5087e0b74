"""ToTTo's official evaluation conventions, as the paper ran them, and ToTTo's BLEU.

RL4LMs (97df0bd rl4lms/data_pools/task_utils/totto/eval_utils/) scored ToTTo with Google's
scripts (``totto_bleu_eval.sh``, ``totto_parent_eval.sh`` and their ``prepare_*_for_eval.py``).
What they do to the texts, and what grue does the same way:

- every prediction is stripped and lower-cased; an empty one becomes ``<null>``;
- every example has exactly three references: its first three final sentences,
  lower-cased, and ``<null>`` for each one missing (the scripts' default "test" mode);
- BLEU: sacrebleu's command line with its defaults (13a tokens, exp smoothing) over the
  three reference streams, reported with one decimal on the 0-100 scale (``--width 1``),
  here divided by 100;
- PARENT tokens: sacrebleu's 13a tokenizer on the stripped, lower-cased text, split on
  spaces (``totto_tokens``);
- the overlap / non-overlap subsets are the examples whose ``overlap_subset`` is true / false.

One step is left out: the scripts first pass every file through Moses' ``detokenizer.perl``
(English rules), which only changes spaced-out punctuation and quotes. On the GRUE ToTTo
sample it changes no reference and two cells of one table in 43 (``"chelnicia 'chel'
bowen"`` -> ``"chelnicia'chel' bowen"``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.metrics.text import check_batch, check_texts, subset_flags

NULL = "<null>"  # the scripts' stand-in for an empty prediction or a missing reference
N_REFERENCES = 3  # ToTTo's evaluation reads exactly three references per example
BLEU_DECIMALS = 1  # sacrebleu's command line prints the score (0-100) with one decimal by default


def totto_prediction(text: str) -> str:
    """A prediction as the scripts score it: stripped, lower-cased, ``<null>`` when empty."""
    return text.strip().lower() or NULL


def totto_references(references: Sequence[str]) -> list[str]:
    """Exactly three references: the first three, lower-cased, then ``<null>`` for each missing one."""
    refs = [r.lower() for r in references[:N_REFERENCES]]
    return refs + [NULL] * (N_REFERENCES - len(refs))


@functools.lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def totto_tokens(text: str) -> list[str]:
    """PARENT's tokens of ``text``: sacrebleu's 13a tokenizer on the stripped, lower-cased text.

    ``totto_tokens("U.S. (2005)") == ["u", ".", "s", ".", "(", "2005", ")"]``; ``"<null>"`` -> ``< null >``.
    """
    return _tokenizer_13a()(text.strip().lower()).split()


def totto_bleu_score(generations: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """ToTTo's corpus BLEU in [0, 1]: sacrebleu's default BLEU of ``totto_prediction`` against the
    three ``totto_references`` streams, rounded to one decimal on sacrebleu's 0-100 scale."""
    from sacrebleu.metrics import BLEU

    check_texts(generations, references)
    refs = [totto_references(r) for r in references]
    streams = [[r[k] for r in refs] for k in range(N_REFERENCES)]
    score = BLEU().corpus_score([totto_prediction(g) for g in generations], streams).score
    return round(score, BLEU_DECIMALS) / 100.0


def totto_sacrebleu(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``sacrebleu_overall`` / ``_overlap`` / ``_nonoverlap``: ``totto_bleu_score`` on all examples and on the
    examples whose ``meta["overlap_subset"]`` is true / false (``subset_flags``).

    A subset with no example is left out (the evaluator records it as skipped; the scripts'
    sacrebleu run fails there and RL4LMs wrote 0); with no flags at all the group is skipped.
    """
    check_batch(batch)
    flags = subset_flags(batch.meta)
    if all(f is None for f in flags):
        raise MetricSkipped("no overlap_subset flags in the examples' meta (ToTTo data has them)")
    values = {"sacrebleu_overall": totto_bleu_score(batch.generations, batch.references)}
    for name, want in (("sacrebleu_overlap", True), ("sacrebleu_nonoverlap", False)):
        idx = [i for i, f in enumerate(flags) if f is want]
        if idx:
            values[name] = totto_bleu_score([batch.generations[i] for i in idx], [batch.references[i] for i in idx])
    return MetricResult(values)
