"""Optimizers as the paper built them: which parameters get weight decay, and AdamW or RMSprop."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

# RL4LMs' actor-critic policies (LMActorCriticPolicy._setup_optimizer) exempt a parameter from weight
# decay when its name contains one of these strings.
RL4LMS_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")


def groups_by_name(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two parameter groups, RL4LMs' rule: ``weight_decay`` on every trainable parameter whose name
    contains none of ``RL4LMS_NO_DECAY``, 0 on the others. Names that do not match (GPT-2's
    ``ln_1.weight``, T5's ``layer_norm.weight``) are decayed, as they were in RL4LMs. Empty groups are left out."""
    decay, no_decay = [], []
    for name, p in named:
        if p.requires_grad:
            (no_decay if any(key in name for key in RL4LMS_NO_DECAY) else decay).append(p)
    return [
        g
        for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
        if g["params"]
    ]


def groups_like_trainer(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups, the Hugging Face Trainer's rule (the paper's supervised runs): ``weight_decay``
    on every trainable parameter except biases and the parameters of ``torch.nn.LayerNorm`` modules."""
    norm_params = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if "bias" in name or id(p) in norm_params else decay).append(p)
    return [
        g
        for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
        if g["params"]
    ]


def fusable(groups: list[dict]) -> bool:
    """Whether torch's fused AdamW kernel takes every parameter: floating point, on the CPU or a CUDA device."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])


def make_optimizer(kind: str, groups: list[dict], lr: float, eps: float) -> torch.optim.Optimizer:
    """``adamw`` (torch defaults: betas 0.9, 0.999) or ``rmsprop`` (alpha 0.99, as stable-baselines3's A2C).

    AdamW runs torch's fused kernel where it can (``fusable``): the same update, one pass over each tensor
    instead of about ten (10x faster on a CPU, where the per-parameter loop took a quarter of a GPT-2 update);
    its parameters differ from the loop's by float rounding (a few ulp, tests/test_optim.py)."""
    if kind == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.99, eps=eps)
    return torch.optim.AdamW(groups, lr=lr, eps=eps, fused=fusable(groups) or None)
