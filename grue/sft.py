"""Supervised fine-tuning's data: teacher-forcing batches, the learning-rate schedule and the epoch order.

Pure functions over token ids; grue.algorithms.supervised owns the loop. Shapes: B rows, P prompt
tokens, T target tokens, L text tokens.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from grue.rollout import lm_inputs, positions


def target_with_eos(ids: list[int], eos_id: int, max_tokens: int) -> list[int]:
    """``ids + [eos]`` when that fits in ``max_tokens``; else the first ``max_tokens`` ids (a cut target gets no EOS)."""
    return ids + [eos_id] if len(ids) < max_tokens else ids[:max_tokens]


def pad_ids(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Lists of token ids -> ids and mask (B,L), L the longest row, padded on the left or the right."""
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(L - len(r), L) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def causal_sft_batch(prompt_ids, target_ids, eos_id: int, pad_id: int, max_target_tokens: int) -> dict:
    """A causal LM's teacher-forcing batch: each row is ``[prompt | target + EOS]``.

    Prompts are left-padded to P and targets right-padded to T, a rollout's layout
    (grue.rollout.lm_inputs: position ids skip the padding). Returns ``input_ids``,
    ``attention_mask``, ``position_ids`` and ``labels``, all (B,P+T); labels are the
    target ids and -100 on prompt and padding positions. Logits at j predict labels[j+1].
    """
    q, qm = pad_ids(prompt_ids, pad_id, left=True)
    r, rm = pad_ids([target_with_eos(t, eos_id, max_target_tokens) for t in target_ids], pad_id, left=False)
    labels = torch.cat([torch.full_like(q, -100), r.masked_fill(rm == 0, -100)], 1)
    return {**lm_inputs(q, qm, r, rm, False, None), "labels": labels}


def causal_text_batch(text_ids, pad_id: int) -> dict:
    """A causal LM's batch in the paper's supervised format: each row is one text (prompt and reference
    joined), right-padded; ``labels`` are the ids themselves, -100 on padding, so every token but the
    first carries loss (as the Hugging Face language-modelling collator RL4LMs used). Returns
    ``input_ids``, ``attention_mask``, ``position_ids`` and ``labels``, all (B,L). Logits at j predict labels[j+1].
    """
    ids, mask = pad_ids(text_ids, pad_id, left=False)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": positions(mask),
        "labels": ids.masked_fill(mask == 0, -100),
    }


def seq2seq_sft_batch(
    source_ids, target_ids, eos_id: int, pad_id: int, decoder_start_id: int, max_target_tokens: int
) -> dict:
    """A seq2seq LM's teacher-forcing batch: encoder ``input_ids``/``attention_mask`` (B,S), right-padded;
    ``decoder_input_ids``/``decoder_attention_mask`` (B,T): the target shifted right behind
    ``decoder_start_id``; ``labels`` (B,T): target ids + EOS, -100 on padding. Logits at t predict labels[t].
    """
    q, qm = pad_ids(source_ids, pad_id, left=False)
    r, rm = pad_ids([target_with_eos(t, eos_id, max_target_tokens) for t in target_ids], pad_id, left=False)
    return {**lm_inputs(q, qm, r, rm, True, decoder_start_id), "labels": r.masked_fill(rm == 0, -100)}


def lr_factor(step: int, schedule: str, warmup: int, total: int) -> float:
    """Multiplier of ``lr`` at optimizer step ``step`` (0-based), the Hugging Face schedules' formulas.

    Warm-up: ``step / warmup`` while ``step < warmup``. Then with ``p = (step - warmup) / (total - warmup)``:
    constant ``1``; linear ``max(0, 1 - p)``; cosine ``max(0, (1 + cos(pi p)) / 2)``.
    """
    if step < warmup:
        return step / warmup
    p = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - p)
    if schedule == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * p)))
    return 1.0


def epoch_batches(n: int, seed: int, epoch: int, rank: int, world_size: int, batch_size: int) -> list[list[int]]:
    """This process's batches (example indices) in epoch ``epoch``.

    The global order is ``numpy default_rng([seed, epoch]).permutation(n)``, repeated from
    its start up to a multiple of ``world_size`` (every process gets as many examples);
    process ``rank`` takes every ``world_size``-th index from ``rank`` (grue.data.PromptStream's
    sharding), in chunks of ``batch_size``; the last chunk may be smaller.
    """
    order = np.resize(np.random.default_rng([seed, epoch]).permutation(n), n + (-n % world_size))
    mine = order[rank::world_size]
    return [mine[i : i + batch_size].tolist() for i in range(0, len(mine), batch_size)]
