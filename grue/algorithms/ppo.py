"""PPO for language models (Schulman et al. 2017; the GRUE paper's settings), top to bottom.

One iteration: sample ``rollout_size`` completions (one KV-cached generate per batch),
score them, one teacher-forced forward of the reference and the critic, per-token
rewards ``-beta * KL_t`` plus the score at the last token, GAE, then ``epochs`` passes
of clipped-PPO minibatch updates. Works for causal and seq2seq policies alike.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch

from grue.advantages import gae, kl_penalized_rewards, masked_mean, whiten
from grue.config import Config
from grue.errors import GrueError
from grue.kl import KLController, kl_estimate
from grue.losses import ppo_policy_loss, value_loss
from grue.rollout import concat_rollouts, generate, lm_inputs, policy_forward, token_logprobs, tokenize_prompts
from grue.sampling import warped_logprobs
from grue.setup import Session, start_session
from grue.tracking import Display


@dataclass
class PPOConfig:
    """PPO hyper-parameters. Defaults are the GRUE paper's IMDB settings."""

    iterations: int = 50
    """Rollout-and-update iterations."""
    rollout_size: int = 1280
    """Completions sampled per iteration, over all processes (paper: 10 envs x 128 steps)."""
    rollout_batch_size: int = 64
    """Prompts per generate call, per process."""
    minibatch_size: int = 64
    """Completions per optimizer step, per process (the paper's batch size)."""
    grad_accum: int = 1
    """Micro-batches each minibatch is split into, to bound memory; gradients are summed."""
    epochs: int = 5
    """Passes over each rollout."""
    lr: float = 1e-6
    """Adam learning rate (policy and critic)."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    clip: float = 0.2
    """PPO ratio clip range."""
    value_clip: float | None = None
    """Clip range of the value function around the rollout's values; null for no clipping."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
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
    whiten_advantages: bool = True
    """Normalise advantages to zero mean, unit variance per rollout (per process)."""
    critic: str = field(default="separate", metadata={"choices": ("separate", "shared")})
    """separate: own copy of the policy trunk (the paper's); shared: value head on the policy (cheaper)."""


CONFIG = PPOConfig


def check(cfg: PPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break."""
    if cfg.rollout_size % world_size:
        raise GrueError(f"ppo.rollout_size ({cfg.rollout_size}) must be divisible by the number of processes ({world_size})")
    per_proc = cfg.rollout_size // world_size
    if cfg.minibatch_size > per_proc or per_proc % cfg.minibatch_size:
        raise GrueError(f"ppo.minibatch_size ({cfg.minibatch_size}) must divide the per-process rollout ({per_proc})")
    if cfg.minibatch_size % cfg.grad_accum:
        raise GrueError(f"ppo.grad_accum ({cfg.grad_accum}) must divide ppo.minibatch_size ({cfg.minibatch_size})")
    for name in ("iterations", "rollout_batch_size", "epochs"):
        if getattr(cfg, name) < 1:
            raise GrueError(f"ppo.{name} must be at least 1")


@torch.no_grad()
def collect(s: Session, prompts: list[str]) -> "Rollout":  # noqa: F821
    """Sample completions for this process's prompts in batches; add reference log-probs and values."""
    policy = s.accelerator.unwrap_model(s.policy)
    parts = []
    for i in range(0, len(prompts), s.algo.rollout_batch_size):
        q, qm = tokenize_prompts(s.tokenizer, prompts[i : i + s.algo.rollout_batch_size], s.gen.max_prompt_tokens, s.seq2seq, s.device)
        with s.accelerator.autocast():
            r = generate(policy, q, qm, s.gen, eos_id=s.tokenizer.eos_token_id, pad_id=s.tokenizer.pad_token_id, generator=s.sample_rng)
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


def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with PPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward.
    s = start_session(cfg, resume_dir, check=check)
    algo, acc = s.algo, s.accelerator
    kl_ctl = KLController(algo.kl_coef, algo.kl_target)
    if s.resumed_state:
        kl_ctl.load_state_dict(s.resumed_state["kl"])

    with Display(algo.iterations, s.start_iteration, f"{cfg.run.task} ppo", enabled=show and acc.is_main_process) as display:
        for it in range(s.start_iteration + 1, algo.iterations + 1):
            # 1. Prompts: this process's shard of the next rollout_size examples.
            t0 = time.perf_counter()
            idx = s.stream.next(algo.rollout_size)
            batch = [s.examples[i] for i in idx]

            # 2. Rollout: generate, then one forward each of the reference and the critic.
            s.policy.eval()
            r = collect(s, [e.prompt for e in batch])
            mask = r.response_mask
            completions = s.tokenizer.batch_decode(r.response_ids * (mask > 0), skip_special_tokens=True)

            # 3. Scores from the task's reward.
            scores = torch.tensor(s.score([e.prompt for e in batch], completions, batch), device=s.device)

            # 4. Per-token rewards: -beta * KL_t, plus the score at the last token.
            kl = kl_estimate(r.raw_logprobs, r.ref_logprobs, algo.kl_estimator) * mask
            rewards = kl_penalized_rewards(scores, kl, mask, kl_ctl.coef)

            # 5. Advantages and returns (GAE), advantages whitened.
            adv, returns = gae(rewards, r.values, mask, algo.gamma, algo.lam)
            if algo.whiten_advantages:
                adv = whiten(adv, mask)
            t_rollout = time.perf_counter() - t0

            # 6. Update: epochs x minibatches of clipped PPO, value loss, entropy.
            t1 = time.perf_counter()
            s.policy.train()
            stats = update(s, r, adv, returns)
            if s.device.type == "cuda":
                torch.cuda.synchronize(s.device)  # the clock must not stop before the GPU does
            t_update = time.perf_counter() - t1

            # 7. KL controller, on the mean per-token KL over all processes.
            kl_mean = acc.reduce(masked_mean(kl, mask).detach(), "mean").item()
            coef_used = kl_ctl.coef
            kl_ctl.update(kl_mean)

            # 8. Log, show, checkpoint.
            all_scores = acc.gather(scores)
            n_tokens = acc.reduce(mask.sum(), "sum").item()
            metrics = {
                "iteration": it, "world_size": acc.num_processes, "samples": it * algo.rollout_size,
                "reward/mean": all_scores.mean().item(), "reward/std": all_scores.std().item() if all_scores.numel() > 1 else 0.0,
                "reward/total": acc.reduce(rewards.sum(-1).mean(), "mean").item(),
                "kl/mean": kl_mean, "kl/coef": coef_used,
                **{k: acc.reduce(v, "mean").item() for k, v in stats.items()},
                "value/mean": acc.reduce(masked_mean(r.values, mask), "mean").item(),
                "response/length": acc.reduce(mask.sum(-1).mean(), "mean").item(),
                "time/rollout_s": t_rollout, "time/update_s": t_update,
                "tokens_per_s": n_tokens / max(t_rollout + t_update, 1e-9),
            }
            s.log(metrics, batch, idx, completions, scores.tolist())
            display.update(metrics)
            if it % cfg.run.checkpoint_every == 0 or it == algo.iterations:
                s.save(it, {"kl": kl_ctl.state_dict()})
    return s.finish()


def update(s: Session, r, adv: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
    """``epochs`` passes of shuffled minibatches; returns the mean statistics as tensors."""
    algo, acc = s.algo, s.accelerator
    n = r.response_ids.shape[0]
    micro = algo.minibatch_size // algo.grad_accum
    sums: dict[str, torch.Tensor] = {}
    steps = 0
    for _ in range(algo.epochs):
        order = torch.randperm(n, generator=s.shuffle_rng)
        for start in range(0, n, algo.minibatch_size):
            mb = order[start : start + algo.minibatch_size]
            for j in range(0, len(mb), micro):
                ids = mb[j : j + micro].to(s.device)
                last = j + micro >= len(mb)
                with contextlib.ExitStack() as stack:
                    if not last:
                        for m in s.trainable:
                            stack.enter_context(acc.no_sync(m))
                    loss, st = minibatch_loss(s, r.index(ids), adv[ids], returns[ids])
                    acc.backward(loss / algo.grad_accum)
                for k, v in st.items():
                    sums[k] = sums.get(k, 0.0) + v.detach() / algo.grad_accum
            sums["policy/grad_norm"] = sums.get("policy/grad_norm", 0.0) + acc.clip_grad_norm_(s.params, algo.max_grad_norm)
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
            steps += 1
    return {k: torch.as_tensor(v, device=s.device, dtype=torch.float32) / steps for k, v in sums.items()}


def minibatch_loss(s: Session, r, adv: torch.Tensor, returns: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """PPO loss of one micro-batch: clipped policy loss + vf_coef * value loss - ent_coef * entropy."""
    algo = s.algo
    T = r.response_ids.shape[1]
    mask = r.response_mask
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, mask, s.seq2seq, s.decoder_start)
    with s.accelerator.autocast():
        logits, hidden = policy_forward(s.policy, inputs, T, s.seq2seq, want_hidden=algo.critic == "shared")
        values = s.critic(**inputs, response_len=T) if algo.critic == "separate" else s.critic(hidden)
    logp, entropy = warped_logprobs(logits, r.response_ids, r.support, temperature=s.gen.temperature,
                                    eos_id=s.tokenizer.eos_token_id, min_new_tokens=s.gen.min_new_tokens)
    pg_loss, clipfrac, approx_kl = ppo_policy_loss(logp, r.logprobs, adv, mask, algo.clip)
    vf_loss, vf_clipfrac = value_loss(values.float(), r.values, returns, mask, algo.value_clip)
    ent = masked_mean(entropy, mask)
    loss = pg_loss + algo.vf_coef * vf_loss - algo.ent_coef * ent
    return loss, {
        "loss/policy": pg_loss, "loss/value": vf_loss, "loss/total": loss, "policy/entropy": ent,
        "policy/clipfrac": clipfrac, "policy/approx_kl": approx_kl, "value/clipfrac": vf_clipfrac,
    }
