"""Model-based metrics: BERTScore, sentiment, dialogue intent accuracy and perplexity.

Each raises ``MetricSkipped`` (with the first line of the loading error) when its model
cannot be loaded here, e.g. a Hub id without network access. The sentiment and intent
classifiers (also the rewards of ``grue.rewards``) share ``load_classifier`` and
``classifier_probs``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.metrics.text import check_batch, check_texts, mean
from grue.models import first_line
from grue.rollout import tokenize_prompts

MAX_PROMPT_TOKENS = 512  # perplexity: prompts are cut on the left to this many tokens
CLASSIFIER_MAX_TOKENS = 512  # classifier inputs are cut on the right to this many tokens
EOU = "<EOU>"  # DailyDialog's end-of-utterance marker in prompts


def _device(name: str | None) -> torch.device:
    """``name``, or the current CUDA device when there is one, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


# ---------------------------------------------------------------- BERTScore


@functools.lru_cache(maxsize=1)
def _bert_scorer(model: str, layers: int | None, device: str):
    try:
        from bert_score import BERTScorer
        from bert_score.utils import model2layers
    except ImportError as e:
        raise MetricSkipped(f"bert-score is not installed ({e}); pip install bert-score") from e

    if layers is None and model not in model2layers:
        raise MetricSkipped(f"BERTScore needs eval bertscore_layers for model '{model}' "
                            f"(bert-score knows the layer only for its listed models)")
    try:
        return BERTScorer(model_type=model, num_layers=layers, device=device)
    except Exception as e:
        raise MetricSkipped(f"could not load the BERTScore model '{model}': {first_line(e)}") from e


def bertscore_per_sample(generations: Sequence[str], references: Sequence[Sequence[str]], model: str,
                         layers: int | None = None, device: str = "cpu", batch_size: int = 32) -> list[float]:
    """BERTScore F1 of each generation, the best over its references (N floats).

    An empty generation (or one whose references are all empty) scores 0, as bert-score
    does for empty candidates; such texts are kept away from bert-score, whose encoding
    of empty strings fails with transformers 5.
    """
    check_texts(generations, references)
    scorer = _bert_scorer(str(model), layers, device)
    out = [0.0] * len(generations)
    keep = [(i, g, [r for r in refs if r.strip()]) for i, (g, refs) in enumerate(zip(generations, references))]
    keep = [(i, g, refs) for i, g, refs in keep if g.strip() and refs]
    if keep:
        _, _, f1 = scorer.score([g for _, g, _ in keep], [refs for _, _, refs in keep], batch_size=batch_size)
        for (i, _, _), f in zip(keep, f1.tolist()):
            out[i] = float(f)
    return out


def bertscore(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``bertscore``: the mean BERTScore F1 (``opts.bertscore_model``, layer ``opts.bertscore_layers``)."""
    check_batch(batch)
    scores = bertscore_per_sample(batch.generations, batch.references, opts.bertscore_model,
                                  opts.bertscore_layers, opts.device, opts.batch_size)
    return MetricResult({"bertscore": mean(scores)}, {"bertscore": scores})


# ---------------------------------------------------------------- sequence classifiers


@functools.lru_cache(maxsize=4)
def load_classifier(model: str, device: str | None, kind: str) -> tuple:
    """``(tokenizer, classifier in eval mode on the device, device)`` of the sequence classifier ``model``.

    ``device`` None is the current CUDA device when there is one, else the CPU. ``kind``
    ("sentiment", "intent") names the classifier in the MetricSkipped raised when it cannot load.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model)
        clf = AutoModelForSequenceClassification.from_pretrained(model).eval()
    except Exception as e:  # noqa: BLE001 - the user gets one line, not a traceback
        raise MetricSkipped(f"could not load the {kind} classifier '{model}': {first_line(e)}") from e
    dev = _device(device)
    return tok, clf.to(dev), dev


def classifier_probs(tok, clf, texts: Sequence[str], batch_size: int, device: torch.device) -> torch.Tensor:
    """Class probabilities (N, C) on the CPU: softmax of ``clf``'s logits on each text, ``batch_size`` texts
    per padded batch, each cut to ``CLASSIFIER_MAX_TOKENS`` tokens."""
    out = [torch.empty(0, clf.config.num_labels)]
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(list(texts[i : i + batch_size]), padding=True, truncation=True,
                      max_length=CLASSIFIER_MAX_TOKENS, return_tensors="pt")
            out.append(torch.softmax(clf(**enc.to(device)).logits.float(), -1).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------- sentiment


def sentiment(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``sentiment_score``: mean P(positive) of ``opts.sentiment_model`` on prompt + generation."""
    check_batch(batch, references=False)
    from grue.rewards import classifier_sentiment

    try:
        scores = classifier_sentiment(batch.prompts, batch.generations, batch.references, batch.meta,
                                      model=opts.sentiment_model, batch_size=opts.batch_size, device=opts.device)
    except GrueError as e:
        raise MetricSkipped(str(e)) from e
    scores = [float(s) for s in scores]
    return MetricResult({"sentiment_score": mean(scores)}, {"sentiment_score": scores})


# ---------------------------------------------------------------- dialogue intent


def last_utterance(prompt: str) -> str:
    """The last non-empty utterance of a dialogue context ``"u1 <EOU> u2 <EOU> "``, stripped ("" if none)."""
    pieces = [p.strip() for p in prompt.split(EOU)]
    return next((p for p in reversed(pieces) if p), "")


def intent_input(prompt: str, generation: str) -> str:
    """The classifier's text: the last utterance, one space, the generation (RL4LMs joins the two)."""
    # why a space: the utterance is stripped, so it keeps its last word apart from the reply's first
    return " ".join(t for t in (last_utterance(prompt), generation.strip()) if t)


def intent_match_per_sample(prompts: Sequence[str], generations: Sequence[str], labels: Sequence[int],
                            model: str, batch_size: int = 32, device: str | None = None) -> list[float]:
    """1.0 where the classifier's argmax class on ``intent_input`` equals the label, else 0.0 (N floats).

    Labels are class ids ``0..num_labels-1`` (DailyDialog act - 1 for the paper's classifier).
    """
    if not len(prompts) == len(generations) == len(labels):
        raise GrueError(f"{len(prompts)} prompts, {len(generations)} generations and {len(labels)} intent labels; "
                        f"one of each per example is accepted")
    tok, clf, dev = load_classifier(str(model), device, "intent")
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
    scores = intent_match_per_sample(batch.prompts, batch.generations, [m["intent"] for m in batch.meta],
                                     model=opts.intent_model, batch_size=opts.batch_size, device=opts.device)
    return MetricResult({"intent_accuracy": mean(scores)}, {"intent_accuracy": scores})


# ---------------------------------------------------------------- perplexity


def _context_size(config) -> int | None:
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    return None


def causal_example(tok, prompt: str, reference: str, context: int | None) -> tuple[list[int], int]:
    """Token ids of prompt + reference and how many of them (at the end) are the reference.

    The reference gets a leading space when neither side has one at the join. The
    prompt is cut on the left to ``MAX_PROMPT_TOKENS`` and to what the model's context
    leaves; a reference longer than the context is cut on the right. An empty prompt
    becomes the tokenizer's BOS (or EOS) token so that the first reference token is scored.
    """
    if prompt and reference and not prompt[-1].isspace() and not reference[0].isspace():
        reference = " " + reference
    ref = tok(reference, add_special_tokens=False, verbose=False)["input_ids"] if reference else []
    ctx = tok(prompt, verbose=False)["input_ids"] if prompt else []
    if not ctx:
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ctx = [start] if start is not None else []
    if context is not None:
        ref = ref[: max(context - 1, 1)]
    budget = MAX_PROMPT_TOKENS if context is None else min(MAX_PROMPT_TOKENS, context - len(ref))
    ctx = ctx[len(ctx) - budget :] if budget > 0 else []
    return ctx + ref, len(ref)


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[int]]:
    """Per-row summed NLL and token count: logits (B,T,V) predict labels (B,T); label -100 is ignored."""
    mask = labels != -100
    logp = torch.log_softmax(logits.float(), -1)
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return nll.sum(-1).tolist(), mask.sum(-1).tolist()


def reference_nll(policy, tok, prompts: Sequence[str], references: Sequence[str],
                  batch_size: int = 32) -> tuple[list[float], list[int]]:
    """Summed NLL (nats) of each reference given its prompt under ``policy``, and its token count (N each).

    Causal: one sequence prompt + reference, loss on the reference tokens. Seq2seq: the
    encoder reads the prompt (its last ``MAX_PROMPT_TOKENS`` tokens, ``grue.rollout.tokenize_prompts``),
    the labels are the reference as the tokenizer encodes it (T5's adds EOS), cut to the
    decoder's positions if it has a limit; the decoder reads them shifted right (the model's
    ``prepare_decoder_input_ids_from_labels``). One forward and one log-softmax per batch.
    """
    seq2seq = bool(getattr(policy.config, "is_encoder_decoder", False))
    context = _context_size(policy.config)
    device = next(policy.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    nll: list[float] = []
    count: list[int] = []
    with torch.no_grad():
        for s in range(0, len(prompts), batch_size):
            ps, rs = prompts[s : s + batch_size], references[s : s + batch_size]
            if seq2seq:
                ids, mask = tokenize_prompts(tok, list(ps), MAX_PROMPT_TOKENS, True, device, "left")
                labels = _pad([tok(r, verbose=False)["input_ids"][:context] for r in rs], -100).to(device)
                # decoder inputs instead of labels=: the model would compute (and we would discard) its own loss
                decoder_ids = policy.prepare_decoder_input_ids_from_labels(labels=labels)
                logits = policy(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
            else:
                rows = [causal_example(tok, p, r, context) for p, r in zip(ps, rs)]
                seqs = [r[0] if r[0] else [pad] for r in rows]
                lab = [[-100] * (len(q) - n) + q[len(q) - n :] for q, (_, n) in zip(seqs, rows)]
                ids = _pad(seqs, pad).to(device)
                mask = _pad([[1] * len(q) for q in seqs], 0).to(device)
                logits = policy(input_ids=ids, attention_mask=mask).logits[:, :-1]
                labels = _pad(lab, -100)[:, 1:].to(device)
            a, b = _token_nll(logits, labels)
            nll.extend(float(x) for x in a)
            count.extend(int(x) for x in b)
    return nll, count


def perplexity(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """``perplexity``: ``exp(total NLL / total tokens)`` of ``opts.policy`` on each first reference given its prompt.

    Per sample: the example's own ``exp(NLL / tokens)``; left out when some example's
    reference has no tokens. Skipped without a policy and tokenizer, or when no
    reference has tokens.
    """
    check_batch(batch)
    if opts.policy is None or opts.tokenizer is None:
        raise MetricSkipped("perplexity needs the evaluated model and its tokenizer")
    policy = opts.policy
    was_training = policy.training
    policy.eval()
    try:
        nll, count = reference_nll(policy, opts.tokenizer, batch.prompts, [r[0] for r in batch.references],
                                   opts.batch_size)
    finally:
        policy.train(was_training)
    if sum(count) == 0:
        raise MetricSkipped("no example has a non-empty first reference to compute perplexity on")
    values = {"perplexity": math.exp(sum(nll) / sum(count))}
    if all(count):
        return MetricResult(values, {"perplexity": [math.exp(a / b) for a, b in zip(nll, count)]})
    return MetricResult(values)
