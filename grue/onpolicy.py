"""The on-policy rollout step shared by PPO, A2C and NLPO: sample, then reference and critic forwards."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch

from grue.advantages import gae, kl_penalized_rewards, masked_mean, whiten
from grue.kl import kl_estimate
from grue.rollout import (
    MaskSettings,
    Rollout,
    concat_rollouts,
    generate,
    lm_inputs,
    policy_forward,
    token_logprobs,
    tokenize_prompts,
)
from grue.sampling import warped_logprobs
from grue.setup import Session


@torch.no_grad()
def collect(s: Session, prompts: list[str], mask: MaskSettings | None = None) -> Rollout:
    """Sample completions for this process's prompts in batches; add reference log-probs and values.

    ``mask`` (NLPO) restricts every step to the masking model's top-p set.
    """
    policy = s.accelerator.unwrap_model(s.policy)
    parts = []
    for i in range(0, len(prompts), s.algo.rollout_batch_size):
        q, qm = tokenize_prompts(s.tokenizer, prompts[i : i + s.algo.rollout_batch_size], s.gen.max_prompt_tokens, s.seq2seq, s.device,
                                  s.gen.truncation_side)
        with s.accelerator.autocast():
            r = generate(policy, q, qm, s.gen, eos_id=s.tokenizer.eos_token_id, pad_id=s.tokenizer.pad_token_id, generator=s.sample_rng,
                         mask=mask)
            inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
            T = r.response_ids.shape[1]
            ref_logits, _ = policy_forward(s.ref, inputs, T, s.seq2seq)
            r.ref_logprobs = token_logprobs(ref_logits, r.response_ids) * r.response_mask
            r.values = values_of(s, policy, inputs, T).float() * r.response_mask
        parts.append(r)
    return concat_rollouts(parts, s.tokenizer.pad_token_id, left_pad_queries=not s.seq2seq)


def values_of(s: Session, policy, inputs: dict, T: int, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """Critic values (B,T): the separate critic's own forward, or the value head on the policy's
    last hidden states (``hidden`` when the caller already has them, else one policy forward)."""
    if s.algo.critic == "separate":
        return s.critic(**inputs, response_len=T)
    if hidden is None:
        _, hidden = policy_forward(policy, inputs, T, s.seq2seq, want_hidden=True)
    return s.critic(hidden)


def evaluate_actions(s: Session, r: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """With gradients: the current policy's warped log-probs and entropy (B,T) of the rollout's tokens
    on their stored supports, and the critic's values (B,T). One forward of the policy (and of a
    separate critic)."""
    T = r.response_ids.shape[1]
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
    with s.accelerator.autocast():
        logits, hidden = policy_forward(s.policy, inputs, T, s.seq2seq, want_hidden=s.algo.critic == "shared")
        values = values_of(s, s.policy, inputs, T, hidden)
    logp, entropy = warped_logprobs(logits, r.response_ids, r.support, temperature=s.gen.temperature,
                                    eos_id=s.tokenizer.eos_token_id, min_new_tokens=s.gen.min_new_tokens)
    return logp, entropy, values.float()


def backward_step(s: Session, r: Rollout, rows: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
                  loss_fn: Callable, grad_accum: int) -> dict[str, torch.Tensor]:
    """Gradients for one optimizer step over ``rows`` of the rollout, in ``grad_accum`` micro-batches.

    ``loss_fn(s, r_micro, advantages, returns) -> (loss, stats)``; each micro-batch's loss is
    divided by ``grad_accum`` and DDP syncs gradients on the last one only. Returns the
    statistics summed over micro-batches, each divided by ``grad_accum``.
    """
    micro = len(rows) // grad_accum
    sums: dict[str, torch.Tensor] = {}
    for j in range(0, len(rows), micro):
        ids = rows[j : j + micro].to(s.device)
        with contextlib.ExitStack() as stack:
            if j + micro < len(rows):
                for m in s.trainable:
                    stack.enter_context(s.accelerator.no_sync(m))
            loss, stats = loss_fn(s, r.index(ids), advantages[ids], returns[ids])
            s.accelerator.backward(loss / grad_accum)
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v.detach() / grad_accum
    return sums


@dataclass
class Scored:
    """A rollout with its completions, scores (B,), per-token KL and rewards, advantages and returns (B,T)."""

    rollout: Rollout
    completions: list[str]
    scores: torch.Tensor
    kl: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def score_and_advantages(s: Session, batch: list, r: Rollout, kl_coef: float) -> Scored:
    """Steps shared by the actor-critic algorithms: the task score, ``-beta * KL_t`` rewards, GAE, whitening."""
    algo, mask = s.algo, r.response_mask
    completions = s.tokenizer.batch_decode(r.response_ids * (mask > 0), skip_special_tokens=True)
    scores = torch.tensor(s.score([e.prompt for e in batch], completions, batch), device=s.device)
    kl = kl_estimate(r.raw_logprobs, r.ref_logprobs, algo.kl_estimator) * mask
    rewards = kl_penalized_rewards(scores, kl, mask, kl_coef)
    adv, returns = gae(rewards, r.values, mask, algo.gamma, algo.lam)
    if algo.whiten_advantages:
        adv = whiten(adv, mask)
    return Scored(r, completions, scores, kl, rewards, adv, returns)


def mean_kl(s: Session, sc: Scored) -> float:
    """Mean per-token KL over all processes (what the adaptive controller tracks)."""
    return s.accelerator.reduce(masked_mean(sc.kl, sc.rollout.response_mask).detach(), "mean").item()


def iteration_metrics(s: Session, it: int, sc: Scored, stats: dict, kl_mean: float, kl_coef: float,
                      t_rollout: float, t_update: float) -> dict:
    """One metrics.jsonl line (names documented in grue.tracking), reduced over processes."""
    acc, mask = s.accelerator, sc.rollout.response_mask
    all_scores = acc.gather(sc.scores)
    n_tokens = acc.reduce(mask.sum(), "sum").item()
    return {
        "iteration": it, "world_size": acc.num_processes, "samples": it * s.algo.rollout_size,
        "reward/mean": all_scores.mean().item(), "reward/std": all_scores.std().item() if all_scores.numel() > 1 else 0.0,
        "reward/total": acc.reduce(sc.rewards.sum(-1).mean(), "mean").item(),
        "kl/mean": kl_mean, "kl/coef": kl_coef,
        **{k: acc.reduce(v, "mean").item() for k, v in stats.items()},
        "value/mean": acc.reduce(masked_mean(sc.rollout.values, mask), "mean").item(),
        "response/length": acc.reduce(mask.sum(-1).mean(), "mean").item(),
        "time/rollout_s": t_rollout, "time/update_s": t_update,
        "tokens_per_s": n_tokens / max(t_rollout + t_update, 1e-9),
    }


def sync_clock(s: Session) -> None:
    """Wait for the GPU before reading a clock, so timings cover the work."""
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
