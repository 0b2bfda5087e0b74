"""The steps GRPO and RLOO share: several completions per prompt, their scores, and a critic-free,
sequence-level update over minibatches of completions.

A rollout is ``rollout_size`` completions over all processes: ``rollout_size / group_size`` prompts, each
sampled ``group_size`` times. Each process takes its share of the prompts (grue.data.PromptStream) and
samples every completion of each of them, so a prompt's group never spans processes and its baseline is
computed where it was sampled. A group's completions are consecutive rows of the rollout.
"""

from __future__ import annotations

import torch

from grue.advantages import kl_penalized_rewards
from grue.kl import kl_estimate
from grue.onpolicy import Batch, Scored, collect, optimizer_steps, warped
from grue.rollout import decode_completions, lm_inputs, policy_forward, token_logprobs
from grue.sampling import full_logprobs
from grue.session import Session


def check_groups(name: str, cfg, world_size: int) -> None:
    """The rules every grouped algorithm's settings obey, as one-line errors (``name``: the config section)."""
    from grue.errors import GrueError

    for key in ("iterations", "rollout_size", "rollout_batch_size", "epochs", "grad_accum", "minibatch_size"):
        if getattr(cfg, key) < 1:
            raise GrueError(f"{name}.{key} must be at least 1")
    if cfg.group_size < 2:
        raise GrueError(f"{name}.group_size must be at least 2 (a baseline needs another sample of the prompt)")
    if cfg.rollout_size % (cfg.group_size * world_size):
        raise GrueError(f"{name}.rollout_size ({cfg.rollout_size}) must be a multiple of {name}.group_size ({cfg.group_size}) "
                        f"times the number of processes ({world_size}): each process samples whole groups")
    per_proc = cfg.rollout_size // world_size
    if cfg.minibatch_size > per_proc or per_proc % cfg.minibatch_size:
        raise GrueError(f"{name}.minibatch_size ({cfg.minibatch_size}) must divide the per-process rollout ({per_proc} completions)")
    if cfg.minibatch_size % cfg.grad_accum:
        raise GrueError(f"{name}.grad_accum ({cfg.grad_accum}) must divide {name}.minibatch_size ({cfg.minibatch_size})")


def collect_groups(s: Session) -> Batch:
    """Steps 1-2 of an iteration: this process's share of ``rollout_size / group_size`` prompts, each sampled
    ``group_size`` times (consecutive rows), with the reference's log-probs. No critic, no value."""
    g = s.algo.group_size
    ids = s.stream.next(s.algo.rollout_size // g)
    idx = [i for i in ids for _ in range(g)]
    examples = [s.examples[i] for i in idx]
    r = collect(s, [e.prompt for e in examples])
    return Batch(idx, examples, r, torch.zeros(len(idx), device=s.device), r.response_mask)


def score_groups(s: Session, b: Batch, reward_kl_coef: float) -> tuple[Scored, torch.Tensor]:
    """The task's scores (N,), the per-token KL estimate to the reference (N,T, ``kl_estimator``), and each
    completion's sequence reward ``R_i = score_i - reward_kl_coef * sum_t KL_t`` (N,) (0: the score alone).

    Returns the Scored (its per-token ``rewards`` are the score at the last token minus the KL terms, as the
    other algorithms log them; no advantages yet, no returns) and R."""
    r = b.rollout
    mask = r.response_mask
    completions = decode_completions(s.tokenizer, r.response_ids, mask, s.cfg.run.clean_up_tokenization_spaces)
    scores = torch.tensor(s.score([e.prompt for e in b.examples], completions, b.examples), device=s.device)
    kl = kl_estimate(r.raw_logprobs, r.ref_logprobs, s.algo.kl_estimator) * mask
    rewards = kl_penalized_rewards(scores, kl, mask, reward_kl_coef)
    return Scored(b, completions, scores, kl, rewards, torch.zeros_like(mask), None), rewards.sum(-1)


def policy_logprobs(s: Session, r) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """With gradients, one policy forward: the log-probs (B,T) of the rollout's tokens under the ratio's
    distribution (``policy_distribution``: full softmax or the sampled support), its entropy (B,T), and the
    unwarped log-probs (B,T) that the KL to the reference compares."""
    T = r.response_ids.shape[1]
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
    with s.accelerator.autocast():
        logits, _ = policy_forward(s.policy, inputs, T, s.seq2seq)
    if s.algo.policy_distribution == "full":
        logp, entropy = full_logprobs(logits, r.response_ids)
        return logp, entropy, logp
    logp, entropy = warped(s, logits, r)
    return logp, entropy, token_logprobs(logits, r.response_ids)


def sequence_update(s: Session, r, weights: torch.Tensor, advantages: torch.Tensor, loss_fn) -> dict[str, torch.Tensor]:
    """``epochs`` passes of shuffled minibatches of ``minibatch_size`` completions, one optimizer step each.

    ``weights`` (B,T): token weights (grue.advantages.completion_weights); a step's loss is its weighted token
    sum over the sum of its weights. ``advantages`` (B,) are broadcast over each completion's tokens.
    ``loss_fn(s, r_micro, weights, advantages (M,T), None, denom) -> (loss, stats)``. Returns mean statistics."""
    algo = s.algo
    return optimizer_steps(s, r, weights, "completions", algo.epochs, advantages[:, None] * r.response_mask, None, loss_fn,
                           algo.grad_accum, algo.max_grad_norm)

