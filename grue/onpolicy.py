"""The on-policy steps shared by PPO, A2C, NLPO and TRPO (and the rollout and backward of GRPO and RLOO):
rollout, scoring, advantages, minibatches, backward.

A rollout is counted in the algorithm's ``batch_unit``. ``completions``: ``rollout_size`` prompts,
one completion each. ``tokens`` (RL4LMs): episodes are sampled until this process holds
``rollout_size / processes`` generated tokens; the episode that crosses the budget is cut there
(its score is not part of the rewards, and GAE bootstraps from the critic's value of its next
token) and later ones are dropped. Minibatches are then tokens drawn at random across episodes.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
from accelerate.utils import gather_object

from grue.advantages import gae, kl_penalized_rewards, masked_mean, normalize, whiten
from grue.kl import kl_estimate
from grue.memory import training_forward
from grue.rollout import (
    MaskSettings,
    Rollout,
    concat_rollouts,
    decode_completions,
    first_tokens,
    generate,
    lm_inputs,
    policy_forward,
    token_logprobs,
    tokenize_prompts,
)
from grue.sampling import full_logprobs, warped_logprobs
from grue.session import Session, critic_kind
from grue.stability import check_finite
from grue.tasks.common import Example


@torch.no_grad()
def collect(s: Session, prompts: list[str], mask: MaskSettings | None = None) -> Rollout:
    """Sample completions for this process's prompts in batches; add reference log-probs and values (none without a critic).

    ``mask`` (NLPO) restricts every step to the masking model's top-p set. Under mixed precision
    the behaviour log-probs are recomputed by one teacher-forced policy forward in that precision,
    the same computation as the update's, so that the first PPO ratio is 1.
    """
    policy = s.accelerator.unwrap_model(s.policy)
    recompute = s.cfg.run.mixed_precision != "no"
    parts = []
    for i in range(0, len(prompts), s.algo.rollout_batch_size):
        q, qm = tokenize_prompts(s.tokenizer, prompts[i : i + s.algo.rollout_batch_size], s.gen.max_prompt_tokens, s.seq2seq, s.device,
                                  s.gen.truncation_side)
        with s.accelerator.autocast():
            r = generate(policy, q, qm, s.gen, eos_id=s.tokenizer.eos_token_id, pad_id=s.tokenizer.pad_token_id, generator=s.sample_rng,
                         mask=mask)
            inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
            T = r.response_ids.shape[1]
            ref_logits, _ = policy_forward(s.ref, inputs, T, s.seq2seq)
            r.ref_logprobs = token_logprobs(ref_logits, r.response_ids) * r.response_mask
            hidden = None
            if recompute:
                logits, hidden = policy_forward(policy, inputs, T, s.seq2seq, want_hidden=critic_kind(s.algo) == "shared")
                r.logprobs = warped(s, logits, r)[0] * r.response_mask
                r.raw_logprobs = token_logprobs(logits, r.response_ids) * r.response_mask
            if s.critic is not None:
                r.values = values_of(s, policy, inputs, T, hidden).float() * r.response_mask
        parts.append(r)
    return concat_rollouts(parts, s.tokenizer.pad_token_id, left_pad_queries=not s.seq2seq)


def values_of(s: Session, policy, inputs: dict, T: int, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """Critic values (B,T): the separate critic's own forward, or the value head on the policy's
    last hidden states (``hidden`` when the caller already has them, else one policy forward)."""
    if s.algo.critic == "separate":
        return s.critic(**inputs, response_len=T)
    if hidden is None:
        _, hidden = policy_forward(policy, inputs, T, s.seq2seq, want_hidden=True)
    return s.critic(hidden)


def warped(s: Session, logits: torch.Tensor, r: Rollout, entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropy (B,T) of the rollout's tokens under the distribution sampled from."""
    return warped_logprobs(logits, r.response_ids, r.support, temperature=s.gen.temperature,
                           eos_id=s.tokenizer.eos_token_id, min_new_tokens=s.gen.min_new_tokens, entropy_grad=entropy_grad)


def uses_full_softmax(s: Session) -> bool:
    return getattr(s.algo, "policy_distribution", "sampled") == "full"


def old_logprobs(r: Rollout, full: bool) -> torch.Tensor:
    """The behaviour log-probs the ratio divides by: unwarped (``policy_distribution: full``) or warped."""
    return r.raw_logprobs if full else r.logprobs


def evaluate_actions(s: Session, r: Rollout, with_values: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """With gradients: the current policy's log-probs and entropy (B,T) of the rollout's tokens, over the
    full softmax or the stored supports (``policy_distribution``), and the critic's values (B,T) (None without
    ``with_values``). The entropy carries gradients only when the algorithm's ``ent_coef`` is non-zero.
    One forward of the policy (and of a separate critic)."""
    T = r.response_ids.shape[1]
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
    with s.accelerator.autocast(), training_forward([s.policy, s.critic], getattr(s.algo, "gradient_checkpointing", False)):
        logits, hidden = policy_forward(s.policy, inputs, T, s.seq2seq, want_hidden=s.algo.critic == "shared")
        values = values_of(s, s.policy, inputs, T, hidden).float() if with_values else None
    grad = bool(getattr(s.algo, "ent_coef", 0.0))  # without an entropy bonus the entropy is only logged
    logp, entropy = full_logprobs(logits, r.response_ids, grad) if uses_full_softmax(s) else warped(s, logits, r, grad)
    return logp, entropy, values


def critic_values(s: Session, r: Rollout) -> torch.Tensor:
    """With gradients: the separate critic's values (B,T) of the rollout's tokens, one forward of the critic alone."""
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
    with s.accelerator.autocast(), training_forward([s.critic], getattr(s.algo, "gradient_checkpointing", False)):
        return values_of(s, None, inputs, r.response_ids.shape[1]).float()


@dataclass
class Batch:
    """One iteration's data on this process: example indices and examples (B), the rollout, and, per row,
    the value that follows its last kept token (B,): non-zero only for an episode cut at the token budget."""

    idx: list[int]
    examples: list[Example]
    rollout: Rollout
    bootstrap: torch.Tensor
    generated_mask: torch.Tensor  # (B,T) every generated token, also those past a cut


def collect_iteration(s: Session, mask: MaskSettings | None = None) -> Batch:
    """Steps 1-2 of an iteration: this process's prompts and their rollout, in the algorithm's ``batch_unit``."""
    algo, acc = s.algo, s.accelerator
    if algo.batch_unit == "completions":
        idx = s.stream.next(algo.rollout_size)
        examples = [s.examples[i] for i in idx]
        r = collect(s, [e.prompt for e in examples], mask)
        return Batch(idx, examples, r, torch.zeros(len(idx), device=s.device), r.response_mask)
    need = algo.rollout_size // acc.num_processes
    idx, parts, have = [], [], 0
    while True:
        # Prompts for what is still missing, if every episode ran to max_new_tokens; every process
        # draws the same number, so the shared prompt order stays in step.
        want = min(algo.rollout_batch_size, math.ceil(max(need - have, 0) / s.gen.max_new_tokens))
        want = int(acc.gather(torch.tensor([want], device=s.device)).max()) if acc.num_processes > 1 else want
        if want == 0:
            break
        ids = s.stream.next(want * acc.num_processes)
        parts.append(collect(s, [s.examples[i].prompt for i in ids], mask))
        idx += ids
        have += int(parts[-1].response_mask.sum())
    r = concat_rollouts(parts, s.tokenizer.pad_token_id, left_pad_queries=not s.seq2seq)
    generated = r.response_mask
    kept = first_tokens(generated, need)
    rows = kept.sum(-1) > 0
    n_kept = kept.sum(-1).long()
    cut = rows & (n_kept < generated.sum(-1).long())
    bootstrap = torch.zeros(len(idx), device=s.device)
    if bool(cut.any()):
        bootstrap[cut] = r.values[cut, n_kept[cut]]
    r.response_mask = kept
    keep = rows.nonzero().flatten()
    r = r.index(keep)
    idx = [idx[i] for i in keep.tolist()]
    return Batch(idx, [s.examples[i] for i in idx], r, bootstrap[keep], generated[keep])


@dataclass
class Scored:
    """A rollout with its completions, scores (B,), per-token KL and rewards, advantages and returns (B,T)."""

    batch: Batch
    completions: list[str]
    scores: torch.Tensor
    kl: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor | None  # None without a critic

    rollout = property(lambda self: self.batch.rollout)


def score_and_advantages(s: Session, b: Batch, kl_coef: float) -> Scored:
    """Steps shared by the actor-critic algorithms: the task score, ``-beta * KL_t`` rewards, GAE, whitening.

    An episode cut at the token budget is scored (its whole completion, for the logs) but its score
    is not a reward: the episode goes on past the rollout, and GAE bootstraps from the critic instead.
    """
    algo, r = s.algo, b.rollout
    mask = r.response_mask
    completions = decode_completions(s.tokenizer, r.response_ids, b.generated_mask, s.cfg.run.clean_up_tokenization_spaces)
    scores = torch.tensor(s.score([e.prompt for e in b.examples], completions, b.examples), device=s.device)
    finished = (b.generated_mask.sum(-1) == mask.sum(-1)).to(scores.dtype)
    kl = kl_estimate(r.raw_logprobs, r.ref_logprobs, algo.kl_estimator) * mask
    rewards = kl_penalized_rewards(scores * finished, kl, mask, kl_coef)
    adv, returns = gae(rewards, r.values, mask, algo.gamma, algo.lam, bootstrap=b.bootstrap)
    if getattr(algo, "whiten_advantages", False):
        adv = whiten(adv, mask)
    return Scored(b, completions, scores, kl, rewards, adv, returns)


def minibatches(mask: torch.Tensor, unit: str, size: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's minibatches over a rollout's ``mask`` (B,T), as ``(rows (M,), selected tokens (M,T))``.

    ``completions``: a random permutation of the rows in chunks of ``size`` rows, each with all its
    tokens. ``tokens``: a random permutation of the real tokens in chunks of ``size`` tokens (the
    stable-baselines3 buffer RL4LMs used); each minibatch lists the rows it touches and marks its tokens.
    """
    if unit == "completions":
        order = torch.randperm(mask.shape[0], generator=generator)
        return [(rows, mask[rows]) for rows in order.split(size)]
    T = mask.shape[1]
    positions = mask.flatten().nonzero().flatten().cpu()
    order = positions[torch.randperm(len(positions), generator=generator)]
    out = []
    for chunk in order.split(size):
        rows, inverse = torch.unique(chunk // T, return_inverse=True)
        sel = torch.zeros(len(rows), T, dtype=mask.dtype)
        sel[inverse, chunk % T] = 1
        out.append((rows, sel.to(mask.device)))
    return out


def backward_step(s: Session, r: Rollout, rows: torch.Tensor, sel: torch.Tensor, advantages: torch.Tensor,
                  returns: torch.Tensor | None, loss_fn: Callable, grad_accum: int) -> dict[str, torch.Tensor]:
    """Gradients for one optimizer step over the tokens ``sel`` (M,T) of the rollout's ``rows`` (M,).

    The advantages are normalised over those tokens first when ``normalize_advantage`` is on.
    The rows are split into at most ``grad_accum`` micro-batches; ``loss_fn(s, r_micro, sel_micro,
    advantages, returns, denom) -> (loss, stats)`` averages over ``denom`` = all the step's tokens,
    so the micro-batch terms add up to the step's mean (DDP syncs on the last micro-batch only). ``sel`` may
    hold weights rather than 0/1 (GRPO, RLOO: 1/length per token, a mean per completion); ``returns`` is None
    for an algorithm without a critic.
    Returns the statistics summed over micro-batches.
    """
    rows = rows.to(s.device)
    adv, ret = advantages[rows], None if returns is None else returns[rows]
    if getattr(s.algo, "normalize_advantage", False):
        adv = normalize(adv, sel)
    denom = sel.sum().clamp(min=1.0)
    pieces = torch.arange(len(rows), device=s.device).tensor_split(min(grad_accum, len(rows)))
    sums: dict[str, torch.Tensor] = {}
    for k, j in enumerate(pieces):
        with contextlib.ExitStack() as stack:
            if k < len(pieces) - 1:
                for m in s.trainable:
                    stack.enter_context(s.accelerator.no_sync(m))
            loss, stats = loss_fn(s, r.index(rows[j]), sel[j], adv[j], None if ret is None else ret[j], denom)
            s.accelerator.backward(loss)
        for name, v in stats.items():
            sums[name] = sums.get(name, 0.0) + v.detach()
    return sums


def optimizer_steps(s: Session, r: Rollout, weights: torch.Tensor, unit: str, passes: int, advantages: torch.Tensor,
                    returns: torch.Tensor | None, loss_fn: Callable, grad_accum: int = 1,
                    max_grad_norm: float | None = None) -> dict[str, torch.Tensor]:
    """``passes`` epochs of shuffled minibatches of ``s.algo.minibatch_size`` (``unit``: completions or tokens of
    ``weights`` (B,T)), one ``backward_step`` and one optimizer step each, the gradient norm clipped to
    ``max_grad_norm`` (None: not clipped, nor logged); a non-finite loss or gradient stops the run before its step
    (``stop_if_not_finite``). Returns each statistic's mean over the steps (tensors)."""
    sums: dict[str, torch.Tensor] = {}
    steps = 0
    for _ in range(passes):
        for rows, sel in minibatches(weights, unit, s.algo.minibatch_size, s.shuffle_rng):
            stats = backward_step(s, r, rows, sel, advantages, returns, loss_fn, grad_accum)
            if max_grad_norm is not None:
                stats["policy/grad_norm"] = s.accelerator.clip_grad_norm_(s.params, max_grad_norm)
            stop_if_not_finite(s, stats)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
            steps += 1
    return {k: torch.as_tensor(v, device=s.device, dtype=torch.float32) / steps for k, v in sums.items()}


def stop_if_not_finite(s: Session, stats: dict) -> None:
    """Before an optimizer step: a GrueError naming the iteration if a loss (``loss/*`` of ``stats``), the gradient
    norm or any gradient is nan or inf (grue.stability.check_finite); the model is then left as it was."""
    values = {k: v for k, v in stats.items() if k.startswith("loss/") or k == "policy/grad_norm"}
    check_finite(s.accelerator, values, s.params, f"iteration {s.iteration}", s.run_dir, s.cfg.run.task,
                 norm="policy/grad_norm" if values.get("policy/grad_norm") is not None else None)


def mean_kl(s: Session, sc: Scored) -> float:
    """Mean per-token KL over all processes (what the adaptive controller tracks)."""
    return s.accelerator.reduce(masked_mean(sc.kl, sc.rollout.response_mask).detach(), "mean").item()


def iteration_metrics(s: Session, it: int, sc: Scored, stats: dict, kl_mean: float, kl_coef: float,
                      t_rollout: float, t_update: float) -> dict:
    """One metrics.jsonl line (names documented in grue.tracking), reduced over processes."""
    acc, mask = s.accelerator, sc.rollout.response_mask
    # Processes may hold different numbers of episodes (a rollout counted in tokens): gather as objects.
    all_scores = torch.tensor(sum(gather_object([sc.scores.tolist()]), []) if acc.num_processes > 1 else sc.scores.tolist())
    n_tokens = acc.reduce(mask.sum(), "sum").item()
    return {
        "iteration": it, "world_size": acc.num_processes, "samples": it * s.algo.rollout_size,
        "reward/mean": all_scores.mean().item(), "reward/std": all_scores.std().item() if all_scores.numel() > 1 else 0.0,
        "reward/total": acc.reduce(sc.rewards.sum(-1).mean(), "mean").item(),
        "kl/mean": kl_mean, "kl/coef": kl_coef,
        "kl/support_logmass": acc.reduce(masked_mean(sc.rollout.raw_logprobs - sc.rollout.logprobs, mask), "mean").item(),
        **{k: acc.reduce(v, "mean").item() for k, v in stats.items()},
        **({} if sc.rollout.values is None else {"value/mean": acc.reduce(masked_mean(sc.rollout.values, mask), "mean").item()}),
        "response/length": acc.reduce(sc.batch.generated_mask.sum(-1).mean(), "mean").item(),
        "time/rollout_s": t_rollout, "time/update_s": t_update,
        "tokens_per_s": n_tokens / max(t_rollout + t_update, 1e-9),
    }


def sync_clock(s: Session) -> None:
    """Wait for the GPU before reading a clock, so timings cover the work."""
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
