"""grue.losses against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from grue.losses import a2c_policy_loss, ppo_policy_loss, token_mean, value_loss

# Five tokens, clip 0.2 (range [0.8, 1.2]); old log-probs 0 so ratio = exp(logprobs).
#   a: A=+1, r=1.1 -> max(-1.1, -1.1) = -1.1   not clipped
#   b: A=+1, r=1.5 -> max(-1.5, -1.2) = -1.2   clipped
#   c: A=-2, r=0.5 -> max( 1.0,  1.6) =  1.6   clipped
#   d: A=-2, r=1.5 -> max( 3.0,  2.4) =  3.0   not clipped (pessimistic term)
#   e: A=+1, r=0.5 -> max(-0.5, -0.8) = -0.5   not clipped
# loss = (-1.1 - 1.2 + 1.6 + 3.0 - 0.5) / 5 = 1.8 / 5 = 0.36, clipfrac = 2/5
# approx_kl = mean((r-1) - log r):
#   r=1.1: 0.1 - 0.0953101798 = 0.0046898202
#   r=1.5: 0.5 - 0.4054651081 = 0.0945348919 (x2)
#   r=0.5: -0.5 + 0.6931471806 = 0.1931471806 (x2)
#   sum 0.5800539652 -> / 5 = 0.1160107930
RATIOS = [1.1, 1.5, 0.5, 1.5, 0.5]
ADVS = [1.0, 1.0, -2.0, -2.0, 1.0]


def _inputs(requires_grad=False):
    logp = torch.tensor([[math.log(r) for r in RATIOS]], requires_grad=requires_grad)
    return logp, torch.zeros(1, 5), torch.tensor([ADVS]), torch.ones(1, 5)


def test_ppo_policy_loss_values():
    loss, clipfrac, approx_kl = ppo_policy_loss(*_inputs(), clip=0.2)
    assert loss.item() == pytest.approx(0.36, abs=1e-6)
    assert clipfrac.item() == pytest.approx(0.4)
    assert approx_kl.item() == pytest.approx(0.1160107930, abs=1e-6)


def test_ppo_policy_loss_no_clipping_at_ratio_one():
    # ratio 1 everywhere: loss = -mean(A) = -(1 + 1 - 2 - 2 + 1)/5 = 0.2, nothing clipped, kl 0
    loss, clipfrac, approx_kl = ppo_policy_loss(
        torch.zeros(1, 5), torch.zeros(1, 5), torch.tensor([ADVS]), torch.ones(1, 5), clip=0.2
    )
    assert loss.item() == pytest.approx(0.2)
    assert clipfrac.item() == 0.0 and approx_kl.item() == pytest.approx(0.0, abs=1e-7)


def test_ppo_policy_loss_uses_old_logprobs():
    # same ratios with both log-prob tensors shifted by -3
    logp, old, adv, mask = _inputs()
    loss, clipfrac, approx_kl = ppo_policy_loss(logp - 3.0, old - 3.0, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx(0.36, abs=1e-5)
    assert clipfrac.item() == pytest.approx(0.4)


def test_ppo_policy_loss_masking_excludes_padding():
    logp, old, adv, mask = _inputs()
    # second row: token with r=1.1, A=+1 (loss -1.1) then padding with wild values
    logp = torch.cat([logp, torch.tensor([[math.log(1.1), 5.0, -7.0, 3.0, 4.0]])])
    old = torch.cat([old, torch.zeros(1, 5)])
    adv = torch.cat([adv, torch.tensor([[1.0, 100.0, -100.0, 50.0, 9.0]])])
    mask = torch.cat([mask, torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])])
    loss, clipfrac, approx_kl = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    # six real tokens: (1.8 - 1.1) / 6 = 0.7 / 6; clipfrac 2/6; kl (0.5800539652 + 0.0046898202) / 6
    assert loss.item() == pytest.approx(0.7 / 6, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 6)
    assert approx_kl.item() == pytest.approx(0.5847437854 / 6, abs=1e-6)


def test_ppo_policy_loss_gradient():
    logp, old, adv, mask = _inputs(requires_grad=True)
    loss, clipfrac, approx_kl = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    assert not clipfrac.requires_grad and not approx_kl.requires_grad
    loss.backward()
    # unclipped tokens: d/dlogp (-A * exp(logp)) / 5 = -A * r / 5
    #   a: -1 * 1.1 / 5 = -0.22 ; d: 2 * 1.5 / 5 = 0.6 ; e: -1 * 0.5 / 5 = -0.1
    # tokens b and c are clipped in the direction of their advantage: zero gradient
    assert_close(logp.grad, torch.tensor([[-0.22, 0.0, 0.0, 0.6, -0.1]]))
    assert logp.grad[0, 1].item() == 0.0 and logp.grad[0, 2].item() == 0.0


# Value loss, four real tokens plus a padded column:
#   V     = [1.0, 2.0, 0.05, 3.0]   old = [0.5, 2.5, 0.0, 2.0]   R = [2.0, 1.0, 0.1, 2.5]
#   err   = [1.0, 1.0, 0.0025, 0.25]
#   V_c (clip 0.2) = [0.7, 2.3, 0.05, 2.2] -> err_c = [1.69, 1.69, 0.0025, 0.09]
#   unclipped: the plain MSE, 2.2525 / 4 = 0.563125 (stable-baselines3's F.mse_loss, RL4LMs
#              97df0bd rl4lms/algorithms/ppo/ppo.py:243, no 1/2)
#   clipped:   (1.69 + 1.69 + 0.0025 + 0.25) / 4 = 3.6325 / 4 = 0.908125, clipfrac 2/4
V = torch.tensor([[1.0, 2.0, 0.05, 3.0, 50.0]])
OLD = torch.tensor([[0.5, 2.5, 0.0, 2.0, -50.0]])
RET = torch.tensor([[2.0, 1.0, 0.1, 2.5, 0.0]])
VMASK = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])


def test_value_loss_unclipped():
    loss, clipfrac = value_loss(V, OLD, RET, VMASK)
    assert loss.item() == pytest.approx(0.563125, abs=1e-6)
    assert clipfrac.item() == 0.0


def test_value_loss_clipped():
    loss, clipfrac = value_loss(V, OLD, RET, VMASK, clip=0.2)
    assert loss.item() == pytest.approx(0.908125, abs=1e-6)
    assert clipfrac.item() == pytest.approx(0.5)


def test_value_loss_gradient():
    v = V.clone().requires_grad_(True)
    loss, _ = value_loss(v, OLD, RET, VMASK, clip=0.2)
    loss.backward()
    # tokens 0, 1: clipped error taken, its value is constant in V -> 0
    # token 2: 2 * (0.05 - 0.1) / 4 = -0.025 ; token 3: 2 * (3.0 - 2.5) / 4 = 0.25 ; padding 0
    assert_close(v.grad, torch.tensor([[0.0, 0.0, -0.025, 0.25, 0.0]]))


def test_losses_over_an_outside_token_count():
    """A micro-batch's terms over the whole step's token count add up to the step's mean."""
    logp, old, adv, mask = _inputs()
    whole, clipfrac, approx_kl = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    first = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]])
    parts = [ppo_policy_loss(logp, old, adv, m, clip=0.2, denom=5.0) for m in (first, mask - first)]
    assert sum(p[0] for p in parts).item() == pytest.approx(whole.item())  # 0.36
    assert sum(p[1] for p in parts).item() == pytest.approx(clipfrac.item())
    assert sum(p[2] for p in parts).item() == pytest.approx(approx_kl.item())
    # value loss of tokens 0-1 over 4 tokens: (1.0 + 1.0) / 4 = 0.5
    assert value_loss(V, OLD, RET, torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]]), denom=4.0)[0].item() == pytest.approx(0.5)
    # A2C: -(A * logp) summed over tokens a, b / 5 = -(log 1.1 + log 1.5) / 5
    assert a2c_policy_loss(logp, adv, first, denom=5.0).item() == pytest.approx(-(math.log(1.1) + math.log(1.5)) / 5)
    assert token_mean(torch.ones(1, 5), torch.zeros(1, 5)).item() == 0.0


# ---- sequence_policy_loss (RLOO) -------------------------------------------------------------
# Three completions, log-ratios [0, log 1.5, log 0.5] (ratios 1, 1.5, 0.5), advantages [2, 1, -1], clip 0.2:
# unclipped -A*ratio = [-2, -1.5, 0.5]; clipped -A*clamp(ratio, 0.8, 1.2) = [-2, -1.2, 0.8];
# max = [-2, -1.2, 0.8] (clipped taken on the last two), mean -2.4/3 = -0.8.
LOG_RATIO = [0.0, math.log(1.5), math.log(0.5)]
SEQ_ADV = [2.0, 1.0, -1.0]


def test_sequence_policy_loss_clipped_by_hand():
    from grue.losses import sequence_policy_loss

    lr = torch.tensor(LOG_RATIO, requires_grad=True)
    loss, clipfrac, approx_kl = sequence_policy_loss(lr, torch.tensor(SEQ_ADV), 0.2)
    assert loss.item() == pytest.approx(-0.8)
    assert clipfrac.item() == pytest.approx(2 / 3)
    # (ratio - 1) - log ratio: 0, 0.5 - log 1.5, -0.5 - log 0.5
    assert approx_kl.item() == pytest.approx((0.5 - math.log(1.5) - 0.5 - math.log(0.5)) / 3)
    loss.backward()  # only the first completion is unclipped: d/d lr_0 of -A_0 * exp(lr_0) / 3 = -2/3
    assert_close(lr.grad, torch.tensor([-2 / 3, 0.0, 0.0]))


def test_sequence_policy_loss_unclipped_is_reinforce_and_weights_sum():
    from grue.losses import sequence_policy_loss

    lr = torch.tensor(LOG_RATIO, requires_grad=True)
    loss, clipfrac, _ = sequence_policy_loss(lr, torch.tensor(SEQ_ADV), None)
    assert loss.item() == pytest.approx((-2.0 - 1.5 + 0.5) / 3) and clipfrac.item() == 0.0
    loss.backward()  # d/d lr_i of -A_i * exp(lr_i) / 3 = -A_i * ratio_i / 3
    assert_close(lr.grad, torch.tensor([-2 / 3, -0.5, 1 / 6]))
    # weights [1, 1, 0] over denom 4 (two more completions in other micro-batches): (-2 - 1.5) / 4
    loss, _, _ = sequence_policy_loss(
        torch.tensor(LOG_RATIO), torch.tensor(SEQ_ADV), None, torch.tensor([1.0, 1.0, 0.0]), 4.0
    )
    assert loss.item() == pytest.approx(-3.5 / 4)
