"""Library-backed text metrics (grue.metrics.text, .diversity, .wordnet) against hand-computed values
and the reference libraries run on the same inputs."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import pytest

from grue.errors import GrueError
from grue.metrics import (
    METRICS,
    EvalBatch,
    MetricOptions,
    MetricSkipped,
    metric_function,
)
from grue.metrics.text import (
    bleu_score,
    meteor_per_sample,
    ngrams,
    reference_streams,
    rouge_per_sample,
    split_sentences,
    subset_flags,
    ter_per_sample,
    word_tokens,
)
from grue.metrics.wordnet import LEXNAMES, build_wordnet, ensure_wordnet, lexnames_text

nltk = pytest.importorskip("nltk")
OPTS = MetricOptions()
LEXNAMES_MAN = Path("/usr/share/man/man5/lexnames.5WN.gz")


def batch(generations, references, meta=None) -> EvalBatch:
    return EvalBatch(prompts=[""] * len(generations), generations=generations, references=references, meta=meta or [])


def run(group: str, b: EvalBatch):
    result = metric_function(group)(b, OPTS)
    assert set(result.values) <= set(METRICS[group].names)
    assert all(math.isfinite(v) for v in result.values.values())
    return result


# ---------------------------------------------------------------- WordNet


def _has_wordnet(folder: str) -> bool:
    return any((Path(folder) / "corpora" / name).exists() for name in ("wordnet", "wordnet.zip"))


@pytest.fixture(scope="module")
def fresh_wordnet(tmp_path_factory):
    """ensure_wordnet() with nltk seeing no WordNet and GRUE_NLTK_DATA at a new folder.

    The folder stays first on nltk.data.path afterwards: nltk reads a corpus only from
    folders on its data path, and the module's METEOR tests use the WordNet it holds.
    """
    folder = tmp_path_factory.mktemp("nltk_data")
    saved = list(nltk.data.path)
    mp = pytest.MonkeyPatch()
    mp.setenv("GRUE_NLTK_DATA", str(folder))
    nltk.data.path[:] = [p for p in saved if not _has_wordnet(p)]
    ensure_wordnet.cache_clear()
    try:
        ensure_wordnet()
        found = Path(nltk.data.find("corpora/wordnet"))
    finally:
        mp.undo()
        nltk.data.path[:] = [str(folder)] + [p for p in saved if p != str(folder)]
        ensure_wordnet.cache_clear()
    return folder, found


def test_ensure_wordnet_builds_a_working_copy(fresh_wordnet):
    folder, found = fresh_wordnet
    assert found == folder / "corpora" / "wordnet"
    files = sorted(p.name for p in found.iterdir())
    assert "lexnames" in files and "index.sense" in files and "data.noun" in files
    assert not any(p.is_symlink() for p in found.iterdir())
    assert not [p for p in found.parent.iterdir() if p.name.startswith(".wordnet-")]  # no temp folder left
    from nltk.corpus import wordnet

    assert "dog.n.01" in [s.name() for s in wordnet.synsets("dog")]
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"  # lexnames line 05
    assert build_wordnet(folder, Path("/nowhere")) == found  # an existing copy is kept, no source needed


def test_missing_wordnet_source_is_a_skip_that_says_how_to_fix(tmp_path):
    with pytest.raises(MetricSkipped, match="wordnet-base"):
        build_wordnet(tmp_path, tmp_path / "no-wordnet-here")


def test_lexnames_match_the_man_page():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    if not LEXNAMES_MAN.is_file():
        pytest.skip(f"{LEXNAMES_MAN} is not installed (Debian wordnet-base)")
    with gzip.open(LEXNAMES_MAN, "rt") as f:
        man = f.read()
    table = [line.split("\t")[:2] for line in man.splitlines() if re.match(r"\d\d\t", line)]
    assert [(n, name.strip()) for n, name in table] == [tuple(line.split("\t")[:2]) for line in lines]


# ---------------------------------------------------------------- METEOR


@pytest.mark.parametrize("gen, ref, expected", [
    # hand: 5 exact matches in 2 chunks -> P = R = 1, penalty 0.5 * (2/5)^3 = 0.032
    ("on mats a cat sat", "a cat sat on mats", 0.968),
    # hand: "cats"/"cat" match on the Porter stem; 2 matches, 1 chunk -> 1 - 0.5 * (1/2)^3
    ("the cats", "the cat", 0.9375),
    # hand: "car"/"auto" match as WordNet synonyms; 3 matches, 1 chunk -> 1 - 0.5 / 27
    ("a red car", "a red auto", 1 - 0.5 / 27),
    ("", "a red auto", 0.0),
])
def test_meteor_hand_computed(fresh_wordnet, gen, ref, expected):
    assert meteor_per_sample([gen], [[ref]]) == pytest.approx([expected])


def test_meteor_is_nltk_on_nltk_word_tokens_best_over_references(fresh_wordnet):
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.meteor_score import single_meteor_score

    gen, refs = "The kids didn't play outside, sadly.", ["Sadly, the children did not play outdoors.", "kids played"]
    tok = NLTKWordTokenizer().tokenize
    expected = max(single_meteor_score(tok(r), tok(gen)) for r in refs)  # reference: nltk on the same tokens
    assert meteor_per_sample([gen], [refs]) == pytest.approx([expected])
    result = run("meteor", batch([gen, "x"], [refs, ["y"]]))
    assert result.values["meteor"] == pytest.approx(expected / 2) and result.per_sample["meteor"][1] == 0.0


# ---------------------------------------------------------------- ROUGE


def test_rouge_hand_computed_and_best_over_references():
    gen, ref = "the cat sat on the mat", "the cat lay on a mat"
    # hand: unigram overlap the, cat, on, mat = 4 of 6 on both sides -> F = 2/3; bigram overlap "the cat" = 1 of 5
    # -> 1/5; LCS "the cat on mat" = 4 -> 2/3
    assert rouge_per_sample([gen], [[ref]], kind="rouge1") == pytest.approx([2 / 3])
    assert rouge_per_sample([gen], [["zebra", ref]], kind="rouge1") == pytest.approx([2 / 3])
    result = run("rouge", batch([gen, gen], [[ref], [gen]]))
    assert result.values["rouge_1"] == pytest.approx((2 / 3 + 1) / 2)
    assert result.values["rouge_2"] == pytest.approx((1 / 5 + 1) / 2)
    assert result.per_sample["rouge_l"] == pytest.approx([2 / 3, 1.0])
    assert result.per_sample["rouge_lsum"][1] == pytest.approx(1.0)
    assert run("rouge_lmax", batch([gen], [["zebra", ref]])).values["rouge_lmax"] == pytest.approx(2 / 3)


def test_rouge_lsum_splits_sentences_like_newlines():
    from rouge_score import rouge_scorer

    gen, ref = "The cat sat. Then it slept! Did it dream?", "A dog sat. The cat slept. It dreamt."
    assert split_sentences(gen) == "The cat sat.\nThen it slept!\nDid it dream?"
    # reference: rouge-score itself on the texts split into lines by hand
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    expected = scorer.score("A dog sat.\nThe cat slept.\nIt dreamt.",
                            "The cat sat.\nThen it slept!\nDid it dream?")["rougeLsum"].fmeasure
    assert rouge_per_sample([gen], [[ref]], kind="rougeLsum") == pytest.approx([expected])
    assert expected != pytest.approx(rouge_per_sample([gen], [[ref]], kind="rougeL")[0])


def test_rouge_of_empty_generation_is_zero_and_bad_kind_is_an_error():
    assert rouge_per_sample([""], [["a cat"]], kind="rouge2") == [0.0]
    with pytest.raises(GrueError, match="rougeLsum"):
        rouge_per_sample(["a"], [["a"]], kind="rougeX")


# ---------------------------------------------------------------- sacrebleu


def test_identical_text_scores_perfectly():
    b = batch(["the cat sat on the mat", "a dog barked"], [["the cat sat on the mat"], ["a dog barked", "x"]])
    for group, name, best in [("bleu", "bleu", 1.0), ("sacrebleu", "sacrebleu", 1.0), ("chrf", "chrf", 1.0), ("ter", "ter", 0.0)]:
        assert run(group, b).values[name] == pytest.approx(best), group


def test_bleu_brevity_penalty_hand_computed_with_ragged_references():
    gens = ["the cat sat on the mat", "a dog ran"]
    refs = [["the cat sat on the mat today", "a b"], ["a dog ran"]]
    # hand: every hypothesis n-gram matches, so BLEU = BP; closest reference lengths 7 and 3 against 6 + 3
    # hypothesis words -> BP = exp(1 - 10 / 9)
    assert bleu_score(gens, refs) == pytest.approx(math.exp(1 - 10 / 9))
    assert reference_streams(refs) == [["the cat sat on the mat today", "a dog ran"], ["a b", None]]


def test_sacrebleu_chrf_ter_are_the_library_numbers_over_100():
    from sacrebleu.metrics import BLEU, CHRF, TER

    gens = ["the quick brown fox jumps", "hello there world", ""]
    refs = [["a quick brown fox jumped over"], ["hello world", "hi there world"], ["nothing here"]]
    streams = [[r[0] for r in refs], [None, "hi there world", None]]
    # reference: sacrebleu's corpus scores on the same inputs
    b = batch(gens, refs)
    assert run("sacrebleu", b).values["sacrebleu"] == pytest.approx(BLEU().corpus_score(gens, streams).score / 100)
    assert run("chrf", b).values["chrf"] == pytest.approx(CHRF().corpus_score(gens, streams).score / 100)
    assert run("ter", b).values["ter"] == pytest.approx(TER().corpus_score(gens, streams).score / 100)
    assert run("bleu", b).values["bleu"] == pytest.approx(
        BLEU(smooth_method="none").corpus_score(gens, streams).score / 100)


def test_ter_per_sample_hand_computed():
    # hand: one substitution in three words -> 1/3; the second reference needs no edit -> 0; empty hypothesis:
    # every reference word deleted -> 1
    assert ter_per_sample(["a b c", "a b c", ""], [["a b d"], ["a b d", "a b c"], ["x y"]]) == pytest.approx([1 / 3, 0.0, 1.0])


def test_totto_sacrebleu_subsets():
    from sacrebleu.metrics import BLEU

    gens = ["the cat sat on the mat", "a dog ran home fast", "birds fly south in winter"]
    refs = [["the cat sat on a mat"], ["a dog ran home quickly"], ["birds fly south in the winter"]]
    meta = [{"overlap_subset": True}, {"overlap_subset": False}, {"overlap_subset": True}]
    values = run("totto_sacrebleu", batch(gens, refs, meta)).values

    def ref_bleu(idx):  # reference: sacrebleu's default corpus BLEU on the subset
        return BLEU().corpus_score([gens[i] for i in idx], [[refs[i][0] for i in idx]]).score / 100

    assert values["sacrebleu_overall"] == pytest.approx(ref_bleu([0, 1, 2]))
    assert values["sacrebleu_overlap"] == pytest.approx(ref_bleu([0, 2]))
    assert values["sacrebleu_nonoverlap"] == pytest.approx(ref_bleu([1]))
    only_overlap = run("totto_sacrebleu", batch(gens[:1], refs[:1], meta[:1])).values
    assert set(only_overlap) == {"sacrebleu_overall", "sacrebleu_overlap"}  # the empty subset is left out
    with pytest.raises(MetricSkipped, match="overlap_subset"):
        run("totto_sacrebleu", batch(gens, refs, [{}] * 3))
    with pytest.raises(GrueError, match="overlap_subset"):
        run("totto_sacrebleu", batch(gens, refs, [{"overlap_subset": True}, {}, {}]))
    as_strings = [{"overlap_subset": str(m["overlap_subset"])} for m in meta]
    assert run("totto_sacrebleu", batch(gens, refs, as_strings)).values == pytest.approx(values)


def test_subset_flags_accept_bools_strings_and_no_flag():
    assert subset_flags([]) == []
    # None (ToTTo train rows), a missing key and the string "none" are no flag
    assert subset_flags([{"overlap_subset": None}, {}, {"overlap_subset": "none"}]) == [None, None, None]
    assert subset_flags([{"overlap_subset": "False"}, {"overlap_subset": True}, {"overlap_subset": "True"},
                         {"overlap_subset": False}]) == [False, True, True, False]
    with pytest.raises(GrueError, match="example 1 has overlap_subset None"):
        subset_flags([{"overlap_subset": "False"}, {"overlap_subset": None}])
    with pytest.raises(GrueError, match="overlap_subset 'yes'"):
        subset_flags([{"overlap_subset": "yes"}])
    with pytest.raises(GrueError, match="overlap_subset 1"):
        subset_flags([{"overlap_subset": 1}, {"overlap_subset": True}])


def test_totto_sacrebleu_without_flags_is_skipped():
    b = batch(["a cat", "a dog"], [["a cat"], ["a dog"]], [{"overlap_subset": None}, {"overlap_subset": "none"}])
    with pytest.raises(MetricSkipped, match="overlap_subset"):
        run("totto_sacrebleu", b)


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize("fn", [meteor_per_sample, rouge_per_sample, ter_per_sample, bleu_score])
def test_length_mismatch_and_bad_references_are_errors(fn):
    with pytest.raises(GrueError, match="reference lists"):
        fn(["a", "b"], [["a"]])
    with pytest.raises(GrueError, match="non-empty list of str"):
        fn(["a"], ["a"])
    with pytest.raises(GrueError, match="non-empty list of str"):
        fn(["a"], [[]])


def test_empty_generations_do_not_crash():
    b = batch(["", ""], [["a cat"], ["a dog", "the dog"]])
    assert run("bleu", b).values["bleu"] == 0.0
    assert run("ter", b).values["ter"] == pytest.approx(1.0)
    assert run("rouge", b).values["rouge_l"] == 0.0
    with pytest.raises(MetricSkipped, match="no examples"):
        run("chrf", batch([], []))


# ---------------------------------------------------------------- diversity


def test_word_tokens_and_ngrams_hand_computed():
    assert word_tokens("Don't STOP!  Now") == ["don", "'", "t", "stop", "!", "now"]
    assert word_tokens("  ") == []
    counts = ngrams(["a", "b", "a", "b", "c"], 2)
    assert counts == {("a", "b"): 2, ("b", "a"): 1, ("b", "c"): 1}
    assert list(counts) == [("a", "b"), ("b", "a"), ("b", "c")]  # order of first occurrence
    assert ngrams(["a"], 2) == {} and ngrams(["a", "b"], 1) == {("a",): 1, ("b",): 1}
