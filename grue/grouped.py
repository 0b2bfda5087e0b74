"""The steps GRPO and RLOO share: several completions per prompt, their scores, and a critic-free,
sequence-level update over minibatches of completions.

A rollout is ``rollout_size`` completions over all processes: ``rollout_size / group_size`` prompts, each
sampled ``group_size`` times. Each process takes its share of the prompts (grue.data.PromptStream) and
samples every completion of each of them, so a prompt's group never spans processes and its baseline is
computed where it was sampled. A group's completions are consecutive rows of the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grue.advantages import kl_penalized_rewards
from grue.engine_config import OnPolicyConfig
from grue.errors import GrueError
from grue.kl import kl_estimate
from grue.onpolicy import Batch, LossFn, Scored, collect, optimizer_steps, rollout_inputs, warped
from grue.rollout import Rollout, decode_completions, policy_forward, token_logprobs
from grue.sampling import full_logprobs
from grue.session import Session


@dataclass
class GroupConfig(OnPolicyConfig):
    """The settings of the grouped, critic-free algorithms (GRPO, RLOO): ``group_size`` completions per prompt and
    ``epochs`` passes of minibatches of completions. The KL coefficient is fixed (no adaptive controller)."""

    rollout_size: int = 64
    """Completions per iteration, over all processes: ``rollout_size / group_size`` prompts, ``group_size`` samples each."""
    group_size: int = 8
    """Completions sampled per prompt (at least 2); each one's advantage compares it with the others of its prompt."""
    rollout_batch_size: int = 64
    """Completions per generate call, per process."""
    minibatch_size: int = 16
    """Completions per optimizer step, per process."""
    grad_accum: int = 1
    """Micro-batches each minibatch is split into, to bound memory; gradients are summed."""
    epochs: int = 1
    """Passes over each rollout (with one pass and several minibatches, later steps are slightly off-policy)."""
    policy_distribution: str = field(default="sampled", metadata={"choices": ("sampled", "full")})
    """The distribution of the ratio and the entropy: the ``sampled`` (warped) support, or the ``full`` softmax.
    The KL to the reference always uses the full softmax."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""

    def check_sizes(self, world_size: int) -> None:
        """OnPolicyConfig's rules, after the group's: at least 2 samples per prompt, and whole groups per process."""
        sec = self.section()
        if self.group_size < 2:
            raise GrueError(f"{sec}.group_size must be at least 2 (a baseline needs another sample of the prompt)")
        if self.rollout_size >= 1 and self.rollout_size % (self.group_size * world_size):
            raise GrueError(
                f"{sec}.rollout_size ({self.rollout_size}) must be a multiple of {sec}.group_size ({self.group_size}) "
                f"times the number of processes ({world_size}): each process samples whole groups"
            )
        super().check_sizes(world_size)


def collect_groups(session: Session) -> Batch:
    """Steps 1-2 of an iteration: this process's share of ``rollout_size / group_size`` prompts, each sampled
    ``group_size`` times (consecutive rows), with the reference's log-probs. No critic, no value."""
    g = session.algo.group_size
    ids = session.stream.next(session.algo.rollout_size // g)
    idx = [i for i in ids for _ in range(g)]
    examples = [session.examples[i] for i in idx]
    rollout = collect(session, [e.prompt for e in examples])
    return Batch(idx, examples, rollout, torch.zeros(len(idx), device=session.device), rollout.response_mask)


def score_groups(session: Session, batch: Batch, reward_kl_coef: float) -> tuple[Scored, torch.Tensor]:
    """The task's scores (N,), the per-token KL estimate to the reference (N,T, ``kl_estimator``), and each
    completion's sequence reward ``R_i = score_i - reward_kl_coef * sum_t KL_t`` (N,) (0: the score alone).

    Returns the Scored (its per-token ``rewards`` are the score at the last token minus the KL terms, as the
    other algorithms log them; no advantages yet, no returns) and R."""
    rollout = batch.rollout
    mask = rollout.response_mask
    completions = decode_completions(
        session.tokenizer, rollout.response_ids, mask, session.cfg.run.clean_up_tokenization_spaces
    )
    scores = torch.tensor(
        session.score([e.prompt for e in batch.examples], completions, batch.examples), device=session.device
    )
    kl = kl_estimate(rollout.raw_logprobs, rollout.ref_logprobs, session.algo.kl_estimator) * mask
    rewards = kl_penalized_rewards(scores, kl, mask, reward_kl_coef)
    return Scored(batch, completions, scores, kl, rewards, torch.zeros_like(mask), None), rewards.sum(-1)


def policy_logprobs(session: Session, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """With gradients, one policy forward: the log-probs (B,T) of the rollout's tokens under the ratio's
    distribution (``policy_distribution``: full softmax or the sampled support), its entropy (B,T), and the
    unwarped log-probs (B,T) that the KL to the reference compares."""
    with session.accelerator.autocast():
        logits, _ = policy_forward(
            session.policy, rollout_inputs(session, rollout), rollout.response_ids.shape[1], session.seq2seq
        )
    if session.algo.policy_distribution == "full":
        logp, entropy = full_logprobs(logits, rollout.response_ids)
        return logp, entropy, logp
    logp, entropy = warped(session, logits, rollout)
    return logp, entropy, token_logprobs(logits, rollout.response_ids)


def sequence_update(
    session: Session, rollout: Rollout, weights: torch.Tensor, advantages: torch.Tensor, loss_fn: LossFn
) -> dict[str, torch.Tensor]:
    """``epochs`` passes of shuffled minibatches of ``minibatch_size`` completions, one optimizer step each.

    ``weights`` (B,T): token weights (grue.advantages.completion_weights); a step's loss is its weighted token
    sum over the sum of its weights. ``advantages`` (B,): one per completion, as ``loss_fn`` receives them
    (grue.onpolicy.LossFn; no returns). Returns the mean statistics."""
    algo: GroupConfig = session.algo
    return optimizer_steps(
        session,
        rollout,
        weights,
        "completions",
        algo.minibatch_size,
        algo.epochs,
        advantages,
        None,
        loss_fn,
        algo.grad_accum,
        algo.max_grad_norm,
    )
