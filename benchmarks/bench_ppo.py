#!/usr/bin/env python
"""Benchmark of grue's PPO engine: rollout, generation and update throughput, time per iteration, peak memory.

Times the engine's own ``onpolicy.collect_iteration`` and ``ppo.update`` on a Session built here, with the
steps of ``ppo.train`` between them; each model in its own subprocess (``--one MODEL``), trained in full and
with LoRA adapters (``--lora-rank``) on the same workload.
Usage and the JSON fields: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import accelerate
import numpy as np
import torch
import transformers
from rich.console import Console
from rich.table import Table

import grue
from grue import adapters, onpolicy
from grue.algorithms import nlpo, ppo
from grue.config import Config, GenerationConfig, RunConfig
from grue.data import PromptStream
from grue.models import Critic, disable_dropout, freeze, load_policy, load_tokenizer, speed_up
from grue.optim import groups_by_name, make_optimizer
from grue.rewards import resolve_reward
from grue.session import Session
from grue.tasks.common import Example

MODELS = ("tiny-gpt2", "gpt2-small")
BATCH, PROMPT_TOKENS, NEW_TOKENS, TOP_K, SEED = 16, 64, 48, 50, 0
N_PROMPTS, WORDS_PER_PROMPT = 64, 96  # 96 lexicon words tokenize to well over 64 tokens


def build_policy(name: str) -> torch.nn.Module:
    """``tiny-gpt2`` (built in) or ``gpt2-small``: GPT-2-small's shape, random weights, the tiny tokenizer's ids."""
    if name == "tiny-gpt2":
        return load_policy(name)
    if name == "gpt2-small":
        return speed_up(random_gpt2_small())  # as load_policy does
    raise SystemExit(f"unknown model '{name}'; accepted: {', '.join(MODELS)}")


def random_gpt2_small() -> torch.nn.Module:
    """GPT-2 small's shape with seeded random weights, as transformers builds it (before ``speed_up``)."""
    torch.manual_seed(SEED)
    cfg = transformers.GPT2Config(
        vocab_size=50257,
        n_positions=1024,
        n_embd=768,
        n_layer=12,
        n_head=12,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    return transformers.GPT2LMHeadModel(cfg)


def lexicon_prompts() -> list[str]:
    """Fixed-seed texts of vaderSentiment lexicon words (truncated on the left to 64 tokens by the engine)."""
    from vaderSentiment import vaderSentiment

    lexicon = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")
    words = [line.split("\t", 1)[0] for line in lexicon.read_text(encoding="utf-8").splitlines() if line]
    words = [w for w in words if w.isalpha()]
    rng = np.random.default_rng(SEED)
    return [" ".join(rng.choice(words, WORDS_PER_PROMPT)) for _ in range(N_PROMPTS)]


def make_session(model: str, iterations: int, lora_rank: int = 0, algo_name: str = "ppo"):
    """A Session as start_session builds one, from an in-memory config and model (no run directory); ``algo_name``
    ``nlpo`` gives NLPO's config (PPO's settings below plus its mask defaults: top-p 0.9, re-sync every 5). With
    ``lora_rank``: LoRA adapters (peft's defaults for GPT-2: ``c_attn``, alpha 16), the reference being the policy
    with its adapters disabled and the critic's trunk sharing the policy's base weights, as in start_session."""
    run = RunConfig(
        task="imdb", algo=algo_name, model=model, reward="lexicon", seed=SEED, mixed_precision="no", lora_rank=lora_rank
    )
    gen = GenerationConfig(
        max_prompt_tokens=PROMPT_TOKENS,
        min_new_tokens=NEW_TOKENS,
        max_new_tokens=NEW_TOKENS,
        do_sample=True,
        top_k=TOP_K,
        top_p=1.0,
        temperature=1.0,
    )
    algo = (nlpo.NLPOConfig if algo_name == "nlpo" else ppo.PPOConfig)(
        iterations=iterations + 1,
        batch_unit="completions",
        rollout_size=BATCH,
        rollout_batch_size=BATCH,
        minibatch_size=BATCH,
        epochs=1,
        critic="separate",
    )
    cfg = Config(run, gen, algo)
    acc = accelerate.Accelerator(cpu=not torch.cuda.is_available())
    tokenizer = load_tokenizer("tiny-gpt2")
    policy = build_policy(model)
    adapter = None
    if lora_rank:
        policy, adapter = adapters.add_lora(policy, run)
    disable_dropout(policy)
    ref = adapters.AdapterDisabled(adapter) if adapter is not None else freeze(copy.deepcopy(policy)).to(acc.device)
    critic = Critic(policy)
    disable_dropout(critic)
    named = [(f"{k}.{n}", p) for k, m in (("policy", policy), ("critic", critic)) for n, p in m.named_parameters()]
    optimizer = make_optimizer(
        "adamw", groups_by_name(named, algo.weight_decay), algo.lr, algo.adam_eps
    )  # as start_session
    examples = [Example(prompt=p, references=[]) for p in lexicon_prompts()]
    stream = PromptStream(len(examples), SEED, acc.process_index, acc.num_processes)
    sample_rng = torch.Generator(device=acc.device).manual_seed(SEED * 1_000_003 + acc.process_index)
    shuffle_rng = torch.Generator().manual_seed(SEED * 7919 + acc.process_index)
    reward_name, reward_fn = resolve_reward(run.reward)
    n_policy = sum(p.numel() for p in policy.parameters())
    n_critic = sum(p.numel() for p in critic.parameters() if p.requires_grad or adapter is None)  # LoRA: its own only
    n_trained = sum(p.numel() for m in (policy, critic) for p in m.parameters() if p.requires_grad)
    policy, critic, optimizer = acc.prepare(policy, critic, optimizer)
    s = Session(
        cfg,
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
        adapter=adapter,
    )
    return s, n_policy, n_critic, n_trained


class TimedGenerate:
    """Wraps grue.rollout.generate as onpolicy.collect calls it, adding up its wall time and new tokens."""

    def __init__(self, fn, sync):
        self.fn, self.sync, self.seconds, self.tokens = fn, sync, 0.0, 0

    def __call__(self, *args, **kwargs):
        self.sync()
        t = time.perf_counter()
        r = self.fn(*args, **kwargs)
        self.sync()
        self.seconds += time.perf_counter() - t
        self.tokens += int(r.response_mask.sum().item())
        return r


def iteration(s, timer: TimedGenerate, sync, mask=None) -> dict:
    """One PPO iteration as in ppo.train (steps 1-7, without logging and checkpoints), timed by phase. With ``mask``
    (NLPO's MaskSettings) the rollout samples inside the masking policy's top-p sets and the masking policy is
    re-synced when nlpo.train would (``s.iteration`` counts the iterations), inside the rollout phase."""
    algo = s.algo
    timer.seconds, timer.tokens = 0.0, 0
    sync()
    t0 = time.perf_counter()
    t_roll = time.perf_counter()
    start_phase()
    s.iteration += 1
    b = onpolicy.collect_iteration(s, mask=mask)
    r = b.rollout
    if mask is not None and nlpo.refresh_due(s.iteration, algo.mask_update_interval):
        nlpo.refresh(s, mask)
    sync()
    rollout_s = time.perf_counter() - t_roll
    rollout_mb = phase_peak_mb()
    assert r.query_ids.shape == (BATCH, PROMPT_TOKENS) and bool(r.query_mask.all()), f"query {tuple(r.query_ids.shape)}"
    assert r.response_ids.shape == (BATCH, NEW_TOKENS), f"response {tuple(r.response_ids.shape)}"
    sc = onpolicy.score_and_advantages(s, b, s.kl.coef)
    sync()
    t_upd = time.perf_counter()
    start_phase()
    ppo.update(s, r, sc.advantages, sc.returns)
    sync()
    update_s = time.perf_counter() - t_upd
    update_mb = phase_peak_mb()
    s.kl.update(onpolicy.mean_kl(s, sc))  # the session's controller, as Session.end_iteration moves it
    n = int(r.response_mask.sum().item())
    return {
        "iteration_s": time.perf_counter() - t0,
        "rollout_s": rollout_s,
        "generate_s": timer.seconds,
        "update_s": update_s,
        "rollout_tokens": timer.tokens,
        "update_tokens": algo.epochs * n,
        "rollout_peak_mb": rollout_mb,
        "update_peak_mb": update_mb,
    }


PHASE_PEAKS: list[float] = []  # every phase peak measured so far: resetting the high-water mark also resets ru_maxrss


def peak_memory_mb() -> tuple[float, str]:
    """Peak memory so far, in MiB: CUDA allocations on a GPU, else the process's peak RSS (and the phase peaks,
    since a phase window resets the kernel's high-water mark)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return max([rss / (2**20 if sys.platform == "darwin" else 2**10)] + PHASE_PEAKS), "ru_maxrss"


def start_phase() -> None:
    """Open a new peak-memory window: CUDA's peak statistics, or the RSS high-water mark (Linux: writing 5 to
    /proc/self/clear_refs resets VmHWM; elsewhere nothing, and phase_peak_mb answers None)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        PHASE_PEAKS.append(peak_memory_mb()[0])  # keep the peak so far before the kernel forgets it
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def phase_peak_mb() -> float | None:
    """Peak memory since the last start_phase, MiB: CUDA allocations, else VmHWM of /proc/self/status."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if kib is None:
        return None
    PHASE_PEAKS.append(kib / 1024)
    return kib / 1024


def run_one(model: str, iterations: int, lora_rank: int = 0, algo_name: str = "ppo") -> dict:
    """Warm up once, time ``iterations`` iterations; medians per iteration. ``algo_name`` ``nlpo``: the same
    workload under NLPO's action mask (its masking policy built and re-synced as nlpo.train does)."""
    torch.manual_seed(SEED)
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    s, n_policy, n_critic, n_trained = make_session(model, iterations, lora_rank, algo_name)
    mask = nlpo.masking_policy(s) if algo_name == "nlpo" else None
    setup_mb, _ = peak_memory_mb()
    timer = TimedGenerate(onpolicy.generate, sync)
    onpolicy.generate = timer  # collect() looks generate up in its module: time it in place, code unchanged
    print(f"[{model}] warm-up iteration ...", file=sys.stderr, flush=True)
    iteration(s, timer, sync, mask)
    runs = []
    for i in range(iterations):
        runs.append(iteration(s, timer, sync, mask))
        print(f"[{model}] iteration {i + 1}/{iterations}: {runs[-1]['iteration_s']:.2f} s", file=sys.stderr, flush=True)

    med = lambda f: statistics.median(f(x) for x in runs)
    peak_mb, peak_src = peak_memory_mb()
    algo = s.algo
    refresh_s = None
    if mask is not None:  # one re-sync of the masking policy on its own (due every mask_update_interval iterations)
        sync()
        t = time.perf_counter()
        nlpo.refresh(s, mask)
        sync()
        refresh_s = time.perf_counter() - t
    return {
        "model": model,
        "algo": algo_name,
        "lora_rank": lora_rank,
        "mask_refresh_seconds": refresh_s,
        "parameters": n_policy,
        "critic_parameters": n_critic,
        "trained_parameters": n_trained,
        "device": str(s.device),
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "settings": {
            "batch": BATCH,
            "prompt_tokens": PROMPT_TOKENS,
            "min_new_tokens": NEW_TOKENS,
            "max_new_tokens": NEW_TOKENS,
            "top_k": TOP_K,
            "dtype": "float32",
            "rollout_size": algo.rollout_size,
            "rollout_batch_size": algo.rollout_batch_size,
            "minibatch_size": algo.minibatch_size,
            "grad_accum": algo.grad_accum,
            "epochs": algo.epochs,
            "critic": algo.critic,
            "warmup_iterations": 1,
            "timed_iterations": iterations,
        },
        "rollout_tokens_per_s": med(lambda x: x["rollout_tokens"] / x["rollout_s"]),
        "generate_tokens_per_s": med(lambda x: x["rollout_tokens"] / x["generate_s"]),
        "update_tokens_per_s": med(lambda x: x["update_tokens"] / x["update_s"]),
        "seconds_per_iteration": med(lambda x: x["iteration_s"]),
        "rollout_seconds": med(lambda x: x["rollout_s"]),
        "generate_seconds": med(lambda x: x["generate_s"]),
        "update_seconds": med(lambda x: x["update_s"]),
        "peak_memory_mb": peak_mb,
        "peak_memory_source": peak_src,
        "setup_peak_memory_mb": setup_mb,
        "phase_peak_memory_mb": {
            p: max((x[f"{p}_peak_mb"] or 0 for x in runs), default=None) or None for p in ("rollout", "update")
        },
        "torch_threads": torch.get_num_threads(),
        "per_iteration": runs,
    }


def show(results: dict) -> None:
    table = Table(title="grue PPO benchmark (median per iteration)")
    for i, c in enumerate(
        [
            "model",
            "params",
            "trained",
            "device",
            "rollout tok/s",
            "generate tok/s",
            "update tok/s",
            "s/iter",
            "peak MB",
            "rollout peak",
            "update peak",
        ]
    ):
        table.add_column(c, justify="left" if i < 4 else "right")
    for m, r in results.items():
        if "error" in r:
            table.add_row(m, "-", "-", "-", "-", "-", "-", "-", r["error"], "-", "-")
            continue
        table.add_row(
            m,
            f"{r['parameters'] / 1e6:.1f}M",
            f"{r['trained_parameters'] / 1e6:.2f}M",
            r["device"],
            *(f"{r[k]:.1f}" for k in ("rollout_tokens_per_s", "generate_tokens_per_s", "update_tokens_per_s")),
            f"{r['seconds_per_iteration']:.2f}",
            f"{r['peak_memory_mb']:.0f}",
            *(f"{v:.0f}" if v else "-" for v in r["phase_peak_memory_mb"].values()),
        )
    Console(width=max(Console().width, 110)).print(table)


def write_json(path: Path, data: dict, announce: bool = False) -> None:
    """Write atomically: a temporary file beside ``path``, then os.replace; ``announce``: say so on stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    if announce:
        print(f"wrote {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per model, after 1 warm-up")
    p.add_argument("--out", default="benchmarks/results/bench_ppo.json", help="JSON results file")
    p.add_argument(
        "--lora-rank",
        type=int,
        default=8,
        help="also run each model with LoRA adapters of this rank (entry MODEL+lora); 0: full fine-tuning only",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)  # child mode: benchmark one model, JSON on stdout
    p.add_argument("--one-lora", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.iterations < 1:
        p.error("--iterations must be at least 1")
    if args.one:
        print(json.dumps(run_one(args.one, args.iterations, args.one_lora)))
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        p.error(f"unknown model(s) {unknown}; accepted: {', '.join(MODELS)}")
    results, load_before = {}, os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.1f}: other processes will skew the timings", file=sys.stderr)
    runs = [(m, rank) for m in models for rank in ((0, args.lora_rank) if args.lora_rank > 0 else (0,))]
    for m, rank in runs:
        name = f"{m}+lora" if rank else m
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--one",
            m,
            "--one-lora",
            str(rank),
            "--iterations",
            str(args.iterations),
        ]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)  # stderr (progress) passes through
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            results[name] = {"error": f"subprocess exited with {proc.returncode}"}
        else:
            results[name] = json.loads(lines[-1])

    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grue": grue.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "models": results,
    }
    show(results)
    write_json(Path(args.out), data, announce=True)
    return int(any("error" in r for r in results.values()))


if __name__ == "__main__":
    sys.exit(main())
