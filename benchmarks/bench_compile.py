#!/usr/bin/env python
"""Does ``torch.compile`` speed up grue's update? The teacher-forced forward and backward of a GPT-2-shaped
policy (``policy_forward`` and the log-probs of its response tokens, as in the PPO update), eager against compiled.

The same model object, the same batch (16 sequences of 64 prompt and 48 response tokens), after one warm-up call
each (the compiled side's warm-up is its compilation, reported apart); then ``--repeats`` calls of eager, compiled,
eager, compiled... and the medians. grue has no compile option: add one when this shows a gain on your hardware.
Usage and results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
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

import grue  # noqa: E402
from bench_ppo import NEW_TOKENS, PROMPT_TOKENS, SEED, write_json  # noqa: E402
from grue.models import disable_dropout, speed_up  # noqa: E402
from grue.rollout import policy_forward, token_logprobs  # noqa: E402

SHAPES = {"gpt2-small": (50257, 768, 12, 12), "gpt2-mini": (8192, 256, 4, 4), "tiny": (4096, 64, 2, 2)}
BATCH = 16


def step(model, ids: torch.Tensor) -> float:
    """One forward and backward: mean log-prob of the response tokens, gradients then dropped."""
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    logits, _ = policy_forward(model, inputs, NEW_TOKENS, False)
    loss = -token_logprobs(logits, ids[:, -NEW_TOKENS:]).mean()
    loss.backward()
    for p in model.parameters():
        p.grad = None
    return loss.item()


def timed(fn) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def bench(shape: str, repeats: int) -> dict:
    vocab, width, layers, heads = SHAPES[shape]
    torch.manual_seed(SEED)
    model = speed_up(
        transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                vocab_size=vocab,
                n_embd=width,
                n_layer=layers,
                n_head=heads,
                bos_token_id=1,
                eos_token_id=1,
                pad_token_id=0,
            )
        )
    )
    disable_dropout(model)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(device)
    ids = torch.randint(2, vocab, (BATCH, PROMPT_TOKENS + NEW_TOKENS), device=device)
    compiled = torch.compile(model, dynamic=False)
    eager_warm = timed(lambda: step(model, ids))
    compile_s = timed(lambda: step(compiled, ids))
    same = abs(step(model, ids) - step(compiled, ids))
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(repeats):
        times["eager"].append(timed(lambda: step(model, ids)))
        times["compiled"].append(timed(lambda: step(compiled, ids)))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "shape": shape,
        "eager_warmup_s": eager_warm,
        "compile_s": compile_s,
        "loss_difference": same,
        "eager_s": med["eager"],
        "compiled_s": med["compiled"],
        "compiled_over_eager": med["compiled"] / med["eager"],
        "runs_s": times,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="gpt2-mini", choices=sorted(SHAPES))
    p.add_argument("--repeats", type=int, default=5, help="timed calls per side, alternating")
    p.add_argument("--out", default="benchmarks/results/bench_compile.json", help="JSON results file")
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    r = bench(args.shape, args.repeats)
    print(
        f"{args.shape}: eager {r['eager_s']:.3f} s, compiled {r['compiled_s']:.3f} s per forward+backward "
        f"({r['compiled_over_eager']:.2f}x), compilation {r['compile_s']:.1f} s, loss difference {r['loss_difference']:.1e}"
    )
    write_json(
        Path(args.out),
        {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "grue": grue.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "batch": BATCH,
            "prompt_tokens": PROMPT_TOKENS,
            "response_tokens": NEW_TOKENS,
            **r,
        },
        announce=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
