"""Per-token rewards, GAE and whitening: small pure tensor functions.

Shapes: B = sequences in the batch, T = response tokens (padded). ``mask`` is 1.0
for real response tokens (up to and including EOS) and 0.0 for padding.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1.

    ``sum(x * mask) / sum(mask)`` over ``dim`` (all entries when ``dim`` is None).
    An all-zero mask gives 0, not NaN.
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries of ``x``.

    ``sum(mask * (x - mean)^2) / (n - 1)`` with ``n = sum(mask)`` when ``unbiased``,
    ``/ n`` otherwise.
    """
    mean = masked_mean(x, mask)
    sq = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n > 1:
            sq = sq * n / (n - 1)
    return sq


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise the masked entries of ``x`` to zero mean and unit variance.

    ``(x - mean) / sqrt(var + eps)``; with ``shift_mean=False`` the mean is added
    back (scale only). Padding positions come out as 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row: ``sum(mask) - 1``, at least 0. (B,T) -> (B,)."""
    return (mask.sum(-1).long() - 1).clamp(min=0)


def kl_penalized_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards ``r_t = -kl_coef * KL_t``, plus the sequence score at its last token.

    scores (B,), kl (B,T) per-token KL estimates, mask (B,T) -> rewards (B,T), 0 on padding.
    """
    rewards = -kl_coef * kl * mask
    idx = last_token_index(mask)
    rewards[torch.arange(rewards.shape[0]), idx] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
    bootstrap: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over one response per row.

    ``delta_t = r_t + gamma * (V_{t+1} * m_{t+1} + b * e_t) - V_t`` and
    ``A_t = delta_t + gamma * lam * m_{t+1} * A_{t+1}``, where ``e_t`` is 1 at the last real
    token of the row and ``b`` is the row's ``bootstrap`` (B,) value: 0 when the episode ended
    there (the default), the critic's value of the next state when the row was cut before its
    end (a rollout counted in tokens). Returns ``(advantages, returns)``, both (B,T) with
    ``returns = advantages + values``, 0 on padding.
    """
    B, T = rewards.shape
    mask = mask.to(rewards.dtype)
    after = torch.zeros_like(rewards)  # the value that follows each position: bootstrap at the last real token
    if bootstrap is not None:
        after[torch.arange(B), last_token_index(mask)] = bootstrap.to(rewards.dtype) * mask.amax(-1)
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros_like(next_adv)
    next_mask = torch.zeros_like(next_adv)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * (next_value * next_mask + after[:, t]) - values[:, t]
        next_adv = delta + gamma * lam * next_mask * next_adv
        adv[:, t] = next_adv
        next_value, next_mask = values[:, t], mask[:, t]
    adv = adv * mask
    return adv, (adv + values) * mask


def normalize(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-minibatch advantage normalisation of stable-baselines3 (RL4LMs' PPO): ``(x - mean) / (std + eps)``.

    Mean and the unbiased standard deviation over the entries where ``mask`` is 1 (one entry: std 0);
    other entries come out as 0. Unlike ``whiten``, ``eps`` is added to the standard deviation.
    """
    mean = masked_mean(x, mask)
    std = masked_var(x, mask, unbiased=True).sqrt()
    return (x - mean) / (std + eps) * mask


def group_advantages(scores: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's advantages (Shao et al. 2024): each completion's score against the other samples of its prompt.

    scores (N,), consecutive groups of ``group_size`` completions of one prompt (N = prompts x G) -> (N,):
    ``A_i = (r_i - mean_g) / (std_g + eps)`` with the group's mean and unbiased standard deviation; with
    ``scale`` False, ``A_i = r_i - mean_g`` (no division: a group whose scores barely differ is not blown up).
    """
    g = scores.reshape(-1, group_size)
    centred = g - g.mean(-1, keepdim=True)
    if scale:
        centred = centred / (g.std(-1, keepdim=True) + eps)
    return centred.reshape(-1)


def leave_one_out_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """RLOO's advantages (Kool et al. 2019; Ahmadian et al. 2024): each score minus the mean of the others.

    scores (N,), consecutive groups of ``k`` completions of one prompt -> (N,):
    ``A_i = r_i - (sum_g - r_i) / (k - 1)``, which equals ``k / (k - 1) * (r_i - mean_g)``.
    """
    g = scores.reshape(-1, k)
    baseline = (g.sum(-1, keepdim=True) - g) / (k - 1)
    return (g - baseline).reshape(-1)


def completion_weights(mask: torch.Tensor, per: str) -> torch.Tensor:
    """Token weights (B,T) that make a weighted token sum a mean per completion or per token.

    ``sequence``: ``mask / sum(mask)`` per row (each completion weighs 1, its tokens equally: GRPO's
    ``1/G sum_i 1/|o_i| sum_t``); ``token``: ``mask`` (every token weighs 1). Divide the weighted sum
    by the weights' sum for the mean.
    """
    if per == "sequence":
        return mask / mask.sum(-1, keepdim=True).clamp(min=1.0)
    return mask.clone()
