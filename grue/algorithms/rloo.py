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

import time
from dataclasses import dataclass, field

import torch

from grue.advantages import completion_weights, leave_one_out_advantages, normalize
from grue.config import Config
from grue.grouped import check_groups, collect_groups, policy_logprobs, score_groups, sequence_update
from grue.losses import sequence_policy_loss, token_mean
from grue.onpolicy import iteration_metrics, mean_kl, old_logprobs, sync_clock
from grue.session import Session, start_session
from grue.tracking import Display, cleans_up_unstarted


@dataclass
class RLOOConfig:
    """RLOO hyper-parameters (grue's; the paper has no RLOO). Ahmadian et al.'s form (k samples, KL in the
    reward, one REINFORCE step per rollout); the engine's AdamW recipe otherwise."""

    iterations: int = 50
    """Rollout-and-update iterations."""
    rollout_size: int = 64
    """Completions per iteration, over all processes: ``rollout_size / group_size`` prompts, ``group_size`` samples each."""
    group_size: int = 4
    """k: completions sampled per prompt; each one's baseline is the mean reward of the other k - 1. At least 2."""
    rollout_batch_size: int = 64
    """Completions per generate call, per process."""
    minibatch_size: int = 64
    """Completions per optimizer step, per process (the default, the whole rollout: one REINFORCE step)."""
    grad_accum: int = 1
    """Micro-batches each minibatch is split into, to bound memory; gradients are summed."""
    epochs: int = 1
    """Passes over each rollout; with more than one step per rollout, ``clip`` bounds the off-policy ones."""
    lr: float = 1e-6
    """AdamW learning rate."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 1e-6
    """AdamW weight decay, with the engine's rule of which parameters it skips (see PPOConfig.weight_decay)."""
    clip: float | None = 0.2
    """PPO-style clip of each completion's probability ratio to the sampling policy; null: none. It does
    nothing on a rollout's first step (the ratio is 1 there)."""
    kl_coef: float = 0.05
    """beta: ``R_i = score_i - kl_coef * sum_t KL_t`` (fixed)."""
    kl_estimator: str = field(default="k1", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator in the reward (grue.kl.kl_estimate); k1, the log-ratio, sums to the sequence's."""
    normalize_advantage: bool = False
    """Normalise the leave-one-out advantages over the rollout (per process) to ``(A - mean) / (std + 1e-8)``."""
    policy_distribution: str = field(default="sampled", metadata={"choices": ("sampled", "full")})
    """The distribution of the log-probs and the entropy: the ``sampled`` (warped) support or the ``full`` softmax
    (see PPOConfig.policy_distribution)."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""


CONFIG = RLOOConfig


def check(cfg: RLOOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break."""
    check_groups("rloo", cfg, world_size)


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with RLOO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), policy and reference (no critic), data, reward.
    s = start_session(cfg, resume_dir, check=check, show=show)
    algo, acc = s.algo, s.accelerator

    with Display(algo.iterations, s.start_iteration, f"{cfg.run.task} rloo", enabled=show and acc.is_main_process) as display:
        for it in range(s.start_iteration + 1, algo.iterations + 1):
            s.iteration = it
            # 1-2. Prompts and rollout: rollout_size / group_size prompts over all processes, each sampled
            #      group_size times on one process; one forward of the reference.
            t0 = time.perf_counter()
            b = collect_groups(s)
            mask = b.rollout.response_mask

            # 3. Scores and each completion's reward: score - kl_coef * its summed per-token KL to the reference.
            sc, rewards = score_groups(s, b, algo.kl_coef)

            # 4. Advantages: each reward minus the mean reward of the other samples of its prompt.
            adv = leave_one_out_advantages(rewards, algo.group_size)
            if algo.normalize_advantage:
                adv = normalize(adv, torch.ones_like(adv))
            sc.advantages = adv[:, None] * mask
            t_rollout = time.perf_counter() - t0

            # 5. Update: epochs x minibatches of completions, sequence-level REINFORCE (clipped ratio).
            t1 = time.perf_counter()
            stats = sequence_update(s, b.rollout, completion_weights(mask, "sequence"), adv, minibatch_loss)
            sync_clock(s)
            t_update = time.perf_counter() - t1

            # 6. Log, show, checkpoint (at once, then stop, when a signal asked).
            metrics = iteration_metrics(s, it, sc, stats, mean_kl(s, sc), algo.kl_coef, t_rollout, t_update)
            s.log(metrics, b.examples, b.idx, sc.completions, sc.scores.tolist())
            display.update(metrics)
            s.checkpoint(it, {})
    return s.finish()


def minibatch_loss(s: Session, r, w: torch.Tensor, adv: torch.Tensor, _returns, denom) -> tuple[torch.Tensor, dict]:
    """RLOO loss of one micro-batch's completions over the step's ``denom`` completions (``w``: each row's tokens
    weigh 1/length, so a row weighs 1): sequence-level REINFORCE with the clipped probability ratio."""
    algo = s.algo
    mask = r.response_mask
    logp, entropy, _ = policy_logprobs(s, r)
    log_ratio = ((logp - old_logprobs(r, algo.policy_distribution == "full")) * mask).sum(-1)
    # adv holds the completion's advantage on every real token; the first token is always real
    pg_loss, clipfrac, approx_kl = sequence_policy_loss(log_ratio, adv[:, 0], algo.clip, w.sum(-1), denom)
    return pg_loss, {"loss/policy": pg_loss, "loss/total": pg_loss, "policy/entropy": token_mean(entropy, w, denom),
                     "policy/clipfrac": clipfrac, "policy/approx_kl": approx_kl}
