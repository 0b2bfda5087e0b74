"""The settings every RL algorithm shares, and the one check of their sizes: the engine's side of its contract.

An algorithm's config subclasses ``OnPolicyConfig`` (directly, or through ``grue.onpolicy.ActorCriticConfig`` or
``grue.grouped.GroupConfig``) and re-declares only the fields whose default or docstring it changes. The engine
(grue.session, grue.onpolicy, grue.grouped, grue.stability) reads these names as typed attributes.

A setting the engine reads that not every algorithm offers is a class attribute here (``ClassVar``), fixed at the
value an algorithm without it behaves by (no critic, AdamW, no entropy bonus, ...); an algorithm that offers it
re-declares it as a field, which ``--set`` and config.yaml then see. The YAML section of a config is its class
name without ``Config``, lower-cased (``PPOConfig``: ``ppo``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from grue.errors import GrueError

SIZES = ("iterations", "rollout_size", "rollout_batch_size", "minibatch_size", "grad_accum", "epochs")
"""The counts that must be at least 1, where a config has them."""


@dataclass
class OnPolicyConfig:
    """The hyper-parameters every RL algorithm of grue has (defaults: the GRUE paper's IMDB PPO)."""

    iterations: int = 50
    """Rollout-and-update iterations."""
    rollout_size: int = 1280
    """Per iteration, over all processes: what one rollout holds (generated tokens or completions)."""
    rollout_batch_size: int = 64
    """Prompts per generate call, per process."""
    lr: float = 1e-6
    """AdamW learning rate (policy and critic)."""
    adam_eps: float = 1e-8
    """AdamW epsilon (RL4LMs' policies: torch's default 1e-8; grue before v0.2: 1e-5)."""
    weight_decay: float = 1e-6
    """AdamW weight decay, on every parameter whose name contains none of ``bias``, ``LayerNorm.bias``,
    ``LayerNorm.weight`` (RL4LMs' rule; GPT-2's ``ln_*`` and T5's ``layer_norm`` weights do not match it,
    so they are decayed, as in the paper). 0 turns it off."""
    policy_distribution: str = field(default="full", metadata={"choices": ("full", "sampled")})
    """The distribution of the policy's log-probs in the loss (the ratio) and of the entropy. ``full`` (RL4LMs):
    ``log_softmax`` of the logits over the whole vocabulary, whatever top-k / top-p / min-length the sampler
    applied. ``sampled`` (grue's choice): the warped distribution actually sampled from, renormalised over each
    step's stored support (grue.sampling). The KL to the reference always uses the full softmax."""
    kl_coef: float = 0.1
    """Initial coefficient beta of the per-token KL penalty to the reference."""
    kl_estimator: str = field(default="k1", metadata={"choices": ("k1", "k2", "k3")})
    """Per-token KL estimator (see grue.kl.kl_estimate)."""

    # Read by the engine; fixed for an algorithm that does not offer them as settings.
    kl_target: ClassVar[float | None] = None
    """Target mean per-token KL of the adaptive KL controller; None keeps beta fixed."""
    critic: ClassVar[str] = "none"
    """The value model: ``none``, ``separate`` (its own trunk) or ``shared`` (a head on the policy)."""
    optimizer: ClassVar[str] = "adamw"
    """The optimizer of the trained parameters (grue.optim.make_optimizer)."""
    gradient_checkpointing: ClassVar[bool] = False
    """Recompute activations in the update's backward pass (grue.memory)."""
    ent_coef: ClassVar[float] = 0.0
    """Weight of the entropy bonus; at 0 the entropy is logged, not differentiated."""
    normalize_advantage: ClassVar[bool] = False
    """Normalise the advantages of each optimizer step over its tokens."""

    @classmethod
    def section(cls) -> str:
        """The config section (and algorithm) name: the class name without ``Config``, lower-cased."""
        return cls.__name__.removesuffix("Config").lower()

    def check_sizes(self, world_size: int) -> None:
        """Reject counts that cannot run on ``world_size`` processes, one line naming the setting and the rule:
        every count at least 1, the rollout divisible by the processes, the minibatch dividing the per-process
        rollout, and ``grad_accum`` dividing the minibatch (or, without minibatches, the per-process rollout)."""
        sec, have = self.section(), {f.name for f in dataclasses.fields(self)}
        for name in SIZES:
            if name in have and getattr(self, name) < 1:
                raise GrueError(f"{sec}.{name} must be at least 1, got {getattr(self, name)}")
        if self.rollout_size % world_size:
            raise GrueError(
                f"{sec}.rollout_size ({self.rollout_size}) must be divisible by the number of processes ({world_size})"
            )
        # what one optimizer step takes, and its name: a minibatch, or (without minibatches) the per-process rollout
        step = self.rollout_size // world_size
        whole = f"the per-process rollout ({step})"
        if "minibatch_size" in have:
            if self.minibatch_size > step or step % self.minibatch_size:
                raise GrueError(f"{sec}.minibatch_size ({self.minibatch_size}) must divide {whole}")
            step, whole = self.minibatch_size, f"{sec}.minibatch_size ({self.minibatch_size})"
        if "grad_accum" in have and step % self.grad_accum:
            raise GrueError(f"{sec}.grad_accum ({self.grad_accum}) must divide {whole}")
