"""Gradient checkpointing (``ppo.gradient_checkpointing``, ``supervised.gradient_checkpointing``): each transformer
layer's activations are recomputed in the backward pass instead of stored, for models whose update does not fit.

transformers checkpoints a layer only while its module is in training mode, and turns the KV cache off there. grue's
RL policies stay in eval mode (no dropout, a cached sampler), so ``training_forward`` switches them to training mode
for the update's forward alone; with every dropout at 0 (grue.models.disable_dropout) the two modes compute the same
function, and the numbers are those of the stored-activation backward (tests/test_memory.py).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def checkpointable(model: torch.nn.Module | None) -> torch.nn.Module | None:
    """The transformers model inside ``model`` that can checkpoint its layers: itself, a separate critic's trunk, or None."""
    for m in (model, getattr(model, "trunk", None), getattr(model, "module", None)):
        if m is not None and hasattr(m, "gradient_checkpointing_enable"):
            return m
    return None


def enable_checkpointing(*models: torch.nn.Module | None) -> None:
    """Turn on layer checkpointing (non-reentrant: it works with frozen inputs and mixed precision) where a model can."""
    for m in filter(None, map(checkpointable, models)):
        if hasattr(m, "activation_checkpointing_enable"):  # transformers 5.x's name (the old one warns there)
            m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:  # transformers 4.x
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


@contextlib.contextmanager
def training_forward(models: list[torch.nn.Module | None], on: bool) -> Iterator[None]:
    """With ``on``: ``models`` in training mode inside the block (so that their layers checkpoint), eval mode after."""
    models = [m for m in models if m is not None] if on else []
    for m in models:
        m.train()
    try:
        yield
    finally:
        for m in models:
            m.eval()
