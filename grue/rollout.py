"""Rollouts: one KV-cached sampling loop per batch, then one teacher-forced forward per model.

Shapes: B sequences, P prompt tokens, T response tokens, K support width, V vocabulary.
Causal prompts are left-padded, so every response starts at position P; seq2seq prompts
are the encoder input (right-padded). Responses are right-padded after EOS;
``response_mask`` is 1 on generated tokens up to and including EOS.

The rollout's ``logprobs`` come from the sampling step's own logits (no extra policy
forward): with dropout off, a cached decoding step computes the same function as a
teacher-forced pass, which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from grue import kv_cache
from grue.config import GenerationConfig
from grue.models import accepts
from grue.sampling import pad_supports, sample_step, top_p_mask


@dataclass
class Rollout:
    """A batch of sampled responses and what the update needs of them."""

    query_ids: torch.Tensor  # (B,P)
    query_mask: torch.Tensor  # (B,P)
    response_ids: torch.Tensor  # (B,T)
    response_mask: torch.Tensor  # (B,T) float
    logprobs: torch.Tensor  # (B,T) warped log-probs of the sampled tokens (the behaviour policy)
    raw_logprobs: torch.Tensor  # (B,T) unwarped policy log-probs, for the KL penalty
    support: torch.Tensor | None  # (B,T,K) sampling support ids, -1 padded; None = whole vocabulary
    ref_logprobs: torch.Tensor | None = None  # (B,T)
    values: torch.Tensor | None = None  # (B,T)

    def index(self, idx: torch.Tensor) -> "Rollout":
        """The rows ``idx`` of every tensor field."""
        return Rollout(
            **{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[idx] for f in fields(self)}
        )


def tokenize_prompts(
    tokenizer, prompts: list[str], max_tokens: int, is_encoder_decoder: bool, device, truncation_side: str = "left"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and mask (B,P): truncated on ``truncation_side`` to ``max_tokens``; causal left-padded."""
    tokenizer.truncation_side = truncation_side
    tokenizer.padding_side = "right" if is_encoder_decoder else "left"
    enc = tokenizer(prompts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: ``cumsum(mask) - 1``, clamped at 0."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def cache_keyword(model) -> str:
    """The keyword that hands a model its KV cache: ``cache`` (transformers 5.x, where ``past_key_values`` is
    deprecated) when ``forward`` takes it, else ``past_key_values`` (transformers 4.x, remote-code models)."""
    return "cache" if accepts(model, "cache") else "past_key_values"


def returned_cache(out):
    """The KV cache a forward with ``use_cache=True`` returned (``cache``, or 4.x's ``past_key_values``)."""
    return out["cache"] if "cache" in out else out["past_key_values"]


class Decoder:
    """Incremental decoding of one model over a batch with its own KV cache.

    The one ``is_encoder_decoder`` branch of sampling: seq2seq models encode the prompt
    once and decode from ``decoder_start_token_id``; causal ones continue the left-padded
    prompt with position ids that skip the padding. ``logits`` is (B,V) for the next token;
    ``past`` is the model's KV cache (a transformers Cache, or 4.x's tuples). ``room``: the
    number of tokens to be decoded, if known; the cache then reserves room for them
    (grue.kv_cache) instead of growing by a copy at every step.
    """

    def __init__(self, model, query_ids: torch.Tensor, query_mask: torch.Tensor, room: int = 0):
        self.model, self.query_mask = model, query_mask
        self.seq2seq = bool(model.config.is_encoder_decoder)
        self.keep = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
        self.cache_kw = cache_keyword(model)
        if self.seq2seq:
            self.encoder_outputs = model.get_encoder()(input_ids=query_ids, attention_mask=query_mask)
            start = torch.full(
                (query_ids.shape[0], 1), model.config.decoder_start_token_id, dtype=torch.long, device=query_ids.device
            )
            out = model(
                encoder_outputs=self.encoder_outputs, attention_mask=query_mask, decoder_input_ids=start, use_cache=True
            )
        else:
            self.attn = query_mask.clone()
            pos = positions(self.attn)
            last = {
                k: torch.tensor([query_ids.shape[1] - 1], device=query_ids.device) for k in self.keep
            }  # see policy_forward
            out = model(input_ids=query_ids, attention_mask=self.attn, position_ids=pos, use_cache=True, **last)
            self.next_pos = pos[:, -1:] + 1
        prefix = 1 if self.seq2seq else query_ids.shape[1]
        self.logits, self.past = out.logits[:, -1], kv_cache.reserve(returned_cache(out), prefix + room if room else 0)

    def advance(self, tokens: torch.Tensor) -> None:
        """Feed one token per row (B,) and compute the next logits."""
        cache = {self.cache_kw: self.past}
        if self.seq2seq:
            out = self.model(
                encoder_outputs=self.encoder_outputs,
                attention_mask=self.query_mask,
                decoder_input_ids=tokens[:, None],
                use_cache=True,
                **cache,
            )
        else:
            self.attn = torch.cat([self.attn, torch.ones_like(self.attn[:, :1])], dim=1)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=self.attn,
                position_ids=self.next_pos,
                use_cache=True,
                **cache,
                **self.keep,
            )
            self.next_pos = self.next_pos + 1
        self.logits, self.past = out.logits[:, -1], returned_cache(out)


@dataclass
class MaskSettings:
    """NLPO's action mask: top-p of a masking model (see grue.sampling.top_p_mask)."""

    model: torch.nn.Module
    top_p: float
    min_keep: int
    always: torch.Tensor  # ids always allowed (special tokens)


@torch.no_grad()
def generate(
    model,
    query_ids,
    query_mask,
    gen: GenerationConfig,
    *,
    eos_id: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    mask: MaskSettings | None = None,
) -> Rollout:
    """Sample responses for a batch of prompts with a KV cache: one forward per new token.

    With ``mask`` (NLPO), the masking model decodes the same tokens with its own cache
    and each step samples only among the tokens of its top-p set.
    """
    B = query_ids.shape[0]
    policy = Decoder(model, query_ids, query_mask, room=gen.max_new_tokens)
    masker = Decoder(mask.model, query_ids, query_mask, room=gen.max_new_tokens) if mask else None
    done = torch.zeros(B, dtype=torch.bool, device=query_ids.device)
    tokens, lps, raws, supports, masks = [], [], [], [], []
    for t in range(gen.max_new_tokens):
        allowed = top_p_mask(masker.logits, mask.top_p, mask.min_keep, mask.always) if masker else None
        step = sample_step(
            policy.logits,
            step=t,
            eos_id=eos_id,
            min_new_tokens=gen.min_new_tokens,
            temperature=gen.temperature,
            top_k=gen.top_k,
            top_p=gen.top_p,
            do_sample=gen.do_sample,
            generator=generator,
            allowed=allowed,
        )
        tok = step.tokens.masked_fill(done, pad_id)
        masks.append((~done).float())
        tokens.append(tok), lps.append(step.logprobs), raws.append(step.raw_logprobs), supports.append(step.support)
        done = done | (tok == eos_id)
        if bool(done.all()) or t == gen.max_new_tokens - 1:
            break
        policy.advance(tok)
        if masker:
            masker.advance(tok)
    mask_ = torch.stack(masks, 1)
    return Rollout(
        query_ids=query_ids,
        query_mask=query_mask,
        response_ids=torch.stack(tokens, 1),
        response_mask=mask_,
        logprobs=torch.stack(lps, 1) * mask_,
        raw_logprobs=torch.stack(raws, 1) * mask_,
        support=pad_supports(supports),
    )


def lm_inputs(
    query_ids, query_mask, response_ids, response_mask, is_encoder_decoder: bool, decoder_start_id: int | None
) -> dict:
    """Teacher-forcing inputs for one forward over prompt + response.

    Causal: ``input_ids = [query, response]`` with position ids that skip left padding;
    the logits for response token t sit at position ``P - 1 + t``. Seq2seq: the
    decoder input is the response shifted right behind ``decoder_start_id``.
    """
    if is_encoder_decoder:
        start = torch.full_like(response_ids[:, :1], decoder_start_id)
        return {
            "input_ids": query_ids,
            "attention_mask": query_mask,
            "decoder_input_ids": torch.cat([start, response_ids[:, :-1]], 1),
            "decoder_attention_mask": torch.cat(
                [torch.ones_like(response_mask[:, :1]), response_mask[:, :-1]], 1
            ).long(),
        }
    mask = torch.cat([query_mask, response_mask.long()], 1)
    return {
        "input_ids": torch.cat([query_ids, response_ids], 1),
        "attention_mask": mask,
        "position_ids": positions(mask),
    }


def policy_forward(model, inputs: dict, response_len: int, is_encoder_decoder: bool, want_hidden: bool = False):
    """Response logits (B,T,V) of a causal or seq2seq LM, and its last hidden states (B,T,H) if asked.

    Causal models compute output logits only at the T positions that predict the response (``logits_to_keep``
    as a tensor of positions: the LM head then multiplies a contiguous copy of those hidden states; the slice
    ``[:, -T-1:]`` that an int asks for is a strided view, which torch multiplies as a batched matmul over a
    broadcast weight, measured 1.5x slower for GPT-2's 50257-token head).
    """
    kwargs = dict(inputs)
    if want_hidden:
        kwargs["output_hidden_states"] = True
    kept = not is_encoder_decoder and accepts(getattr(model, "module", model), "logits_to_keep")
    if kept:
        L = inputs["input_ids"].shape[1]
        kwargs["logits_to_keep"] = torch.arange(L - response_len - 1, L - 1, device=inputs["input_ids"].device)
    out = model(**kwargs)
    hidden = None
    if is_encoder_decoder:
        logits = out.logits
        if want_hidden:
            hidden = out.decoder_hidden_states[-1]
    else:
        logits = out.logits if kept else out.logits[:, -response_len - 1 : -1]
        if want_hidden:
            hidden = out.hidden_states[-1][:, -response_len - 1 : -1]
    return logits, hidden


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Unwarped log-probs ``log_softmax(logits)[token]``: (B,T,V), (B,T) -> (B,T).

    Computed as ``logits[token] - logsumexp(logits)`` in float32, ``chunk`` positions at a time, so that no
    float32 (B,T,V) log-softmax is ever materialised (only a (B,chunk,V) one); the same numbers as the plain
    ``log_softmax(...).gather`` to float rounding (tests/test_rollout.py)."""
    parts = []
    for t in range(0, tokens.shape[1], chunk):
        x = logits[:, t : t + chunk].float()
        parts.append(x.gather(-1, tokens[:, t : t + chunk, None])[..., 0] - torch.logsumexp(x, -1))
    return torch.cat(parts, 1) if parts else logits.new_zeros(tokens.shape, dtype=torch.float32)


def decode_texts(tokenizer, rows: list[list[int]], clean_up: bool = True) -> list[str]:
    """Token id rows as texts, special tokens skipped; with ``clean_up``, transformers 4.x's default clean-up of
    the spaces before punctuation and contractions (``" ."`` -> ``"."``, ``" n't"`` -> ``"n't"``, ...), which RL4LMs'
    decoding applied (transformers 4.18). Nothing is stripped."""
    texts = tokenizer.batch_decode(rows, skip_special_tokens=True)
    return [tokenizer.clean_up_tokenization(t) for t in texts] if clean_up else texts


def decode_completions(
    tokenizer, response_ids: torch.Tensor, response_mask: torch.Tensor, clean_up: bool = True
) -> list[str]:
    """Each row's text: its first ``sum(mask)`` tokens, through ``decode_texts``. (B,T), (B,T) -> B strings.

    Padding positions are cut off, never decoded: GPT-2's padding is EOS, and a padding id of 0
    would be the ordinary token "!" in its vocabulary.
    """
    lengths = response_mask.sum(-1).long().tolist()
    return decode_texts(tokenizer, [ids[:n] for ids, n in zip(response_ids.tolist(), lengths)], clean_up)


def first_tokens(mask: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` real tokens of a batch, counted row after row (episodes in order): (B,T) -> (B,T).

    ``mask`` with every real token past the ``n``-th zeroed. RL4LMs' rollout buffer holds
    ``n_envs * n_steps`` transitions this way: whole episodes, then the start of the one that
    fills it, and nothing after.
    """
    flat = mask.flatten()
    kept = (flat.cumsum(0) <= n) & (flat > 0)
    return kept.to(mask.dtype).reshape(mask.shape)


def concat_rollouts(parts: list[Rollout], pad_id: int, left_pad_queries: bool) -> Rollout:
    """Join rollouts of different prompt and response lengths into one batch."""
    P = max(r.query_ids.shape[1] for r in parts)
    T = max(r.response_ids.shape[1] for r in parts)
    K = max((r.support.shape[-1] for r in parts if r.support is not None), default=0)

    def pad(x, width, value, dim=1, left=False):
        extra = width - x.shape[dim]
        if extra == 0:
            return x
        spec = [0, 0] * (x.dim() - 1 - dim) + ([extra, 0] if left else [0, extra])
        return torch.nn.functional.pad(x, spec, value=value)

    out = {}
    for f in fields(Rollout):
        vals = [getattr(r, f.name) for r in parts]
        if vals[0] is None:
            out[f.name] = None
        elif f.name in ("query_ids", "query_mask"):
            out[f.name] = torch.cat(
                [pad(v, P, pad_id if f.name == "query_ids" else 0, left=left_pad_queries) for v in vals]
            )
        elif f.name == "support":
            out[f.name] = torch.cat([pad(pad(v, T, -1), K, -1, dim=2) for v in vals])
        else:
            out[f.name] = torch.cat([pad(v, T, pad_id if f.name == "response_ids" else 0) for v in vals])
    return Rollout(**out)
