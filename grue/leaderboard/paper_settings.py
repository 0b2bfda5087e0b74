"""The settings the paper (arXiv:2210.01241v2) states for each of its rows, as dotted keys of grue's resolved config.

leaderboard/tools/import_reported.py writes them into each reported file's ``config.paper.settings`` (or the literal
``unknown`` and a reason in ``config.paper.settings_reason``); grue.leaderboard.comparable reads them. Only what the
paper prints is stated: a setting it is silent on, or contradicts itself on, is left out (see docs/fidelity.md,
"Which settings made which rows").
"""

from __future__ import annotations

UNKNOWN = "unknown"
SECTION = {"PPO": "ppo", "NLPO": "nlpo", "Supervised+PPO": "ppo", "Supervised+NLPO": "nlpo", "Supervised": "supervised"}
"""The paper's algorithm -> the config section that holds its training settings (the last stage's)."""

IMDB_DECODING = {"eval.do_sample": True, "eval.top_k": 50, "eval.min_new_tokens": 48, "eval.max_new_tokens": 48}
"""Table 4 "decoding" (top-k 50 sampling of 48 tokens), kept "for all methods" (Sec. B.3.1)."""
IMDB_RL = {"batch_unit": "tokens", "rollout_size": 1280, "iterations": 50, "minibatch_size": 64, "epochs": 5,
           "lr": 1e-6, "clip": 0.2, "vf_coef": 0.5, "kl_coef": 0.01}
"""Table 4 ppo / nlpo (1280 steps per update, 64000 in all, batch 64, 5 epochs, lr 1e-6, clip 0.2, value coeff 0.5) and
Sec. B.3.1 (initial KL coefficient 0.01). Left out: the discount factor, which Table 4 gives as 0.99 (gae lambda 0.95)
while Table 6 labels the headline rows gamma 0.95."""
IMDB_NLPO = {"top_mask": 0.9, "mask_update_interval": 5, "mask_refresh": "paper"}
"""Table 4 nlpo (top mask ratio 0.9, target update iterations 5); the paper's NLPO ran with a masking policy that never
refreshed (RL4LMs' logits processor, see docs/fidelity.md)."""
IMDB_SUPERVISED = {"supervised.batch_size": 64, "supervised.epochs": 10, "supervised.lr": 1e-5}
"""Table 4 supervised."""
HEADLINE_KL = {"PPO": 0.5, "NLPO": 1.0, "Supervised+PPO": 0.5, "Supervised+NLPO": 1.0}
"""Table 3's rows are Table 5's rows with these target KLs (the same numbers, printed in both)."""
NOT_TRANSCRIBED = {"commongen": "Table 11", "cnn_dailymail": "Table 16", "totto": "Table 22", "wmt16": "Table 29",
                   "narrativeqa": "Table 27", "dailydialog": "Table 32"}
"""Tasks whose hyper-parameter table is not transcribed here yet: their rows are ``unknown``."""


def imdb_settings(algorithm: str, table: str, variant: str | None) -> dict:
    """The stated settings of an IMDB row of Table 3, 5, 6 or 7 (zero-shot rows of the last two)."""
    out = dict(IMDB_DECODING)
    if algorithm == "Supervised":
        return {**out, **IMDB_SUPERVISED}
    if algorithm not in SECTION:  # Zero-Shot: the decoding only
        return out
    section = SECTION[algorithm]
    if algorithm in ("PPO", "NLPO"):  # Table 4 gives no separate values for the Supervised+ rows
        out.update({f"{section}.{k}": v for k, v in IMDB_RL.items()})
    if section == "nlpo":
        out.update({f"nlpo.{k}": v for k, v in IMDB_NLPO.items()} if algorithm == "NLPO" else {"nlpo.mask_refresh": "paper"})
    if table.startswith("Table 3"):
        kl = HEADLINE_KL[algorithm]
    else:
        kl = (variant or "").split("target_kl=", 1)[-1]
        kl = kl if kl == "inf" else float(kl)
    out[f"{section}.kl_target"] = kl
    return out


def stated(task: str, algorithm: str, table: str, variant: str | None, from_paper: bool) -> tuple[dict | str, str]:
    """(settings, reason): the settings the source states for a row, or (``unknown``, why)."""
    if not from_paper:
        return UNKNOWN, "a third party's quote of the number; it does not state the settings that made it"
    if task == "imdb" and table.split(" (")[0] in ("Table 3", "Table 5", "Table 6", "Table 7"):
        if table.startswith(("Table 6", "Table 7")) and algorithm != "Zero-Shot":
            return UNKNOWN, f"{table.split(' (')[0]} is an ablation whose settings are not transcribed here"
        return imdb_settings(algorithm, table, variant), ""
    where = NOT_TRANSCRIBED.get(task, "its hyper-parameter table")
    return UNKNOWN, f"the paper's hyper-parameter table for this task ({where}) is not transcribed into grue yet"
