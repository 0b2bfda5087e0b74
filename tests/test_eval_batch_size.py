"""Evaluation decodes the same text whatever the batch size: prompts of different lengths padded together (left for
a causal model, with position ids that skip the padding; right for a seq2seq encoder) give the generations each
prompt gets alone. Through grue.evaluation.decode, the path `grue eval` takes, on the tiny models."""

from __future__ import annotations

import pytest
import torch

from grue.algorithms import resolve
from grue.evaluation import decode
from grue.models import load_policy, load_tokenizer

PROMPTS = [
    "The film",
    "I went into this film with low expectations and",
    "A",
    "The acting in this picture is",
    "My friends told me to skip this one, but I watched it anyway on a rainy Sunday and",
    "Good",
    "Critics loved it",
    "Nobody",
]  # one batch of 16 holds them all: 8 lengths, padded together


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
@pytest.mark.parametrize("beams", [1, 3])
def test_greedy_and_beam_generations_do_not_depend_on_the_batch_size(model, beams):
    tokenizer, policy = load_tokenizer(model), load_policy(model).eval()
    cfg = resolve(
        "imdb",
        "ppo",
        sets=[
            "eval.do_sample=false",
            f"eval.num_beams={beams}",
            "eval.max_new_tokens=4",
            "eval.min_new_tokens=0",
            "generation.max_prompt_tokens=64",
        ],
    )
    out = {}
    for size in (1, 16):
        cfg.eval.batch_size = size
        out[size] = decode(policy, tokenizer, PROMPTS, cfg, torch.device("cpu"))
    assert len(out[1]) == len(PROMPTS) and any(out[1])
    assert out[16] == out[1]
