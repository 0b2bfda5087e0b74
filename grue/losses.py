"""PPO losses and statistics: small pure tensor functions.

Shapes: (B,T) per-token tensors; ``mask`` is 1.0 on real response tokens.
"""

from __future__ import annotations

import torch

from grue.advantages import masked_mean


def token_mean(x: torch.Tensor, mask: torch.Tensor, denom: float | torch.Tensor | None = None) -> torch.Tensor:
    """``sum(x * mask) / denom``; ``denom`` defaults to ``sum(mask)`` (the masked mean; 0 for an empty mask).

    A minibatch split into micro-batches passes the whole minibatch's token count as ``denom``,
    so that the micro-batch terms add up to the minibatch mean.
    """
    if denom is None:
        return masked_mean(x, mask)
    return (x * mask.to(x.dtype)).sum() / denom


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    denom: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss of PPO (Schulman et al. 2017).

    ``ratio = exp(logprobs - old_logprobs)``;
    ``loss = token_mean(max(-A * ratio, -A * clamp(ratio, 1 - clip, 1 + clip)))`` over the tokens of
    ``mask`` (see ``token_mean`` for ``denom``). Returns ``(loss, clipfrac, approx_kl)``: the fraction
    of tokens where the clipped term was taken, and ``mean((ratio - 1) - log ratio)`` (Schulman's k3
    estimate of KL(old || new)); the two statistics carry no gradient.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = token_mean(torch.maximum(unclipped, clipped), mask, denom)
    with torch.no_grad():
        clipfrac = token_mean((clipped > unclipped).float(), mask, denom)
        approx_kl = token_mean((ratio - 1.0) - log_ratio, mask, denom)
    return loss, clipfrac, approx_kl


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = None,
    denom: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error of the values, optionally clipped around the rollout's values.

    Unclipped: ``token_mean((V - R)^2)``, the plain MSE of RL4LMs (stable-baselines3), no 1/2.
    With ``clip``: ``V_c = old + clamp(V - old, -clip, clip)`` and ``token_mean(max((V - R)^2, (V_c - R)^2))``
    (the PPO2 form; stable-baselines3 would use ``(V_c - R)^2`` alone). Returns ``(loss, clipfrac)``:
    the fraction of tokens where the clipped error was larger.
    """
    err = (values - returns) ** 2
    if clip is None:
        return token_mean(err, mask, denom), torch.zeros((), device=values.device)
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    err_clipped = (clipped_values - returns) ** 2
    loss = token_mean(torch.maximum(err, err_clipped), mask, denom)
    with torch.no_grad():
        clipfrac = token_mean((err_clipped > err).float(), mask, denom)
    return loss, clipfrac


def a2c_policy_loss(
    logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, denom: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Policy-gradient loss of A2C (Mnih et al. 2016): no ratio, no clipping.

    logprobs (B,T) of the sampled tokens under the current policy, advantages (B,T)
    (constants), mask (B,T) -> scalar ``loss = -token_mean(A * logprobs)``. Its gradient
    is ``-A_t / n`` on each of the ``n`` real tokens' log-probs, 0 on padding.
    """
    return -token_mean(advantages * logprobs, mask, denom)


def masked_token_ce(
    logits: torch.Tensor, labels: torch.Tensor, normalizer: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of the labelled tokens: logits (B,T,V), labels (B,T) with -100 = no loss -> scalar

    ``sum over labels != -100 of -log softmax(logits)[label]``, divided by ``normalizer``
    (default: the number of labelled tokens, i.e. the token mean).
    """
    nll = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
    )
    n = (labels != -100).sum().clamp(min=1) if normalizer is None else normalizer
    return nll / n


def sequence_policy_loss(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    clip: float | None,
    weights: torch.Tensor | None = None,
    denom: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequence-level REINFORCE with an optional PPO clip (RLOO): one ratio per completion.

    log_ratio (M,) = ``sum_t (log pi(a_t) - log pi_old(a_t))`` over each completion's tokens, advantages (M,)
    (constants). ``ratio = exp(log_ratio)``; ``loss_i = max(-A_i ratio_i, -A_i clamp(ratio_i, 1 - clip, 1 + clip))``
    (``-A_i ratio_i`` when ``clip`` is None); ``loss = sum_i weights_i loss_i / denom`` (defaults: weights 1,
    denom M: the mean). At ``ratio = 1`` its gradient is REINFORCE's, ``-A_i * grad sum_t log pi(a_t)`` per
    completion. Returns ``(loss, clipfrac, approx_kl)``: the weighted share of completions where the clipped
    term was taken and of ``(ratio - 1) - log ratio``, without gradient.
    """
    weights = torch.ones_like(advantages) if weights is None else weights
    denom = weights.sum().clamp(min=1e-12) if denom is None else denom
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = unclipped if clip is None else -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = (torch.maximum(unclipped, clipped) * weights).sum() / denom
    with torch.no_grad():
        clipfrac = ((clipped > unclipped).float() * weights).sum() / denom
        approx_kl = (((ratio - 1.0) - log_ratio) * weights).sum() / denom
    return loss, clipfrac, approx_kl
