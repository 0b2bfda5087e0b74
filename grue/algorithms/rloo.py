"""RLOO, REINFORCE Leave-One-Out (Kool et al. 2019; Ahmadian et al. 2024), top to bottom.

grue's addition: the GRUE paper has no RLOO. No critic: each prompt is sampled ``group_size`` (k) times;
each completion's reward is its task score minus ``kl_coef`` times its summed per-token KL to the frozen
reference, and its baseline is the mean reward of the other k - 1 samples of its prompt. The update is
sequence-level REINFORCE, ``-A_i * sum_t log pi(a_t)`` averaged over completions, written as a ratio of
the completion's probabilities under the new and the sampling policy so that, with more than one step
per rollout (``epochs``, minibatches), PPO's clip can bound it. The rollout step is the engine's
(grue.onpolicy.collect); works for causal and seq2seq policies alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grue.advantages import completion_weights, leave_one_out_advantages, normalize
from grue.config import Config
from grue.grouped import GroupConfig, collect_groups, policy_logprobs, score_groups, sequence_update
from grue.losses import sequence_policy_loss, token_mean
from grue.onpolicy import iteration_metrics, old_logprobs
from grue.rollout import Rollout
from grue.run_setup import start_session
from grue.session import Session
from grue.run_log import cleans_up_unstarted


@dataclass
class RLOOConfig(GroupConfig):
    """RLOO hyper-parameters (grue's; the paper has no RLOO): the engine's (grue.engine_config.OnPolicyConfig,
    grue.grouped.GroupConfig) and RLOO's below. Ahmadian et al.'s form (k samples, KL in the reward, one
    REINFORCE step per rollout); the engine's AdamW recipe otherwise."""

    group_size: int = 4
    """k: completions sampled per prompt; each one's baseline is the mean reward of the other k - 1. At least 2."""
    minibatch_size: int = 64
    """Completions per optimizer step, per process (the default, the whole rollout: one REINFORCE step)."""
    epochs: int = 1
    """Passes over each rollout; with more than one step per rollout, ``clip`` bounds the off-policy ones."""
    clip: float | None = 0.2
    """PPO-style clip of each completion's probability ratio to the sampling policy; null: none. It does
    nothing on a rollout's first step (the ratio is 1 there)."""
    kl_coef: float = 0.05
    """beta: ``R_i = score_i - kl_coef * sum_t KL_t`` (fixed)."""
    normalize_advantage: bool = False
    """Normalise the leave-one-out advantages over the rollout (per process) to ``(A - mean) / (std + 1e-8)``, and
    again over each optimizer step's completions (grue.onpolicy.backward_step)."""


CONFIG = RLOOConfig


def check(cfg: RLOOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break (grue.grouped.GroupConfig.check_sizes)."""
    cfg.check_sizes(world_size)


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with RLOO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), policy and reference (no critic), data, reward.
    session = start_session(cfg, resume_dir, check=check, show=show)
    algo: RLOOConfig = session.algo

    with session.progress(show):
        for _ in session.iterations():
            # 1-2. Prompts and rollout: rollout_size / group_size prompts over all processes, each sampled
            #      group_size times on one process; one forward of the reference.
            batch = collect_groups(session)
            mask = batch.rollout.response_mask

            # 3. Scores and each completion's reward: score - kl_coef * its summed per-token KL to the reference.
            scored, rewards = score_groups(session, batch, algo.kl_coef)

            # 4. Advantages: each reward minus the mean reward of the other samples of its prompt.
            adv = leave_one_out_advantages(rewards, algo.group_size)
            if algo.normalize_advantage:
                adv = normalize(adv, torch.ones_like(adv))
            scored.advantages = adv[:, None] * mask
            session.lap("rollout")

            # 5. Update: epochs x minibatches of completions, sequence-level REINFORCE (clipped ratio).
            stats = sequence_update(session, batch.rollout, completion_weights(mask, "sequence"), adv, minibatch_loss)
            session.lap("update")

            # 6. Log, show, checkpoint (the KL coefficient is fixed).
            session.end_iteration(iteration_metrics(session, scored, stats), scored.samples())
    return session.finish()


def minibatch_loss(
    session: Session, rollout: Rollout, w: torch.Tensor, adv: torch.Tensor, returns: None, denom
) -> tuple[torch.Tensor, dict]:
    """RLOO loss of one micro-batch's completions over the step's ``denom`` completions (grue.onpolicy.LossFn; no
    returns; ``w``: each row's tokens weigh 1/length, so a row weighs 1; ``adv`` (M,): one per completion):
    sequence-level REINFORCE with the clipped probability ratio."""
    algo: RLOOConfig = session.algo
    logp, entropy, _ = policy_logprobs(session, rollout)
    log_ratio = ((logp - old_logprobs(rollout, algo.policy_distribution == "full")) * rollout.response_mask).sum(-1)
    pg_loss, clipfrac, approx_kl = sequence_policy_loss(log_ratio, adv, algo.clip, w.sum(-1), denom)
    return pg_loss, {
        "loss/policy": pg_loss,
        "loss/total": pg_loss,
        "policy/entropy": token_mean(entropy, w, denom),
        "policy/clipfrac": clipfrac,
        "policy/approx_kl": approx_kl,
    }
