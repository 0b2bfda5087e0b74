"""The on-policy rollout step shared by PPO, A2C and NLPO: sample, then reference and critic forwards."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grue.advantages import gae, kl_penalized_rewards, masked_mean, whiten
from grue.kl import kl_estimate
from grue.rollout import MaskSettings, Rollout, concat_rollouts, generate, lm_inputs, policy_forward, token_logprobs, tokenize_prompts
from grue.setup import Session


@torch.no_grad()
def collect(s: Session, prompts: list[str], mask: MaskSettings | None = None) -> Rollout:
    """Sample completions for this process's prompts in batches; add reference log-probs and values.

    ``mask`` (NLPO) restricts every step to the masking model's top-p set.
    """
    policy = s.accelerator.unwrap_model(s.policy)
    parts = []
    for i in range(0, len(prompts), s.algo.rollout_batch_size):
        q, qm = tokenize_prompts(s.tokenizer, prompts[i : i + s.algo.rollout_batch_size], s.gen.max_prompt_tokens, s.seq2seq, s.device)
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


def values_of(s: Session, policy, inputs: dict, T: int) -> torch.Tensor:
    """Critic values (B,T): the separate critic's own forward, or the value head on the policy."""
    if s.algo.critic == "separate":
        return s.critic(**inputs, response_len=T)
    _, hidden = policy_forward(policy, inputs, T, s.seq2seq, want_hidden=True)
    return s.critic(hidden)


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
