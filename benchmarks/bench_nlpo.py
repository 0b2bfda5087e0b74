#!/usr/bin/env python
"""NLPO against PPO, per iteration, on bench_ppo.py's workload: what the action mask costs.

Both sides are bench_ppo.py's fixed workload (16 prompts of 64 tokens, 48 new tokens, top-k 50, one
epoch, one minibatch, separate critic, fp32) timed by its own ``run_one``; NLPO adds its masking policy
(a frozen copy of the policy that decodes beside it with its own KV cache, top-p 0.9, at least 100
tokens) and re-syncs it every 5 iterations as ``nlpo.train`` does. Runs alternate PPO NLPO PPO NLPO
(``--repeats``), each in its own subprocess. Usage and the JSON fields: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import transformers  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import grue  # noqa: E402
from bench_ppo import MODELS, run_one, write_json  # noqa: E402

ALGOS = ("ppo", "nlpo")
FIELDS = ("seconds_per_iteration", "rollout_seconds", "generate_seconds", "update_seconds", "peak_memory_mb")


def child(args) -> int:
    """``--one ALGO``: one run, its result as a JSON line on stdout."""
    print(json.dumps(run_one(args.model, args.iterations, 0, args.one)))
    return 0


def run_child(model: str, algo: str, iterations: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", algo, "--model", model, "--iterations", str(iterations)]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)  # progress (stderr) passes through
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"algo": algo, "error": f"subprocess exited with {proc.returncode}", "load_average_1m": load}
    return {**json.loads(lines[-1]), "load_average_1m": load}


def summarize(runs: list[dict]) -> tuple[dict, dict]:
    """Per algorithm, the median over repeats of each run's medians; and NLPO / PPO of each field."""
    rows = {}
    for algo in ALGOS:
        ok = [r for r in runs if r["algo"] == algo and "error" not in r]
        if ok:
            rows[algo] = {f: statistics.median(r[f] for r in ok) for f in FIELDS}
            rows[algo]["repeats"] = len(ok)
            refresh = [r["mask_refresh_seconds"] for r in ok if r.get("mask_refresh_seconds") is not None]
            rows[algo]["mask_refresh_seconds"] = statistics.median(refresh) if refresh else None
    ratios = {}
    if "ppo" in rows and "nlpo" in rows:
        ratios = {f: rows["nlpo"][f] / rows["ppo"][f] for f in FIELDS if rows["ppo"][f]}
    return rows, ratios


def show(rows: dict, ratios: dict, model: str) -> None:
    table = Table(title=f"NLPO against PPO, {model} (medians)")
    for i, c in enumerate(["algo", "s/iter", "rollout s", "generate s", "update s", "peak MiB", "mask re-sync s"]):
        table.add_column(c, justify="left" if i == 0 else "right")
    for algo, r in rows.items():
        refresh = r.get("mask_refresh_seconds")
        table.add_row(
            algo,
            *(f"{r[f]:.2f}" for f in FIELDS[:4]),
            f"{r['peak_memory_mb']:.0f}",
            "-" if refresh is None else f"{refresh:.2f}",
        )
    if ratios:
        table.add_row("nlpo / ppo", *(f"{ratios[f]:.2f}x" if f in ratios else "-" for f in FIELDS), "")
    Console(width=max(Console().width, 100)).print(table)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="gpt2-small", choices=MODELS, help="bench_ppo.py's model (default: GPT-2 small's shape)"
    )
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per run, after 1 warm-up")
    p.add_argument("--repeats", type=int, default=2, help="rounds of PPO then NLPO, each run its own subprocess")
    p.add_argument("--out", default="benchmarks/results/bench_nlpo.json", help="JSON results file")
    p.add_argument("--one", choices=ALGOS, help=argparse.SUPPRESS)  # child mode
    args = p.parse_args()
    if args.iterations < 1 or args.repeats < 1:
        p.error("--iterations and --repeats must be at least 1")
    if args.one:
        return child(args)
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: load average {load_before:.1f}: other processes will skew the timings", file=sys.stderr)
    runs = []
    for rep in range(args.repeats):
        for algo in ALGOS:
            print(f"[{args.model} {algo}, round {rep + 1}/{args.repeats}] ...", file=sys.stderr, flush=True)
            runs.append(run_child(args.model, algo, args.iterations))
    rows, ratios = summarize(runs)
    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grue": grue.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "model": args.model,
        "rows": rows,
        "ratios": ratios,
        "runs": runs,
    }
    show(rows, ratios, args.model)
    if "seconds_per_iteration" in ratios:
        print(f"NLPO / PPO seconds per iteration: {ratios['seconds_per_iteration']:.2f}x (target <= 1.2x)")
    write_json(Path(args.out), data, announce=True)
    return int(any("error" in r for r in runs))


if __name__ == "__main__":
    sys.exit(main())
