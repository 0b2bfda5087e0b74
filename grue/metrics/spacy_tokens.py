"""The word tokens of the paper's CIDEr and SPICE: spaCy's English tokenizer, case kept.

RL4LMs (97df0bd caption_metrics/cider.py and spice/spice.py) ran every text through
spaCy 3.0.6 with ``en_core_web_sm`` 3.0, joined the token texts with spaces and split the
result on whitespace (so spaCy's whitespace tokens vanish). Only the tokenizer of that
pipeline touches the tokens, and its rules are spaCy's English defaults, which
``spacy.blank("en")`` builds without a model download.

spaCy 3.8's English rules are 3.0's less 25 special cases (spaCy 3.0.6
lang/en/tokenizer_exceptions.py): ``"May."`` is one token there, and ``this``/``that``
(+ ``'re``, ``re``, ``'ve``, ``ve``) and ``these``/``those`` (+ ``'s``, ``s``, so ``"theses"``
-> ``these s``), lower-case and title-case, are split. ``SPACY_30_SPECIAL_CASES`` puts them
back; with them the tokens equal spaCy 3.0.6's on all 37,537 texts of the GRUE sample data.
"""

from __future__ import annotations

import functools

from grue.metrics import MetricSkipped


def _spacy_30_special_cases() -> dict[str, list[str]]:
    """The tokenizer special cases of spaCy 3.0's English that 3.8 no longer has: text -> its tokens."""
    cases = {"May.": ["May."]}
    for word, suffixes in (
        ("this", ("'re", "re", "'ve", "ve")),
        ("that", ("'re", "re", "'ve", "ve")),
        ("these", ("'s", "s")),
        ("those", ("'s", "s")),
    ):
        for w in (word, word.title()):
            cases.update({w + s: [w, s] for s in suffixes})
    return cases


SPACY_30_SPECIAL_CASES = _spacy_30_special_cases()


@functools.lru_cache(maxsize=1)
def _tokenizer():
    """spaCy's English tokenizer with spaCy 3.0's special cases (imported on first use: spaCy takes seconds)."""
    try:
        import spacy
        from spacy.symbols import ORTH
    except ImportError as e:
        raise MetricSkipped(f"spaCy is not installed ({e}); pip install 'spacy>=3.8,<3.9'") from e
    tokenizer = spacy.blank("en").tokenizer
    for text, pieces in SPACY_30_SPECIAL_CASES.items():
        tokenizer.add_special_case(text, [{ORTH: p} for p in pieces])
    return tokenizer


def spacy_tokens(text: str) -> list[str]:
    """The non-whitespace token texts of spaCy's English tokenizer on ``text``, case kept.

    ``spacy_tokens("The dog is the boy's cat.") == ["The", "dog", "is", "the", "boy", "'s", "cat", "."]``.
    """
    return " ".join(t.text for t in _tokenizer()(text)).split()
