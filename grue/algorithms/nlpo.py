"""NLPO: Natural Language Policy Optimization (Ramamurthy et al., ICLR 2023), top to bottom.

NLPO is PPO whose action space at every step is the top-p set (``top_mask``) of a
*masking policy*: a frozen copy of the policy, re-synced from the current policy every
``mask_update_interval`` iterations. Rollouts sample from the policy's logits with the
other tokens set to -inf before any top-k/top-p warper; each step's allowed support is
stored with the rollout (token ids), so the PPO ratio and the entropy use the masked,
renormalised distribution, while the KL penalty uses the unmasked ones.

The masking policy is refreshed in place, and the sampler reads it from the same object
on every rollout: the original implementation refreshed a copy that its logits
processor never saw, so its mask never moved. ``tests/test_nlpo.py`` checks that the
sampled supports follow the refreshed copy. ``mask_refresh: paper`` reproduces the original
behaviour (the masking policy stays the initial one, in training and in the checkpoint that
evaluation reads), for rows comparable with the paper's NLPO rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grue import checkpoint as ckpt
from grue.advantages import masked_mean
from grue.algorithms import ppo
from grue.config import Config
from grue.errors import GrueError
from grue.models import copy_sharing_frozen, freeze
from grue.onpolicy import collect_iteration, iteration_metrics, score_and_advantages
from grue.precision import frozen_dtype
from grue.rollout import MaskSettings
from grue.run_setup import start_session
from grue.session import Session
from grue.run_log import cleans_up_unstarted


@dataclass
class NLPOConfig(ppo.PPOConfig):
    """Every PPO hyper-parameter (grue.algorithms.ppo.PPOConfig), plus the action mask."""

    policy_distribution: str = field(default="sampled", metadata={"choices": ("sampled",)})
    """NLPO's ratio and entropy use the masked, renormalised support it sampled from (RL4LMs' NLPO read its
    action mask from the processed logits, which include the top-k warper and the min-length EOS ban)."""
    top_mask: float = 0.9
    """The masking policy's top-p: the smallest set of tokens whose probability exceeds it is allowed (paper 0.9; 0.5 for translation)."""
    mask_update_interval: int = 5
    """Iterations between re-syncs of the masking policy from the current policy (paper: 5 for IMDB, 20 otherwise)."""
    min_tokens_to_keep: int = 100
    """The allowed set never has fewer tokens than this."""
    mask_refresh: str = field(default="periodic", metadata={"choices": ("periodic", "paper")})
    """``periodic``: the masking policy is re-synced every ``mask_update_interval`` iterations and the sampler uses
    the new copy; evaluation uses the checkpoint's copy (grue's NLPO). ``paper``: NLPO as the paper's rows were made
    (RL4LMs 97df0bd): the sampler's masking policy is never refreshed (its logits processor kept the first copy), so
    training and evaluation use the initial masking policy. The leaderboard names these runs "NLPO (as published)"."""


CONFIG = NLPOConfig


def check(cfg: NLPOConfig, world_size: int) -> None:
    ppo.check(cfg, world_size)
    if not 0.0 < cfg.top_mask <= 1.0:
        raise GrueError(f"nlpo.top_mask must be in (0, 1], got {cfg.top_mask}")
    if cfg.mask_update_interval < 1 or cfg.min_tokens_to_keep < 1:
        raise GrueError("nlpo.mask_update_interval and nlpo.min_tokens_to_keep must be at least 1")


def masking_policy(session: Session) -> MaskSettings:
    """A frozen copy of the current policy, and the mask settings. With LoRA the copy shares the frozen base
    weights and holds a snapshot of the policy's adapters: no second copy of the base. Under bf16 (and
    ``run.frozen_bf16``) the copy is stored in bf16, and each re-sync rounds the policy's weights to it."""
    policy = session.accelerator.unwrap_model(session.policy)
    model = freeze(copy_sharing_frozen(policy, policy))
    if (dtype := frozen_dtype(session.cfg.run)) is not None:  # a bf16 run keeps it in bf16 (run.frozen_bf16)
        model.to(dtype)
    always = torch.tensor(sorted(set(session.tokenizer.all_special_ids)), dtype=torch.long, device=session.device)
    return MaskSettings(model, session.algo.top_mask, session.algo.min_tokens_to_keep, always)


def refresh_due(iteration: int, interval: int) -> bool:
    """Whether the masking policy is re-synced after collecting ``iteration``'s rollout (1-based) and before training
    on it: every ``interval`` iterations, as RL4LMs' NLPO scheduled it (rl4lms/algorithms/nlpo/nlpo.py, ``learn``).
    The next rollout then samples under the policy of ``iteration - 1`` updates."""
    return iteration % interval == 0


def refresh(session: Session, mask: MaskSettings) -> None:
    """Copy the current policy's weights into the masking policy, in place (the sampler holds this object)."""
    mask.model.load_state_dict(session.accelerator.unwrap_model(session.policy).state_dict())


def start(cfg: Config, resume_dir: str | None, show: bool = False) -> tuple[Session, MaskSettings]:
    """The PPO session plus the masking policy, restored from the checkpoint when resuming."""
    session = start_session(cfg, resume_dir, check=check, show=show)
    mask = masking_policy(session)
    session.extra_modules["mask_policy"] = mask.model
    if session.resumed_state:
        session.load_module(ckpt.latest(session.run_dir), "mask_policy", mask.model)
    return session, mask


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Train with NLPO; returns the run summary (also written to summary.json)."""
    # 0. Set up: the PPO session (policy, reference, critic, data, reward, KL controller) and the masking policy.
    session, mask = start(cfg, resume_dir, show)
    algo: NLPOConfig = session.algo

    with session.progress(show):
        for it in session.iterations():
            # 1-2. Prompts and rollout (rollout_size tokens or completions, as PPO) inside the masking
            #      policy's top-p sets; reference and critic forwards.
            batch = collect_iteration(session, mask=mask)
            rollout = batch.rollout

            # 3. Masking policy: every mask_update_interval iterations, re-sync it from the current policy
            #    (before this rollout's update), in place, so the next rollout samples inside the new mask.
            #    With mask_refresh: paper it is never re-synced (the original sampler's mask never moved).
            if algo.mask_refresh == "periodic" and refresh_due(it, algo.mask_update_interval):
                refresh(session, mask)

            # 4-6. Scores; per-token rewards -beta * KL_t (unmasked distributions) plus the score
            #      at the last token (not for a cut episode); GAE advantages and returns.
            scored = score_and_advantages(session, batch, session.kl.coef)
            session.lap("rollout")

            # 7. PPO update on the masked, renormalised distribution (the stored supports).
            stats = ppo.update(session, rollout, scored.advantages, scored.returns)
            session.lap("update")

            # 8. KL controller; log (with the mask's mean support size), show, checkpoint (the masking policy is part of it).
            metrics = iteration_metrics(session, scored, stats)
            sizes = (rollout.support >= 0).sum(-1).float()
            metrics["mask/support_size"] = session.accelerator.reduce(
                masked_mean(sizes, rollout.response_mask), "mean"
            ).item()
            session.end_iteration(metrics, scored.samples())
    return session.finish()
