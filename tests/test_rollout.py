"""Rollouts of the built-in tiny models: masks, padding, and log-probs equal to a fresh forward."""

from __future__ import annotations

import pytest
import torch

from conftest import sampler
from grue.models import load_policy, load_tokenizer
from grue.rollout import concat_rollouts, generate, lm_inputs, policy_forward, token_logprobs, tokenize_prompts
from grue.sampling import warped_logprobs

# transformers 5 deprecates `past_key_values=` (a FutureWarning per call): the decoders hand the cache over as `cache=`
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

PROMPTS = ["I went into this film with low expectations and", "Bad.", "The acting in this picture is great, and the"]
WARPERS = [
    dict(top_k=50),
    dict(top_k=0, top_p=0.9, temperature=0.7),
    dict(top_k=0),
    dict(top_k=20, top_p=0.8, temperature=1.3),
]


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-t5"])
def lm(request):
    model = load_policy(request.param).eval()
    return request.param, model, load_tokenizer(request.param)


def frequent_token(model, tok, q, qm, gen, seed) -> int:
    """A token sampled in many rows but not all: used as EOS so that responses end at varied lengths.

    The probe uses the same settings and seed as the real run, so the trajectories agree
    up to each row's first occurrence of that token.
    """
    r = generate(model, q, qm, gen, eos_id=-100, pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(seed))
    rows_with = {}
    for row in r.response_ids.tolist():
        for t in set(row):
            rows_with[t] = rows_with.get(t, 0) + 1
    n = r.response_ids.shape[0]
    return max((c, t) for t, c in rows_with.items() if c < n)[1]


def fresh_forward(model, r, seq2seq):
    inputs = lm_inputs(
        r.query_ids,
        r.query_mask,
        r.response_ids,
        r.response_mask,
        seq2seq,
        getattr(model.config, "decoder_start_token_id", None),
    )
    with torch.no_grad():
        logits, _ = policy_forward(model, inputs, r.response_ids.shape[1], seq2seq)
    return logits


@pytest.mark.parametrize("warp", WARPERS)
def test_logprobs_equal_a_fresh_forward(lm, warp):
    name, model, tok = lm
    seq2seq = name == "tiny-t5"
    q, qm = tokenize_prompts(tok, PROMPTS, 32, seq2seq, "cpu")
    gen = sampler(32, 2, 10, **warp)
    r = generate(
        model, q, qm, gen, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(1)
    )
    logits = fresh_forward(model, r, seq2seq)
    lp, ent = warped_logprobs(
        logits,
        r.response_ids,
        r.support,
        temperature=gen.temperature,
        eos_id=tok.eos_token_id,
        min_new_tokens=gen.min_new_tokens,
    )
    m = r.response_mask
    torch.testing.assert_close(lp * m, r.logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(token_logprobs(logits, r.response_ids) * m, r.raw_logprobs, atol=1e-4, rtol=0)
    assert bool((ent[m > 0] >= 0).all())
    if warp.get("top_k"):
        assert r.support is not None and r.support.shape[-1] <= warp["top_k"]
        assert bool(((r.support == r.response_ids[..., None]).any(-1) | (m == 0)).all()), (
            "a sampled token lies outside its support"
        )


def test_masks_and_padding_after_eos(lm):
    name, model, tok = lm
    seq2seq = name == "tiny-t5"
    q, qm = tokenize_prompts(tok, PROMPTS * 4, 32, seq2seq, "cpu")
    gen = sampler(32, 0, 12, top_k=3)
    eos = frequent_token(model, tok, q, qm, gen, seed=2)
    r = generate(model, q, qm, gen, eos_id=eos, pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(2))
    lengths = r.response_mask.sum(-1).long()
    assert len(set(lengths.tolist())) > 1, "responses should end at different lengths"
    for row, n in zip(range(len(lengths)), lengths.tolist()):
        ids, m = r.response_ids[row], r.response_mask[row]
        assert m[:n].eq(1).all() and m[n:].eq(0).all()
        eos_at = (ids[:n] == eos).nonzero().flatten().tolist()
        assert eos_at in ([], [n - 1]), "EOS is the last real token, and only there"
        assert ids[n:].eq(tok.pad_token_id).all()
        assert r.logprobs[row, n:].eq(0).all() and r.raw_logprobs[row, n:].eq(0).all()
    # Padded positions do not change the real ones: the teacher-forced pass agrees.
    logits = fresh_forward(model, r, seq2seq)
    torch.testing.assert_close(
        token_logprobs(logits, r.response_ids) * r.response_mask, r.raw_logprobs, atol=1e-4, rtol=0
    )


def test_min_new_tokens_bans_eos(lm):
    name, model, tok = lm
    seq2seq = name == "tiny-t5"
    q, qm = tokenize_prompts(tok, PROMPTS * 4, 32, seq2seq, "cpu")
    eos = frequent_token(model, tok, q, qm, sampler(32, 0, 12, top_k=3), seed=3)
    r = generate(
        model,
        q,
        qm,
        sampler(32, 4, 12, top_k=3),
        eos_id=eos,
        pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(3),
    )
    assert bool((r.response_mask.sum(-1) >= 4).all())
    assert eos not in r.response_ids[:, :4].flatten().tolist()


def test_prompt_padding_side_and_batching_is_invisible(lm):
    """Each prompt alone (no padding) gives the same first-step distribution as inside the padded batch."""
    name, model, tok = lm
    seq2seq = name == "tiny-t5"
    q, qm = tokenize_prompts(tok, PROMPTS, 32, seq2seq, "cpu")
    lengths = qm.sum(-1)
    assert len(set(lengths.tolist())) > 1
    if seq2seq:
        assert qm[:, 0].eq(1).all(), "seq2seq prompts are right-padded"
    else:
        assert qm[:, -1].eq(1).all(), "causal prompts are left-padded"
    greedy = sampler(32, 0, 6, do_sample=False)
    batch = generate(model, q, qm, greedy, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    for i, p in enumerate(PROMPTS):
        qi, qmi = tokenize_prompts(tok, [p], 32, seq2seq, "cpu")
        alone = generate(model, qi, qmi, greedy, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
        assert alone.response_ids[0].tolist() == batch.response_ids[i, : alone.response_ids.shape[1]].tolist()
        torch.testing.assert_close(
            alone.raw_logprobs[0], batch.raw_logprobs[i, : alone.response_ids.shape[1]], atol=1e-4, rtol=0
        )


def test_prompt_truncation_keeps_the_end(lm):
    name, _, tok = lm
    long = " ".join(["word"] * 200) + " the very end"
    q, qm = tokenize_prompts(tok, [long], 16, name == "tiny-t5", "cpu")
    assert q.shape[1] == 16
    assert "the very end" in tok.decode(q[0], skip_special_tokens=True)


def test_concat_rollouts_pads_to_common_shape(lm):
    name, model, tok = lm
    seq2seq = name == "tiny-t5"
    parts = []
    for prompts, new in ((PROMPTS[:1], 4), (PROMPTS[1:], 6)):
        q, qm = tokenize_prompts(tok, prompts, 32, seq2seq, "cpu")
        parts.append(
            generate(model, q, qm, sampler(32, new, new, top_k=5), eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
        )
    r = concat_rollouts(parts, tok.pad_token_id, left_pad_queries=not seq2seq)
    assert r.response_ids.shape == (3, 6) and r.support.shape[:2] == (3, 6)
    assert r.response_mask[0].tolist() == [1, 1, 1, 1, 0, 0]
    # Joined rows still score the same under a fresh forward.
    logits = fresh_forward(model, r, seq2seq)
    torch.testing.assert_close(
        token_logprobs(logits, r.response_ids) * r.response_mask, r.raw_logprobs, atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_token_logprobs_equal_the_plain_log_softmax(dtype):
    """gather - logsumexp over chunks of positions (no float32 (B,T,V) copy) against log_softmax(...).gather: equal to
    float rounding (1e-5 on values of about -7), also in the gradient; T = 13 is not a multiple of the chunk."""
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 13, 1000)).to(dtype).requires_grad_()
    tokens = torch.randint(0, 1000, (3, 13))
    plain = torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None])[..., 0]
    for chunk in (1, 4, 8, 13, 64):
        got = token_logprobs(logits, tokens, chunk=chunk)
        assert got.dtype == torch.float32 and got.shape == (3, 13)
        torch.testing.assert_close(got, plain, rtol=0, atol=1e-5)
        (g_got,) = torch.autograd.grad(got.sum(), logits)
        (g_plain,) = torch.autograd.grad(plain.sum(), logits, retain_graph=True)
        torch.testing.assert_close(g_got.float(), g_plain.float(), rtol=0, atol=1e-6)
