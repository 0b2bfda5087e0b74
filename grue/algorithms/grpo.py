"""GRPO, Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath), top to bottom.

grue's addition: the GRUE paper has no GRPO. No critic: each prompt is sampled ``group_size`` times and
each completion's advantage is its reward against the group's mean (divided by the group's standard
deviation, unless ``scale_rewards`` is off), the same for all its tokens. The update is PPO's clipped
ratio per token over ``epochs`` passes of minibatches of completions, averaged per completion (GRPO's
``1/G sum_i 1/|o_i| sum_t``) or per token, and the KL to the frozen reference enters either the loss,
``+ kl_coef * k3`` per token (GRPO's), or the reward, ``R_i = score_i - kl_coef * sum_t KL_t``. The
rollout step is the engine's (grue.onpolicy.collect); works for causal and seq2seq policies alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grue.advantages import completion_weights, group_advantages
from grue.config import Config
from grue.grouped import GroupConfig, collect_groups, policy_logprobs, score_groups, sequence_update
from grue.kl import kl_estimate
from grue.losses import ppo_policy_loss, token_mean
from grue.onpolicy import iteration_metrics, old_logprobs
from grue.rollout import Rollout
from grue.run_setup import start_session
from grue.session import Session
from grue.run_log import cleans_up_unstarted


@dataclass
class GRPOConfig(GroupConfig):
    """GRPO hyper-parameters (grue's; the paper has no GRPO): the engine's (grue.engine_config.OnPolicyConfig,
    grue.grouped.GroupConfig) and GRPO's below. Shao et al.'s values where they give one (clip 0.2, beta 0.04, the
    k3 KL in the loss, one pass per rollout); the engine's AdamW recipe otherwise."""

    kl_coef: float = 0.04
    """beta: weight of the KL to the reference (fixed)."""
    kl_estimator: str = field(default="k3", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator (grue.kl.kl_estimate); GRPO's is k3 (non-negative, unbiased)."""
    scale_rewards: bool = True
    """Divide each group's centred rewards by its standard deviation (+1e-4) (GRPO); false: centre only."""
    loss_aggregation: str = field(default="sequence", metadata={"choices": ("sequence", "token")})
    """``sequence``: mean over each completion's tokens, then over completions (GRPO); ``token``: mean over all tokens of the step."""
    clip: float = 0.2
    """PPO ratio clip range (per token)."""
    kl_penalty: str = field(default="loss", metadata={"choices": ("loss", "reward")})
    """Where the KL goes: ``loss``, ``+ kl_coef * KL_t`` per token of the loss (GRPO), or ``reward``,
    ``R_i = score_i - kl_coef * sum_t KL_t`` before the group normalisation."""


CONFIG = GRPOConfig


def check(cfg: GRPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break (grue.grouped.GroupConfig.check_sizes)."""
    cfg.check_sizes(world_size)


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with GRPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), policy and reference (no critic), data, reward.
    session = start_session(cfg, resume_dir, check=check, show=show)
    algo: GRPOConfig = session.algo

    with session.progress(show):
        for _ in session.iterations():
            # 1-2. Prompts and rollout: rollout_size / group_size prompts over all processes, each sampled
            #      group_size times on one process; one forward of the reference.
            batch = collect_groups(session)
            mask = batch.rollout.response_mask

            # 3. Scores, the per-token KL to the reference, and each completion's reward (minus
            #    kl_coef * its summed KL when kl_penalty is reward).
            scored, rewards = score_groups(session, batch, algo.kl_coef if algo.kl_penalty == "reward" else 0.0)

            # 4. Advantages: each reward against its group's mean (and standard deviation), one per completion.
            adv = group_advantages(rewards, algo.group_size, algo.scale_rewards)
            scored.advantages = adv[:, None] * mask
            session.lap("rollout")

            # 5. Update: epochs x minibatches of completions, clipped ratio per token (+ kl_coef * KL_t in the loss).
            stats = sequence_update(
                session, batch.rollout, completion_weights(mask, algo.loss_aggregation), adv, minibatch_loss
            )
            session.lap("update")

            # 6. Log, show, checkpoint (the KL coefficient is fixed).
            session.end_iteration(iteration_metrics(session, scored, stats), scored.samples())
    return session.finish()


def minibatch_loss(
    session: Session, rollout: Rollout, w: torch.Tensor, adv: torch.Tensor, returns: None, denom
) -> tuple[torch.Tensor, dict]:
    """GRPO loss of one micro-batch (grue.onpolicy.LossFn; no returns), tokens weighted by ``w`` over the step's
    ``denom``: clipped policy loss, each completion's advantage ``adv`` (M,) on all its tokens (+ kl_coef * the KL
    estimate to the reference, when kl_penalty is loss)."""
    algo: GRPOConfig = session.algo
    mask = rollout.response_mask
    logp, entropy, raw = policy_logprobs(session, rollout)
    old = old_logprobs(rollout, algo.policy_distribution == "full")
    pg_loss, clipfrac, approx_kl = ppo_policy_loss(logp, old, adv[:, None] * mask, w, algo.clip, denom)
    # padding is masked before the estimate: k3's exp of a stray log-prob could overflow, and inf * 0 is nan
    kl = token_mean(kl_estimate(raw * mask, rollout.ref_logprobs * mask, algo.kl_estimator), w, denom)
    loss = pg_loss + algo.kl_coef * kl if algo.kl_penalty == "loss" else pg_loss
    return loss, {
        "loss/policy": pg_loss,
        "loss/kl": kl,
        "loss/total": loss,
        "policy/entropy": token_mean(entropy, w, denom),
        "policy/clipfrac": clipfrac,
        "policy/approx_kl": approx_kl,
    }
