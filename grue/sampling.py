"""The sampling distribution, one decoding step at a time, and its log-probs for the update.

How sampling warpers are treated. The policy samples from the *warped* distribution
``pi_w(a|s)``: the logits get EOS banned while fewer than ``min_new_tokens`` tokens
exist, are divided by ``temperature``, restricted to the ``top_k`` largest and then to
the smallest set whose probability reaches ``top_p``, and renormalised. The tokens kept
form the step's *support*; it is stored with the rollout as token ids (B,T,K), so a
step costs K int32 ids, not a vocabulary-sized mask. In the PPO update the new
log-probs are ``log_softmax`` of the new logits over that stored support, so the
ratio ``pi_w_new / pi_w_old`` compares the distribution actually sampled from with
its update on the same support. Without top-k and top-p the support is the whole
vocabulary (less a banned EOS) and nothing is stored.

The KL penalty against the reference model uses the unwarped log-probs
(``log_softmax(logits)``, temperature 1) of both models: it measures the drift of the
models themselves, not of the sampler.

Sampling draws among the top-k logits only: the same distribution as a multinomial
over the whole masked vocabulary, at a fraction of its cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class StepSample:
    """One decoding step for a batch. Shapes: (B,), and support (B,K) or None."""

    tokens: torch.Tensor
    logprobs: torch.Tensor
    raw_logprobs: torch.Tensor
    support: torch.Tensor | None


def top_p_mask(
    logits: torch.Tensor, top_p: float, min_keep: int = 1, always: torch.Tensor | None = None
) -> torch.Tensor:
    """The tokens NLPO allows: the smallest set whose probability under ``softmax(logits)`` exceeds ``top_p``.

    logits (B,V) -> bool (B,V). Sorted by probability, a token is kept while the mass of
    the tokens above it is below ``top_p``; at least ``min_keep`` tokens are kept, and the
    ids in ``always`` (e.g. special tokens) are always allowed.
    """
    if top_p >= 1.0:  # everything; a float cumulative sum could otherwise drop the tail
        return torch.ones_like(logits, dtype=torch.bool)
    probs, order = torch.sort(torch.softmax(logits.float(), -1), dim=-1, descending=True)
    before = probs.cumsum(-1) - probs
    keep_sorted = before < top_p
    keep_sorted[:, : min(min_keep, logits.shape[-1])] = True
    allowed = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    if always is not None and always.numel():
        allowed[:, always] = True
    return allowed


def sample_step(
    logits: torch.Tensor,
    *,
    step: int,
    eos_id: int | None,
    min_new_tokens: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
    allowed: torch.Tensor | None = None,
) -> StepSample:
    """Draw one token per row from the warped distribution of ``logits`` (B,V).

    Returns the tokens, their log-probs under the warped distribution, their raw
    log-probs ``log_softmax(logits)`` and the support ids (-1 pads rows with fewer
    kept tokens). ``do_sample=False`` is greedy decoding (log-prob 0 under the
    point mass, support of one token). ``allowed`` (B,V) bool, NLPO's action mask,
    sets every other token to -inf before any warper; the support is then always stored.
    """
    logits = logits.float()
    raw = torch.log_softmax(logits, dim=-1)
    plain = allowed is None and not (eos_id is not None and step < min_new_tokens) and temperature == 1.0
    if allowed is not None:
        logits = logits.masked_fill(~allowed, NEG_INF)
    if eos_id is not None and step < min_new_tokens:
        logits = logits.clone()
        logits[:, eos_id] = NEG_INF
    if not do_sample:
        tokens = logits.argmax(-1)
        raw_lp = raw.gather(-1, tokens[:, None])[:, 0]
        return StepSample(tokens, torch.zeros_like(raw_lp), raw_lp, tokens[:, None])
    scaled = logits / temperature if temperature != 1.0 else logits  # x / 1.0 is x: skip the pass
    support = None
    if top_k > 0 or top_p < 1.0 or allowed is not None:
        k = top_k if 0 < top_k < scaled.shape[-1] else scaled.shape[-1]
        if allowed is not None:
            k = min(k, int(allowed.sum(-1).max()))
        vals, ids = torch.topk(scaled, k, dim=-1)  # sorted, largest first
        if top_p < 1.0:
            probs = torch.softmax(vals, dim=-1)
            before = probs.cumsum(-1) - probs  # mass strictly above each entry
            vals = vals.masked_fill(before >= top_p, NEG_INF)
        keep = torch.isfinite(vals)
        width = int(keep.sum(-1).max())
        vals, ids, keep = vals[:, :width], ids[:, :width], keep[:, :width]
        logp = torch.log_softmax(vals, dim=-1)
        choice = categorical(logp, generator)[:, None]
        tokens = ids.gather(-1, choice)[:, 0]
        lp = logp.gather(-1, choice)[:, 0]
        support = ids.masked_fill(~keep, -1)
    else:
        # Unwarped (temperature 1, nothing banned): the distribution is ``raw`` itself, bit for bit; skip a
        # second vocabulary-wide log-softmax per step.
        logp = raw if plain else torch.log_softmax(scaled, dim=-1)
        tokens = categorical(logp, generator)
        lp = logp.gather(-1, tokens[:, None])[:, 0]
    return StepSample(tokens, lp, raw.gather(-1, tokens[:, None])[:, 0], support)


def categorical(logp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row from ``softmax(logp)``: logp (B,N) normalised log-probs (-inf for an excluded entry) -> (B,).

    Inverse transform sampling: the first entry whose cumulative probability (float64) exceeds ``u * total``,
    ``u`` uniform in [0, 1). An entry of probability 0 adds nothing to the sum, so it is never drawn. The same
    distribution as ``torch.multinomial(logp.exp(), 1)``, which on CPU took 22 ms for 16 rows of GPT-2's
    50257 tokens against 2 ms for this (benchmarks/README.md): a decoding step at ``top_k: 0`` spent more on
    drawing than on its vocabulary projection.
    """
    cdf = logp.exp().double().cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand(logp.shape[0], 1, generator=generator, dtype=torch.float64, device=logp.device) * total
    idx = torch.searchsorted(cdf, u, right=True)
    over = idx >= cdf.shape[-1]
    if bool(over.any()):  # u * total rounded up to total itself: the last entry of positive probability
        idx = torch.where(over, (logp > NEG_INF).cumsum(-1).argmax(-1, keepdim=True), idx)
    return idx[:, 0]


def warped_log_softmax(
    logits: torch.Tensor,
    support: torch.Tensor | None,
    *,
    temperature: float = 1.0,
    eos_id: int | None = None,
    min_new_tokens: int = 0,
) -> torch.Tensor:
    """The whole warped distribution, teacher-forced: logits (B,T,V) -> log-probs (B,T,K) over each step's stored
    support ids (B,T,K), -inf where the support is padded; without a support (B,T,V) over the vocabulary, EOS
    banned at positions ``t < min_new_tokens``. ``logits / temperature`` throughout."""
    logits = logits.float() / temperature
    if support is None:
        if eos_id is not None and min_new_tokens > 0:
            banned = torch.zeros_like(logits, dtype=torch.bool)
            banned[:, :min_new_tokens, eos_id] = True
            logits = logits.masked_fill(banned, NEG_INF)
        return torch.log_softmax(logits, dim=-1)
    valid = support >= 0
    # A padded position has an empty support: give it one dummy entry so nothing is NaN.
    valid[..., 0] |= ~valid.any(-1)
    sub = logits.gather(-1, support.clamp(min=0).long()).masked_fill(~valid, NEG_INF)
    return torch.log_softmax(sub, dim=-1)


def token_logprobs_in(logp_all: torch.Tensor, tokens: torch.Tensor, support: torch.Tensor | None) -> torch.Tensor:
    """The tokens' entries of a teacher-forced distribution: (B,T,K) over the support ids (B,T,K), or (B,T,V)
    when ``support`` is None, and tokens (B,T) -> (B,T). A padded position (no token in its support) gets 0."""
    if support is None:
        return logp_all.gather(-1, tokens[..., None])[..., 0]
    hit = (support == tokens[..., None]) & (support >= 0)
    return torch.where(hit, logp_all, torch.zeros_like(logp_all)).sum(-1)


def warped_logprobs(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    support: torch.Tensor | None,
    *,
    temperature: float = 1.0,
    eos_id: int | None = None,
    min_new_tokens: int = 0,
    entropy_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropy of the warped distribution, teacher-forced.

    logits (B,T,V), tokens (B,T), support (B,T,K) ids with -1 padding or None
    -> (logprobs (B,T), entropy (B,T)). With a support: ``log_softmax`` of
    ``logits / temperature`` over the support's ids. Without: over the whole
    vocabulary, EOS banned at positions ``t < min_new_tokens``. ``entropy_grad=False``:
    the entropy is a statistic only, computed outside autograd (no (B,T,K) tensors kept for a backward).
    """
    logp_all = warped_log_softmax(
        logits, support, temperature=temperature, eos_id=eos_id, min_new_tokens=min_new_tokens
    )
    logp = token_logprobs_in(logp_all, tokens, support)
    # Excluded entries have p = 0 and log p = -inf: zero their log p before the product,
    # or the backward pass computes 0 * -inf = NaN.
    return logp, _entropy(logp_all, entropy_grad, lambda lp: -(lp.exp() * lp.masked_fill(torch.isinf(lp), 0.0)).sum(-1))


def _entropy(logp_all: torch.Tensor, grad: bool, formula, chunk: int = 8) -> torch.Tensor:
    """``formula(logp_all)`` (B,T,X) -> (B,T); without ``grad`` outside autograd and ``chunk`` positions at a time,
    so its (B,T,X) temporaries (``exp`` and the product) are never whole (GPT-2 small, 16 x 48 tokens: 154 MB each)."""
    if grad and torch.is_grad_enabled():
        return formula(logp_all)
    with torch.no_grad():
        return torch.cat([formula(part) for part in logp_all.detach().split(chunk, 1)], 1)


def full_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, entropy_grad: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropy of the unwarped policy (RL4LMs' PPO and A2C), teacher-forced.

    logits (B,T,V), tokens (B,T) -> (``log_softmax(logits)[token]`` (B,T), ``-sum p log p`` (B,T)) over
    the whole vocabulary, at temperature 1, whatever top-k / top-p / min-length the sampler applied.
    ``entropy_grad=False``: the entropy is computed outside autograd, so its (B,T,V) ``exp`` is not kept.
    """
    logp_all = torch.log_softmax(logits.float(), dim=-1)
    logp = logp_all.gather(-1, tokens[..., None])[..., 0]
    return logp, _entropy(logp_all, entropy_grad, lambda lp: -(lp.exp() * lp).sum(-1))


def pad_supports(supports: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Stack per-step supports [(B,K_t)] into (B,T,max K_t), padding with -1."""
    if not supports or supports[0] is None:
        return None
    width = max(s.shape[-1] for s in supports)
    padded = [torch.nn.functional.pad(s, (0, width - s.shape[-1]), value=-1) for s in supports]
    return torch.stack(padded, dim=1).to(torch.int32)  # ids < 2^31: half the memory of int64
