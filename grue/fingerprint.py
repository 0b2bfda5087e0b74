"""The settings fingerprint: one short hash of the settings that can change a score.

A row of the leaderboard is several seeds of one setting; two results files are comparable when their
fingerprints are equal. The fingerprint is a SHA-256 (first 16 hex digits) of the resolved configuration
(``Config.to_dict()``, as config.yaml and results.json's ``config`` hold it) with these left out:

- what names a place, not a setting: ``run.output_dir``, ``run.data_dir``, ``run.init_from``, and
  ``run.model`` when the run started from another run's checkpoint (``run.base_model`` names the model and
  ``run.init_algo`` the training before; both stay in); ``evaluated_weights``; ``predictions.file`` (its
  ``sha256`` stays in);
- logging and bookkeeping: ``run.report_to``, ``run.log_samples``, ``run.checkpoint_every``, the ``run.warn_*``
  thresholds, ``grue_version`` and ``world_size`` (the process count);
- ``run.seed``: the seeds of a row share one fingerprint (each results file names its seed).

Everything else stays in, the task's version and every algorithm, generation and evaluation setting included.
"""

from __future__ import annotations

import copy
import hashlib
import json

TOP_LEVEL = ("grue_version", "world_size", "evaluated_weights")
RUN_KEYS = ("output_dir", "data_dir", "init_from", "report_to", "log_samples", "checkpoint_every", "seed")
LENGTH = 16
"""Hex digits kept: 64 bits, far more than the settings any leaderboard will see."""


def scoring_settings(config: dict) -> dict:
    """``config`` (a resolved config as a dict) without the keys the module docstring lists."""
    out = {k: copy.deepcopy(v) for k, v in config.items() if k not in TOP_LEVEL}
    run = out.get("run")
    if isinstance(run, dict):
        started_from_run = bool(run.get("init_from") or run.get("base_model"))
        for key in list(run):
            if key in RUN_KEYS or key.startswith("warn_") or (key == "model" and started_from_run):
                del run[key]
    predictions = out.get("predictions")
    if isinstance(predictions, dict):
        predictions.pop("file", None)
    return out


def fingerprint(config: dict) -> str:
    """The settings fingerprint of ``config``: 16 hex digits of the SHA-256 of its scoring settings as sorted,
    compact JSON."""
    text = json.dumps(scoring_settings(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:LENGTH]


def differences(old: dict, new: dict, limit: int = 5) -> list[str]:
    """The scoring settings that differ between two configs, as ``section.key: OLD -> NEW`` (at most ``limit``),
    for a message that names what changed."""
    a, b = _flat(scoring_settings(old)), _flat(scoring_settings(new))
    out = [
        f"{k}: {json.dumps(a.get(k), default=str)} -> {json.dumps(b.get(k), default=str)}"
        for k in sorted(set(a) | set(b))
        if a.get(k, _MISSING) != b.get(k, _MISSING)
    ]
    return out[:limit] + ([f"and {len(out) - limit} more"] if len(out) > limit else [])


_MISSING = object()


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
