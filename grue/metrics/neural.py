"""Model-based metrics: BERTScore, sentiment, dialogue intent accuracy and perplexity.

Each raises ``MetricSkipped`` (with the first line of the loading error) when its model
cannot be loaded here, e.g. a Hub id without network access. The sentiment and intent
classifiers (also the rewards of ``grue.rewards``) share ``load_classifier`` and
``classifier_probs``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence

import torch

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.metrics.sentiment import lexicon_sentiment, positive_class
from grue.metrics.text import check_batch, check_texts, mean

CLASSIFIER_MAX_TOKENS = 512  # classifier inputs are cut to the tokenizer's model_max_length, at most this
# Which end of a too-long classifier input is cut, per classifier (RL4LMs 97df0bd metric.py:55 and
# reward.py:325 set "left" for the sentiment classifier, so the continuation is always read; the
# intent classifier keeps the tokenizer's default, "right").
TRUNCATION_SIDE = {"sentiment": "left", "intent": "right"}
EOU = "<EOU>"  # DailyDialog's end-of-utterance marker in prompts


def _device(name: str | None) -> torch.device:
    """``name``, or the current CUDA device when there is one, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


# ---------------------------------------------------------------- BERTScore


def _bert_score_tables() -> tuple[dict, dict]:
    """bert-score's ``(lang2model, model2layers)`` tables, or MetricSkipped when it is not installed."""
    try:
        from bert_score.utils import lang2model, model2layers
    except ImportError as e:
        raise MetricSkipped(f"bert-score is not installed ({e}); pip install bert-score") from e
    return lang2model, model2layers


def bertscore_model_and_layer(model: str, layers: int | None, lang: str) -> tuple[str, int]:
    """The model and layer BERTScore reads.

    ``model`` empty: bert-score's model for ``lang`` (``lang2model``: en -> roberta-large,
    any other language but zh / tr / en-sci -> bert-base-multilingual-cased), as the HF
    ``bertscore`` metric picks it from ``lang=``. ``layers`` None: bert-score's default layer
    for the model (``model2layers``: roberta-large 17, bert-base-multilingual-cased 9);
    MetricSkipped for a model bert-score does not list.
    """
    lang2model, model2layers = _bert_score_tables()
    model = model or lang2model[lang.lower()]
    if layers is None:
        if model not in model2layers:
            raise MetricSkipped(
                f"BERTScore needs the layer of model '{model}': pass --set eval.bertscore_layers=N "
                f"(bert-score knows the layer only for its listed models)"
            )
        layers = model2layers[model]
    return model, int(layers)


BERTSCORE_SETTING = "--set eval.bertscore_model=PATH --set eval.bertscore_layers=N"
"""What takes a local BERTScore model, named when the model cannot be loaded."""
# classifier kind -> the settings that take a local copy, as an evaluation and as a training reward
CLASSIFIER_SETTING = {"sentiment": "--set eval.sentiment_model=PATH", "intent": "--set eval.intent_model=PATH"}


@functools.lru_cache(maxsize=1)
def _bert_scorer(model: str, layers: int, device: str):
    from bert_score import BERTScorer

    from grue import hub

    try:
        return hub.load(
            "the BERTScore model",
            model,
            BERTSCORE_SETTING,
            lambda: BERTScorer(model_type=model, num_layers=layers, device=device),
        )
    except hub.LoadFailed as e:
        raise MetricSkipped(str(e)) from e


def bertscore_per_sample(
    generations: Sequence[str],
    references: Sequence[Sequence[str]],
    model: str = "",
    layers: int | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    lang: str = "en",
) -> list[float]:
    """BERTScore F1 of each generation, the best over its references (N floats); no idf weighting,
    no baseline rescaling (HF ``bertscore``'s defaults). Model and layer: ``bertscore_model_and_layer``.

    An empty generation (or one whose references are all empty) scores 0, as bert-score
    does for empty candidates; such texts are kept away from bert-score, whose encoding
    of empty strings fails with transformers 5.
    """
    check_texts(generations, references)
    scorer = _bert_scorer(*bertscore_model_and_layer(str(model), layers, lang), device)
    out = [0.0] * len(generations)
    keep = [(i, g, [r for r in refs if r.strip()]) for i, (g, refs) in enumerate(zip(generations, references))]
    keep = [(i, g, refs) for i, g, refs in keep if g.strip() and refs]
    if keep:
        _, _, f1 = scorer.score([g for _, g, _ in keep], [refs for _, _, refs in keep], batch_size=batch_size)
        for (i, _, _), f in zip(keep, f1.tolist()):
            out[i] = float(f)
    return out


def bertscore(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``bertscore``: the mean BERTScore F1 (``opts.bertscore_model`` at layer ``opts.bertscore_layers``, or
    bert-score's model and layer for ``opts.bertscore_lang``)."""
    check_batch(batch)
    scores = bertscore_per_sample(
        batch.generations,
        batch.references,
        opts.bertscore_model,
        opts.bertscore_layers,
        opts.device,
        opts.batch_size,
        opts.bertscore_lang,
    )
    return MetricResult({"bertscore": mean(scores)}, {"bertscore": scores})


# ---------------------------------------------------------------- sequence classifiers


@functools.lru_cache(maxsize=4)
def load_classifier(model: str, device: str | None, kind: str, setting: str = "") -> tuple:
    """``(tokenizer, classifier in eval mode on the device, device)`` of the sequence classifier ``model``.

    ``device`` None is the current CUDA device when there is one, else the CPU. ``kind``
    ("sentiment", "intent") names the classifier in the MetricSkipped raised when it cannot load,
    and sets the end its tokenizer cuts from too-long inputs (``TRUNCATION_SIDE``). ``setting`` is what
    that message names as taking a local copy (default: the evaluation's, ``CLASSIFIER_SETTING``).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from grue import hub

    def load():
        return AutoTokenizer.from_pretrained(model), AutoModelForSequenceClassification.from_pretrained(model).eval()

    try:
        tok, clf = hub.load(f"the {kind} classifier", model, setting or CLASSIFIER_SETTING[kind], load)
    except hub.LoadFailed as e:
        raise MetricSkipped(str(e)) from e
    tok.truncation_side = TRUNCATION_SIDE[kind]
    dev = _device(device)
    return tok, clf.to(dev), dev


def classifier_max_tokens(tok) -> int:
    """The tokenizer's ``model_max_length`` (what ``truncation=True`` cuts to), capped at ``CLASSIFIER_MAX_TOKENS``
    (tokenizers that set no limit report a huge one)."""
    return min(int(tok.model_max_length), CLASSIFIER_MAX_TOKENS)


def classifier_probs(tok, clf, texts: Sequence[str], batch_size: int, device: torch.device) -> torch.Tensor:
    """Class probabilities (N, C) on the CPU: softmax of ``clf``'s logits on each text, ``batch_size`` texts
    per padded batch, each cut to ``classifier_max_tokens(tok)`` tokens on the tokenizer's ``truncation_side``."""
    out = [torch.empty(0, clf.config.num_labels)]
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=classifier_max_tokens(tok),
                return_tensors="pt",
            )
            out.append(torch.softmax(clf(**model_inputs(clf, enc.to(device))).logits.float(), -1).cpu())
    return torch.cat(out)


def model_inputs(model, encoding) -> dict:
    """The tokenizer's outputs that ``model.forward`` takes: a tokenizer may return more (transformers 4.x BERT-style
    tokenizers give ``token_type_ids`` to DistilBERT, whose forward refuses them)."""
    accepted = inspect.signature(model.forward).parameters
    return {k: v for k, v in encoding.items() if k in accepted}


# ---------------------------------------------------------------- sentiment


def sentiment(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``sentiment_score``: mean P(positive) of ``opts.sentiment_model`` on prompt + generation."""
    check_batch(batch, references=False)
    tok, clf, dev = load_classifier(str(opts.sentiment_model), opts.device, "sentiment")
    texts = [p + g for p, g in zip(batch.prompts, batch.generations)]
    scores = classifier_probs(tok, clf, texts, opts.batch_size, dev)[:, positive_class(clf.config)].tolist()
    return MetricResult({"sentiment_score": mean(scores)}, {"sentiment_score": scores})


def sentiment_lexicon(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``sentiment_lexicon``: mean VADER sentiment of the generations, ``(compound + 1) / 2`` in [0, 1] (the
    ``lexicon`` reward the smoke presets train on). Offline, and not the paper's classifier score: evaluations
    report it where ``sentiment_score`` is skipped (``grue.metrics.FALLBACKS``), under its own name."""
    check_batch(batch, references=False)
    scores = [float(s) for s in lexicon_sentiment(batch.prompts, batch.generations, batch.references, batch.meta)]
    return MetricResult({"sentiment_lexicon": mean(scores)}, {"sentiment_lexicon": scores})


# ---------------------------------------------------------------- dialogue intent


def last_utterance(prompt: str) -> str:
    """The last non-empty piece of ``prompt.split("<EOU>")``, unchanged ("" if none).

    RL4LMs' DailyDialog prompt ``u1<EOU>u2<EOU>...u5 <EOU>`` (raw utterances, which keep a space
    on each side) gives the last utterance with two trailing spaces: ``" Fine .  "``.
    """
    return next((p for p in reversed(prompt.split(EOU)) if p), "")


def intent_input(prompt: str, generation: str) -> str:
    """The intent classifier's text: ``last_utterance(prompt) + generation``, as RL4LMs builds it
    (97df0bd metric.py:685-690): no separator added, nothing stripped."""
    return last_utterance(prompt) + generation


def intent_match_per_sample(
    prompts: Sequence[str],
    generations: Sequence[str],
    labels: Sequence[int],
    model: str,
    batch_size: int = 32,
    device: str | None = None,
    setting: str = "",
) -> list[float]:
    """1.0 where the classifier's argmax class on ``intent_input`` equals the label, else 0.0 (N floats).

    Labels are class ids ``0..num_labels-1`` (DailyDialog act - 1 for the paper's classifier). ``setting``:
    what takes a local copy of the classifier (see ``load_classifier``).
    """
    if not len(prompts) == len(generations) == len(labels):
        raise GrueError(
            f"{len(prompts)} prompts, {len(generations)} generations and {len(labels)} intent labels; "
            f"one of each per example is accepted"
        )
    tok, clf, dev = load_classifier(str(model), device, "intent", setting)
    n_labels = clf.config.num_labels
    for i, y in enumerate(labels):
        if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < n_labels:
            raise GrueError(f"intent label {y!r} of example {i} is not a class id; accepted: int 0..{n_labels - 1}")
    texts = [intent_input(p, g) for p, g in zip(prompts, generations)]
    preds = classifier_probs(tok, clf, texts, batch_size, dev).argmax(-1).tolist()
    return [float(p == y) for p, y in zip(preds, labels)]


def intent(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``intent_accuracy``: the share of generations whose predicted intent is ``meta["intent"]``."""
    check_batch(batch, references=False)
    if not batch.meta or any("intent" not in m for m in batch.meta):
        raise MetricSkipped("intent accuracy needs meta['intent'] labels on every example (DailyDialog data has them)")
    scores = intent_match_per_sample(
        batch.prompts,
        batch.generations,
        [m["intent"] for m in batch.meta],
        model=opts.intent_model,
        batch_size=opts.batch_size,
        device=opts.device,
    )
    return MetricResult({"intent_accuracy": mean(scores)}, {"intent_accuracy": scores})


# ---------------------------------------------------------------- perplexity
# The paper's definition (RL4LMs' causal perplexity, after the transformers guide "Perplexity
# of fixed-length models"): the texts joined by blank lines into one token sequence, scored by a
# sliding window, so that results sit beside the paper's rows.

WINDOW_TOKENS_PER_FORWARD = 4096  # windows are batched up to about this many tokens per forward


def _context_size(config) -> int | None:
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    return None


def window_spans(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """The sliding windows over ``n`` tokens as ``(begin, first, end)``: one forward reads tokens
    ``[begin, end)`` and scores tokens ``[max(first, begin + 1), end)``.

    ``first`` runs over 0, stride, 2·stride, ...; ``end = min(first + stride, n)``;
    ``begin = max(first + stride − window, 0)``. Every token but the very first is scored once,
    except, when ``stride == window``, the first token of each window (it has no context there).
    Needs ``1 <= stride <= window``.
    """
    if not 1 <= stride <= window:
        raise GrueError(f"perplexity needs 1 <= stride <= window, got stride {stride} and window {window}")
    return [(max(first + stride - window, 0), first, min(first + stride, n)) for first in range(0, n, stride)]


def window_nlls(policy, ids: Sequence[int], window: int, stride: int) -> list[tuple[float, int]]:
    """Per sliding window of ``window_spans`` over the sequence ``ids`` (N,) under a causal ``policy``: the summed
    NLL (nats) of its scored tokens and their number. Token t of window (begin, first, end) costs
    ``-log p(ids[t] | ids[begin:t])``; windows are padded on the right and run a few at a time."""
    device = next(policy.parameters()).device
    spans = window_spans(len(ids), window, stride)
    per_forward = max(1, WINDOW_TOKENS_PER_FORWARD // window)
    out: list[tuple[float, int]] = []
    with torch.no_grad():
        for s in range(0, len(spans), per_forward):
            chunk = spans[s : s + per_forward]
            rows = [list(ids[b:e]) for b, _, e in chunk]
            unscored = [max(f, b + 1) - b for b, f, _ in chunk]  # leading tokens of each row that are context only
            labels = [[-100] * k + row[k:] for row, k in zip(rows, unscored)]
            x = _pad(rows, 0).to(device)
            mask = _pad([[1] * len(r) for r in rows], 0).to(device)
            logits = policy(input_ids=x, attention_mask=mask).logits[:, :-1]
            nll, n = _token_nll(logits, _pad(labels, -100)[:, 1:].to(device))
            out.extend(zip(nll, n))
    return out


def sliding_window_nll(policy, ids: Sequence[int], window: int, stride: int) -> tuple[float, int]:
    """Summed NLL (nats) and number of scored tokens of the sequence ``ids`` (see ``window_nlls``)."""
    per_window = window_nlls(policy, ids, window, stride)
    return sum(n for n, _ in per_window), sum(c for _, c in per_window)


def rl4lms_nll(policy, ids: Sequence[int], window: int, stride: int) -> tuple[float, int]:
    """RL4LMs' numerator and denominator (97df0bd ``rl4lms/envs/text_generation/metric.py``, class ``Perplexity``,
    lines 461-481): each window's mean NLL over its scored tokens times its target length ``end - first``, summed,
    over N, every token of the sequence. The first window scores one token fewer than its target length (its first
    token has no context), so its mean is counted once more."""
    total = 0.0
    for (nll, count), (_, first, end) in zip(
        window_nlls(policy, ids, window, stride), window_spans(len(ids), window, stride)
    ):
        if count == 0:  # RL4LMs' mean over no token is NaN
            raise MetricSkipped(
                "a perplexity window scores no token (a one-token last window with stride = window); "
                "set eval.perplexity_average=scored_tokens or another eval.perplexity_stride"
            )
        total += nll / count * (end - first)
    return total, len(ids)


def perplexity_texts(batch: EvalBatch, which: str, keep_empty: bool = False) -> list[str]:
    """The texts perplexity reads: every reference (``reference``), or each prompt, a space and each of its
    references (``prompt_and_reference``); empty ones are left out unless ``keep_empty`` (RL4LMs kept them: each
    adds one more blank-line separator to the joined text)."""
    if which not in ("reference", "prompt_and_reference"):
        raise GrueError(f"eval.perplexity_text must be reference or prompt_and_reference, got {which!r}")
    if which == "reference":
        texts = [r for refs in batch.references for r in refs]
    else:
        texts = [f"{p} {r}" if p and r else p or r for p, refs in zip(batch.prompts, batch.references) for r in refs]
    return texts if keep_empty else [t for t in texts if t.strip()]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[int]]:
    """Per-row summed NLL and token count: logits (B,T,V) predict labels (B,T); label -100 is ignored."""
    mask = labels != -100
    logp = torch.log_softmax(logits.float(), -1)
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return nll.sum(-1).tolist(), mask.sum(-1).tolist()


def perplexity(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``perplexity`` of the evaluated causal LM on ``perplexity_texts`` joined by blank lines (``"\\n\\n"``) into
    one sequence (tokenised by ``opts.perplexity_tokenizer``, else the model's tokenizer), scored with windows of
    the model's context size advancing by ``opts.perplexity_stride`` tokens.

    ``perplexity_average: rl4lms`` (the paper's, default): ``exp(Σ_w mean NLL_w x target length_w / N)`` over all N
    tokens, empty texts kept (``rl4lms_nll``). ``scored_tokens`` (grue's variant): ``exp(Σ NLL / scored tokens)``,
    empty texts left out. Corpus level only: the windows cross example boundaries. Skipped without a causal model,
    or when the texts have under two tokens.
    """
    check_batch(batch)
    if opts.policy is None or opts.tokenizer is None:
        raise MetricSkipped(
            "perplexity needs the evaluated model and its tokenizer, which --predictions does not give; "
            "evaluate the model itself (--checkpoint RUN or --task TASK --model NAME) for it"
        )
    policy = opts.policy
    if getattr(policy.config, "is_encoder_decoder", False):
        raise MetricSkipped(
            "perplexity is the paper's causal-LM measure on the reference texts; an encoder-decoder model has none"
        )
    paper = opts.perplexity_average == "rl4lms"
    texts = perplexity_texts(batch, opts.perplexity_text, keep_empty=paper)
    if not any(r.strip() for refs in batch.references for r in refs):
        raise MetricSkipped(
            "the examples have no reference texts to read (built-in prompts have none); evaluate on "
            "the task's data with --data-dir DIR (or GRUE_DATA_DIR)"
        )
    text = "\n\n".join(texts)
    tokenizer = opts.tokenizer
    if opts.perplexity_tokenizer:
        from grue.models import load_tokenizer

        tokenizer = load_tokenizer(opts.perplexity_tokenizer)
    ids = tokenizer(text, verbose=False)["input_ids"] if text else []
    if len(ids) < 2:
        raise MetricSkipped("the reference texts have fewer than two tokens; perplexity needs a token to predict")
    window = _context_size(policy.config) or 1024
    was_training = policy.training
    policy.eval()
    try:
        nll, count = (rl4lms_nll if paper else sliding_window_nll)(
            policy, ids, window, min(opts.perplexity_stride, window)
        )
    finally:
        policy.train(was_training)
    return MetricResult({"perplexity": math.exp(nll / count)})
