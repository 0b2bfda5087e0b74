#!/usr/bin/env python
"""Reproduce the paper's IMDB headline rows and compare each metric with the paper's mean and std.

    python benchmarks/reproduce.py [--seeds 3] [--rows PPO,NLPO] [--out runs/reproduce] [--launcher local] [--jobs 1]

The rows are arXiv:2210.01241v2 Table 3's, whose settings and spread are Table 5's (target_kl 0.5 for PPO and
Supervised+PPO, 1.0 for NLPO and Supervised+NLPO; mean +- std over 5 seeds): Zero-Shot, Supervised, PPO, NLPO,
Supervised+PPO, Supervised+NLPO. Each trained row is one `grue benchmark run` (the task's defaults are the paper's
headline settings; NLPO as the paper ran it, ``nlpo.mask_refresh=paper``), Zero-Shot one `grue eval` per seed of the
task's start model. A metric is flagged when its mean over the seeds lies more than 2 of the paper's std from the
paper's mean. Finished rows are reused when run again (the benchmark's own resume).

It needs the Hugging Face Hub (the start model, the imdb dataset, the paper's sentiment classifier) and, in practice,
a GPU: without the Hub it stops at once, in one line. Expected cost (benchmarks/README.md, an estimate from the work
`grue benchmark run --dry-run` counts, until a GPU run measures it): about 0.3 device-hours per seed of PPO, 0.4 of
NLPO, 0.25-0.5 of Supervised, their sums for the Supervised+ rows; the six rows with 3 seeds about 7-8 device-hours.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTED = ROOT / "leaderboard" / "reported" / "imdb"
ROWS = {  # paper row -> (algorithm, first stage, extra --set items, the paper's Table 5 file)
    "Zero-Shot": (None, None, [], "arxiv-v2-table-05--0-zero-shot.json"),
    "Supervised": ("supervised", None, [], "arxiv-v2-table-05--2-supervised.json"),
    "PPO": ("ppo", None, [], "arxiv-v2-table-05--3-ppo--target-kl-0-5.json"),
    "NLPO": ("nlpo", None, ["nlpo.mask_refresh=paper"], "arxiv-v2-table-05--4-nlpo--target-kl-1-0.json"),
    "Supervised+PPO": ("ppo", "supervised", [], "arxiv-v2-table-05--5-supervised-ppo--target-kl-0-5.json"),
    "Supervised+NLPO": (
        "nlpo",
        "supervised",
        ["nlpo.mask_refresh=paper"],
        "arxiv-v2-table-05--6-supervised-nlpo--target-kl-1-0.json",
    ),
}


def compare(ours: dict[str, list[float]], paper: dict[str, dict]) -> list[dict]:
    """Per metric the paper reports: our mean over seeds, the paper's mean and std, and whether ours lies more than
    2 std away (``flag``; None when we have no value or the paper printed no std)."""
    out = []
    for name, reported in sorted(paper.items()):
        values = ours.get(name) or []
        mean = math.fsum(values) / len(values) if values else None
        std = reported.get("std")
        flag = None if mean is None or std is None else abs(mean - reported["value"]) > 2 * std
        out.append(
            {
                "metric": name,
                "ours": mean,
                "seeds": len(values),
                "paper": reported["value"],
                "paper_std": std,
                "flag": flag,
            }
        )
    return out


def run_row(row: str, seeds: int, out: Path, launcher: str, jobs: int) -> list[Path]:
    """Make one row (reusing what is done) and return its results files."""
    from grue.algorithms import resolve

    algo, first, sets, _ = ROWS[row]
    slug = row.lower().replace("+", "-")
    if algo is None:
        from grue.evaluation import evaluate

        model = resolve("imdb", "ppo").run.model  # the task's start model
        for seed in range(seeds):
            folder = out / slug / "imdb" / f"seed{seed}"
            if not (folder / "results.json").is_file():
                evaluate(task="imdb", model=model, split="test", seed=seed, output_dir=str(folder), show=False)
        return [out / slug / "imdb" / f"seed{s}" / "results.json" for s in range(seeds)]
    from grue.benchmark.launch import Launch
    from grue.benchmark.plan import Options
    from grue.benchmark.run import run_benchmark

    options = Options(
        algo=algo, name=f"reproduce-imdb-{slug}", tasks=["imdb"], seeds=seeds, sets=sets, init_from_algo=first
    )
    if run_benchmark(options, Launch(launcher=launcher, jobs=jobs), out / slug, out / "work" / slug):
        raise SystemExit(f"reproduce: row {row} has failed cells; see `grue benchmark status {out / 'work' / slug}`")
    return [out / slug / "imdb" / f"seed{s}" / "results.json" for s in range(seeds)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="imdb", choices=["imdb"], help="the task whose headline rows are reproduced")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    p.add_argument("--out", default="runs/reproduce")
    p.add_argument("--launcher", default="local")
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or args.seeds < 1:
        print(
            f"reproduce: --rows accepts {', '.join(ROWS)} and --seeds at least 1; got {args.rows!r}, {args.seeds}",
            file=sys.stderr,
        )
        return 2
    from grue.hub import offline_reason

    reason = offline_reason()
    if reason is not None:
        print(
            f"reproduce: the paper's IMDB rows need the Hugging Face Hub (the start model, the imdb dataset, the "
            f"sentiment classifier), and {reason}; run it where the Hub can be reached",
            file=sys.stderr,
        )
        return 2
    from grue.results import load_results

    report = {}
    for row in rows:
        files = run_row(row, args.seeds, Path(args.out), args.launcher, args.jobs)
        ours: dict[str, list[float]] = {}
        for f in files:
            for name, m in load_results(f).metrics.items():
                ours.setdefault(name, []).append(m.value)
        paper = json.loads((REPORTED / ROWS[row][3]).read_text(encoding="utf-8"))["metrics"]
        report[row] = compare(ours, paper)
        for r in report[row]:
            mark = {True: "OUTSIDE 2 std", False: "ok", None: "–"}[r["flag"]]
            ours_text = "missing" if r["ours"] is None else f"{r['ours']:.4f}"
            std = "" if r["paper_std"] is None else f" ± {r['paper_std']}"
            print(f"{row:<16} {r['metric']:<16} grue {ours_text:>10}  paper {r['paper']}{std}  {mark}", flush=True)
    (Path(args.out) / "reproduce.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
