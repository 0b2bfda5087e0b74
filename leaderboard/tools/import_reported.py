"""Regenerate leaderboard/reported/ from the recovered paper numbers (grue_reported.json).

    python leaderboard/tools/import_reported.py ../shared/paper/grue_reported.json [--out leaderboard/reported]

One results file of kind "reported" per task x source table x algorithm x reward function x
variant (a row of a paper table), citing its source. What it does to the numbers:

* IWSLT2017 is not a GRUE task: its rows are left out.
* Splits: "dev" -> validation; every "test ..." and the unnamed IMDB ablation split -> test
  (the split as printed is kept in config.paper.split).
* Values and stds are stored as printed, except where a scale differs from the results
  schema's: the official ToTTo leaderboard prints BLEU and PARENT x100, stored /100 as
  sacrebleu_* and parent_* (the printed numbers kept in config.paper.printed); CommonGen's
  test-server CIDEr (Table 12, ~16 where the dev table's CIDEr-D is ~1.4) is kept as printed
  under its own name, cider_official_scale, so that it is never compared with grue's cider.
* Missing cells stay missing; nothing is estimated.
* A task without tasks/<task>/task.yaml yet is skipped (its version is read from there).
* Each file records the settings the paper states for its row (config.paper.settings, from
  grue.leaderboard.paper_settings), or "unknown" with the reason (config.paper.settings_reason).

Files whose numbers did not change keep their date, so a re-run changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from grue import __version__
from grue.leaderboard.paper_settings import stated
from grue.leaderboard.submissions import known_tasks
from grue.metrics import METRICS, reported_names
from grue.results import (
    MetricValue,
    ModelInfo,
    Results,
    ResultsError,
    load_results,
    to_dict,
    utc_now,
    write_results,
)

TASKS = {
    "IMDB": "imdb",
    "CommonGen": "commongen",
    "CNN/DailyMail": "cnn_dailymail",
    "ToTTo": "totto",
    "WMT16 en-de": "wmt16",
    "NarrativeQA": "narrativeqa",
    "DailyDialog": "dailydialog",
}
NOT_GRUE = ("IWSLT2017 en-de",)
# model as printed -> (Hub id, parameters as the paper states them)
MODELS = {
    "GPT-2 (117M)": ("gpt2", 117_000_000),
    "GPT-2 (117M) (per paper)": ("gpt2", 117_000_000),
    "GPT-2": ("gpt2", 117_000_000),
    "T5-base (220M)": ("t5-base", 220_000_000),
    "T5-base (220M) (per paper)": ("t5-base", 220_000_000),
    "T5-base (220M) (supervised = UnifiedQA-based per caption)": ("t5-base", 220_000_000),
    "n/a (extractive baseline)": ("lead-3", 0),
}
ALGORITHMS = ["Zero-Shot", "Lead-3", "Supervised", "PPO", "NLPO", "Supervised+PPO", "Supervised+NLPO"]
MAIN_TABLE = {
    "imdb": "Table 3",
    "commongen": "Table 12",
    "cnn_dailymail": "Table 17",
    "totto": "Table 23",
    "wmt16": "Table 30",
    "narrativeqa": "Table 28",
    "dailydialog": "Table 33",
}
"""The paper's main test table of each task: its rows count for the paper baselines' overall score."""
EXTRA_DIRECTIONS = {
    "bleu_3": True,
    "bleu_4": True,
    "coverage": True,
    "summac_zs": True,
    "bleurt_overall": True,
    "bleurt_overlap": True,
    "bleurt_nonoverlap": True,
    "cider_official_scale": True,
}
"""Metrics of the paper that grue does not compute, with their direction."""
DIRECTIONS = {**reported_names(METRICS), **EXTRA_DIRECTIONS}
"""Metric name -> higher_is_better, for every metric a reported file may hold."""
PAPER = "PAPER ITSELF"
TOTTO_BOARD = "THIRD-PARTY: official ToTTo leaderboard"


def split_of(printed: str) -> str:
    """The schema split of the split as printed: dev -> validation, anything else (test, hold-out, the unnamed
    IMDB ablation split, 'not stated') -> test."""
    return "validation" if printed.strip().lower() == "dev" else "test"


def short_source(row: dict) -> str:
    """A short name of where the row comes from, e.g. 'arXiv v2 Table 12'."""
    if row["source"].startswith(PAPER):
        return "arXiv v2 " + row["table"].split(" (")[0]
    if row["source"].startswith(TOTTO_BOARD):
        return "ToTTo leaderboard"
    return "BenchmarkCards quote" if "BenchmarkCards" in row["source"] else "RL4LMs issue #28 quote"


def convert(row: dict) -> tuple[str, float, float | None, str | None]:
    """(metric name, value, std, printed text when the value was converted) on the results schema's scale."""
    name, value, std = row["metric"], row["value"], row["std"]
    if row["source"].startswith(TOTTO_BOARD) and not name.startswith("bleurt"):
        printed = row["value_as_printed"]
        return name.replace("bleu_", "sacrebleu_"), round(value / 100, 6), None, printed
    if name == "cider" and row["table"].startswith("Table 12"):
        return "cider_official_scale", value, std, None
    return name, value, std, None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def group_rows(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows of one paper-table line together: same task, algorithm, model, reward, variant, split and source
    document; tables of one document are merged (e.g. WMT16 Tables 30 and 31) unless they print a metric twice."""
    by_table = defaultdict(list)
    for r in rows:
        doc = r["source"].split(" ; Table")[0]
        by_table[
            (r["task"], r["algorithm"], r["model"], r["reward_function"], r["variant"], r["split"], doc), r["table"]
        ].append(r)
    groups: dict[tuple, list[dict]] = {}
    for (key, table), members in sorted(by_table.items(), key=lambda kv: (str(kv[0][0]), _table_number(kv[0][1]))):
        names = {m["metric"] for m in members}
        for i in range(100):
            current = groups.setdefault(key + (i,), [])
            if not names & {m["metric"] for m in current}:
                current.extend(members)
                break
    return groups


def _table_number(table: str) -> int:
    found = re.match(r"Table (\d+)", table)
    return int(found.group(1)) if found else 0


def build_results(members: list[dict], task: str, version: str) -> tuple[str, Results]:
    """(file path in the reported folder, Results) of one group."""
    first = members[0]
    tables = sorted({m["table"] for m in members}, key=_table_number)
    shorts = sorted({short_source(m) for m in members}, key=lambda s: _table_number(s.replace("arXiv v2 ", "")))
    short = shorts[0] if len(shorts) == 1 else "arXiv v2 Tables " + ", ".join(s.split("Table ")[1] for s in shorts)
    metrics, printed = {}, {}
    for m in sorted(members, key=lambda m: m["metric"]):
        name, value, std, as_printed = convert(m)
        metrics[name] = MetricValue(value, DIRECTIONS[name], std)
        if as_printed is not None:
            printed[m["metric"]] = as_printed
    model, parameters = MODELS[first["model"]]
    main = MAIN_TABLE[task]
    overall = (
        first["source"].startswith(PAPER)
        and split_of(first["split"]) == "test"
        and any(t == main or t.startswith(main + " ") for t in tables)
    )
    paper = {
        "short": short,
        "table": " + ".join(tables),
        "version": first["paper_version"],
        "split": first["split"],
        "reward": first["reward_function"],
        "variant": first["variant"],
        "model": first["model"],
        "overall": overall,
    }
    if printed:
        paper["printed"] = printed
    settings, reason = stated(
        task,
        first["algorithm"],
        first["table"],
        first["variant"],
        first["source"].startswith(PAPER),
        first["reward_function"],
    )
    paper["settings"] = settings
    if reason:
        paper["settings_reason"] = reason
    doc = first["source"].split(" ; Table")[0]
    source = doc + (" ; " + "; ".join(t.split(" (")[0] for t in tables) if first["source"].startswith(PAPER) else "")
    notes = [f"Reported in {short}, not re-run here."]
    if first["reward_function"]:
        notes.append(f"Reward function: {first['reward_function']}.")
    if first["variant"]:
        notes.append(f"Variant: {first['variant']}.")
    notes.append(f"Split as printed: {first['split']}. Model as printed: {first['model']}.")
    notes += sorted({m["note"] for m in members if m.get("note")})
    if printed:
        notes.append("BLEU and PARENT are printed x100 there; stored /100 as sacrebleu_* and parent_*.")
    if "cider_official_scale" in metrics:
        notes.append(
            "CIDEr as printed on the official CommonGen test server's scale (cider_official_scale), "
            "not comparable with grue's cider; coverage is a percentage."
        )
    results = Results(
        kind="reported",
        task=task,
        task_version=version,
        split=split_of(first["split"]),
        algorithm=first["algorithm"],
        model=ModelInfo(model, None, parameters),
        seed=None,
        metrics=metrics,
        samples=None,
        runtime_seconds=None,
        date=utc_now(),
        grue_version=__version__,
        git_commit=None,
        source=source,
        notes=" ".join(notes),
        config={"paper": paper},
    )
    parts = [f"{ALGORITHMS.index(first['algorithm'])}-{slug(first['algorithm'])}"]
    parts += [slug(x.split(" (")[0]) for x in (first["reward_function"], first["variant"]) if x]
    table = re.sub(r"table-(\d+)", lambda d: f"table-{int(d.group(1)):02d}", slug(short))  # 03 sorts before 12
    name = f"{task}/{table}--{'--'.join(parts)}.json"
    return name, results


def write_if_changed(results: Results, path: Path) -> bool:
    """Write ``results`` unless the file holds the same numbers already (its date is then kept); True if written."""
    if path.is_file():
        try:
            old = to_dict(load_results(path))
        except ResultsError:
            old = None
        new = to_dict(results)
        if old is not None and {**old, "date": None} == {**new, "date": None}:
            return False
    write_results(results, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="grue_reported.json (../shared/paper/grue_reported.json)")
    parser.add_argument("--out", type=Path, default=Path("leaderboard/reported"), help="the reported folder")
    args = parser.parse_args(argv)
    rows = json.loads(args.json.read_text(encoding="utf-8"))
    versions = {t: info.version for t, info in known_tasks().items()}
    known = set(versions)
    skipped = sorted({r["task"] for r in rows if r["task"] in NOT_GRUE})
    missing = sorted({TASKS[r["task"]] for r in rows if r["task"] in TASKS and TASKS[r["task"]] not in known})
    wanted = [r for r in rows if r["task"] in TASKS and TASKS[r["task"]] in known]
    unversioned = sorted({TASKS[r["task"]] for r in wanted if not versions[TASKS[r["task"]]]})
    if unversioned:  # known_tasks reads a missing version as "", which no results file may hold
        raise SystemExit(f'tasks/{unversioned[0]}/task.yaml: no version; add one (e.g. version: "1.0")')
    written, kept, names = 0, 0, set()
    for members in group_rows(wanted).values():
        task = TASKS[members[0]["task"]]
        name, results = build_results(members, task, versions[task])
        if name in names:
            raise SystemExit(f"two groups map to {name}; make the file names tell them apart")
        names.add(name)
        if write_if_changed(results, args.out / name):
            written += 1
        else:
            kept += 1
    stale = [p for t in known for p in sorted((args.out / t).glob("*.json")) if f"{t}/{p.name}" not in names]
    for p in stale:
        p.unlink()
    print(
        f"{written} written, {kept} unchanged, {len(stale)} removed, in {args.out}; left out: "
        f"{', '.join(skipped) or 'nothing'} (not GRUE tasks); tasks without task.yaml yet: {', '.join(missing) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
