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

import time
from dataclasses import dataclass, field

import torch

from grue.config import Config
from grue.errors import GrueError
from grue.kl import KLController
from grue.losses import a2c_policy_loss, token_mean, value_loss
from grue.onpolicy import (
    backward_step,
    collect_iteration,
    evaluate_actions,
    iteration_metrics,
    mean_kl,
    score_and_advantages,
    stop_if_not_finite,
    sync_clock,
)
from grue.session import Session, start_session
from grue.tracking import Display, cleans_up_unstarted


@dataclass
class A2CConfig:
    """A2C hyper-parameters. Defaults are RL4LMs' IMDB A2C settings (scripts/training/task_configs/
    imdb_text_continuation/gpt2_a2c.yml, with RL4LMs' A2C defaults where the file is silent)."""

    iterations: int = 100
    """Rollout-and-update iterations."""
    batch_unit: str = field(default="tokens", metadata={"choices": ("tokens", "completions")})
    """What ``rollout_size`` counts: generated tokens (RL4LMs, the paper; the last episode is cut at
    ``rollout_size`` tokens and bootstrapped from the critic) or whole completions (see PPOConfig)."""
    rollout_size: int = 96
    """Per iteration, over all processes: tokens or completions (``batch_unit``); RL4LMs: 2 envs x 48 steps."""
    rollout_batch_size: int = 64
    """Prompts per generate call, per process."""
    grad_accum: int = 1
    """Micro-batches the per-process rollout is split into for its one step, to bound memory; gradients are summed."""
    optimizer: str = field(default="rmsprop", metadata={"choices": ("rmsprop", "adamw")})
    """``rmsprop`` (RL4LMs' A2C, stable-baselines3's default: alpha 0.99) or ``adamw``."""
    lr: float = 1e-6
    """Learning rate (policy and critic)."""
    adam_eps: float = 1e-5
    """The optimizer's epsilon (RMSprop's or AdamW's; RL4LMs' A2C: RMSprop eps 1e-5)."""
    weight_decay: float = 1e-6
    """Weight decay, on every parameter whose name contains none of ``bias``, ``LayerNorm.bias``,
    ``LayerNorm.weight`` (RL4LMs' rule, see PPOConfig.weight_decay). 0 turns it off."""
    policy_distribution: str = field(default="full", metadata={"choices": ("full", "sampled")})
    """Distribution of the log-probs and entropy in the loss: ``full`` softmax (RL4LMs) or the ``sampled``
    warped support (grue's choice); see PPOConfig.policy_distribution."""
    vf_coef: float = 0.5
    """Weight of the value loss, the plain mean squared error (RL4LMs)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 1.0
    """GAE lambda (1.0: Monte-Carlo returns minus the value baseline, A2C's classic advantage)."""
    kl_coef: float = 0.1
    """Initial KL penalty coefficient beta."""
    kl_target: float | None = 0.5
    """Target mean per-token KL of the adaptive controller; null keeps beta fixed."""
    kl_estimator: str = field(default="k1", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator in the reward (see grue.kl.kl_estimate)."""
    whiten_advantages: bool = False
    """Normalise advantages to zero mean, unit variance per rollout (per process)."""
    critic: str = field(default="separate", metadata={"choices": ("separate", "shared")})
    """separate: own copy of the policy trunk (the paper's); shared: value head on the policy (cheaper)."""


CONFIG = A2CConfig


def check(cfg: A2CConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break."""
    for name in ("iterations", "rollout_size", "rollout_batch_size", "grad_accum"):
        if getattr(cfg, name) < 1:
            raise GrueError(f"a2c.{name} must be at least 1")
    if cfg.rollout_size % world_size:
        raise GrueError(f"a2c.rollout_size ({cfg.rollout_size}) must be divisible by the number of processes ({world_size})")
    per_proc = cfg.rollout_size // world_size
    if per_proc % cfg.grad_accum:
        raise GrueError(f"a2c.grad_accum ({cfg.grad_accum}) must divide the per-process rollout ({per_proc})")


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with A2C; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward.
    s = start_session(cfg, resume_dir, check=check, show=show)
    algo, acc = s.algo, s.accelerator
    kl_ctl = KLController(algo.kl_coef, algo.kl_target)
    if s.resumed_state:
        kl_ctl.load_state_dict(s.resumed_state["kl"])

    with Display(algo.iterations, s.start_iteration, f"{cfg.run.task} a2c", enabled=show and acc.is_main_process) as display:
        for it in range(s.start_iteration + 1, algo.iterations + 1):
            s.iteration = it
            # 1-2. Prompts and rollout: rollout_size tokens (whole episodes, the last one cut) or
            #      completions; then one forward each of the reference and the critic.
            t0 = time.perf_counter()
            b = collect_iteration(s)

            # 3-5. Scores from the task's reward; per-token rewards -beta * KL_t plus the score at the
            #      last token (not for a cut episode); GAE advantages and returns (whitened if asked).
            sc = score_and_advantages(s, b, kl_ctl.coef)
            t_rollout = time.perf_counter() - t0

            # 6. Update: one optimizer step over the whole rollout (policy gradient, value loss, entropy).
            t1 = time.perf_counter()
            stats = update(s, sc.rollout, sc.advantages, sc.returns)
            sync_clock(s)
            t_update = time.perf_counter() - t1

            # 7. KL controller, on the mean per-token KL over all processes.
            kl_mean, coef_used = mean_kl(s, sc), kl_ctl.coef
            kl_ctl.update(kl_mean)

            # 8. Log, show, checkpoint (at once, then stop, when a signal asked).
            metrics = iteration_metrics(s, it, sc, stats, kl_mean, coef_used, t_rollout, t_update)
            s.log(metrics, b.examples, b.idx, sc.completions, sc.scores.tolist())
            display.update(metrics)
            s.checkpoint(it, {"kl": kl_ctl.state_dict()})
    return s.finish()


def update(s: Session, r, adv: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimizer step on this process's whole rollout, in ``grad_accum`` micro-batches; returns the statistics as tensors."""
    algo, acc = s.algo, s.accelerator
    rows = torch.arange(r.response_ids.shape[0])
    sums = backward_step(s, r, rows, r.response_mask, adv, returns, microbatch_loss, algo.grad_accum)
    sums["policy/grad_norm"] = acc.clip_grad_norm_(s.params, algo.max_grad_norm)
    stop_if_not_finite(s, sums)
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    return {k: torch.as_tensor(v, device=s.device, dtype=torch.float32) for k, v in sums.items()}


def microbatch_loss(s: Session, r, sel: torch.Tensor, adv: torch.Tensor, returns: torch.Tensor, denom) -> tuple[torch.Tensor, dict]:
    """A2C loss of one micro-batch's tokens, averaged over the rollout's ``denom`` tokens:
    policy-gradient loss + vf_coef * value loss - ent_coef * entropy."""
    algo = s.algo
    logp, entropy, values = evaluate_actions(s, r)
    pg_loss = a2c_policy_loss(logp, adv, sel, denom)
    vf_loss, _ = value_loss(values, r.values, returns, sel, None, denom)
    ent = token_mean(entropy, sel, denom)
    loss = pg_loss + algo.vf_coef * vf_loss
    if algo.ent_coef:  # at 0 the entropy is logged, not differentiated: no backward over (B,T,V) for a zero gradient
        loss = loss - algo.ent_coef * ent
    return loss, {"loss/policy": pg_loss, "loss/value": vf_loss, "loss/total": loss, "policy/entropy": ent}
