"""NLPO's action mask at evaluation: transformers' ``generate`` restricted to the masking policy's top-p sets.

An NLPO policy acts only inside the top-p set of its masking policy (grue.algorithms.nlpo), and the
paper evaluated it that way: its generate applied the mask at every decoding step, under greedy
decoding, sampling and beam search alike. ``ActionMask`` does this for transformers' ``generate``:
a LogitsProcessor that runs the masking policy on the same prefixes as the policy and sets every
token outside its top-p set (``grue.sampling.top_p_mask``) to -inf. transformers applies custom
processors before its sampling warpers (temperature, top-k, top-p), as the training sampler does.

The masking policy decodes with its own KV cache through ``grue.rollout.Decoder``, the object the
training rollouts use, so a prefix is read the same way in training and evaluation. Under beam
search ``generate`` hands the processor ``num_beams`` rows per prompt and reorders them between
steps; the processor finds each row's parent among the previous step's rows of the same prompt
(its prefix) and reorders the cache to match (``parents``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LogitsProcessor

from grue.adapters import is_adapter_dir
from grue.checkpoint import load_module
from grue.config import Config
from grue.errors import GrueError, option
from grue.models import freeze, load_adapted, load_policy
from grue.rollout import Decoder, MaskSettings
from grue.sampling import NEG_INF, top_p_mask

MASK_MODULE = "mask_policy"
"""The masking policy's file in a checkpoint: ``trainer/mask_policy.safetensors`` (see grue.checkpoint)."""


def load_mask(cfg: Config, checkpoint: str, tokenizer, device) -> MaskSettings | None:
    """The action mask of the NLPO checkpoint ``checkpoint`` (a checkpoint directory), or None.

    None unless the run is NLPO and ``eval.action_mask`` is on. The masking policy is the one the
    checkpoint saved (the copy the sampler used at the end of training), on ``device``, frozen.
    RL4LMs' evaluation masked with the policy as it was at the start of training, because its
    sampler never saw the refreshed copies (a bug; docs/fidelity.md, "Evaluation: NLPO's action mask").
    """
    if cfg.run.algo != "nlpo" or not cfg.eval.action_mask:
        return None
    file = Path(checkpoint) / "trainer" / f"{MASK_MODULE}.safetensors"
    if not file.is_file():
        raise GrueError(
            f"{checkpoint}: an NLPO checkpoint without its masking policy ({file} is missing); "
            f"evaluate without the action mask with {option('overrides', 'eval.action_mask=false')}"
        )
    if is_adapter_dir(checkpoint):  # a LoRA run: the base with the masking policy's adapter snapshot merged in
        model = load_adapted(checkpoint, trust_remote_code=cfg.run.trust_remote_code, own=MASK_MODULE)
    else:
        model = load_policy(checkpoint, trust_remote_code=cfg.run.trust_remote_code)
        load_module(Path(checkpoint), MASK_MODULE, model)
    always = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long, device=device)
    return MaskSettings(freeze(model.to(device)), cfg.algo.top_mask, cfg.algo.min_tokens_to_keep, always)


def parents(previous: torch.Tensor, prefixes: torch.Tensor, group: int) -> torch.Tensor:
    """For each row of ``prefixes`` (N,L), the row of ``previous`` (N,L) it continues: (N,) long.

    Rows come in groups of ``group`` (the beams of one prompt) and a row's parent is searched in its
    own group only: two prompts' decoder prefixes can be equal (seq2seq) while their encoder inputs
    differ. Equal candidates hold equal prefixes, so any of them serves; the first is taken.
    """
    N, L = prefixes.shape
    a = prefixes.view(N // group, group, 1, L)
    b = previous.view(N // group, 1, group, L)
    same = (a == b).all(-1)  # (G, group, group): row i of a group continues row j
    if not bool(same.any(-1).all()):
        raise RuntimeError("action mask: a sequence of generate does not continue any sequence of the previous step")
    first = same.int().argmax(-1)
    return (first + torch.arange(N // group, device=first.device)[:, None] * group).reshape(N)


def reorder(decoder: Decoder, rows: torch.Tensor) -> None:
    """Make ``decoder``'s state follow ``rows`` (N,): row i takes the state of row ``rows[i]``."""
    past = decoder.past
    if hasattr(past, "reorder_cache"):  # a transformers Cache object
        past.reorder_cache(rows)
    else:  # the legacy tuple layout: (layer, (key, value, ...))
        decoder.past = tuple(tuple(t.index_select(0, rows) for t in layer) for layer in past)
    if not decoder.seq2seq:  # seq2seq: the encoder inputs are equal within a group, so nothing else moves
        decoder.attn, decoder.next_pos = decoder.attn.index_select(0, rows), decoder.next_pos.index_select(0, rows)


class ActionMask(LogitsProcessor):
    """Scores (N,V) -> the same with every token outside the masking policy's top-p set at -inf.

    Built per batch of prompts: ``query_ids``/``query_mask`` (B,P) as given to ``generate``
    (causal: left-padded), ``num_beams`` rows per prompt. State: the masking policy's decoder and
    the prefixes (N,L) it has read. A fresh processor is needed for every ``generate`` call.
    """

    def __init__(self, mask: MaskSettings, query_ids: torch.Tensor, query_mask: torch.Tensor, num_beams: int = 1):
        self.mask, self.group = mask, num_beams
        self.query_ids = query_ids.repeat_interleave(num_beams, 0)  # generate's row order: prompt-major
        self.query_mask = query_mask.repeat_interleave(num_beams, 0)
        self.decoder: Decoder | None = None
        self.seen: torch.Tensor | None = None

    def _start(self, input_ids: torch.Tensor) -> None:
        """First step: the masking policy reads the prompts (causal) or the decoder start (seq2seq)."""
        model = self.mask.model
        if model.config.is_encoder_decoder:
            expected = torch.full_like(input_ids[:, :1], model.config.decoder_start_token_id)
        else:
            expected = self.query_ids
        if input_ids.shape != expected.shape or not torch.equal(input_ids, expected.to(input_ids.device)):
            raise RuntimeError("action mask: generate's first sequences are not the prompts it was built for")
        self.decoder = Decoder(model, self.query_ids, self.query_mask)

    @torch.no_grad()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.decoder is None:
            self._start(input_ids)
        else:
            if input_ids.shape[1] != self.seen.shape[1] + 1:
                raise RuntimeError("action mask: generate must add one token per step")
            rows = parents(self.seen, input_ids[:, :-1], self.group)
            if not torch.equal(rows, torch.arange(len(rows), device=rows.device)):
                reorder(self.decoder, rows)
            self.decoder.advance(input_ids[:, -1])
        self.seen = input_ids
        allowed = top_p_mask(self.decoder.logits, self.mask.top_p, self.mask.min_keep, self.mask.always)
        return scores.masked_fill(~allowed.to(scores.device), NEG_INF)
