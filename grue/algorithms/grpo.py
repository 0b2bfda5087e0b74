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

import time
from dataclasses import dataclass, field

import torch

from grue.advantages import completion_weights, group_advantages
from grue.config import Config
from grue.grouped import check_groups, collect_groups, policy_logprobs, score_groups, sequence_update
from grue.kl import kl_estimate
from grue.losses import ppo_policy_loss, token_mean
from grue.onpolicy import iteration_metrics, mean_kl, old_logprobs, sync_clock
from grue.session import Session, start_session
from grue.tracking import Display, cleans_up_unstarted


@dataclass
class GRPOConfig:
    """GRPO hyper-parameters (grue's; the paper has no GRPO). Shao et al.'s values where they give one
    (clip 0.2, beta 0.04, the k3 KL in the loss, one pass per rollout); the engine's AdamW recipe otherwise."""

    iterations: int = 50
    """Rollout-and-update iterations."""
    rollout_size: int = 64
    """Completions per iteration, over all processes: ``rollout_size / group_size`` prompts, ``group_size`` samples each."""
    group_size: int = 8
    """G: completions sampled per prompt; the advantage compares each with the others of its prompt. At least 2."""
    rollout_batch_size: int = 64
    """Completions per generate call, per process."""
    minibatch_size: int = 16
    """Completions per optimizer step, per process."""
    grad_accum: int = 1
    """Micro-batches each minibatch is split into, to bound memory; gradients are summed."""
    epochs: int = 1
    """Passes over each rollout (GRPO's mu; with one pass and several minibatches, later steps are slightly off-policy)."""
    lr: float = 1e-6
    """AdamW learning rate."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 1e-6
    """AdamW weight decay, with the engine's rule of which parameters it skips (see PPOConfig.weight_decay)."""
    scale_rewards: bool = True
    """Divide each group's centred rewards by its standard deviation (+1e-4) (GRPO); false: centre only."""
    loss_aggregation: str = field(default="sequence", metadata={"choices": ("sequence", "token")})
    """``sequence``: mean over each completion's tokens, then over completions (GRPO); ``token``: mean over all tokens of the step."""
    clip: float = 0.2
    """PPO ratio clip range (per token)."""
    kl_coef: float = 0.04
    """beta: weight of the KL to the reference (fixed)."""
    kl_penalty: str = field(default="loss", metadata={"choices": ("loss", "reward")})
    """Where the KL goes: ``loss``, ``+ kl_coef * KL_t`` per token of the loss (GRPO), or ``reward``,
    ``R_i = score_i - kl_coef * sum_t KL_t`` before the group normalisation."""
    kl_estimator: str = field(default="k3", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator (grue.kl.kl_estimate); GRPO's is k3 (non-negative, unbiased)."""
    policy_distribution: str = field(default="sampled", metadata={"choices": ("sampled", "full")})
    """The distribution of the ratio and the entropy: the ``sampled`` (warped) support, or the ``full`` softmax
    (see PPOConfig.policy_distribution). The KL to the reference always uses the full softmax."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""


CONFIG = GRPOConfig


def check(cfg: GRPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break."""
    check_groups("grpo", cfg, world_size)


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with GRPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), policy and reference (no critic), data, reward.
    s = start_session(cfg, resume_dir, check=check, show=show)
    algo, acc = s.algo, s.accelerator

    with Display(algo.iterations, s.start_iteration, f"{cfg.run.task} grpo", enabled=show and acc.is_main_process) as display:
        for it in range(s.start_iteration + 1, algo.iterations + 1):
            s.iteration = it
            # 1-2. Prompts and rollout: rollout_size / group_size prompts over all processes, each sampled
            #      group_size times on one process; one forward of the reference.
            t0 = time.perf_counter()
            b = collect_groups(s)
            mask = b.rollout.response_mask

            # 3. Scores, the per-token KL to the reference, and each completion's reward (minus
            #    kl_coef * its summed KL when kl_penalty is reward).
            sc, rewards = score_groups(s, b, algo.kl_coef if algo.kl_penalty == "reward" else 0.0)

            # 4. Advantages: each reward against its group's mean (and standard deviation), on every token.
            adv = group_advantages(rewards, algo.group_size, algo.scale_rewards)
            sc.advantages = adv[:, None] * mask
            t_rollout = time.perf_counter() - t0

            # 5. Update: epochs x minibatches of completions, clipped ratio per token (+ kl_coef * KL_t in the loss).
            t1 = time.perf_counter()
            stats = sequence_update(s, b.rollout, completion_weights(mask, algo.loss_aggregation), adv, minibatch_loss)
            sync_clock(s)
            t_update = time.perf_counter() - t1

            # 6. Log, show, checkpoint (at once, then stop, when a signal asked).
            metrics = iteration_metrics(s, it, sc, stats, mean_kl(s, sc), algo.kl_coef, t_rollout, t_update)
            s.log(metrics, b.examples, b.idx, sc.completions, sc.scores.tolist())
            display.update(metrics)
            s.checkpoint(it, {})
    return s.finish()


def minibatch_loss(s: Session, r, w: torch.Tensor, adv: torch.Tensor, _returns, denom) -> tuple[torch.Tensor, dict]:
    """GRPO loss of one micro-batch, tokens weighted by ``w`` over the step's ``denom``: clipped policy loss
    (+ kl_coef * the KL estimate to the reference, when kl_penalty is loss)."""
    algo = s.algo
    mask = r.response_mask
    logp, entropy, raw = policy_logprobs(s, r)
    pg_loss, clipfrac, approx_kl = ppo_policy_loss(logp, old_logprobs(r, algo.policy_distribution == "full"), adv, w, algo.clip, denom)
    # padding is masked before the estimate: k3's exp of a stray log-prob could overflow, and inf * 0 is nan
    kl = token_mean(kl_estimate(raw * mask, r.ref_logprobs * mask, algo.kl_estimator), w, denom)
    loss = pg_loss + algo.kl_coef * kl if algo.kl_penalty == "loss" else pg_loss
    return loss, {"loss/policy": pg_loss, "loss/kl": kl, "loss/total": loss, "policy/entropy": token_mean(entropy, w, denom),
                  "policy/clipfrac": clipfrac, "policy/approx_kl": approx_kl}
