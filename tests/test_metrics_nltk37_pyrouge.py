"""nltk 3.7's word_tokenize (grue.metrics.nltk37) and py-rouge's ROUGE-L (grue.metrics.pyrouge).

Expected tokens were produced by nltk 3.7 itself (word_tokenize / sent_tokenize with NLTK's English Punkt
parameters) and are checked by hand against the 3.7 rules cited beside each case.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from grue.errors import GrueError
from grue.metrics.nltk37 import sentences, treebank_words, word_tokenize
from grue.metrics.pyrouge import lcs_marks, prepare, rouge_l_max, rouge_l_pair

pytest.importorskip("punkt")


# ---------------------------------------------------------------- nltk 3.7 word_tokenize


def test_punkt_reads_the_word_before_a_spaced_period_as_nltk_37_did():
    # nltk 3.7 nltk/tokenize/punkt.py:1334-1391: the context of a candidate "." is the last whitespace-separated
    # word before it, so "Mrs ." reads as the abbreviation "Mrs." and does not end the sentence (nltk >= 3.8 splits)
    text = "Ah , Mrs . Miller , but in this case am I covered ?"
    assert sentences(text) == [text]
    assert sentences("The U.S. won. He left!") == ["The U.S. won.", "He left!"]


def test_punkt_realigns_ascii_closing_quotes_only():
    # nltk 3.7 nltk/tokenize/punkt.py:214 and 222-225: curly quotes are not closing punctuation in 3.7, so the
    # period before ” is no boundary candidate here (nltk >= 3.8 splits after the quote)
    assert sentences("“Hello there.” Bye.") == ["“Hello there.” Bye."]
    assert sentences('He said "Hi." Then left.') == ['He said "Hi."', "Then left."]


@pytest.mark.parametrize(
    "text, tokens",
    [
        # nltk 3.7 nltk/tokenize/destructive.py:52-58 (the 5th starting-quote rule splits "'a " but not "'The"),
        # 79-98 (final period), 61-67 (closing "' "), brackets padded
        ("['A dog.', 'The cat.']", ["[", "'", "A", "dog", ".", "'", ",", "'The", "cat", ".", "'", "]"]),
        # 3.7 keeps "'hello" whole and does not split the em dash off words (nltk >= 3.9: "'", "hello")
        ("She said 'hello' \u2014 then left.", ["She", "said", "'hello", "'", "\u2014", "then", "left", "."]),
        # 3.7's "'s " rule needs a space after it, so "It's" before a newline stays whole (nltk >= 3.9: It 's)
        ("It's\nhis 'best' day", ["It's", "his", "'best", "'", "day"]),
        # MacIntyre contractions, destructive.py:23-33
        ("gonna cannot 'tis", ["gon", "na", "can", "not", "'t", "is"]),
        ("“Hello there.” Bye.", ["“", "Hello", "there.", "”", "Bye", "."]),
        ("", []),
    ],
)
def test_word_tokenize_is_nltk_37(text, tokens):
    assert word_tokenize(text) == tokens


def test_treebank_words_split_only_the_final_period():
    # destructive.py:80 and 92: a period is cut off only at the end of the sentence given
    assert treebank_words("Dr. Who went home. Then slept.") == ["Dr.", "Who", "went", "home.", "Then", "slept", "."]
    assert word_tokenize("Dr. Who went home. Then slept.") == ["Dr.", "Who", "went", "home", ".", "Then", "slept", "."]


# ---------------------------------------------------------------- py-rouge ROUGE-L
# RL4LMs 97df0bd rl4lms/envs/text_generation/metric.py:555-590 with scripts/training/task_configs/narrative_qa/
# t5_ppo.yml: rouge.Rouge(["rouge-l"], limit_length, 100 words, apply_avg, apply_best, alpha .5, weight_factor 1.2,
# stemming), get_scores(prediction, [one reference]) per reference, max.


def f_weighted(p: float, r: float) -> float:
    """py-rouge 1.1 rouge/rouge.py:252-289 with alpha 0.5 and weight_factor 1.2 (P and R raised to 1/1.2)."""
    p, r = p ** (1 / 1.2), r ** (1 / 1.2)
    return 0.0 if p == 0 or r == 0 else p * r / (0.5 * p + 0.5 * r)


def test_prepare_normalises_stems_and_keeps_cannot():
    # rouge.py:715-778: lines, lower case, non-alphanumerics to spaces, "cannot" kept whole, words over 3 letters
    # stemmed (or mapped by the WordNet table: "geese" -> "goose")
    assert prepare("The cats sat down.\nI cannot see GEESE!") == [
        ["the", "cat", "sat", "down"],
        ["i", "cannot", "see", "goose"],
    ]
    assert prepare("") == [[]]


def test_rouge_l_pair_hand_computed():
    # hand: the cat sat | the cat sat down -> LCS 3, P = 1, R = 3/4
    assert rouge_l_pair("the cats sat", "the cat sat down") == pytest.approx(f_weighted(1.0, 0.75))
    # hand: i cannot go | i can not go -> LCS "i go" = 2, P = 2/3, R = 2/4
    assert rouge_l_pair("I cannot go", "I can not go") == pytest.approx(f_weighted(2 / 3, 1 / 2))
    assert rouge_l_pair("", "a b") == 0.0 and rouge_l_pair("a b", "") == 0.0


def test_rouge_l_keeps_the_first_100_words():
    words = [f"w{i}" for i in range(150)]
    # hand: both texts are cut to 100 words, w0..w99 and w100..w149: nothing in common after the cut
    assert rouge_l_pair(" ".join(words), " ".join(words[100:])) == 0.0
    assert rouge_l_pair(" ".join(words), " ".join(words[:100] + ["zz"] * 20)) == pytest.approx(1.0)


def test_summary_level_lcs_counts_a_word_while_the_generation_has_a_copy():
    # rouge.py:326-447: each reference line is marked on its LCS with every generation line; a marked word counts
    # while the generation still has an unused copy.
    # hand: generation lines [a b] [b c] (4 words: a 1, b 2, c 1); reference line [b a c b] (4 words):
    # LCS with [a b] marks position 1 (a) and 3 (b); with [b c] marks 0 (b) and 2 (c) -> all 4 marked;
    # counts: b (pos 0) ok, a ok, c ok, b (pos 3) ok (b had 2 copies) -> 4 hits: P = 4/4, R = 4/4
    assert lcs_marks(["b", "a", "c", "b"], ["a", "b"]) == [3, 1]
    assert rouge_l_pair("a b\nb c", "b a c b") == pytest.approx(1.0)
    # hand: generation lines [a] [a] against [a a a]: the walk back from the end marks the same (last) position
    # for both lines, so 1 hit: P = 1/2, R = 1/3
    assert rouge_l_pair("a\na", "a a a") == pytest.approx(f_weighted(1 / 2, 1 / 3))


def test_rouge_l_max_is_the_best_reference_and_checks_its_input():
    assert rouge_l_max(["the cat sat"], [["a dog", "the cat sat"]]) == pytest.approx([1.0])
    with pytest.raises(GrueError, match="non-empty list of str"):
        rouge_l_max(["a"], [[]])


def test_same_numbers_as_the_py_rouge_package(monkeypatch):
    """py-rouge 1.1 itself (its word tokenizer set to nltk 3.7's) on texts with lines, limits and stems."""
    spec = importlib.util.find_spec("rouge")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("py-rouge is not installed")
    folder = Path(spec.submodule_search_locations[0])
    try:
        import pkg_resources  # noqa: F401
    except ImportError:  # setuptools >= 82 has none; py-rouge only asks it where its data files are
        stub = types.ModuleType("pkg_resources")
        stub.resource_filename = lambda package, name: str(folder / name)
        monkeypatch.setitem(sys.modules, "pkg_resources", stub)
    import rouge

    class PyRouge(rouge.Rouge):
        tokenize_text = staticmethod(lambda text, language="english": word_tokenize(text))

    scorer = PyRouge(
        metrics=["rouge-l"],
        max_n=4,
        limit_length=True,
        length_limit=100,
        length_limit_type="words",
        apply_avg=True,
        apply_best=True,
        alpha=0.5,
        weight_factor=1.2,
        stemming=True,
    )
    long_text = " ".join(f"word{i % 37} and" for i in range(80))
    cases = [
        ("I cannot go.\nHe is gonna run. The dogs were running", "He cannot go\nrunning dogs"),
        ("the cat the cat\nthe dog", "the cat\nthe the dog cat"),
        ("a\na", "a a a"),
        ("a b\nb c", "b a c b"),
        (long_text, long_text[::-1]),
        ("Geese flew over the children's houses!", "The goose flies; children run."),
        ("", "a"),
    ]
    for gen, ref in cases:
        assert rouge_l_pair(gen, ref) == pytest.approx(scorer.get_scores(gen, [ref])["rouge-l"]["f"], abs=1e-12)
