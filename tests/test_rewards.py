"""Rewards: the lexicon scorer, a real (tiny, local) sentiment classifier, lookup and checking."""

from __future__ import annotations

import math

import pytest
import torch

from grue.errors import GrueError
from grue.rewards import REWARDS, classifier_sentiment, lexicon_sentiment, resolve_reward, score


def test_lexicon_prefers_positive_text():
    good, bad, flat = lexicon_sentiment(
        ["p"] * 3, ["a wonderful, great film", "awful and boring", "the table"], [[]] * 3, [{}] * 3
    )
    assert good > flat > bad and 0.0 <= bad and good <= 1.0
    assert flat == pytest.approx(0.5)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A DistilBERT sequence classifier built locally (random weights, the tiny tokenizer), saved to disk."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from grue.models import tiny_tokenizer

    path = tmp_path_factory.mktemp("clf")
    torch.manual_seed(0)
    cfg = DistilBertConfig(
        vocab_size=4096,
        dim=32,
        hidden_dim=64,
        n_layers=1,
        n_heads=2,
        pad_token_id=0,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    model = DistilBertForSequenceClassification(cfg)
    model.save_pretrained(path)
    tok = tiny_tokenizer()
    tok.model_input_names = ["input_ids", "attention_mask"]
    tok.save_pretrained(path)
    return path, model.eval(), tok


def test_classifier_reward_is_p_positive_on_prompt_plus_completion(tiny_classifier):
    path, model, tok = tiny_classifier
    prompts, completions = ["The film was", "I thought it"], [" great fun.", " a waste of time, sadly."]
    got = classifier_sentiment(prompts, completions, [[], []], [{}, {}], model=str(path))
    with torch.no_grad():
        for p, c, g in zip(prompts, completions, got):
            enc = tok(p + c, return_tensors="pt")
            want = torch.softmax(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits, -1)[
                0, 1
            ].item()
            assert g == pytest.approx(want, abs=1e-5)


def test_classifier_that_cannot_load_names_the_alternative():
    with pytest.raises(GrueError, match="reward=lexicon"):
        classifier_sentiment(["a"], ["b"], [[]], [{}], model="/no/such/classifier")


def test_resolve_by_name_path_and_bound_model(tiny_classifier):
    assert resolve_reward("lexicon")[1] is REWARDS["lexicon"]
    name, fn = resolve_reward("reward_fixtures:letter_e")
    assert fn([""], ["eee"], [[]], [{}]) == [1.0]
    _, bound = resolve_reward("sentiment", model=str(tiny_classifier[0]))
    assert 0.0 <= bound(["a"], ["b"], [[]], [{}])[0] <= 1.0
    with pytest.raises(
        GrueError, match="unknown reward .nope.; accepted: commongen_meteor, intent_meteor, lexicon, meteor"
    ):
        resolve_reward("nope")
    with pytest.raises(GrueError, match="cannot import reward"):
        resolve_reward("reward_fixtures:missing")


@pytest.mark.parametrize(
    "returned,message",
    [
        ([1.0], "returned 1 scores for 2"),
        ([1.0, math.inf], "non-finite"),
        (None, "must return a list of floats"),
        (["x", 1], "must return a list of floats"),
    ],
)
def test_score_checks_the_answer(returned, message):
    with pytest.raises(GrueError, match=message) as e:
        score("my_reward", lambda *a: returned, ["p", "q"], ["a", "b"], [[], []], [{}, {}])
    assert "'my_reward'" in str(e.value)


def test_ngram_rewards_on_hand_cases():
    # RL4LMs 97df0bd rl4lms/envs/text_generation/reward.py:126-160: METEOR of one finished episode through HF meteor,
    # whose string feature stringifies the reference list; reward.py:71-95 subtracts 1 for a copied concept string
    # or the words "generate" / "sentence"
    refs = [["a dog catches a frisbee in the park"]] * 3
    meta = [{"concepts": ["dog", "frisbee", "catch"]}] * 3
    outs = ["a dog catches a frisbee in the park", "dog frisbee catch", "generate a sentence with: dog frisbee catch."]
    # hand: the reference "['a dog ... park']" is 12 tokens ([ ' a dog ... park ' ]); the copy matches 8 in one
    # chunk: P = 1, R = 8/12, Fmean = (8/12) / (.9 + .1 * 8/12) = 8/11.6, penalty 0.5 * (1/8)^3
    copy = 8 / 11.6 * (1 - 0.5 / 8**3)
    assert REWARDS["meteor"](["p"], outs[:1], refs[:1], meta[:1]) == pytest.approx([copy])
    met = REWARDS["meteor"](["p"] * 3, outs, refs, meta)
    got = REWARDS["commongen_meteor"](["p"] * 3, outs, refs, meta)
    assert got[0] == pytest.approx(copy)  # no copy of the concepts: plain METEOR
    assert got[1] == pytest.approx(met[1] - 1.0) and got[2] == pytest.approx(met[2] - 1.0)  # copies are penalised
    # reward.py:559-581: 1 - HF ter of one example. hand: identical -> 1; one substitution in four words -> 0.75;
    # six words against a one-word reference: 5 deletions / 1 word -> 1 - 5 = -4
    got = REWARDS["one_minus_ter"](
        [""] * 3, ["a b c d", "a b c x", "a b c d e f"], [["a b c d"], ["a b c d"], ["a"]], [{}] * 3
    )
    assert got == pytest.approx([1.0, 0.75, -4.0])
    # reward.py:163-205 (use_single_ref True): ROUGE-1 against the FIRST reference only. hand: "the cat" against
    # "a dog" -> 0 although the second reference is identical; against "the cat sat": P = 1, R = 2/3 -> F = 0.8
    assert REWARDS["rouge1"](
        [""] * 2, ["the cat", "the cat"], [["a dog", "the cat"], ["the cat sat"]], [{}] * 2
    ) == pytest.approx([0.0, 0.8])
    # reward.py:536-556: py-rouge ROUGE-L, best reference. hand: "the cat" vs "the cat sat": P = 1, R = 2/3, each
    # raised to 1/1.2, F = 2PR / (P + R)
    r = (2 / 3) ** (1 / 1.2)
    assert REWARDS["rouge_lmax"](
        [""] * 2, ["the cat", "the cat"], [["a dog", "the cat"], ["the cat sat"]], [{}] * 2
    ) == pytest.approx([1.0, 2 * r / (1 + r)])


def test_task_rewards_on_hand_cases(tiny_classifier):
    from grue.metrics.neural import intent_match_per_sample
    from grue.metrics.text import meteor_per_sample

    table = [["name", "ada lovelace"], ["born", "1815"]]
    assert (
        REWARDS["parent"](
            [""], ["ada lovelace was born in 1815"], [["ada lovelace was born in 1815"]], [{"table": table}]
        )[0]
        > 0.9
    )
    # intent + METEOR, weighted 0.75 / 0.25, per sample
    prompts, gens, labels = ["hi <EOU> how are you ? <EOU>"] * 2, ["fine thanks", "fine thanks"], [0, 1]
    match = intent_match_per_sample(prompts, gens, labels, model=str(tiny_classifier[0]))
    assert sorted(match) == [0.0, 1.0]
    got = REWARDS["intent_meteor"](
        prompts, gens, [["fine thanks"]] * 2, [{"intent": 0}, {"intent": 1}], model=str(tiny_classifier[0])
    )
    assert got == pytest.approx(
        [0.75 * m + 0.25 * s for m, s in zip(match, meteor_per_sample(gens, [["fine thanks"]] * 2))]
    )
    # RL4LMs dialog/gpt2_ppo_on_supervised.yml weights 0.5 / 0.5, through run.reward_args
    _, half = resolve_reward("intent_meteor", str(tiny_classifier[0]), {"intent_weight": 0.5, "meteor_weight": 0.5})
    assert half(prompts, gens, [["fine thanks"]] * 2, [{"intent": 0}, {"intent": 1}]) == pytest.approx(
        [0.5 * m + 0.5 * s for m, s in zip(match, meteor_per_sample(gens, [["fine thanks"]] * 2))]
    )


def test_reward_args_are_checked_against_the_function():
    with pytest.raises(GrueError, match="reward 'meteor' takes no argument 'weight'.*it takes: none"):
        resolve_reward("meteor", args={"weight": 1.0})
    with pytest.raises(GrueError, match="takes no argument 'nope'.*it takes: model, intent_weight, meteor_weight"):
        resolve_reward("intent_meteor", args={"nope": 1})


def test_a_reward_past_its_time_limit_is_stopped_with_one_line():
    """run.reward_timeout_s: a hung reward (reward_fixtures.sleeps hangs 3 s) is abandoned at the limit."""
    import time

    import reward_fixtures

    start = time.monotonic()
    with pytest.raises(GrueError) as e:
        score(
            "reward_fixtures:sleeps",
            reward_fixtures.sleeps,
            ["p"],
            ["c"],
            [["r"]],
            [{}],
            "the rollout of iteration 2",
            0.2,
        )
    assert time.monotonic() - start < 2.0
    assert str(e.value) == (
        "reward function 'reward_fixtures:sleeps' ran past run.reward_timeout_s = 0.2 s and was "
        "abandoned on the rollout of iteration 2"
    )


def test_a_limited_reward_answers_and_fails_as_an_unlimited_one():
    import reward_fixtures

    args = (["p", "q"], ["eee", "abc"], [["r"], ["r"]], [{}, {}])
    assert (
        score("e", reward_fixtures.letter_e, *args, "b", 5.0)
        == score("e", reward_fixtures.letter_e, *args)
        == [1.0, 0.0]
    )
    for limit in (None, 5.0):
        with pytest.raises(
            GrueError,
            match=r"^reward function 'x' raised RuntimeError: the scorer is broken on the rollout of "
            r"iteration 7$",
        ):
            score("x", reward_fixtures.raises, *args, "the rollout of iteration 7", limit)


def test_reward_timeout_is_a_positive_number_of_seconds_or_null():
    from grue.algorithms import resolve

    assert resolve("imdb", "ppo").run.reward_timeout_s is None
    assert resolve("imdb", "ppo", sets=["run.reward_timeout_s=2.5"]).run.reward_timeout_s == 2.5
    assert resolve("imdb", "ppo", sets=["run.reward_timeout_s=null"]).run.reward_timeout_s is None
    with pytest.raises(GrueError, match=r"run.reward_timeout_s must be > 0 seconds \(null: no limit\), got 0.0"):
        resolve("imdb", "ppo", sets=["run.reward_timeout_s=0"])
