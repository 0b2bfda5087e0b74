"""PPO for language models (Schulman et al. 2017; the GRUE paper's settings), top to bottom.

One iteration: sample a rollout of ``rollout_size`` generated tokens (the paper's unit: whole
episodes, the last one cut at the budget) or completions (one KV-cached generate per batch),
score it, one teacher-forced forward of the reference and the critic, per-token rewards
``-beta * KL_t`` plus the score at the last token, GAE, then ``epochs`` passes of clipped-PPO
minibatch updates (minibatches of tokens drawn across episodes, or of completions). Works for
causal and seq2seq policies alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grue.config import Config
from grue.losses import ppo_policy_loss, token_mean, value_loss
from grue.onpolicy import (
    ActorCriticConfig,
    collect_iteration,
    critic_values,
    evaluate_actions,
    iteration_metrics,
    old_logprobs,
    optimizer_steps,
    score_and_advantages,
    uses_full_softmax,
)
from grue.rollout import Rollout
from grue.run_setup import start_session
from grue.session import Session
from grue.run_log import cleans_up_unstarted


@dataclass
class PPOConfig(ActorCriticConfig):
    """PPO hyper-parameters: the engine's (grue.engine_config.OnPolicyConfig: iterations, rollout_size, lr, KL, ...;
    grue.onpolicy.ActorCriticConfig: batch_unit, gamma, lam, kl_target, critic) and the update's below. Defaults are
    the GRUE paper's IMDB settings."""

    minibatch_size: int = 64
    """Per optimizer step, per process: tokens or completions (``batch_unit``); the paper's batch size."""
    grad_accum: int = 1
    """Micro-batches each minibatch is split into, to bound memory; gradients are summed."""
    epochs: int = 5
    """Passes over each rollout."""
    normalize_advantage: bool = True
    """Normalise the advantages of each minibatch to ``(A - mean) / (std + 1e-8)`` over its tokens, as
    RL4LMs' PPO and NLPO did (stable-baselines3). Applied after ``whiten_advantages``."""
    clip: float = 0.2
    """PPO ratio clip range."""
    value_clip: float | None = None
    """Clip range of the value function around the rollout's values; null for no clipping."""
    vf_coef: float = 0.5
    """Weight of the value loss, the plain mean squared error (RL4LMs; a 1/2 * MSE convention is vf_coef / 2)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    whiten_advantages: bool = False
    """Normalise advantages to zero mean, unit variance over the whole rollout (per process) before the
    update (grue's choice before v0.2; RL4LMs normalises per minibatch only: ``normalize_advantage``)."""
    gradient_checkpointing: bool = False
    """Recompute each transformer layer's activations (policy and separate critic) in the update's backward pass
    instead of storing them: far less activation memory for large models, about one more forward of compute;
    the same gradients (grue.memory)."""


CONFIG = PPOConfig


def check(cfg: PPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break (grue.engine_config.OnPolicyConfig.check_sizes)."""
    cfg.check_sizes(world_size)


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with PPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward, KL controller.
    session = start_session(cfg, resume_dir, check=check, show=show)

    with session.progress(show):
        for _ in session.iterations():
            # 1-2. Prompts and rollout: this process's share of rollout_size (completions, or tokens: episodes
            #      until the token budget is full, the last one cut); reference and critic forwards.
            batch = collect_iteration(session)

            # 3-5. Scores from the task's reward; per-token rewards -beta * KL_t plus the score at the
            #      last token (not for a cut episode); GAE advantages and returns.
            scored = score_and_advantages(session, batch, session.kl.coef)
            session.lap("rollout")

            # 6. Update: epochs x minibatches of clipped PPO, value loss, entropy.
            stats = update(session, scored.rollout, scored.advantages, scored.returns)
            session.lap("update")

            # 7. KL controller on the mean per-token KL over all processes; log, show, checkpoint.
            session.end_iteration(iteration_metrics(session, scored, stats), scored.samples())
    return session.finish()


def update(session: Session, rollout: Rollout, adv: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
    """``epochs`` passes of shuffled minibatches (completions or tokens); returns the mean statistics as tensors."""
    algo: PPOConfig = session.algo
    return optimizer_steps(
        session,
        rollout,
        rollout.response_mask,
        algo.batch_unit,
        algo.minibatch_size,
        algo.epochs,
        adv,
        returns,
        minibatch_loss,
        algo.grad_accum,
        algo.max_grad_norm,
    )


def minibatch_loss(
    session: Session, rollout: Rollout, sel: torch.Tensor, adv: torch.Tensor, returns: torch.Tensor, denom
) -> tuple[torch.Tensor, dict]:
    """PPO loss of one micro-batch's tokens ``sel``, averaged over the step's ``denom`` tokens:
    clipped policy loss + vf_coef * value loss - ent_coef * entropy (grue.onpolicy.LossFn).

    A separate critic shares no trained parameter with the policy, so the policy's terms are backpropagated
    here, before the critic's forward: the two models' activations are never held at once, and the critic's
    gradients do not exist yet while the policy's (B,T,V) tensors do (measured on a GPT-2-small update:
    benchmarks/README.md). Every gradient is the one the summed loss gives (tested). The returned loss is
    then the critic's term; ``loss/total`` still reports the sum."""
    algo: PPOConfig = session.algo
    early = algo.critic == "separate"
    logp, entropy, values = evaluate_actions(session, rollout, with_values=not early)
    old = old_logprobs(rollout, uses_full_softmax(session))
    pg_loss, clipfrac, approx_kl = ppo_policy_loss(logp, old, adv, sel, algo.clip, denom)
    if not early:
        vf_loss, vf_clipfrac = value_loss(values, rollout.values, returns, sel, algo.value_clip, denom)
    ent = token_mean(entropy, sel, denom)
    loss = pg_loss if early else pg_loss + algo.vf_coef * vf_loss
    if (
        algo.ent_coef
    ):  # at 0 (the paper's) the entropy is logged, not differentiated: no backward over (B,T,V) for a zero gradient
        loss = loss - algo.ent_coef * ent
    total = loss
    if early:
        session.accelerator.backward(loss)
        del logp, entropy
        vf_loss, vf_clipfrac = value_loss(
            critic_values(session, rollout), rollout.values, returns, sel, algo.value_clip, denom
        )
        total = loss.detach() + algo.vf_coef * vf_loss.detach()
        loss = algo.vf_coef * vf_loss
    return loss, {
        "loss/policy": pg_loss,
        "loss/value": vf_loss,
        "loss/total": total,
        "policy/entropy": ent,
        "policy/clipfrac": clipfrac,
        "policy/approx_kl": approx_kl,
        "value/clipfrac": vf_clipfrac,
    }
