#!/usr/bin/env python
"""grue's PPO against TRL 1.12.0's PPOTrainer on one identical workload, alternating A B A B, fp32 and bf16.

TRL is installed into an isolated folder (``benchmarks/.trl-1.12.0``, git-ignored; never a dependency of grue) and
put on the path of its own subprocesses only. Each (side, precision, repeat) runs in its own subprocess, so its peak
RSS is its own. Usage and the JSON fields: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import transformers  # noqa: E402

from bench_ppo import TimedGenerate, lexicon_prompts, peak_memory_mb, phase_peak_mb, start_phase, write_json  # noqa: E402

TRL_VERSION = "1.12.0"
TRL_DIR = HERE / f".trl-{TRL_VERSION}"
# GPT-2 shapes (vocabulary, width, layers, heads); every shape runs with the tiny tokenizer (ids < 4096).
SHAPES = {"gpt2-small": (50257, 768, 12, 12), "gpt2-mini": (8192, 256, 4, 4), "tiny": (4096, 64, 2, 2)}
REWARD_SHAPE = (64, 2, 2)  # TRL's reward model: a tiny random GPT-2 classifier (width, layers, heads)
BATCH, PROMPT_TOKENS, NEW_TOKENS, SEED, LR = 16, 64, 48, 0, 1e-6
PRECISIONS = ("fp32", "bf16")


def gpt2_config(shape: str, **extra) -> transformers.GPT2Config:
    vocab, width, layers, heads = SHAPES[shape]
    return transformers.GPT2Config(
        vocab_size=vocab,
        n_positions=1024,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        **extra,
    )


def random_policy(shape: str) -> torch.nn.Module:
    """The policy both sides start from: the same random weights (seeded) for the same shape."""
    torch.manual_seed(SEED)
    return transformers.GPT2LMHeadModel(gpt2_config(shape))


def prompt_ids(tokenizer) -> list[list[int]]:
    """The fixed prompts as token ids, truncated on the left to exactly PROMPT_TOKENS (asserted)."""
    tokenizer.truncation_side = "left"
    ids = tokenizer(lexicon_prompts(), truncation=True, max_length=PROMPT_TOKENS)["input_ids"]
    assert all(len(x) == PROMPT_TOKENS for x in ids), "a prompt is shorter than PROMPT_TOKENS"
    return ids


# --- installing TRL into its own folder ---------------------------------------------------------------------------


def missing_requirements(dist_dir: Path) -> list[str]:
    """TRL's unconditional requirements (its METADATA) that this environment lacks or has at a rejected version."""
    from packaging.requirements import Requirement

    meta = next(dist_dir.glob("trl-*.dist-info/METADATA")).read_text(encoding="utf-8")
    missing = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra, or not for this platform
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            missing.append(str(req))
    return missing


def ensure_trl(install: bool) -> None:
    """TRL in TRL_DIR (pip --no-deps --target), plus any of its requirements missing here (also --no-deps: never torch)."""
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(TRL_DIR)]
    if not any(TRL_DIR.glob("trl-*.dist-info")):
        if not install:
            raise SystemExit(f"TRL is not installed in {TRL_DIR}; run without --no-install")
        print(f"installing trl=={TRL_VERSION} into {TRL_DIR}", file=sys.stderr)
        subprocess.run(pip + [f"trl=={TRL_VERSION}"], check=True)
    missing = [r for r in missing_requirements(TRL_DIR) if not r.lower().startswith("torch")]
    if missing and install:
        print(f"installing TRL's missing requirements into {TRL_DIR}: {', '.join(missing)}", file=sys.stderr)
        subprocess.run(pip + missing, check=True)


# --- grue's side ---------------------------------------------------------------------------------------------------


def grue_session(shape: str, precision: str, iterations: int):
    """A PPO Session as start_session builds one, from an in-memory config and the random policy (no run directory)."""
    import accelerate

    from grue.algorithms import ppo
    from grue.config import Config, GenerationConfig, RunConfig
    from grue.data import PromptStream
    from grue.models import Critic, disable_dropout, freeze, load_tokenizer, speed_up
    from grue.optim import groups_by_name, make_optimizer
    from grue.rewards import resolve_reward
    from grue.session import Session
    from grue.tasks.common import Example

    mp = {"fp32": "no", "bf16": "bf16"}[precision]
    run = RunConfig(task="imdb", algo="ppo", model="tiny-gpt2", reward="lexicon", seed=SEED, mixed_precision=mp)
    # TRL samples from the whole vocabulary (top_k 0, top_p 1) and never stops early here: no stop token.
    gen = GenerationConfig(
        max_prompt_tokens=PROMPT_TOKENS,
        min_new_tokens=NEW_TOKENS,
        max_new_tokens=NEW_TOKENS,
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
    )
    algo = ppo.PPOConfig(
        iterations=iterations + 1,
        batch_unit="completions",
        rollout_size=BATCH,
        rollout_batch_size=BATCH,
        minibatch_size=BATCH,
        epochs=1,
        critic="separate",
        lr=LR,
    )
    acc = accelerate.Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mp)
    tokenizer = load_tokenizer("tiny-gpt2")
    policy = speed_up(random_policy(shape))  # what load_policy does to every model grue loads
    disable_dropout(policy)
    ref = freeze(copy.deepcopy(policy)).to(acc.device)
    critic = Critic(policy)
    disable_dropout(critic)
    named = [(f"{k}.{n}", p) for k, m in (("policy", policy), ("critic", critic)) for n, p in m.named_parameters()]
    optimizer = make_optimizer("adamw", groups_by_name(named, algo.weight_decay), LR, algo.adam_eps)  # as start_session
    examples = [Example(prompt=p, references=[]) for p in lexicon_prompts()]
    stream = PromptStream(len(examples), SEED, acc.process_index, acc.num_processes)
    sample_rng = torch.Generator(device=acc.device).manual_seed(SEED)
    shuffle_rng = torch.Generator().manual_seed(SEED)
    reward_name, reward_fn = resolve_reward(run.reward)
    policy, critic, optimizer = acc.prepare(policy, critic, optimizer)
    return Session(
        Config(run, gen, algo),
        acc,
        Path(tempfile.gettempdir()),
        tokenizer,
        policy,
        ref,
        critic,
        optimizer,
        examples,
        stream,
        reward_name,
        reward_fn,
        sample_rng,
        shuffle_rng,
    )


def run_grue(shape: str, precision: str, iterations: int) -> list[dict]:
    """One warm-up and ``iterations`` timed iterations of ppo.train's steps 1-7; per iteration: seconds per phase."""
    from grue import onpolicy

    s = grue_session(shape, precision, iterations)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    timer = TimedGenerate(onpolicy.generate, sync)
    onpolicy.generate = timer  # collect() looks generate up in its module: timed in place, engine unchanged
    try:
        return grue_iterations(s, iterations, timer, sync)
    finally:
        onpolicy.generate = timer.fn


def grue_iterations(s, iterations: int, timer: TimedGenerate, sync) -> list[dict]:
    from grue import onpolicy
    from grue.algorithms import ppo

    runs = []
    for _ in range(iterations + 1):
        timer.seconds, timer.tokens = 0.0, 0
        sync()
        t0 = time.perf_counter()
        start_phase()
        b = onpolicy.collect_iteration(s)
        sc = onpolicy.score_and_advantages(s, b, s.kl.coef)
        sync()
        t1 = time.perf_counter()
        rollout_mb = phase_peak_mb()
        start_phase()
        ppo.update(s, sc.rollout, sc.advantages, sc.returns)
        s.kl.update(onpolicy.mean_kl(s, sc))  # the session's controller, as Session.end_iteration moves it
        sync()
        t2 = time.perf_counter()
        assert b.rollout.response_ids.shape == (BATCH, NEW_TOKENS), tuple(b.rollout.response_ids.shape)
        runs.append(
            {
                "iteration_s": t2 - t0,
                "rollout_s": t1 - t0,
                "generate_s": timer.seconds,
                "update_s": t2 - t1,
                "generated_tokens": timer.tokens,
                "rollout_peak_mb": rollout_mb,
                "update_peak_mb": phase_peak_mb(),
            }
        )
    return runs


# --- TRL's side ----------------------------------------------------------------------------------------------------


def run_trl(shape: str, precision: str, iterations: int) -> list[dict]:
    """TRL's own PPOTrainer.train() for 1 + ``iterations`` iterations; phases timed by wrapping the module functions it
    calls (``batch_generation``; ``forward``, whose first call with gradients starts the update) and a callback."""
    sys.path.insert(0, str(TRL_DIR))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import datasets
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as mod

    from grue.models import load_tokenizer

    tokenizer = load_tokenizer("tiny-gpt2")
    policy = random_policy(shape)
    ref = copy.deepcopy(policy)
    torch.manual_seed(SEED + 1)
    value_model = transformers.GPT2ForSequenceClassification(gpt2_config(shape, num_labels=1))
    width, layers, heads = REWARD_SHAPE
    reward_model = transformers.GPT2ForSequenceClassification(
        transformers.GPT2Config(
            vocab_size=SHAPES[shape][0],
            n_positions=1024,
            n_embd=width,
            n_layer=layers,
            n_head=heads,
            bos_token_id=1,
            eos_token_id=1,
            pad_token_id=0,
            num_labels=1,
        )
    )
    data = datasets.Dataset.from_dict({"input_ids": prompt_ids(tokenizer)})
    out = tempfile.mkdtemp(prefix="bench-trl-")
    args = PPOConfig(
        output_dir=out,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=1,
        local_rollout_forward_batch_size=BATCH,
        response_length=NEW_TOKENS,
        temperature=1.0,
        total_episodes=BATCH * (iterations + 1),
        learning_rate=LR,
        kl_coef=0.1,
        vf_coef=0.5,
        seed=SEED,
        bf16=precision == "bf16",
        fp16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        num_sample_generations=0,
        logging_steps=1,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        stop_token=None,
        dataloader_num_workers=0,
    )
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    marks: dict = {"update_start": None, "generate_s": 0.0, "tokens": 0, "ends": [], "rollout_mb": None}

    def timed_generation(model, queries, *rest):
        sync()
        t = time.perf_counter()
        qr, logits = orig_generation(model, queries, *rest)
        sync()
        marks["generate_s"] += time.perf_counter() - t
        marks["tokens"] += int(qr.shape[0] * (qr.shape[1] - queries.shape[1]))
        return qr, logits

    def timed_forward(model, *rest):
        if torch.is_grad_enabled() and marks["update_start"] is None:
            sync()
            marks["update_start"] = time.perf_counter()
            marks["rollout_mb"] = phase_peak_mb()
            start_phase()
        return orig_forward(model, *rest)

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, *a, **k):
            sync()
            marks["ends"].append((time.perf_counter(), None, 0.0, 0, None, None))
            start_phase()

        def on_step_end(self, *a, **k):
            sync()
            marks["ends"].append(
                (
                    time.perf_counter(),
                    marks["update_start"],
                    marks["generate_s"],
                    marks["tokens"],
                    marks["rollout_mb"],
                    phase_peak_mb(),
                )
            )
            marks.update(update_start=None, generate_s=0.0, tokens=0)
            start_phase()

    orig_generation, orig_forward = mod.batch_generation, mod.forward
    mod.batch_generation, mod.forward = timed_generation, timed_forward
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=data,
        eval_dataset=data,
        callbacks=[Clock()],
    )
    try:
        trainer.train()
    finally:
        mod.batch_generation, mod.forward = orig_generation, orig_forward
    e = marks["ends"]
    return [
        {
            "iteration_s": e[i][0] - e[i - 1][0],
            "rollout_s": e[i][1] - e[i - 1][0],
            "generate_s": e[i][2],
            "update_s": e[i][0] - e[i][1],
            "generated_tokens": e[i][3],
            "rollout_peak_mb": e[i][4],
            "update_peak_mb": e[i][5],
        }
        for i in range(1, len(e))
    ]


# --- one subprocess, then the whole comparison ---------------------------------------------------------------------


def run_one(side: str, shape: str, precision: str, iterations: int) -> dict:
    torch.manual_seed(SEED)
    load = os.getloadavg()[0]
    runs = (run_grue if side == "grue" else run_trl)(shape, precision, iterations)
    timed = runs[1:]  # the first is the warm-up
    med = lambda k: statistics.median(x[k] for x in timed)
    peak, src = peak_memory_mb()
    return {
        "side": side,
        "precision": precision,
        "shape": shape,
        "seconds_per_iteration": med("iteration_s"),
        "rollout_seconds": med("rollout_s"),
        "generate_seconds": med("generate_s"),
        "update_seconds": med("update_s"),
        "generated_tokens": med("generated_tokens"),
        "peak_memory_mb": peak,
        "peak_memory_source": src,
        "rollout_peak_mb": max((x["rollout_peak_mb"] or 0) for x in timed) or None,
        "update_peak_mb": max((x["update_peak_mb"] or 0) for x in timed) or None,
        "load_average_1m": {"before": load, "after": os.getloadavg()[0]},
        "torch_threads": torch.get_num_threads(),
        "per_iteration": runs,
    }


def child(side: str, shape: str, precision: str, iterations: int) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--one",
        f"{side}:{precision}",
        "--shape",
        shape,
        "--iterations",
        str(iterations),
    ]
    print(f"[{side} {precision} {shape}] ...", file=sys.stderr, flush=True)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRL_EXPERIMENTAL_SILENCE="1",
        PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        return {"side": side, "precision": precision, "error": f"exit {proc.returncode}: {tail[0][:300]}"}
    r = json.loads(lines[-1])
    print(
        f"[{side} {precision} {shape}] {r['seconds_per_iteration']:.2f} s/iteration, "
        f"peak {r['peak_memory_mb']:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return r


def summarise(runs: list[dict], precisions: list[str]) -> dict:
    """Per side and precision: the median over repeats of each run's median; ratios grue / TRL."""
    rows = {}
    for prec in precisions:
        for side in ("grue", "trl"):
            ok = [r for r in runs if r["side"] == side and r["precision"] == prec and "error" not in r]
            if ok:
                rows[f"{side}-{prec}"] = {
                    k: statistics.median(r[k] or 0 for r in ok)
                    for k in (
                        "seconds_per_iteration",
                        "rollout_seconds",
                        "generate_seconds",
                        "update_seconds",
                        "peak_memory_mb",
                        "rollout_peak_mb",
                        "update_peak_mb",
                    )
                }
    ratios = {}
    for prec in precisions:
        g, t = rows.get(f"grue-{prec}"), rows.get(f"trl-{prec}")
        if g and t:
            ratios[f"{prec}_seconds_per_iteration"] = g["seconds_per_iteration"] / t["seconds_per_iteration"]
            ratios[f"{prec}_peak_memory"] = g["peak_memory_mb"] / t["peak_memory_mb"]
    if "grue-bf16" in rows and "trl-fp32" in rows:
        ratios["grue_bf16_over_trl_fp32_seconds_per_iteration"] = (
            rows["grue-bf16"]["seconds_per_iteration"] / rows["trl-fp32"]["seconds_per_iteration"]
        )
    return {"rows": rows, "ratios": ratios}


def show(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="grue vs TRL 1.12 PPO (median per iteration, median over repeats)")
    for i, c in enumerate(
        ["run", "s/iter", "rollout s", "generate s", "update s", "peak MiB", "rollout peak", "update peak"]
    ):
        table.add_column(c, justify="left" if i == 0 else "right")
    for name, r in summary["rows"].items():
        table.add_row(
            name,
            *(
                f"{r[k]:.2f}"
                for k in ("seconds_per_iteration", "rollout_seconds", "generate_seconds", "update_seconds")
            ),
            *(f"{r[k]:.0f}" for k in ("peak_memory_mb", "rollout_peak_mb", "update_peak_mb")),
        )
    Console(width=max(Console().width, 100)).print(table)
    for k, v in summary["ratios"].items():
        print(f"grue/TRL {k}: {v:.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="gpt2-small", choices=sorted(SHAPES), help="policy shape (default: GPT-2 small)")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated, of: fp32, bf16")
    p.add_argument("--iterations", type=int, default=2, help="timed iterations per run, after 1 warm-up")
    p.add_argument("--repeats", type=int, default=2, help="A B rounds per precision (A B A B with 2)")
    p.add_argument("--sides", default="grue,trl", help="comma-separated, of: grue, trl")
    p.add_argument("--no-install", action="store_true", help="fail instead of installing TRL when it is missing")
    p.add_argument("--out", default="benchmarks/results/bench_trl.json", help="JSON results file")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child mode: SIDE:PRECISION, JSON on stdout
    args = p.parse_args()
    if args.iterations < 1 or args.repeats < 1:
        p.error("--iterations and --repeats must be at least 1")
    if args.one:
        side, prec = args.one.split(":")
        print(json.dumps(run_one(side, args.shape, prec, args.iterations)))
        return 0
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    sides = [x.strip() for x in args.sides.split(",") if x.strip()]
    if not precisions or set(precisions) - set(PRECISIONS) or not sides or set(sides) - {"grue", "trl"}:
        p.error("--precisions takes fp32, bf16; --sides takes grue, trl")
    if "trl" in sides:
        ensure_trl(install=not args.no_install)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.1f}: other processes will skew the timings", file=sys.stderr)
    runs = [
        child(side, args.shape, prec, args.iterations)
        for prec in precisions
        for _ in range(args.repeats)
        for side in sides
    ]
    summary = summarise(runs, precisions)
    import grue

    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grue": grue.__version__,
        "trl": TRL_VERSION if "trl" in sides else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "workload": {
            "shape": args.shape,
            "vocab_width_layers_heads": SHAPES[args.shape],
            "batch": BATCH,
            "prompt_tokens": PROMPT_TOKENS,
            "new_tokens": NEW_TOKENS,
            "epochs": 1,
            "minibatches": 1,
            "critic": "separate",
            "sampling": "whole vocabulary, temperature 1",
            "lr": LR,
            "trl_reward_model": f"random GPT-2 classifier {REWARD_SHAPE}",
            "grue_reward": "lexicon",
            "warmup_iterations": 1,
            "timed_iterations": args.iterations,
            "repeats": args.repeats,
        },
        **summary,
        "runs": runs,
    }
    show(summary)
    write_json(Path(args.out), data, announce=True)
    return int(any("error" in r for r in runs))


if __name__ == "__main__":
    sys.exit(main())
