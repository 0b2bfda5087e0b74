"""TRPO's trust-region step (Schulman et al. 2015): conjugate gradient on Fisher-vector products and a
backtracking line search. Small pure functions over flat parameter vectors (P,); the model-facing parts
(Fisher-vector products by double backward, putting a vector into the parameters) live in
grue/algorithms/trpo.py.

The step solves ``F x = g`` for the surrogate's gradient ``g`` with the Fisher matrix ``F`` (the Hessian of
the mean KL to the old policy), scales it to the boundary of ``0.5 * x^T F x = max_kl``, then shrinks it
until the measured KL is below ``max_kl`` and the surrogate improved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch


def conjugate_gradient(
    mvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, max_steps: int, residual_tol: float = 1e-10
) -> torch.Tensor:
    """Approximate solution ``x`` (P,) of ``A x = b`` for a symmetric positive-definite ``A`` given as ``mvp(v) = A v``.

    Starts from ``x = 0`` (residual ``r = b``) and runs at most ``max_steps`` steps of
    ``alpha = r.r / p.Ap; x += alpha p; r -= alpha Ap; p = r + (r'.r' / r.r) p``, stopping early once
    ``r.r < residual_tol``. (RL4LMs' solver starts from ``1e-4 * randn``; from 0 the step is deterministic.)
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r.dot(r)
    for _ in range(max_steps):
        if rr < residual_tol:
            break
        ap = mvp(p)
        alpha = rr / p.dot(ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def max_step_size(direction: torch.Tensor, f_direction: torch.Tensor, max_kl: float) -> float:
    """The scale ``beta`` that puts ``beta * d`` on the trust region's boundary: ``sqrt(2 max_kl / d^T F d)``.

    ``direction`` d (P,) and ``f_direction`` = F d (P,). The quadratic model of the KL of the step
    ``beta * d`` is ``0.5 beta^2 d^T F d``, equal to ``max_kl`` at this ``beta``. 0 when ``d^T F d <= 0``.
    """
    curvature = float(direction.dot(f_direction))
    return math.sqrt(2.0 * max_kl / curvature) if curvature > 0 else 0.0


def accepts(kl: float, improvement: float, max_kl: float) -> bool:
    """The line search's rule (RL4LMs' TRPO): a step is taken when its measured mean KL to the old policy is
    below ``max_kl`` and it raised the surrogate objective (``improvement > 0``)."""
    return kl < max_kl and improvement > 0


@dataclass
class LineSearch:
    """The outcome: whether a step was accepted, its fraction of the full step (0 if none), the surrogate's
    improvement and the measured KL at that fraction (0 and 0 if none), and how many fractions were tried."""

    accepted: bool
    fraction: float
    improvement: float
    kl: float
    tries: int


def backtracking_line_search(
    try_step: Callable[[float], tuple[float, float]], max_kl: float, shrink: float, max_iter: int
) -> LineSearch:
    """Try the fractions ``1, shrink, shrink^2, ...`` (at most ``max_iter``) of the full step, in order, and stop
    at the first that ``accepts``. ``try_step(fraction)`` puts ``old + fraction * step`` into the model and returns
    ``(improvement, kl)`` there. On failure the caller puts the old parameters back."""
    fraction = 1.0
    for i in range(max_iter):
        improvement, kl = try_step(fraction)
        if accepts(kl, improvement, max_kl):
            return LineSearch(True, fraction, improvement, kl, i + 1)
        fraction *= shrink
    return LineSearch(False, 0.0, 0.0, 0.0, max_iter)
