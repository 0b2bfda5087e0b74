"""Stability warnings, checked after every iteration, and the stop on non-finite losses or gradients.

Each check is a pure function of the run's history (metrics.jsonl's rows, oldest first, the iteration just
finished last) and its threshold; it returns a one-line message when the warning is raised, else None.
``warnings_of`` runs them all: the session logs each as ``warnings/<name>`` (1 raised, 0 not) and the live
display names the raised ones. A warning never stops a run; a non-finite loss or gradient does
(``check_finite``), before the optimizer step, so the last checkpoint holds the last good model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from grue.errors import GrueError, option, resume_command

NAMES = ("negative_kl", "kl_over_target", "entropy_collapse", "clipfrac_high", "length_hacking", "value_loss_growing")
"""The warnings, in the order they are checked and shown; metrics.jsonl logs ``warnings/<name>``."""


@dataclass
class Thresholds:
    """What each check compares with (run.warn_* settings; the defaults are the issue's numbers)."""

    negative_kl: float = -0.01
    kl_target: float | None = None  # the algorithm's adaptive-KL target; None: no target, no check
    kl_factor: float = 10.0
    entropy_fraction: float = 0.25
    clipfrac: float = 0.3
    min_length: float = 1.0
    max_length: float = 48.0
    window: int = 5
    value_loss_rises: int = 10


def thresholds_of(cfg) -> Thresholds:
    """An RL run's thresholds (``cfg``: a grue.config.Config whose algorithm's config is a
    grue.engine_config.OnPolicyConfig): its ``run.warn_*`` settings, the algorithm's ``kl_target`` (None: a fixed
    coefficient), the response length limits."""
    r, g = cfg.run, cfg.generation
    return Thresholds(
        r.warn_negative_kl,
        cfg.algo.kl_target,
        r.warn_kl_factor,
        r.warn_entropy_fraction,
        r.warn_clipfrac,
        max(g.min_new_tokens, 1),
        g.max_new_tokens,
        r.warn_length_window,
        r.warn_value_loss_rises,
    )


def _series(history: list[dict], key: str) -> list[float]:
    """``key``'s values in the rows that have it, oldest first."""
    return [float(m[key]) for m in history if key in m and m[key] is not None]


def negative_kl(history: list[dict], limit: float = -0.01) -> str | None:
    """The latest ``kl/mean`` < ``limit``. The k1 estimate is ``E_q[log p(a) - log r(a)]`` over tokens sampled from
    q, the distribution the rollout samples from (top-k, top-p, NLPO's mask, the EOS ban), with p and r the raw
    policy and reference; it splits into ``E_q[log q - log r]`` (a KL, >= 0) plus ``kl/support_logmass``
    (``E_q[log p - log q]``: the log of the raw policy's probability on the tokens it may sample, <= 0). When the
    first part is not negative, the estimate is below zero because the raw policy moved probability out of the
    sampled support (measured on the README's Supervised+NLPO smoke run: -0.93 = 1.49 - 2.42, while the exact KL
    of the raw distributions was +0.62); otherwise the log-probs the rollout was sampled with and those it is
    scored with disagree."""
    kl = _series(history[-1:], "kl/mean")
    if not kl or kl[0] >= limit:
        return None
    logmass = _series(history[-1:], "kl/support_logmass")
    if logmass and kl[0] - logmass[0] >= 0:
        return (
            f"mean KL {kl[0]:.4g} < {limit:g}: the raw policy puts only {math.exp(logmass[0]):.1%} (geometric mean) of "
            f"its probability on the tokens it samples from, so the KL estimate on them is biased low"
        )
    return f"mean KL {kl[0]:.4g} < {limit:g}: sampling and scoring log-probs disagree"


def kl_over_target(history: list[dict], target: float | None, factor: float = 10.0) -> str | None:
    """The latest ``kl/mean`` > ``factor * target`` (the adaptive controller's target; None: no check)."""
    kl = _series(history[-1:], "kl/mean")
    if target and kl and kl[0] > factor * target:
        return f"mean KL {kl[0]:.4g} > {factor:g} x its target {target:g}"
    return None


def entropy_collapse(history: list[dict], fraction: float = 0.25) -> str | None:
    """The latest ``policy/entropy`` < ``fraction`` x the first iteration's: the policy has become nearly deterministic."""
    ent = _series(history, "policy/entropy")
    if len(ent) >= 2 and ent[0] > 0 and ent[-1] < fraction * ent[0]:
        return f"policy entropy {ent[-1]:.4g} < {fraction:g} x its start {ent[0]:.4g}"
    return None


def clipfrac_high(history: list[dict], limit: float = 0.3) -> str | None:
    """The latest ``policy/clipfrac`` > ``limit``: the update moves the policy too far from the rollout's."""
    cf = _series(history[-1:], "policy/clipfrac")
    if cf and cf[0] > limit:
        return f"clip fraction {cf[0]:.3g} > {limit:g}: updates too large (lower lr or epochs)"
    return None


def length_hacking(history: list[dict], min_length: float, max_length: float, window: int = 5) -> str | None:
    """Over the last ``window`` iterations the reward rose (``reward/mean`` latest > ``window`` iterations ago)
    while ``response/length`` moved onto the shortest or the longest allowed response (within half a token of
    ``min_length`` or ``max_length``, and not there at the window's start): the reward is likely being won
    through length. No check while the two limits are equal (every response has the same length)."""
    rows = [m for m in history if "reward/mean" in m and "response/length" in m][-window:]
    if max_length <= min_length or len(rows) < window:
        return None
    r0, r1 = rows[0]["reward/mean"], rows[-1]["reward/mean"]
    l0, l1 = rows[0]["response/length"], rows[-1]["response/length"]
    for bound, name in ((min_length, "minimum"), (max_length, "maximum")):
        if r1 > r0 and abs(l1 - bound) <= 0.5 < abs(l0 - bound):
            return (
                f"reward rose {r0:.4g} -> {r1:.4g} while response length went {l0:.3g} -> {l1:.3g}, the {name}: "
                "likely reward hacking"
            )
    return None


def value_loss_growing(history: list[dict], rises: int = 10) -> str | None:
    """``loss/value`` grew ``rises`` iterations in a row (``rises + 1`` rows, each above the one before): the critic diverges."""
    vl = _series(history, "loss/value")[-(rises + 1) :]
    if len(vl) == rises + 1 and all(b > a for a, b in zip(vl, vl[1:])):
        return f"value loss grew {rises} iterations in a row ({vl[0]:.4g} -> {vl[-1]:.4g})"
    return None


def warnings_of(history: list[dict], t: Thresholds) -> dict[str, str | None]:
    """Every check on ``history``: name -> message when raised, None when not (in ``NAMES`` order)."""
    return {
        "negative_kl": negative_kl(history, t.negative_kl),
        "kl_over_target": kl_over_target(history, t.kl_target, t.kl_factor),
        "entropy_collapse": entropy_collapse(history, t.entropy_fraction),
        "clipfrac_high": clipfrac_high(history, t.clipfrac),
        "length_hacking": length_hacking(history, t.min_length, t.max_length, t.window),
        "value_loss_growing": value_loss_growing(history, t.value_loss_rises),
    }


def as_metrics(found: dict[str, str | None]) -> dict[str, int]:
    """``warnings/<name>``: 1 raised, 0 not, for metrics.jsonl."""
    return {f"warnings/{k}": int(v is not None) for k, v in found.items()}


def raised(metrics: dict) -> list[str]:
    """The names of the warnings a metrics row raised."""
    return [k.removeprefix("warnings/") for k, v in metrics.items() if k.startswith("warnings/") and v]


def not_finite(where: str, names: list[str], run_dir: Path, task: str, last_checkpoint: str | None) -> GrueError:
    """The one-line error of a run stopped because the ``names`` values were not finite at ``where``
    (``last_checkpoint``: e.g. "iteration 3", None when the run has none yet)."""
    if last_checkpoint is None:
        after = "no checkpoint was saved before it"
    else:
        after = (
            f"the last checkpoint ({last_checkpoint}) is intact: resume with `{resume_command(task, str(run_dir))}`, or "
            f"start a new run from it with {option('init_from', str(run_dir))} and other settings"
        )
    return GrueError(
        f"{where}: {', '.join(names)} not finite (nan or inf) before the optimizer step; the run stopped "
        f"and the model was not updated (a learning rate or reward scale too large?); {after}"
    )


def nonfinite_names(values: dict) -> list[str]:
    """The keys of ``values`` (floats or tensors) that hold a nan or an inf."""
    import torch

    return [k for k, v in values.items() if not bool(torch.isfinite(torch.as_tensor(v, dtype=torch.float32)).all())]


def check_finite(acc, values: dict, params, where: str, run_dir: Path, task: str, norm: str | None = None) -> None:
    """Before an optimizer step: raise ``not_finite`` if any of ``values`` (the step's losses, its gradient norm)
    or any gradient of ``params`` is nan or inf on any process (all processes then stop together).

    ``norm``: the key of ``values`` that holds the gradient norm over ``params``. That norm is nan or inf whenever
    a gradient is, so the gradients are then not read a second time (a pass over every gradient: 0.7 s of a
    GPT-2-small update), and a non-finite norm is reported as the norm and the gradients."""
    import torch

    from grue.checkpoint import latest, load_state

    names = nonfinite_names(values)
    if norm is not None:
        if norm in names:
            names.append("gradients")
    else:
        grads = [p.grad.detach() for p in params if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            names.append("gradients")
    if acc.num_processes > 1:
        if acc.reduce(torch.tensor(float(bool(names)), device=acc.device), "sum").item() > 0 and not names:
            names = ["values on another process"]
    if not names:
        return
    try:
        state = load_state(latest(Path(run_dir)))
        last = next(f"{unit} {state[unit]}" for unit in ("iteration", "epoch") if unit in state)
    except (GrueError, OSError, StopIteration):
        last = None
    raise not_finite(where, names, run_dir, task, last)
