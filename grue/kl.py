"""KL estimates between the policy and the frozen reference, and the KL coefficient controllers."""

from __future__ import annotations

import torch


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' log-probs.

    (B,T), (B,T) -> (B,T), with ``d = logprobs - ref_logprobs``:
    - ``k1``: ``d`` (unbiased, can be negative; the paper's choice),
    - ``k2``: ``d^2 / 2``,
    - ``k3``: ``exp(-d) - 1 + d`` (unbiased and non-negative).
    """
    d = logprobs - ref_logprobs
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d * d
    if kind == "k3":
        return torch.expm1(-d) + d
    raise ValueError(f"unknown KL estimator '{kind}'; accepted: k1, k2, k3")


def adaptive_kl_coef(coef: float, kl: float, target: float, rate: float = 0.1, clip: float = 0.2) -> float:
    """One step of the adaptive KL controller (Ziegler et al. 2019, as used by the GRUE paper).

    ``coef * (1 + rate * clip((kl - target) / target, -clip, clip))``, where ``kl`` is the
    mean per-token KL of the last rollout.
    """
    error = min(max((kl - target) / target, -clip), clip)
    return coef * (1.0 + rate * error)


class KLController:
    """The KL coefficient ``beta``: fixed when ``target`` is None, adaptive otherwise."""

    def __init__(self, coef: float, target: float | None = None):
        self.coef = float(coef)
        self.target = target

    def update(self, kl: float) -> None:
        """Move ``coef`` after a rollout whose mean per-token KL was ``kl``."""
        if self.target is not None:
            self.coef = adaptive_kl_coef(self.coef, kl, self.target)

    def state_dict(self) -> dict:
        return {"coef": self.coef, "target": self.target}

    def load_state_dict(self, state: dict) -> None:
        self.coef, self.target = float(state["coef"]), state["target"]
