"""The IMDB task: RL4LMs' prompts (raw first half), whole-review references, seeded splits, supervised pool."""

from __future__ import annotations

import json

from grue.algorithms import resolve
from grue.tasks import imdb

# Invented reviews in the Hugging Face imdb schema.
REVIEWS = [{"text": f"Review number {i} was fine.<br /><br />Really fine.", "label": i % 2} for i in range(12)]


def write(tmp_path, source: str, rows: list[dict]) -> str:
    (tmp_path / "imdb").mkdir(exist_ok=True)
    (tmp_path / "imdb" / f"{source}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(tmp_path)


def test_prompt_is_the_first_half_of_the_space_separated_words_raw():
    # RL4LMs 97df0bd rl4lms/data_pools/custom_text_generation_pools.py:229-230: text.split(" "), int(len * 0.5)
    assert imdb.split_review("one two<br />three four five") == ("one two<br", "/>three four five")
    assert imdb.split_review("a b c d") == ("a b", "c d")
    assert imdb.split_review("a  b<br />c d") == ("a ", "b<br />c d")  # "" counts as a word, tags stay
    assert imdb.split_review("single") == ("", "single")


def test_examples_keep_the_raw_text_and_the_whole_review_as_reference(tmp_path):
    # RL4LMs 97df0bd custom_text_generation_pools.py:232-234: references=[text]
    (ex,) = imdb._rows_to_examples([{"text": "Great.<br /><br />Loved it a lot", "label": 1}])
    assert ex.prompt == "Great.<br /><br />Loved"
    assert ex.references == ["Great.<br /><br />Loved it a lot"]
    assert ex.meta == {"label": 1, "index": 0}


def test_splits_follow_the_seeded_shuffle_on_synthetic_rows(tmp_path):
    # RL4LMs 97df0bd custom_text_generation_pools.py:215-223 with datapool seed 42; datasets 2.5.1
    # Dataset.shuffle(seed) = np.random.default_rng(seed).permutation(N), which for N = 12 is
    # [0, 7, 6, 9, 11, 3, 5, 2, 4, 10, 1, 8]; int(0.8 * 12) = 9 rows train, 3 validation.
    d = write(tmp_path, "train", REVIEWS)
    write(tmp_path, "test", REVIEWS)
    order = [0, 7, 6, 9, 11, 3, 5, 2, 4, 10, 1, 8]
    train, val, test = (imdb.load(s, d) for s in ("train", "validation", "test"))
    assert [e.references[0] for e in train] == [REVIEWS[i]["text"] for i in order[:9]]
    assert [e.references[0] for e in val] == [REVIEWS[i]["text"] for i in order[9:]]
    assert [e.references[0] for e in test] == [REVIEWS[i]["text"] for i in order]  # fewer than 5000: all
    assert [e.meta["index"] for e in val] == [0, 1, 2]


def test_test_split_keeps_the_first_5000_shuffled_reviews():
    rows = list(range(5003))
    assert imdb.split_rows(rows, "test") == imdb.shuffled(rows)[:5000]
    assert sorted(imdb.split_rows(rows, "train") + imdb.split_rows(rows, "validation")) == rows
    assert len(imdb.split_rows(rows, "train")) == int(5003 * 0.8)


def test_supervised_pool_is_positive_reviews_with_their_second_half():
    # RL4LMs 97df0bd IMDBForSeq2Seq (custom_text_generation_pools.py:241-276): ref = the second half,
    # train keeps label 1 only; prompt + ref is the review less the space between the halves.
    ex = imdb._rows_to_examples([{"text": "so bad it hurts", "label": 0}, {"text": "a real gem of a film", "label": 1}])
    (sup,) = imdb.supervised_examples(ex)
    assert (sup.prompt, sup.references, sup.meta["label"]) == ("a real gem", ["of a film"], 1)
    assert ex[1].references == ["a real gem of a film"]  # the loaded examples are not changed
    # validation keeps every review, each with its second half (what eval/loss_sft reads)
    assert [e.references for e in imdb.supervised_targets(ex)] == [["it hurts"], ["of a film"]]


def test_builtin_openings_need_no_data():
    ex = imdb.load("train", None, builtin=True)
    assert len(ex) == len(imdb.BUILTIN_OPENINGS) >= 30 and all(e.prompt for e in ex)


def test_paper_settings():
    ppo = resolve("imdb", "ppo")
    assert ppo.eval.perplexity_text == "reference" and ppo.eval.perplexity_stride == 512
    assert (ppo.generation.max_prompt_tokens, ppo.generation.truncation_side) == (64, "left")
    assert (ppo.algo.batch_unit, ppo.algo.rollout_size, ppo.algo.minibatch_size, ppo.algo.kl_target) == (
        "tokens",
        1280,
        64,
        0.5,
    )
    a2c = resolve("imdb", "a2c")
    assert (a2c.algo.rollout_size, a2c.algo.optimizer, a2c.algo.kl_target, a2c.algo.iterations) == (
        96,
        "rmsprop",
        0.5,
        100,
    )
    sup = resolve("imdb", "supervised")
    assert (sup.algo.causal_format, sup.algo.max_text_tokens, sup.algo.weight_decay) == ("text", 1024, 0.0)


def test_real_sample_splits(data_dir):
    train, val = imdb.load("train", str(data_dir)), imdb.load("validation", str(data_dir))
    test = imdb.load("test", str(data_dir))
    assert (len(train), len(val), len(test)) == (480, 120, 600)
    assert not {e.references[0] for e in train} & {e.references[0] for e in val}
    assert [e.prompt for e in imdb.load("validation", str(data_dir))] == [e.prompt for e in val]
    assert {e.meta["label"] for e in val} == {0, 1}
    assert any("<br />" in e.prompt for e in train)  # raw text, tags kept
    assert all(e.references[0].startswith(e.prompt) for e in train + val + test)
