"""TRPO for language models (Schulman et al. 2015), top to bottom.

grue's settings: the GRUE paper reports no TRPO and RL4LMs ships no GRUE configuration for it, but RL4LMs
97df0bd ships the algorithm (rl4lms/algorithms/trpo/trpo.py, sb3-contrib's), whose defaults grue takes.
One iteration: the engine's rollout, scores, per-token rewards ``-beta * KL_t`` plus the score, and GAE,
as PPO (grue.onpolicy). Then the policy takes ONE trust-region step on the whole rollout: the surrogate
``mean_t A_t * pi(a_t) / pi_old(a_t)`` (advantages normalised), its gradient ``g``, the
search direction ``F^-1 g`` by conjugate gradient on Fisher-vector products (double backward of the mean
per-token KL to the old policy), scaled to the trust region's boundary, then a backtracking line search
that takes the first fraction of the step whose measured mean KL(old || new) over the rollout's tokens
is below ``max_kl`` and that raises the surrogate (else no step). The critic is then fitted by its own
optimizer: ``n_critic_updates`` passes of minibatches of the value MSE. Works for causal and seq2seq policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from grue.advantages import masked_mean, normalize
from grue.config import Config
from grue.errors import GrueError
from grue.losses import value_loss
from grue.onpolicy import (
    ActorCriticConfig,
    collect_iteration,
    iteration_metrics,
    optimizer_steps,
    rollout_inputs,
    score_and_advantages,
    values_of,
)
from grue.rollout import Rollout, policy_forward
from grue.sampling import token_logprobs_in, warped_log_softmax
from grue.run_setup import start_session
from grue.session import Session
from grue.run_log import cleans_up_unstarted
from grue.trust_region import backtracking_line_search, conjugate_gradient, max_step_size


@dataclass
class TRPOConfig(ActorCriticConfig):
    """TRPO hyper-parameters (grue's settings; the paper has no TRPO): the engine's (grue.engine_config.OnPolicyConfig,
    grue.onpolicy.ActorCriticConfig; the rollout and reward defaults are the engine's PPO, the GRUE paper's IMDB
    settings) and the trust region's and the critic's below, whose defaults are RL4LMs 97df0bd's TRPO
    (rl4lms/algorithms/trpo/trpo.py ``__init__``)."""

    minibatch_size: int = 128
    """The critic's minibatch, per process: tokens or completions (``batch_unit``); RL4LMs' TRPO batch_size 128."""
    max_kl: float = 0.01
    """The trust region: a step's mean per-token KL(old || new) over the rollout must stay below it (RL4LMs' target_kl 0.01)."""
    cg_max_steps: int = 15
    """Conjugate-gradient steps for the search direction (RL4LMs' cg_max_steps 15)."""
    cg_damping: float = 0.1
    """Added to the Fisher-vector product, ``(F + damping I) v`` (RL4LMs' cg_damping 0.1)."""
    line_search_shrinking_factor: float = 0.8
    """Each backtracking try takes this fraction of the previous one (RL4LMs 0.8)."""
    line_search_max_iter: int = 10
    """Backtracking tries before the step is given up for this iteration (RL4LMs 10)."""
    policy_distribution: str = field(default="full", metadata={"choices": ("full", "sampled")})
    """The distribution of the ratio, the KL constraint and the entropy: the ``full`` softmax (RL4LMs' TRPO), or
    the ``sampled`` warped support, renormalised (see OnPolicyConfig.policy_distribution)."""
    normalize_advantage: bool = True
    """Normalise the advantages over the rollout (per process) to ``(A - mean) / (std + 1e-8)`` (RL4LMs: true)."""
    n_critic_updates: int = 10
    """Passes of the critic's minibatches per iteration (RL4LMs' n_critic_updates 10)."""
    lr: float = 1e-5
    """The critic's AdamW learning rate (RL4LMs' TRPO default 1e-3 is for small MLPs; its one LM config,
    synthetic_generate_increasing_numbers/gpt2_trpo.yml, uses 1e-5)."""
    adam_eps: float = 1e-8
    """The critic's AdamW epsilon."""
    weight_decay: float = 1e-6
    """The critic's AdamW weight decay, with the engine's rule of which parameters it skips (see OnPolicyConfig)."""
    critic: str = field(default="separate", metadata={"choices": ("separate", "shared")})
    """separate: own copy of the policy trunk; shared: a value head on the policy's hidden states (only the head is fitted)."""


CONFIG = TRPOConfig


def check(cfg: TRPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break (sizes: grue.engine_config.OnPolicyConfig.check_sizes)."""
    cfg.check_sizes(world_size)
    for name in ("cg_max_steps", "line_search_max_iter", "n_critic_updates"):
        if getattr(cfg, name) < 1:
            raise GrueError(f"trpo.{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.max_kl <= 0 or not 0 < cfg.line_search_shrinking_factor < 1:
        raise GrueError("trpo.max_kl must be positive and trpo.line_search_shrinking_factor in (0, 1)")


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with TRPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward, KL controller;
    #    the optimizer holds the critic alone (the policy moves by the trust-region step).
    session = start_session(cfg, resume_dir, check=check, optimize=("critic",), show=show)
    algo: TRPOConfig = session.algo

    with session.progress(show):
        for _ in session.iterations():
            # 1-2. Prompts and rollout (rollout_size tokens or completions, as PPO); reference and critic forwards.
            batch = collect_iteration(session)

            # 3-5. Scores; per-token rewards -beta * KL_t plus the score at the last token; GAE advantages and returns.
            scored = score_and_advantages(session, batch, session.kl.coef)
            rollout = scored.rollout
            session.lap("rollout")

            # 6. Policy: one trust-region step on the whole rollout (conjugate gradient, backtracking line search).
            adv = normalize(scored.advantages, rollout.response_mask) if algo.normalize_advantage else scored.advantages
            stats = policy_step(session, rollout, adv)

            # 7. Critic: n_critic_updates passes of minibatches of the value loss, with its own optimizer.
            stats.update(fit_critic(session, rollout, scored.advantages, scored.returns))
            session.lap("update")

            # 8. KL controller on the mean per-token KL to the reference over all processes; log, show, checkpoint.
            session.end_iteration(iteration_metrics(session, scored, stats), scored.samples())
    return session.finish()


def flat_grad(y: torch.Tensor, params: list[torch.Tensor], **kwargs) -> torch.Tensor:
    """``d y / d params`` as one vector (P,), zeros for parameters ``y`` does not depend on."""
    grads = torch.autograd.grad(y, params, allow_unused=True, **kwargs)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def kl_to_old(old_logp: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of KL(old || new) of the next-token distributions: log-probs (B,T,K) over the
    vocabulary or a stored support (-inf outside it, in both), mask (B,T) -> ``mean_t sum_k p_old (log p_old - log p)``."""
    diff = (old_logp - logp).masked_fill(torch.isinf(old_logp), 0.0)
    return masked_mean((old_logp.exp() * diff).sum(-1), mask)


def policy_step(session: Session, rollout: Rollout, adv: torch.Tensor) -> dict[str, torch.Tensor]:
    """The trust-region step on the rollout with advantages ``adv`` (B,T); returns its statistics.

    Gradients, Fisher-vector products and line-search values are averaged over processes, so every
    process takes the same step. autograd.grad on the unwrapped policy: DDP syncs only in backward()."""
    acc = session.accelerator
    algo: TRPOConfig = session.algo
    policy = acc.unwrap_model(session.policy)
    params = [p for p in policy.parameters() if p.requires_grad]
    mask, ids, T = rollout.response_mask, rollout.response_ids, rollout.response_ids.shape[1]
    inputs = rollout_inputs(session, rollout)

    support = None if algo.policy_distribution == "full" else rollout.support

    def log_softmax() -> torch.Tensor:
        """The policy's distribution at each response position (B,T,V), or over the stored support (B,T,K)."""
        # the math attention kernel: fused (flash) kernels have no double backward
        with acc.autocast(), sdpa_kernel(SDPBackend.MATH):
            logits, _ = policy_forward(policy, inputs, T, session.seq2seq)
        if algo.policy_distribution == "full":
            return torch.log_softmax(logits.float(), -1)
        return warped_log_softmax(
            logits,
            support,
            temperature=session.gen.temperature,
            eos_id=session.tokenizer.eos_token_id,
            min_new_tokens=session.gen.min_new_tokens,
        )

    def surrogate(logp_all: torch.Tensor) -> torch.Tensor:
        return masked_mean(adv * torch.exp(token_logprobs_in(logp_all, ids, support) - old), mask)

    # (a) One forward at the old parameters: the surrogate's gradient g, and the KL's gradient with its graph.
    logp_all = log_softmax()
    old_all = logp_all.detach()
    old = token_logprobs_in(old_all, ids, support)
    objective = surrogate(logp_all)
    g = acc.reduce(flat_grad(objective, params, retain_graph=True), "mean")
    kl_grad = flat_grad(kl_to_old(old_all, logp_all, mask), params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:  # (F + damping I) v, F the Hessian of the mean KL at the old parameters
        return acc.reduce(flat_grad(kl_grad.dot(v), params, retain_graph=True), "mean") + algo.cg_damping * v  # noqa: F821 (del below; fvp is done by then)

    # (b) Direction F^-1 g by conjugate gradient, scaled to the boundary 0.5 x^T F x = max_kl.
    direction = conjugate_gradient(fvp, g, algo.cg_max_steps)
    step = max_step_size(direction, fvp(direction), algo.max_kl) * direction
    entropy = masked_mean(-(old_all.exp() * old_all.masked_fill(torch.isinf(old_all), 0.0)).sum(-1), mask)
    base = acc.reduce(objective.detach(), "mean")
    del logp_all, kl_grad, objective

    # (c) Backtracking line search from the full step; the old parameters back if no fraction is accepted.
    start = parameters_to_vector(params).detach().clone()

    @torch.no_grad()
    def try_step(fraction: float) -> tuple[float, float]:
        vector_to_parameters(start + fraction * step, params)
        logp = log_softmax()
        return float(acc.reduce(surrogate(logp), "mean") - base), float(
            acc.reduce(kl_to_old(old_all, logp, mask), "mean")
        )

    result = backtracking_line_search(
        try_step, algo.max_kl, algo.line_search_shrinking_factor, algo.line_search_max_iter
    )
    if not result.accepted:
        with torch.no_grad():
            vector_to_parameters(start, params)
    as_t = lambda x: torch.tensor(float(x), device=session.device)  # noqa: E731
    return {
        "loss/policy": as_t(-(float(base) + result.improvement)),
        "policy/entropy": entropy.detach(),
        "trpo/kl": as_t(result.kl),
        "trpo/accepted": as_t(result.accepted),
        "trpo/step_fraction": as_t(result.fraction),
    }


def fit_critic(
    session: Session, rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``n_critic_updates`` passes of shuffled minibatches (tokens or completions) of the value MSE, each one
    step of the critic's optimizer; returns the mean ``loss/value``."""
    algo: TRPOConfig = session.algo
    return optimizer_steps(
        session,
        rollout,
        rollout.response_mask,
        algo.batch_unit,
        algo.minibatch_size,
        algo.n_critic_updates,
        advantages,
        returns,
        critic_loss,
    )


def critic_loss(
    session: Session, rollout: Rollout, sel: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, denom
) -> tuple[torch.Tensor, dict]:
    """Value MSE of one micro-batch's tokens ``sel`` over the step's ``denom`` (grue.onpolicy.LossFn; the advantages
    are not used). A shared critic's head reads the policy's hidden states without gradient: the critic's fit
    never moves the policy."""
    T = rollout.response_ids.shape[1]
    inputs = rollout_inputs(session, rollout)
    policy = session.accelerator.unwrap_model(session.policy)
    with session.accelerator.autocast():
        hidden = None
        if session.algo.critic == "shared":
            with torch.no_grad():
                _, hidden = policy_forward(policy, inputs, T, session.seq2seq, want_hidden=True)
        values = values_of(session, policy, inputs, T, hidden).float()
    loss, _ = value_loss(values, rollout.values, returns, sel, None, denom)
    return loss, {"loss/value": loss}
