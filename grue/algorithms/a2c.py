"""A2C for language models (Mnih et al. 2016; the GRUE paper's RL4LMs settings), top to bottom.

One iteration: sample ``rollout_size`` generated tokens (the paper's unit: whole episodes,
the last one cut at the budget) or completions (one KV-cached generate per batch), score
them, one teacher-forced forward of the reference and the critic, per-token
rewards ``-beta * KL_t`` plus the score at the last token, GAE, then ONE optimizer step
over the whole rollout (RMSprop, as RL4LMs): policy gradient ``-A_t * log pi(a_t|s_t)`` (no
ratio, no clipping), value loss and entropy bonus, gradient-norm clipped. The rollout step is
PPO's (grue.onpolicy); only the update differs. Works for causal and seq2seq policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grue.config import Config
from grue.losses import a2c_policy_loss, token_mean, value_loss
from grue.onpolicy import (
    ActorCriticConfig,
    backward_step,
    collect_iteration,
    evaluate_actions,
    iteration_metrics,
    score_and_advantages,
    stop_if_not_finite,
)
from grue.rollout import Rollout
from grue.run_setup import start_session
from grue.session import Session
from grue.run_log import cleans_up_unstarted


@dataclass
class A2CConfig(ActorCriticConfig):
    """A2C hyper-parameters: the engine's (grue.engine_config.OnPolicyConfig, grue.onpolicy.ActorCriticConfig) with
    RL4LMs' IMDB A2C defaults (scripts/training/task_configs/imdb_text_continuation/gpt2_a2c.yml, with RL4LMs' A2C
    defaults where the file is silent), and the update's settings below. No minibatches: one step per rollout."""

    iterations: int = 100
    """Rollout-and-update iterations."""
    rollout_size: int = 96
    """Per iteration, over all processes: tokens or completions (``batch_unit``); RL4LMs: 2 envs x 48 steps."""
    adam_eps: float = 1e-5
    """The optimizer's epsilon (RMSprop's or AdamW's; RL4LMs' A2C: RMSprop eps 1e-5)."""
    lam: float = 1.0
    """GAE lambda (1.0: Monte-Carlo returns minus the value baseline, A2C's classic advantage)."""
    kl_target: float | None = 0.5
    """Target mean per-token KL of the adaptive controller; null keeps beta fixed."""
    grad_accum: int = 1
    """Micro-batches the per-process rollout is split into for its one step, to bound memory; gradients are summed."""
    optimizer: str = field(default="rmsprop", metadata={"choices": ("rmsprop", "adamw")})
    """``rmsprop`` (RL4LMs' A2C, stable-baselines3's default: alpha 0.99) or ``adamw``; ``lr``, ``adam_eps`` and
    ``weight_decay`` are its settings."""
    vf_coef: float = 0.5
    """Weight of the value loss, the plain mean squared error (RL4LMs)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    whiten_advantages: bool = False
    """Normalise advantages to zero mean, unit variance per rollout (per process)."""


CONFIG = A2CConfig


def check(cfg: A2CConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break (grue.engine_config.OnPolicyConfig.check_sizes)."""
    cfg.check_sizes(world_size)


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with A2C; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward, KL controller.
    session = start_session(cfg, resume_dir, check=check, show=show)

    with session.progress(show):
        for _ in session.iterations():
            # 1-2. Prompts and rollout: rollout_size tokens (whole episodes, the last one cut) or
            #      completions; then one forward each of the reference and the critic.
            batch = collect_iteration(session)

            # 3-5. Scores from the task's reward; per-token rewards -beta * KL_t plus the score at the
            #      last token (not for a cut episode); GAE advantages and returns (whitened if asked).
            scored = score_and_advantages(session, batch, session.kl.coef)
            session.lap("rollout")

            # 6. Update: one optimizer step over the whole rollout (policy gradient, value loss, entropy).
            stats = update(session, scored.rollout, scored.advantages, scored.returns)
            session.lap("update")

            # 7. KL controller on the mean per-token KL over all processes; log, show, checkpoint.
            session.end_iteration(iteration_metrics(session, scored, stats), scored.samples())
    return session.finish()


def update(session: Session, rollout: Rollout, adv: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimizer step on this process's whole rollout, in ``grad_accum`` micro-batches; returns the statistics as tensors."""
    algo = session.algo
    rows = torch.arange(rollout.response_ids.shape[0])
    sums = backward_step(session, rollout, rows, rollout.response_mask, adv, returns, microbatch_loss, algo.grad_accum)
    sums["policy/grad_norm"] = session.accelerator.clip_grad_norm_(session.params, algo.max_grad_norm)
    stop_if_not_finite(session, sums)
    session.optimizer.step()
    session.optimizer.zero_grad(set_to_none=True)
    return {k: torch.as_tensor(v, device=session.device, dtype=torch.float32) for k, v in sums.items()}


def microbatch_loss(
    session: Session, rollout: Rollout, sel: torch.Tensor, adv: torch.Tensor, returns: torch.Tensor, denom
) -> tuple[torch.Tensor, dict]:
    """A2C loss of one micro-batch's tokens, averaged over the rollout's ``denom`` tokens (grue.onpolicy.LossFn):
    policy-gradient loss + vf_coef * value loss - ent_coef * entropy."""
    algo: A2CConfig = session.algo
    logp, entropy, values = evaluate_actions(session, rollout)
    pg_loss = a2c_policy_loss(logp, adv, sel, denom)
    vf_loss, _ = value_loss(values, rollout.values, returns, sel, None, denom)
    ent = token_mean(entropy, sel, denom)
    loss = pg_loss + algo.vf_coef * vf_loss
    if algo.ent_coef:  # at 0 the entropy is logged, not differentiated: no backward over (B,T,V) for a zero gradient
        loss = loss - algo.ent_coef * ent
    return loss, {"loss/policy": pg_loss, "loss/value": vf_loss, "loss/total": loss, "policy/entropy": ent}
