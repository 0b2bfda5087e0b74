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

import time
from dataclasses import dataclass, field

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from grue.advantages import masked_mean, normalize
from grue.config import Config
from grue.errors import GrueError
from grue.kl import KLController
from grue.losses import value_loss
from grue.onpolicy import collect_iteration, iteration_metrics, mean_kl, optimizer_steps, score_and_advantages, sync_clock, values_of
from grue.rollout import lm_inputs, policy_forward
from grue.sampling import token_logprobs_in, warped_log_softmax
from grue.session import Session, critic_kind, start_session
from grue.tracking import Display, cleans_up_unstarted
from grue.trust_region import backtracking_line_search, conjugate_gradient, max_step_size


@dataclass
class TRPOConfig:
    """TRPO hyper-parameters (grue's settings; the paper has no TRPO). The trust-region and critic defaults
    are RL4LMs 97df0bd's TRPO (rl4lms/algorithms/trpo/trpo.py ``__init__``); the rollout and reward ones the
    engine's PPO (the GRUE paper's IMDB settings)."""

    iterations: int = 50
    """Rollout-and-update iterations."""
    batch_unit: str = field(default="tokens", metadata={"choices": ("tokens", "completions")})
    """What ``rollout_size`` and ``minibatch_size`` count: generated tokens (RL4LMs' buffer) or whole completions (see PPOConfig)."""
    rollout_size: int = 1280
    """Per iteration, over all processes: tokens or completions (``batch_unit``); the paper's PPO: 10 envs x 128 steps."""
    rollout_batch_size: int = 64
    """Prompts per generate call, per process."""
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
    the ``sampled`` warped support, renormalised (see PPOConfig.policy_distribution)."""
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
    """The critic's AdamW weight decay, with the engine's rule of which parameters it skips (see PPOConfig)."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda (RL4LMs' TRPO gae_lambda 0.95)."""
    kl_coef: float = 0.1
    """Initial coefficient beta of the per-token KL penalty to the reference in the reward."""
    kl_target: float | None = 0.1
    """Target mean per-token KL of the adaptive controller; null keeps beta fixed."""
    kl_estimator: str = field(default="k1", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator in the reward (see grue.kl.kl_estimate)."""
    critic: str = field(default="separate", metadata={"choices": ("separate", "shared")})
    """separate: own copy of the policy trunk; shared: a value head on the policy's hidden states (only the head is fitted)."""


CONFIG = TRPOConfig


def check(cfg: TRPOConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break."""
    for name in ("iterations", "rollout_size", "rollout_batch_size", "cg_max_steps", "line_search_max_iter", "n_critic_updates"):
        if getattr(cfg, name) < 1:
            raise GrueError(f"trpo.{name} must be at least 1")
    if cfg.rollout_size % world_size:
        raise GrueError(f"trpo.rollout_size ({cfg.rollout_size}) must be divisible by the number of processes ({world_size})")
    per_proc = cfg.rollout_size // world_size
    if cfg.minibatch_size < 1 or cfg.minibatch_size > per_proc or per_proc % cfg.minibatch_size:
        raise GrueError(f"trpo.minibatch_size ({cfg.minibatch_size}) must divide the per-process rollout ({per_proc})")
    if cfg.max_kl <= 0 or not 0 < cfg.line_search_shrinking_factor < 1:
        raise GrueError("trpo.max_kl must be positive and trpo.line_search_shrinking_factor in (0, 1)")


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with TRPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), models, data, reward; the
    #    optimizer holds the critic alone (the policy moves by the trust-region step).
    s = start_session(cfg, resume_dir, check=check, optimize=("critic",), show=show)
    algo, acc = s.algo, s.accelerator
    kl_ctl = KLController(algo.kl_coef, algo.kl_target)
    if s.resumed_state:
        kl_ctl.load_state_dict(s.resumed_state["kl"])

    with Display(algo.iterations, s.start_iteration, f"{cfg.run.task} trpo", enabled=show and acc.is_main_process) as display:
        for it in range(s.start_iteration + 1, algo.iterations + 1):
            s.iteration = it
            # 1-2. Prompts and rollout (rollout_size tokens or completions, as PPO); reference and critic forwards.
            t0 = time.perf_counter()
            b = collect_iteration(s)

            # 3-5. Scores; per-token rewards -beta * KL_t plus the score at the last token; GAE advantages and returns.
            sc = score_and_advantages(s, b, kl_ctl.coef)
            r = sc.rollout
            t_rollout = time.perf_counter() - t0

            # 6. Policy: one trust-region step on the whole rollout (conjugate gradient, backtracking line search).
            t1 = time.perf_counter()
            adv = normalize(sc.advantages, r.response_mask) if algo.normalize_advantage else sc.advantages
            stats = policy_step(s, r, adv)

            # 7. Critic: n_critic_updates passes of minibatches of the value loss, with its own optimizer.
            stats.update(fit_critic(s, r, sc.advantages, sc.returns))
            sync_clock(s)
            t_update = time.perf_counter() - t1

            # 8. KL controller, on the mean per-token KL to the reference over all processes.
            kl_mean, coef_used = mean_kl(s, sc), kl_ctl.coef
            kl_ctl.update(kl_mean)

            # 9. Log, show, checkpoint (at once, then stop, when a signal asked).
            metrics = iteration_metrics(s, it, sc, stats, kl_mean, coef_used, t_rollout, t_update)
            s.log(metrics, b.examples, b.idx, sc.completions, sc.scores.tolist())
            display.update(metrics)
            s.checkpoint(it, {"kl": kl_ctl.state_dict()})
    return s.finish()


def flat_grad(y: torch.Tensor, params: list[torch.Tensor], **kwargs) -> torch.Tensor:
    """``d y / d params`` as one vector (P,), zeros for parameters ``y`` does not depend on."""
    grads = torch.autograd.grad(y, params, allow_unused=True, **kwargs)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def kl_to_old(old_logp: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of KL(old || new) of the next-token distributions: log-probs (B,T,K) over the
    vocabulary or a stored support (-inf outside it, in both), mask (B,T) -> ``mean_t sum_k p_old (log p_old - log p)``."""
    diff = (old_logp - logp).masked_fill(torch.isinf(old_logp), 0.0)
    return masked_mean((old_logp.exp() * diff).sum(-1), mask)


def policy_step(s: Session, r, adv: torch.Tensor) -> dict[str, torch.Tensor]:
    """The trust-region step on the rollout ``r`` with advantages ``adv`` (B,T); returns its statistics.

    Gradients, Fisher-vector products and line-search values are averaged over processes, so every
    process takes the same step. autograd.grad on the unwrapped policy: DDP syncs only in backward()."""
    algo, acc = s.algo, s.accelerator
    policy = acc.unwrap_model(s.policy)
    params = [p for p in policy.parameters() if p.requires_grad]
    mask, ids, T = r.response_mask, r.response_ids, r.response_ids.shape[1]
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)

    support = None if algo.policy_distribution == "full" else r.support

    def log_softmax() -> torch.Tensor:
        """The policy's distribution at each response position (B,T,V), or over the stored support (B,T,K)."""
        # the math attention kernel: fused (flash) kernels have no double backward
        with acc.autocast(), sdpa_kernel(SDPBackend.MATH):
            logits, _ = policy_forward(policy, inputs, T, s.seq2seq)
        if algo.policy_distribution == "full":
            return torch.log_softmax(logits.float(), -1)
        return warped_log_softmax(logits, support, temperature=s.gen.temperature, eos_id=s.tokenizer.eos_token_id,
                                  min_new_tokens=s.gen.min_new_tokens)

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
        return acc.reduce(flat_grad(kl_grad.dot(v), params, retain_graph=True), "mean") + algo.cg_damping * v

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
        return float(acc.reduce(surrogate(logp), "mean") - base), float(acc.reduce(kl_to_old(old_all, logp, mask), "mean"))

    result = backtracking_line_search(try_step, algo.max_kl, algo.line_search_shrinking_factor, algo.line_search_max_iter)
    if not result.accepted:
        with torch.no_grad():
            vector_to_parameters(start, params)
    as_t = lambda x: torch.tensor(float(x), device=s.device)  # noqa: E731
    return {"loss/policy": as_t(-(float(base) + result.improvement)), "policy/entropy": entropy.detach(),
            "trpo/kl": as_t(result.kl), "trpo/accepted": as_t(result.accepted), "trpo/step_fraction": as_t(result.fraction)}


def fit_critic(s: Session, r, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
    """``n_critic_updates`` passes of shuffled minibatches (tokens or completions) of the value MSE, each one
    step of the critic's optimizer; returns the mean ``loss/value``."""
    algo = s.algo
    return optimizer_steps(s, r, r.response_mask, algo.batch_unit, algo.n_critic_updates, advantages, returns, critic_loss)


def critic_loss(s: Session, r, sel: torch.Tensor, _adv, returns: torch.Tensor, denom) -> tuple[torch.Tensor, dict]:
    """Value MSE of one micro-batch's tokens ``sel`` over the step's ``denom``. A shared critic's head reads
    the policy's hidden states without gradient: the critic's fit never moves the policy."""
    T = r.response_ids.shape[1]
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, s.seq2seq, s.decoder_start)
    policy = s.accelerator.unwrap_model(s.policy)
    with s.accelerator.autocast():
        hidden = None
        if critic_kind(s.algo) == "shared":
            with torch.no_grad():
                _, hidden = policy_forward(policy, inputs, T, s.seq2seq, want_hidden=True)
        values = values_of(s, policy, inputs, T, hidden).float()
    loss, _ = value_loss(values, r.values, returns, sel, None, denom)
    return loss, {"loss/value": loss}
