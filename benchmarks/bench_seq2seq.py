#!/usr/bin/env python
"""grue's rollout sampler against transformers' ``generate``: tokens per second on the same prompts and model.

A T5-base-shaped encoder-decoder (and, for comparison, GPT-2 small's shape) with seeded random weights,
16 prompts of 64 tokens, exactly 48 new tokens, top-k 50 sampling at temperature 1. grue's side is
``grue.rollout.generate`` (what every on-policy rollout calls; it also returns the behaviour and raw
log-probs of each sampled token) on the model as ``grue.models.load_policy`` prepares it (``speed_up``);
transformers' side is ``model.generate`` with the same settings on the model as transformers builds it (the same
weights). Both run in this one process, alternating A B A B after one warm-up call each. Usage and the JSON: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import transformers  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import grue  # noqa: E402
from bench_ppo import BATCH, NEW_TOKENS, PROMPT_TOKENS, SEED, TOP_K, lexicon_prompts, random_gpt2_small, write_json  # noqa: E402
from grue.config import GenerationConfig  # noqa: E402
from grue.models import disable_dropout, freeze, load_tokenizer, speed_up, tiny_model  # noqa: E402
from grue.rollout import generate, tokenize_prompts  # noqa: E402

MODELS = ("t5-base", "gpt2-small")
TINY = (
    "tiny-t5",
    "tiny-gpt2",
)  # grue's built-in tiny models: a quick check of the script (and its test), not a benchmark


def build(name: str):
    """(model, tokenizer), the model as transformers builds it: ``t5-base`` is T5-base's shape (vocabulary 32128, width 768, 12 + 12 layers, 12 heads,
    feed-forward 3072) with random weights and grue's tiny T5 tokenizer (ids < 4096); ``gpt2-small`` is bench_ppo.py's;
    ``tiny-t5`` and ``tiny-gpt2`` are grue's built-in tiny models."""
    if name == "t5-base":
        torch.manual_seed(SEED)
        cfg = transformers.T5Config(
            vocab_size=32128,
            d_model=768,
            d_kv=64,
            d_ff=3072,
            num_layers=12,
            num_decoder_layers=12,
            num_heads=12,
            feed_forward_proj="relu",
            tie_word_embeddings=True,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
        model, tokenizer = transformers.T5ForConditionalGeneration(cfg), load_tokenizer("tiny-t5")
    elif name == "gpt2-small":
        model, tokenizer = random_gpt2_small(), load_tokenizer("tiny-gpt2")
    elif name in TINY:
        model, tokenizer = tiny_model(name), load_tokenizer(name)
    else:
        raise SystemExit(f"unknown model '{name}'; accepted: {', '.join(MODELS + TINY)}")
    disable_dropout(model)
    return freeze(model), tokenizer


def grue_side(model, tokenizer, q, qm, rng):
    gen = GenerationConfig(
        max_prompt_tokens=PROMPT_TOKENS,
        min_new_tokens=NEW_TOKENS,
        max_new_tokens=NEW_TOKENS,
        do_sample=True,
        top_k=TOP_K,
        top_p=1.0,
        temperature=1.0,
    )
    r = generate(model, q, qm, gen, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, generator=rng)
    return int(r.response_mask.sum().item())


def transformers_side(model, tokenizer, q, qm, rng):
    out = model.generate(
        input_ids=q,
        attention_mask=qm,
        do_sample=True,
        top_k=TOP_K,
        top_p=1.0,
        temperature=1.0,
        min_new_tokens=NEW_TOKENS,
        max_new_tokens=NEW_TOKENS,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    new = out.shape[1] - (1 if model.config.is_encoder_decoder else q.shape[1])  # seq2seq: the decoder start token
    return new * q.shape[0]


SIDES = {"grue": grue_side, "transformers": transformers_side}


def bench(name: str, repeats: int) -> dict:
    model, tokenizer = build(name)
    models = {"grue": speed_up(copy.deepcopy(model)), "transformers": model}  # the same weights
    prompts = lexicon_prompts()[:BATCH]
    q, qm = tokenize_prompts(tokenizer, prompts, PROMPT_TOKENS, model.config.is_encoder_decoder, "cpu")
    assert q.shape == (BATCH, PROMPT_TOKENS), f"prompts {tuple(q.shape)}"
    rng = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)  # transformers samples from the global generator
    times: dict[str, list[float]] = {s: [] for s in SIDES}
    for side, fn in SIDES.items():  # warm-up
        assert fn(models[side], tokenizer, q, qm, rng) == BATCH * NEW_TOKENS, (
            f"{side}: not {NEW_TOKENS} new tokens per prompt"
        )
    for rep in range(repeats):
        for side, fn in SIDES.items():
            t = time.perf_counter()
            n = fn(models[side], tokenizer, q, qm, rng)
            times[side].append(time.perf_counter() - t)
            assert n == BATCH * NEW_TOKENS
            print(
                f"[{name}] {side} {rep + 1}/{repeats}: {n / times[side][-1]:.1f} tokens/s", file=sys.stderr, flush=True
            )
    row = {
        side: {
            "seconds": statistics.median(ts),
            "tokens_per_s": BATCH * NEW_TOKENS / statistics.median(ts),
            "runs_s": ts,
        }
        for side, ts in times.items()
    }
    row["grue_over_transformers_tokens_per_s"] = row["grue"]["tokens_per_s"] / row["transformers"]["tokens_per_s"]
    row["parameters"] = sum(p.numel() for p in model.parameters())
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS + TINY)}")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per side, alternating, after one warm-up each")
    p.add_argument("--out", default="benchmarks/results/bench_seq2seq.json", help="JSON results file")
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in MODELS + TINY for m in models):
        p.error(f"--models: accepted {', '.join(MODELS + TINY)}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: load average {load_before:.1f}: other processes will skew the timings", file=sys.stderr)
    rows = {m: bench(m, args.repeats) for m in models}
    table = Table(title=f"sampling {BATCH} x {NEW_TOKENS} tokens after {PROMPT_TOKENS}-token prompts (median)")
    for i, c in enumerate(["model", "params", "grue tok/s", "transformers tok/s", "grue / transformers"]):
        table.add_column(c, justify="left" if i == 0 else "right")
    for m, r in rows.items():
        table.add_row(
            m,
            f"{r['parameters'] / 1e6:.0f}M",
            f"{r['grue']['tokens_per_s']:.1f}",
            f"{r['transformers']['tokens_per_s']:.1f}",
            f"{r['grue_over_transformers_tokens_per_s']:.2f}x",
        )
    Console(width=max(Console().width, 90)).print(table)
    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grue": grue.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "settings": {
            "batch": BATCH,
            "prompt_tokens": PROMPT_TOKENS,
            "new_tokens": NEW_TOKENS,
            "top_k": TOP_K,
            "temperature": 1.0,
            "repeats": args.repeats,
        },
        "models": rows,
    }
    write_json(Path(args.out), data, announce=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
