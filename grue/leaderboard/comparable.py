"""Which paper rows a grue entry is comparable with, and the settings each paper row was made with.

A paper row records, in its results file's ``config.paper.settings``, the settings the paper states for it, as
dotted keys of grue's resolved config (``ppo.kl_target``...), or the literal ``unknown`` with the reason in
``config.paper.settings_reason``. A grue entry is comparable with a paper row when they have

1. the same task and task version,
2. the same algorithm (``PAPER_ALGORITHM`` names grue's algorithms as the paper does; an NLPO row of the paper is
   NLPO as published, which the stated setting ``nlpo.mask_refresh: paper`` checks), and
3. equal values on every setting the paper states, read from the grue results' scoring settings
   (``grue.fingerprint.scoring_settings`` of its recorded config).

A row with ``unknown`` settings is comparable with nothing: nobody can tell what made it.
"""

from __future__ import annotations

import json

from grue.fingerprint import _flat, scoring_settings

PAPER_ALGORITHM = {
    "zero-shot": "Zero-Shot",
    "supervised": "Supervised",
    "ppo": "PPO",
    "nlpo": "NLPO",
    "supervised+ppo": "Supervised+PPO",
    "supervised+nlpo": "Supervised+NLPO",
}
"""grue's algorithm names (results.json ``algorithm``) -> the paper's."""
UNKNOWN = "unknown"


def algorithm_label(algorithm: str, config: dict) -> str:
    """How the leaderboard names a grue entry's algorithm: NLPO runs with ``nlpo.mask_refresh: paper`` are
    "NLPO (as published)", grue's refreshed NLPO is "NLPO" (likewise Supervised+NLPO); other names unchanged."""
    if "nlpo" not in algorithm.split("+"):
        return algorithm
    name = PAPER_ALGORITHM.get(algorithm, algorithm)
    nlpo = config.get("nlpo") if isinstance(config.get("nlpo"), dict) else {}
    return f"{name} (as published)" if nlpo.get("mask_refresh") == "paper" else name


def stated_settings(config: dict) -> dict | str:
    """A reported results file's stated settings: a dict of dotted keys, or ``unknown`` (see the module docstring)."""
    paper = config.get("paper") if isinstance(config.get("paper"), dict) else {}
    settings = paper.get("settings", UNKNOWN)
    return settings if isinstance(settings, dict) else UNKNOWN


def _show(value) -> str:
    return "not recorded" if value is None else json.dumps(value) if isinstance(value, str) else str(value)


def differences(
    task: str,
    version: str,
    algorithm: str,
    config: dict,
    paper_task: str,
    paper_version: str,
    paper_algorithm: str,
    paper_config: dict,
    where: str,
) -> list[str]:
    """Why a grue entry (task, version, grue algorithm name, recorded config) is not comparable with a paper row
    (its task, version, algorithm and config, printed as ``where``, e.g. "arXiv v2 Table 3"); [] when it is."""
    if task != paper_task:
        return [f"task {task} here, {paper_task} in {where}"]
    out = []
    if version != paper_version:
        out.append(f"task version {version} here, {paper_version} in {where}")
    if PAPER_ALGORITHM.get(algorithm, algorithm) != paper_algorithm:
        out.append(f"algorithm {algorithm_label(algorithm, config)} here, {paper_algorithm} in {where}")
        return out
    stated = stated_settings(paper_config)
    if stated == UNKNOWN:
        paper = paper_config.get("paper") if isinstance(paper_config.get("paper"), dict) else {}
        return out + [f"{where} does not state its settings ({paper.get('settings_reason') or 'no reason given'})"]
    mine = _flat(scoring_settings(config))
    for key, value in sorted(stated.items()):
        if mine.get(key) != value:
            out.append(f"{key.split('.', 1)[-1]} {_show(mine.get(key))} here, {_show(value)} in {where}")
    return out


def mark_comparable(rows: list) -> None:
    """Set each submission row's ``comparable_to`` (the paper rows of its task it is comparable with, by file) and
    ``not_comparable`` (for the paper rows of its task and algorithm it is not comparable with: the row as the site
    names it, then why, one line each)."""
    reported = [r for r in rows if r.kind == "reported"]
    for r in rows:
        if r.kind != "submission":
            continue
        r.comparable_to, r.not_comparable = [], []
        for p in (p for p in reported if p.task == r.task and p.split == r.split):
            paper = p.config.get("paper") if isinstance(p.config.get("paper"), dict) else {}
            why = differences(
                r.task,
                r.version,
                r.raw_algorithm,
                r.config,
                p.task,
                p.version,
                p.algorithm,
                p.config,
                str(paper.get("short") or p.ref),
            )
            if not why:
                r.comparable_to.append(p.ref)
            elif PAPER_ALGORITHM.get(r.raw_algorithm, r.raw_algorithm) == p.algorithm:
                r.not_comparable.append(f"{p.algorithm} · {p.note or p.ref}: {'; '.join(why)}")
