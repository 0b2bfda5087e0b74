"""PPO, NLPO, GRPO, RLOO and TRPO on the IMDB smoke setting (causal tiny-gpt2) and a seq2seq one (tiny-t5), 3 seeds each.

Every run is a real `grue train` in its own process. Writes a JSON summary (final reward
mean ± std over seeds per algorithm and setting, the last 20% of iterations per run)
and a PNG of reward and KL per iteration with a mean ± std band.

    python benchmarks/compare.py [--algos ppo nlpo ...] [--settings "seq2seq (tiny-t5)"] [--precisions no bf16]
                                 [--seeds 0 1 2] [--iterations 20] [--jobs 2] [--out ...]

Each algorithm runs with its own smoke preset (tasks/imdb/presets/smoke.yaml), all for the same number of
iterations. An iteration is 64 completions for every algorithm, so the x axis is also samples drawn.
With more than one ``--precisions`` (``run.mixed_precision``), every algorithm runs in each, and the summary's
``precision_check`` compares each precision's reward curve with fp32's against the spread between seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SETTINGS = {  # name -> extra CLI arguments on top of --preset smoke
    "causal (tiny-gpt2)": [],
    "seq2seq (tiny-t5)": ["--model", "tiny-t5"],
}
ALGOS = ("ppo", "nlpo", "grpo", "rloo", "trpo")


PRECISIONS = ("no", "bf16", "fp16")


def label(algo: str, precision: str) -> str:
    """A curve's name: the algorithm, with its precision unless fp32."""
    return algo if precision == "no" else f"{algo} ({precision})"


def run(
    algo: str, extra: list[str], seed: int, iterations: int, out: Path, threads: int, precision: str = "no"
) -> list[dict]:
    cmd = [
        sys.executable,
        "-m",
        "grue_cli.main",
        "train",
        "imdb",
        "--algo",
        algo,
        "--preset",
        "smoke",
        "--quiet",
        "--seed",
        str(seed),
        "--iterations",
        str(iterations),
        "--output-dir",
        str(out),
        "--set",
        f"run.mixed_precision={precision}",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads: the cores / --jobs
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        sys.exit(f"run failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def band(rows: list[list[dict]], key: str) -> tuple[list[float], list[float]]:
    per_it = list(zip(*[[r[key] for r in rs] for rs in rows]))
    return [statistics.fmean(v) for v in per_it], [statistics.pstdev(v) for v in per_it]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument(
        "--precisions",
        nargs="+",
        default=["no"],
        choices=PRECISIONS,
        help="run.mixed_precision of every run; several: each algorithm in each, compared with fp32's curve",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each with cores/jobs threads (tiny models "
        "use one thread better than two: 2 jobs of 1 thread finish sooner on 2 cores)",
    )
    ap.add_argument("--out", default="benchmarks/results/compare")
    args = ap.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves: dict = {}
    summary: dict = {
        "algos": args.algos,
        "seeds": args.seeds,
        "iterations": args.iterations,
        "jobs": args.jobs,
        "threads_per_run": threads,
        "data": os.environ.get("GRUE_DATA_DIR") or "built-in",
        "results": {},
    }
    summary["precisions"] = args.precisions
    variants = [label(a, p) for a in args.algos for p in args.precisions]
    jobs = [
        (setting, algo, prec, seed)
        for setting in args.settings
        for algo in args.algos
        for prec in args.precisions
        for seed in args.seeds
    ]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:

        def one(job: tuple[str, str, str, int]) -> list[dict]:
            setting, algo, prec, seed = job
            print(f"{setting} {label(algo, prec)} seed {seed} ...", flush=True)
            return run(algo, SETTINGS[setting], seed, args.iterations, Path(tmp) / f"{jobs.index(job)}", threads, prec)

        done = dict(zip(jobs, pool.map(one, jobs)))
        for setting in args.settings:
            for algo, prec in [(a, p) for a in args.algos for p in args.precisions]:
                rows = [done[(setting, algo, prec, seed)] for seed in args.seeds]
                n = max(1, args.iterations // 5)
                finals = [statistics.fmean(r["reward/mean"] for r in rs[-n:]) for rs in rows]
                firsts = [statistics.fmean(r["reward/mean"] for r in rs[:n]) for rs in rows]
                summary["results"].setdefault(setting, {})[label(algo, prec)] = {
                    "final_reward_mean": statistics.fmean(finals),
                    "final_reward_std": statistics.pstdev(finals),
                    "first_reward_mean": statistics.fmean(firsts),
                    "per_seed_final": finals,
                    "final_kl_mean": statistics.fmean(rs[-1]["kl/mean"] for rs in rows),
                    "seconds_per_iteration": statistics.fmean(
                        statistics.fmean(r["time/rollout_s"] + r["time/update_s"] for r in rs) for rs in rows
                    ),
                }
                curves[(setting, label(algo, prec))] = rows
    if len(args.precisions) > 1 and "no" in args.precisions:
        summary["precision_check"] = {
            s: {
                label(a, p): precision_check(curves[(s, a)], curves[(s, label(a, p))])
                for a in args.algos
                for p in args.precisions
                if p != "no"
            }
            for s in args.settings
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(curves, args.settings, variants, out / "reward_kl.png")
    for setting, res in summary["results"].items():
        for algo, r in res.items():
            print(
                f"{setting:20s} {algo:5s} final reward {r['final_reward_mean']:.3f} ± {r['final_reward_std']:.3f} "
                f"(first {r['first_reward_mean']:.3f}), final KL {r['final_kl_mean']:.3f}, "
                f"{r['seconds_per_iteration']:.2f} s/iteration"
            )
    for setting, checks in summary.get("precision_check", {}).items():
        for name, c in checks.items():
            print(
                f"{setting:20s} {name}: reward curve differs from fp32's by {c['mean_abs_curve_difference']:.4f} per "
                f"iteration on average; the seeds' spread is {c['mean_seed_std']:.4f}: "
                f"{'within' if c['within_seed_noise'] else 'OUTSIDE'} seed noise"
            )
    print(f"wrote {out / 'summary.json'} and {out / 'reward_kl.png'}")


def precision_check(base: list[list[dict]], other: list[list[dict]], key: str = "reward/mean") -> dict:
    """Whether two precisions' reward curves (seeds x iterations) agree within seed noise: the mean over iterations
    of |mean_other(it) - mean_fp32(it)| against the mean over iterations of the seeds' standard deviation (the
    larger of the two precisions' at each iteration). Also the final-fifth rewards' difference."""
    (m0, s0), (m1, s1) = band(base, key), band(other, key)
    diff = statistics.fmean(abs(a - b) for a, b in zip(m0, m1))
    spread = statistics.fmean(max(a, b) for a, b in zip(s0, s1))
    n = max(1, len(m0) // 5)
    return {
        "mean_abs_curve_difference": diff,
        "mean_seed_std": spread,
        "within_seed_noise": diff <= spread,
        "final_reward_difference": statistics.fmean(m1[-n:]) - statistics.fmean(m0[-n:]),
        "max_abs_kl_difference": max(abs(a - b) for a, b in zip(band(base, "kl/mean")[0], band(other, "kl/mean")[0])),
    }


def plot(curves: dict, settings: list[str], algos: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(settings), figsize=(6 * len(settings), 7), squeeze=False)
    for col, setting in enumerate(settings):
        for row, (key, title) in enumerate(
            (("reward/mean", "reward (mean over samples)"), ("kl/mean", "KL per token"))
        ):
            ax = axes[row][col]
            for algo in algos:
                mean, std = band(curves[(setting, algo)], key)
                xs = range(1, len(mean) + 1)
                ax.plot(xs, mean, label=algo)
                ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.25)
            ax.set_title(f"{setting}: {title}")
            ax.set_xlabel("iteration")
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
