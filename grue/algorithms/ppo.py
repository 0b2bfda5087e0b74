"""PPO for language models (Schulman et al. 2017; the GRUE paper's settings), top to bottom.

One iteration: sample a rollout of ``rollout_size`` generated tokens (the paper's unit: whole
episodes, the last one cut at the budget) or completions (one KV-cached generate per batch),
score it, one teacher-forced forward of the reference and the critic, per-token rewards
``-beta * KL_t`` plus the score at the last token, GAE, then ``epochs`` passes of clipped-PPO
minibatch updates (minibatches of tokens drawn across episodes, or of completions). Works for
causal and seq2seq policies alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from grue.config import Config
from grue.errors import GrueError
from grue.kl import KLController
from grue.losses import ppo_policy_loss, token_mean, value_loss
from grue.onpolicy import (
    collect,
    collect_iteration,
    critic_values,
    evaluate_actions,
    iteration_metrics,
    mean_kl,
    old_logprobs,
    optimizer_steps,
    score_and_advantages,
    sync_clock,
    uses_full_softmax,
)
from grue.session import Session, start_session
from grue.tracking import Display, cleans_up_unstarted


@dataclass
class PPOConfig:
    """PPO hyper-parameters. Defaults are the GRUE paper's IMDB settings."""

    iterations: int = 50
    """Rollout-and-update iterations."""
    batch_unit: str = field(default="tokens", metadata={"choices": ("tokens", "completions")})
    """What ``rollout_size`` and ``minibatch_size`` count. ``tokens`` (RL4LMs, the paper): generated tokens,
    one transition each; a rollout samples episodes until it holds ``rollout_size`` tokens (the last
    episode is cut there and its advantage bootstrapped from the critic's value of the next token), and
    a minibatch is ``minibatch_size`` tokens drawn at random across episodes. ``completions`` (grue's
    faster choice): whole completions, about max_new_tokens times more data per iteration."""
    rollout_size: int = 1280
    """Per iteration, over all processes: tokens or completions (``batch_unit``); paper: 10 envs x 128 steps."""
    rollout_batch_size: int = 64
    """Prompts per generate call, per process."""
    minibatch_size: int = 64
    """Per optimizer step, per process: tokens or completions (``batch_unit``); the paper's batch size."""
    grad_accum: int = 1
    """Micro-batches each minibatch is split into, to bound memory; gradients are summed."""
    epochs: int = 5
    """Passes over each rollout."""
    lr: float = 1e-6
    """AdamW learning rate (policy and critic)."""
    adam_eps: float = 1e-8
    """AdamW epsilon (RL4LMs' policies: torch's default 1e-8; grue before v0.2: 1e-5)."""
    weight_decay: float = 1e-6
    """AdamW weight decay, on every parameter whose name contains none of ``bias``, ``LayerNorm.bias``,
    ``LayerNorm.weight`` (RL4LMs' rule; GPT-2's ``ln_*`` and T5's ``layer_norm`` weights do not match it,
    so they are decayed, as in the paper). 0 turns it off."""
    normalize_advantage: bool = True
    """Normalise the advantages of each minibatch to ``(A - mean) / (std + 1e-8)`` over its tokens, as
    RL4LMs' PPO and NLPO did (stable-baselines3). Applied after ``whiten_advantages``."""
    policy_distribution: str = field(default="full", metadata={"choices": ("full", "sampled")})
    """The distribution of the PPO ratio and the entropy. ``full`` (RL4LMs' PPO): ``log_softmax`` of the
    logits over the whole vocabulary, whatever top-k / top-p / min-length the sampler applied.
    ``sampled`` (grue's choice): the warped distribution actually sampled from, renormalised over each
    step's stored support (grue.sampling). NLPO always uses ``sampled``, its masked support."""
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
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    kl_coef: float = 0.1
    """Initial KL penalty coefficient beta."""
    kl_target: float | None = 0.1
    """Target mean per-token KL of the adaptive controller; null keeps beta fixed."""
    kl_estimator: str = field(default="k1", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator in the reward (see grue.kl.kl_estimate)."""
    whiten_advantages: bool = False
    """Normalise advantages to zero mean, unit variance over the whole rollout (per process) before the
    update (grue's choice before v0.2; RL4LMs normalises per minibatch only: ``normalize_advantage``)."""
    critic: str = field(default="separate", metadata={"choices": ("separate", "shared")})
    """separate: own copy of the policy trunk (the paper's); shared: value head on the policy (cheaper)."""
    gradient_checkpointing: bool = False
    """Recompute each transformer layer's activations (policy and separate critic) in the update's backward pass
    instead of storing them: far less activation memory for large models, about one more forward of compute;
    the same gradients (grue.memory)."""


CONFIG = PPOConfig


def check(cfg: PPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break (sizes first: the divisibility rules divide by them)."""
    section = type(cfg).__name__.removesuffix("Config").lower()  # ppo, or nlpo (which checks through here)
    for name in ("iterations", "rollout_size", "rollout_batch_size", "minibatch_size", "grad_accum", "epochs"):
        if getattr(cfg, name) < 1:
            raise GrueError(f"{section}.{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.rollout_size % world_size:
        raise GrueError(f"{section}.rollout_size ({cfg.rollout_size}) must be divisible by the number of processes ({world_size})")
    per_proc = cfg.rollout_size // world_size
    if cfg.minibatch_size > per_proc or per_proc % cfg.minibatch_size:
        raise GrueError(f"{section}.minibatch_size ({cfg.minibatch_size}) must divide the per-process rollout ({per_proc})")
    if cfg.minibatch_size % cfg.grad_accum:
        raise GrueError(f"{section}.grad_accum ({cfg.grad_accum}) must divide {section}.minibatch_size ({cfg.minibatch_size})")


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with PPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward.
    s = start_session(cfg, resume_dir, check=check, show=show)
    algo, acc = s.algo, s.accelerator
    kl_ctl = KLController(algo.kl_coef, algo.kl_target)
    if s.resumed_state:
        kl_ctl.load_state_dict(s.resumed_state["kl"])

    with Display(algo.iterations, s.start_iteration, f"{cfg.run.task} ppo", enabled=show and acc.is_main_process) as display:
        for it in range(s.start_iteration + 1, algo.iterations + 1):
            s.iteration = it
            # 1-2. Prompts and rollout: this process's share of rollout_size (completions, or tokens: episodes
            #      until the token budget is full, the last one cut); reference and critic forwards.
            t0 = time.perf_counter()
            b = collect_iteration(s)

            # 3-5. Scores from the task's reward; per-token rewards -beta * KL_t plus the score at the
            #      last token (not for a cut episode); GAE advantages and returns.
            sc = score_and_advantages(s, b, kl_ctl.coef)
            t_rollout = time.perf_counter() - t0

            # 6. Update: epochs x minibatches of clipped PPO, value loss, entropy.
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
    """``epochs`` passes of shuffled minibatches (completions or tokens); returns the mean statistics as tensors."""
    algo = s.algo
    return optimizer_steps(s, r, r.response_mask, algo.batch_unit, algo.epochs, adv, returns, minibatch_loss,
                           algo.grad_accum, algo.max_grad_norm)


def minibatch_loss(s: Session, r, sel: torch.Tensor, adv: torch.Tensor, returns: torch.Tensor, denom) -> tuple[torch.Tensor, dict]:
    """PPO loss of one micro-batch's tokens ``sel``, averaged over the step's ``denom`` tokens:
    clipped policy loss + vf_coef * value loss - ent_coef * entropy.

    A separate critic shares no trained parameter with the policy, so the policy's terms are backpropagated
    here, before the critic's forward: the two models' activations are never held at once, and the critic's
    gradients do not exist yet while the policy's (B,T,V) tensors do (measured on a GPT-2-small update:
    benchmarks/README.md). Every gradient is the one the summed loss gives (tested). The returned loss is
    then the critic's term; ``loss/total`` still reports the sum."""
    algo = s.algo
    early = algo.critic == "separate"
    logp, entropy, values = evaluate_actions(s, r, with_values=not early)
    pg_loss, clipfrac, approx_kl = ppo_policy_loss(logp, old_logprobs(r, uses_full_softmax(s)), adv, sel, algo.clip, denom)
    if not early:
        vf_loss, vf_clipfrac = value_loss(values, r.values, returns, sel, algo.value_clip, denom)
    ent = token_mean(entropy, sel, denom)
    loss = pg_loss if early else pg_loss + algo.vf_coef * vf_loss
    if algo.ent_coef:  # at 0 (the paper's) the entropy is logged, not differentiated: no backward over (B,T,V) for a zero gradient
        loss = loss - algo.ent_coef * ent
    total = loss
    if early:
        s.accelerator.backward(loss)
        del logp, entropy
        vf_loss, vf_clipfrac = value_loss(critic_values(s, r), r.values, returns, sel, algo.value_clip, denom)
        total = loss.detach() + algo.vf_coef * vf_loss.detach()
        loss = algo.vf_coef * vf_loss
    return loss, {
        "loss/policy": pg_loss, "loss/value": vf_loss, "loss/total": total, "policy/entropy": ent,
        "policy/clipfrac": clipfrac, "policy/approx_kl": approx_kl, "value/clipfrac": vf_clipfrac,
    }
