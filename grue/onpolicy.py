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
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from accelerate.utils import gather_object

from grue.advantages import gae, kl_penalized_rewards, masked_mean, normalize, whiten
from grue.engine_config import OnPolicyConfig
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
from grue.session import Session
from grue.stability import check_finite
from grue.tasks.common import Example


@dataclass
class ActorCriticConfig(OnPolicyConfig):
    """The settings of the actor-critic algorithms (PPO, NLPO, A2C, TRPO): a rollout counted in ``batch_unit``,
    per-token rewards ``-beta * KL_t`` plus the score, GAE, a critic, and an adaptive KL coefficient."""

    batch_unit: str = field(default="tokens", metadata={"choices": ("tokens", "completions")})
    """What ``rollout_size`` (and ``minibatch_size``, where the algorithm has one) counts. ``tokens`` (RL4LMs, the
    paper): generated tokens, one transition each; a rollout samples episodes until it holds ``rollout_size``
    tokens (the last episode is cut there and its advantage bootstrapped from the critic's value of the next
    token), and a minibatch is ``minibatch_size`` tokens drawn at random across episodes. ``completions`` (grue's
    faster choice): whole completions, about max_new_tokens times more data per iteration."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    kl_target: float | None = 0.1
    """Target mean per-token KL of the adaptive controller; null keeps beta fixed."""
    critic: str = field(default="separate", metadata={"choices": ("separate", "shared")})
    """separate: own copy of the policy trunk (the paper's); shared: value head on the policy (cheaper)."""

    whiten_advantages: ClassVar[bool] = False
    """Normalise the advantages over the whole rollout (per process) before the update (PPO and A2C offer it)."""


@torch.no_grad()
def collect(session: Session, prompts: list[str], mask: MaskSettings | None = None) -> Rollout:
    """Sample completions for this process's prompts in batches; add reference log-probs and values (none without a critic).

    ``mask`` (NLPO) restricts every step to the masking model's top-p set. Under mixed precision
    the behaviour log-probs are recomputed by one teacher-forced policy forward in that precision,
    the same computation as the update's, so that the first PPO ratio is 1.
    """
    policy = session.accelerator.unwrap_model(session.policy)
    recompute = session.cfg.run.mixed_precision != "no"
    parts = []
    for i in range(0, len(prompts), session.algo.rollout_batch_size):
        q, qm = tokenize_prompts(
            session.tokenizer,
            prompts[i : i + session.algo.rollout_batch_size],
            session.gen.max_prompt_tokens,
            session.seq2seq,
            session.device,
            session.gen.truncation_side,
        )
        with session.accelerator.autocast():
            rollout = generate(
                policy,
                q,
                qm,
                session.gen,
                eos_id=session.tokenizer.eos_token_id,
                pad_id=session.tokenizer.pad_token_id,
                generator=session.sample_rng,
                mask=mask,
            )
            inputs = rollout_inputs(session, rollout)
            T = rollout.response_ids.shape[1]
            ref_logits, _ = policy_forward(session.ref, inputs, T, session.seq2seq)
            rollout.ref_logprobs = token_logprobs(ref_logits, rollout.response_ids) * rollout.response_mask
            hidden = None
            if recompute:
                logits, hidden = policy_forward(
                    policy, inputs, T, session.seq2seq, want_hidden=session.algo.critic == "shared"
                )
                rollout.logprobs = warped(session, logits, rollout)[0] * rollout.response_mask
                rollout.raw_logprobs = token_logprobs(logits, rollout.response_ids) * rollout.response_mask
            if session.critic is not None:
                rollout.values = values_of(session, policy, inputs, T, hidden).float() * rollout.response_mask
        parts.append(rollout)
    return concat_rollouts(parts, session.tokenizer.pad_token_id, left_pad_queries=not session.seq2seq)


def rollout_inputs(session: Session, rollout: Rollout) -> dict:
    """The model inputs of a teacher-forced forward over the rollout's prompts and responses (grue.rollout.lm_inputs)."""
    return lm_inputs(
        rollout.query_ids,
        rollout.query_mask,
        rollout.response_ids,
        rollout.response_mask,
        session.seq2seq,
        session.decoder_start,
    )


def values_of(session: Session, policy, inputs: dict, T: int, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """Critic values (B,T): the separate critic's own forward, or the value head on the policy's
    last hidden states (``hidden`` when the caller already has them, else one policy forward)."""
    if session.algo.critic == "separate":
        return session.critic(**inputs, response_len=T)
    if hidden is None:
        _, hidden = policy_forward(policy, inputs, T, session.seq2seq, want_hidden=True)
    return session.critic(hidden)


def warped(
    session: Session, logits: torch.Tensor, rollout: Rollout, entropy_grad: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropy (B,T) of the rollout's tokens under the distribution sampled from."""
    gen = session.gen
    return warped_logprobs(
        logits,
        rollout.response_ids,
        rollout.support,
        temperature=gen.temperature,
        eos_id=session.tokenizer.eos_token_id,
        min_new_tokens=gen.min_new_tokens,
        entropy_grad=entropy_grad,
    )


def uses_full_softmax(session: Session) -> bool:
    """Whether the algorithm's ratio and entropy use the full softmax (``policy_distribution: full``)."""
    return session.algo.policy_distribution == "full"


def old_logprobs(rollout: Rollout, full: bool) -> torch.Tensor:
    """The behaviour log-probs the ratio divides by: unwarped (``policy_distribution: full``) or warped."""
    return rollout.raw_logprobs if full else rollout.logprobs


def evaluate_actions(
    session: Session, rollout: Rollout, with_values: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """With gradients: the current policy's log-probs and entropy (B,T) of the rollout's tokens, over the
    full softmax or the stored supports (``policy_distribution``), and the critic's values (B,T) (None without
    ``with_values``). The entropy carries gradients only when the algorithm's ``ent_coef`` is non-zero.
    One forward of the policy (and of a separate critic)."""
    algo = session.algo
    T = rollout.response_ids.shape[1]
    inputs = rollout_inputs(session, rollout)
    with (
        session.accelerator.autocast(),
        training_forward([session.policy, session.critic], algo.gradient_checkpointing),
    ):
        logits, hidden = policy_forward(session.policy, inputs, T, session.seq2seq, want_hidden=algo.critic == "shared")
        values = values_of(session, session.policy, inputs, T, hidden).float() if with_values else None
    grad = bool(algo.ent_coef)  # without an entropy bonus the entropy is only logged
    if uses_full_softmax(session):
        logp, entropy = full_logprobs(logits, rollout.response_ids, grad)
    else:
        logp, entropy = warped(session, logits, rollout, grad)
    return logp, entropy, values


def critic_values(session: Session, rollout: Rollout) -> torch.Tensor:
    """With gradients: the separate critic's values (B,T) of the rollout's tokens, one forward of the critic alone."""
    with session.accelerator.autocast(), training_forward([session.critic], session.algo.gradient_checkpointing):
        return values_of(session, None, rollout_inputs(session, rollout), rollout.response_ids.shape[1]).float()


@dataclass
class Batch:
    """One iteration's data on this process: example indices and examples (B), the rollout, and, per row,
    the value that follows its last kept token (B,): non-zero only for an episode cut at the token budget."""

    idx: list[int]
    examples: list[Example]
    rollout: Rollout
    bootstrap: torch.Tensor
    generated_mask: torch.Tensor  # (B,T) every generated token, also those past a cut


def collect_iteration(session: Session, mask: MaskSettings | None = None) -> Batch:
    """Steps 1-2 of an iteration: this process's prompts and their rollout, in the algorithm's ``batch_unit``."""
    acc = session.accelerator
    algo: ActorCriticConfig = session.algo
    if algo.batch_unit == "completions":
        idx = session.stream.next(algo.rollout_size)
        examples = [session.examples[i] for i in idx]
        rollout = collect(session, [e.prompt for e in examples], mask)
        return Batch(idx, examples, rollout, torch.zeros(len(idx), device=session.device), rollout.response_mask)
    need = algo.rollout_size // acc.num_processes
    idx, parts, have = [], [], 0
    while True:
        # Prompts for what is still missing, if every episode ran to max_new_tokens; every process
        # draws the same number, so the shared prompt order stays in step.
        want = min(algo.rollout_batch_size, math.ceil(max(need - have, 0) / session.gen.max_new_tokens))
        want = int(acc.gather(torch.tensor([want], device=session.device)).max()) if acc.num_processes > 1 else want
        if want == 0:
            break
        ids = session.stream.next(want * acc.num_processes)
        parts.append(collect(session, [session.examples[i].prompt for i in ids], mask))
        idx += ids
        have += int(parts[-1].response_mask.sum())
    rollout = concat_rollouts(parts, session.tokenizer.pad_token_id, left_pad_queries=not session.seq2seq)
    generated = rollout.response_mask
    kept = first_tokens(generated, need)
    rows = kept.sum(-1) > 0
    n_kept = kept.sum(-1).long()
    cut = rows & (n_kept < generated.sum(-1).long())
    bootstrap = torch.zeros(len(idx), device=session.device)
    if bool(cut.any()):
        bootstrap[cut] = rollout.values[cut, n_kept[cut]]
    rollout.response_mask = kept
    keep = rows.nonzero().flatten()
    rollout = rollout.index(keep)
    idx = [idx[i] for i in keep.tolist()]
    return Batch(idx, [session.examples[i] for i in idx], rollout, bootstrap[keep], generated[keep])


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

    def samples(self) -> tuple[list[int], list[Example], list[str], list[float]]:
        """What samples.jsonl shows of the iteration (Session.end_iteration): indices, examples, completions, scores."""
        return self.batch.idx, self.batch.examples, self.completions, self.scores.tolist()


def score_and_advantages(session: Session, batch: Batch, kl_coef: float) -> Scored:
    """Steps shared by the actor-critic algorithms: the task score, ``-beta * KL_t`` rewards, GAE, whitening.

    An episode cut at the token budget is scored (its whole completion, for the logs) but its score
    is not a reward: the episode goes on past the rollout, and GAE bootstraps from the critic instead.
    """
    rollout = batch.rollout
    algo: ActorCriticConfig = session.algo
    mask = rollout.response_mask
    completions = decode_completions(
        session.tokenizer, rollout.response_ids, batch.generated_mask, session.cfg.run.clean_up_tokenization_spaces
    )
    scores = torch.tensor(
        session.score([e.prompt for e in batch.examples], completions, batch.examples), device=session.device
    )
    finished = (batch.generated_mask.sum(-1) == mask.sum(-1)).to(scores.dtype)
    kl = kl_estimate(rollout.raw_logprobs, rollout.ref_logprobs, algo.kl_estimator) * mask
    rewards = kl_penalized_rewards(scores * finished, kl, mask, kl_coef)
    adv, returns = gae(rewards, rollout.values, mask, algo.gamma, algo.lam, bootstrap=batch.bootstrap)
    if algo.whiten_advantages:
        adv = whiten(adv, mask)
    return Scored(batch, completions, scores, kl, rewards, adv, returns)


def minibatches(
    mask: torch.Tensor, unit: str, size: int, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
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


class LossFn(Protocol):
    """An algorithm's loss of one micro-batch: ``(loss, statistics)``, each statistic a scalar tensor.

    ``rollout``: the micro-batch's rows of the rollout; ``weights`` (M,T): its tokens' weights (0/1, or GRPO's and
    RLOO's 1/length); ``advantages``: (M,T) per token, or (M,) per completion for a sequence-level loss;
    ``returns`` (M,T): the critic's targets (None without a critic); ``denom``: the optimizer step's total weight,
    so that the micro-batches' losses add up to the step's mean."""

    def __call__(
        self,
        session: Session,
        rollout: Rollout,
        weights: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor | None,
        denom: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def backward_step(
    session: Session,
    rollout: Rollout,
    rows: torch.Tensor,
    sel: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
    loss_fn: LossFn,
    grad_accum: int,
) -> dict[str, torch.Tensor]:
    """Gradients for one optimizer step over the tokens ``sel`` (M,T) of the rollout's ``rows`` (M,).

    The advantages (per token, (B,T)) are normalised over those tokens first when ``normalize_advantage`` is on.
    The rows are split into at most ``grad_accum`` micro-batches; ``loss_fn`` (LossFn) averages over ``denom`` = all
    the step's tokens, so the micro-batch terms add up to the step's mean (DDP syncs on the last micro-batch only).
    ``sel`` may hold weights rather than 0/1 (GRPO, RLOO: 1/length per token, a mean per completion); advantages of
    shape (B,) are per completion. Returns the statistics summed over micro-batches.
    """
    rows = rows.to(session.device)
    adv, ret = advantages[rows], None if returns is None else returns[rows]
    if session.algo.normalize_advantage:  # over the step's tokens, or its completions for per-completion advantages
        adv = normalize(adv, sel if adv.dim() == 2 else torch.ones_like(adv))
    denom = sel.sum().clamp(min=1.0)
    pieces = torch.arange(len(rows), device=session.device).tensor_split(min(grad_accum, len(rows)))
    sums: dict[str, torch.Tensor] = {}
    for k, j in enumerate(pieces):
        with contextlib.ExitStack() as stack:
            if k < len(pieces) - 1:
                for m in session.trainable:
                    stack.enter_context(session.accelerator.no_sync(m))
            loss, stats = loss_fn(
                session, rollout.index(rows[j]), sel[j], adv[j], None if ret is None else ret[j], denom
            )
            session.accelerator.backward(loss)
        for name, v in stats.items():
            sums[name] = sums.get(name, 0.0) + v.detach()
    return sums


def optimizer_steps(
    session: Session,
    rollout: Rollout,
    weights: torch.Tensor,
    unit: str,
    minibatch_size: int,
    passes: int,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
    loss_fn: LossFn,
    grad_accum: int = 1,
    max_grad_norm: float | None = None,
) -> dict[str, torch.Tensor]:
    """``passes`` epochs of shuffled minibatches of ``minibatch_size`` (``unit``: completions or tokens of
    ``weights`` (B,T)), one ``backward_step`` and one optimizer step each, the gradient norm clipped to
    ``max_grad_norm`` (None: not clipped, nor logged); a non-finite loss or gradient stops the run before its step
    (``stop_if_not_finite``). Returns each statistic's mean over the steps (tensors)."""
    sums: dict[str, torch.Tensor] = {}
    steps = 0
    for _ in range(passes):
        for rows, sel in minibatches(weights, unit, minibatch_size, session.shuffle_rng):
            stats = backward_step(session, rollout, rows, sel, advantages, returns, loss_fn, grad_accum)
            if max_grad_norm is not None:
                stats["policy/grad_norm"] = session.accelerator.clip_grad_norm_(session.params, max_grad_norm)
            stop_if_not_finite(session, stats)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            session.optimizer.step()
            session.optimizer.zero_grad(set_to_none=True)
            steps += 1
    return {k: torch.as_tensor(v, device=session.device, dtype=torch.float32) / steps for k, v in sums.items()}


def stop_if_not_finite(session: Session, stats: dict) -> None:
    """Before an optimizer step: a GrueError naming the iteration if a loss (``loss/*`` of ``stats``), the gradient
    norm or any gradient is nan or inf (grue.stability.check_finite); the model is then left as it was."""
    values = {k: v for k, v in stats.items() if k.startswith("loss/") or k == "policy/grad_norm"}
    check_finite(
        session.accelerator,
        values,
        session.params,
        f"iteration {session.iteration}",
        session.run_dir,
        session.cfg.run.task,
        norm="policy/grad_norm" if values.get("policy/grad_norm") is not None else None,
    )


def mean_kl(session: Session, scored: Scored) -> float:
    """Mean per-token KL over all processes (what the adaptive controller tracks)."""
    return session.accelerator.reduce(masked_mean(scored.kl, scored.rollout.response_mask).detach(), "mean").item()


def iteration_metrics(session: Session, scored: Scored, stats: dict) -> dict:
    """One metrics.jsonl line (names documented in grue.run_log), reduced over processes: the rollout's rewards,
    the KL (``kl/coef``: the coefficient this rollout's rewards used), the update's ``stats``, lengths and the
    iteration's timings so far (Session.lap)."""
    acc = session.accelerator
    mask, rollout = scored.rollout.response_mask, scored.rollout
    # Processes may hold different numbers of episodes (a rollout counted in tokens): gather as objects.
    all_scores = torch.tensor(
        sum(gather_object([scored.scores.tolist()]), []) if acc.num_processes > 1 else scored.scores.tolist()
    )
    n_tokens = acc.reduce(mask.sum(), "sum").item()
    seconds = sum(session.times.values())
    return {
        "iteration": session.iteration,
        "world_size": acc.num_processes,
        "samples": session.iteration * session.algo.rollout_size,
        "reward/mean": all_scores.mean().item(),
        "reward/std": all_scores.std().item() if all_scores.numel() > 1 else 0.0,
        "reward/total": acc.reduce(scored.rewards.sum(-1).mean(), "mean").item(),
        "kl/mean": mean_kl(session, scored),
        "kl/coef": session.kl.coef,
        "kl/support_logmass": acc.reduce(masked_mean(rollout.raw_logprobs - rollout.logprobs, mask), "mean").item(),
        **{k: acc.reduce(v, "mean").item() for k, v in stats.items()},
        **(
            {}
            if rollout.values is None
            else {"value/mean": acc.reduce(masked_mean(rollout.values, mask), "mean").item()}
        ),
        "response/length": acc.reduce(scored.batch.generated_mask.sum(-1).mean(), "mean").item(),
        **session.times,
        "tokens_per_s": n_tokens / max(seconds, 1e-9),
    }
