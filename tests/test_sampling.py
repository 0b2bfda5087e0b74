"""grue.sampling against hand-computed distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from grue.sampling import pad_supports, sample_step, warped_logprobs

# top-k logits: the 3 largest are ids 1 (3.0), 3 (2.5), 5 (2.0)
LOGITS = [1.0, 3.0, 0.5, 2.5, -1.0, 2.0]
TOPK_IDS = [1, 3, 5]
_Z3 = math.exp(3.0) + math.exp(2.5) + math.exp(2.0)
TOPK_P = {1: math.exp(3.0) / _Z3, 3: math.exp(2.5) / _Z3, 5: math.exp(2.0) / _Z3}  # 0.5065, 0.3072, 0.1863
_ZALL = sum(math.exp(x) for x in LOGITS)
RAW_LP = [x - math.log(_ZALL) for x in LOGITS]


def _rows(values, n):
    return torch.tensor([values] * n)


def test_top_k_support_logprobs_and_raw_logprobs():
    g = torch.Generator().manual_seed(0)
    out = sample_step(_rows(LOGITS, 500), step=0, eos_id=None, top_k=3, generator=g)
    assert set(out.tokens.tolist()) <= set(TOPK_IDS)
    assert out.support.tolist() == [TOPK_IDS] * 500  # largest first
    for tok, lp, raw in zip(out.tokens.tolist(), out.logprobs.tolist(), out.raw_logprobs.tolist()):
        assert lp == pytest.approx(math.log(TOPK_P[tok]), abs=1e-5)
        assert raw == pytest.approx(RAW_LP[tok], abs=1e-5)


def test_top_k_empirical_frequencies():
    n = 20000
    g = torch.Generator().manual_seed(1234)
    tokens = sample_step(_rows(LOGITS, n), step=0, eos_id=None, top_k=3, generator=g).tokens
    counts = torch.bincount(tokens, minlength=6).tolist()
    assert counts[0] == counts[2] == counts[4] == 0
    chi2 = sum((counts[i] - n * p) ** 2 / (n * p) for i, p in TOPK_P.items())
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001


def test_full_vocabulary_draws_follow_the_distribution_and_never_an_excluded_token():
    """top_k 0 draws over the whole vocabulary (grue.sampling.categorical): a chi-square test of 20000 draws, and
    a banned EOS (id 5, the last entry) and an entry of probability 0 are never drawn."""
    from grue.sampling import categorical

    probs = torch.tensor([0.1, 0.35, 0.0, 0.25, 0.3, 0.0])
    n = 20000
    g = torch.Generator().manual_seed(7)
    logits = _rows(probs.log().tolist(), n)
    tokens = sample_step(logits, step=0, eos_id=5, min_new_tokens=1, top_k=0, generator=g).tokens
    counts = torch.bincount(tokens, minlength=6).tolist()
    assert counts[2] == counts[5] == 0
    chi2 = sum((counts[i] - n * p) ** 2 / (n * p) for i, p in enumerate(probs.tolist()) if p > 0)
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001
    direct = categorical(torch.log(probs)[None].expand(n, 6), torch.Generator().manual_seed(7))
    assert torch.equal(direct, tokens), "sample_step's draw is categorical's, on the same generator"


# top-p: probabilities 0.5, 0.3, 0.15, 0.05 placed at ids 1, 3, 0, 2.
# mass strictly above each (sorted): 0, 0.5, 0.8, 0.95; an entry is kept when that mass < top_p.
TOPP_LOGITS = [math.log(0.15), math.log(0.5), math.log(0.05), math.log(0.3)]


@pytest.mark.parametrize("top_p, kept", [(0.4, [1]), (0.7, [1, 3]), (0.85, [1, 3, 0]), (0.97, [1, 3, 0, 2])])
def test_top_p_support(top_p, kept):
    g = torch.Generator().manual_seed(0)
    out = sample_step(_rows(TOPP_LOGITS, 300), step=0, eos_id=None, top_p=top_p, generator=g)
    assert out.support.tolist() == [kept] * 300
    assert set(out.tokens.tolist()) <= set(kept)
    probs = {1: 0.5, 3: 0.3, 0: 0.15, 2: 0.05}
    mass = sum(probs[i] for i in kept)
    for tok, lp in zip(out.tokens.tolist(), out.logprobs.tolist()):
        assert lp == pytest.approx(math.log(probs[tok] / mass), abs=1e-5)  # renormalised over the kept set


def test_top_p_rows_of_different_width_pad_with_minus_one():
    # row 0 keeps 2 tokens at top_p 0.7; row 1 (0.9 / 0.05 / 0.03 / 0.02) keeps only id 0
    logits = torch.tensor([TOPP_LOGITS, [math.log(p) for p in (0.9, 0.05, 0.03, 0.02)]])
    g = torch.Generator().manual_seed(0)
    out = sample_step(logits, step=0, eos_id=None, top_p=0.7, generator=g)
    assert out.support.tolist() == [[1, 3], [0, -1]]
    assert out.tokens[1].item() == 0 and out.logprobs[1].item() == pytest.approx(0.0, abs=1e-6)


def test_top_k_then_top_p():
    # top_k 2 keeps ids 1 (0.5) and 3 (0.3), renormalised 0.625 / 0.375; top_p 0.6 -> only id 1
    g = torch.Generator().manual_seed(0)
    out = sample_step(_rows(TOPP_LOGITS, 50), step=0, eos_id=None, top_k=2, top_p=0.6, generator=g)
    assert out.support.tolist() == [[1]] * 50 and out.tokens.tolist() == [1] * 50


def test_eos_banned_before_min_new_tokens():
    logits = _rows([0.0, 0.0, 10.0, 0.0], 400)  # eos id 2 dominates
    g = torch.Generator().manual_seed(0)
    for kw in ({}, {"top_k": 2}, {"top_p": 0.9}):
        out = sample_step(logits, step=2, eos_id=2, min_new_tokens=3, generator=g, **kw)
        assert 2 not in out.tokens.tolist()
        # raw log-probs stay unwarped: log(1 / (3 + e^10))
        assert_close(out.raw_logprobs, torch.full((400,), -math.log(3 + math.exp(10.0))))
    out = sample_step(logits, step=0, eos_id=2, min_new_tokens=3, do_sample=False)
    assert out.tokens.tolist() == [0] * 400  # greedy picks the first of the remaining ties
    # from step 3 on EOS is allowed; p(eos) = e^10 / (3 + e^10) > 0.999
    out = sample_step(logits, step=3, eos_id=2, min_new_tokens=3, generator=g)
    assert (out.tokens == 2).sum().item() >= 395


def test_greedy():
    logits = torch.tensor([LOGITS, [0.0, -1.0, 4.0, 1.0, 2.0, 3.0]])
    out = sample_step(logits, step=0, eos_id=None, do_sample=False, top_k=3, temperature=0.3)
    assert out.tokens.tolist() == [1, 2]
    assert out.logprobs.tolist() == [0.0, 0.0]  # point mass
    assert out.support.tolist() == [[1], [2]]
    z1 = sum(math.exp(x) for x in (0.0, -1.0, 4.0, 1.0, 2.0, 3.0))
    assert_close(out.raw_logprobs, torch.tensor([RAW_LP[1], 4.0 - math.log(z1)]))


@pytest.mark.parametrize("kw", [{}, {"top_k": 2}])
def test_temperature(kw):
    # logits [0, ln 3]: at T=1 p = [0.25, 0.75]; at T=2 p ∝ [1, sqrt(3)] -> p1 = sqrt3 / (1 + sqrt3)
    logits = _rows([0.0, math.log(3.0)], 200)
    g = torch.Generator().manual_seed(0)
    out = sample_step(logits, step=0, eos_id=None, temperature=2.0, generator=g, **kw)
    p1 = math.sqrt(3) / (1 + math.sqrt(3))  # 0.6339746
    expected = {0: math.log(1 - p1), 1: math.log(p1)}
    raw = {0: math.log(0.25), 1: math.log(0.75)}  # temperature does not enter the raw log-probs
    for tok, lp, r in zip(out.tokens.tolist(), out.logprobs.tolist(), out.raw_logprobs.tolist()):
        assert lp == pytest.approx(expected[tok], abs=1e-5)
        assert r == pytest.approx(raw[tok], abs=1e-5)
    assert set(out.tokens.tolist()) == {0, 1}


def _entropy(ps):
    return -sum(p * math.log(p) for p in ps)


def test_warped_logprobs_over_support():
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.0, -1.0], [0.5, 0.0, 0.0, 1.5, 0.0]]])
    support = torch.tensor([[[2, 1, 0], [3, 0, -1]]])
    tokens = torch.tensor([[1, 0]])
    logp, ent = warped_logprobs(logits, tokens, support)
    z0 = math.exp(3) + math.exp(2) + math.exp(1)
    p0 = [math.exp(3) / z0, math.exp(2) / z0, math.exp(1) / z0]  # 0.6652, 0.2447, 0.0900
    p1 = [math.e / (1 + math.e), 1 / (1 + math.e)]  # over ids 3 and 0: 0.7311, 0.2689
    assert_close(logp, torch.tensor([[2.0 - math.log(z0), -math.log(1 + math.e)]]))
    assert_close(ent, torch.tensor([[_entropy(p0), _entropy(p1)]]))  # 0.8324, 0.5822


def test_warped_logprobs_normalised_over_support_with_temperature():
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.0, -1.0]]])
    support = torch.tensor([[[2, 1, 4, -1]]])
    total = sum(
        warped_logprobs(logits, torch.tensor([[i]]), support, temperature=0.5)[0].exp().item() for i in (2, 1, 4)
    )
    assert total == pytest.approx(1.0, abs=1e-6)
    # at T=0.5 the support logits are 6, 4, -2: p(id 1) = e^4 / (e^6 + e^4 + e^-2)
    logp, _ = warped_logprobs(logits, torch.tensor([[1]]), support, temperature=0.5)
    assert logp.item() == pytest.approx(4.0 - math.log(math.exp(6) + math.exp(4) + math.exp(-2)), abs=1e-5)
    # a token outside the support, or a padded position with no support, gets log-prob 0
    logp, ent = warped_logprobs(logits, torch.tensor([[3]]), torch.tensor([[[-1, -1, -1, -1]]]))
    assert logp.item() == 0.0 and ent.item() == 0.0


def test_warped_logprobs_match_sample_step():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(8, 20, generator=g) * 2
    for kw in ({"top_k": 5}, {"top_p": 0.8}, {"top_k": 6, "top_p": 0.7}):
        out = sample_step(logits, step=0, eos_id=None, temperature=0.7, generator=g, **kw)
        logp, _ = warped_logprobs(logits[:, None, :], out.tokens[:, None], out.support[:, None, :], temperature=0.7)
        assert_close(logp[:, 0], out.logprobs, rtol=1e-5, atol=1e-5)
    out = sample_step(logits, step=0, eos_id=3, min_new_tokens=1, temperature=1.3, generator=g)
    assert out.support is None
    logp, _ = warped_logprobs(
        logits[:, None, :], out.tokens[:, None], None, temperature=1.3, eos_id=3, min_new_tokens=1
    )
    assert_close(logp[:, 0], out.logprobs, rtol=1e-5, atol=1e-5)


def test_warped_logprobs_without_support_bans_eos_early():
    logits = torch.zeros(1, 3, 3)
    tokens = torch.tensor([[0, 0, 2]])
    logp, ent = warped_logprobs(logits, tokens, None, eos_id=2, min_new_tokens=2)
    # t=0,1: EOS banned -> uniform over 2 tokens; t=2: uniform over 3
    assert_close(logp, torch.tensor([[math.log(0.5), math.log(0.5), math.log(1 / 3)]]))
    assert_close(ent, torch.tensor([[math.log(2), math.log(2), math.log(3)]]))
    logp, _ = warped_logprobs(logits, torch.tensor([[2, 0, 0]]), None, eos_id=2, min_new_tokens=2)
    assert logp[0, 0].item() == -math.inf


def test_warped_logprobs_gradient_is_finite_with_zero_probability_entries():
    # The PPO loss subtracts ent_coef * entropy (ent_coef may be 0): the entropy must not poison the
    # gradient when the warped distribution has zero-probability entries (-1 padded support,
    # or EOS banned without a support).
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.5]]], requires_grad=True)
    cases = [(torch.tensor([[[2, 1, -1]]]), {}), (None, {"eos_id": 3, "min_new_tokens": 1})]
    for support, kw in cases:
        logits.grad = None
        logp, ent = warped_logprobs(logits, torch.tensor([[2]]), support, **kw)
        (logp.sum() - 0.0 * ent.sum()).backward()
        assert torch.isfinite(logits.grad).all(), (support, logits.grad)


def test_pad_supports():
    a = torch.tensor([[1, 2, 3], [4, 5, 6]])
    b = torch.tensor([[7], [8]])
    out = pad_supports([a, b])
    assert out.shape == (2, 2, 3)
    assert out.tolist() == [[[1, 2, 3], [7, -1, -1]], [[4, 5, 6], [8, -1, -1]]]
    assert pad_supports([]) is None and pad_supports([None, None]) is None


@pytest.mark.parametrize("support", [None, torch.tensor([[[0, 2, -1], [1, 3, 4]]])])
def test_entropy_without_gradient_is_the_same_number_and_keeps_no_graph(support):
    """``entropy_grad=False`` (no entropy bonus): the same log-probs with their gradient and the same entropy, but
    the entropy is a plain tensor (nothing of it kept for a backward); full softmax and warped alike."""
    from grue.sampling import full_logprobs

    logits = torch.tensor([[[0.5, -1.0, 2.0, 0.1, 0.3], [1.5, 0.2, -0.7, 0.9, 0.0]]], requires_grad=True)
    tokens = torch.tensor([[2, 3]])
    fns = [lambda g: warped_logprobs(logits, tokens, support, entropy_grad=g)]
    if support is None:
        fns.append(lambda g: full_logprobs(logits, tokens, g))
    for fn in fns:
        (lp1, ent1), (lp0, ent0) = fn(True), fn(False)
        assert ent1.requires_grad and not ent0.requires_grad and lp0.requires_grad
        assert torch.equal(ent1.detach(), ent0) and torch.equal(lp1, lp0)
        g1 = torch.autograd.grad(lp1.sum(), logits)[0]
        g0 = torch.autograd.grad(lp0.sum(), logits)[0]
        assert torch.equal(g1, g0)


@pytest.mark.parametrize("with_support", [False, True])
def test_entropy_without_gradient_over_many_positions_equals_the_whole_tensor_formula(with_support):
    """Without a gradient the entropy is computed a few positions at a time (19 positions: chunks of 8, 8, 3);
    it equals the formula over the whole (B,T,V) tensor."""
    from grue.sampling import full_logprobs

    torch.manual_seed(0)
    logits, order = torch.randn(2, 19, 7), torch.argsort(torch.rand(2, 19, 7), -1)
    tokens = order[..., 0]  # the sampled token is always in its step's support
    support = None
    if with_support:
        support = order[..., :4].clone()
        support[0, ::2, 3] = -1  # rows of a narrower support are padded
    fns = [lambda g: warped_logprobs(logits, tokens, support, entropy_grad=g)]
    if not with_support:
        fns.append(lambda g: full_logprobs(logits, tokens, g))
    for fn in fns:
        (lp1, ent1), (lp0, ent0) = fn(True), fn(False)
        assert ent0.shape == (2, 19)
        torch.testing.assert_close(ent0, ent1, rtol=0, atol=1e-6)
        assert torch.equal(lp0, lp1)
