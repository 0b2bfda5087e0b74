"""grue.advantages against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from grue.advantages import (
    completion_weights,
    gae,
    group_advantages,
    kl_penalized_rewards,
    last_token_index,
    leave_one_out_advantages,
    masked_mean,
    masked_var,
    normalize,
    whiten,
)

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # masked-in entries: 1, 2, 4


def test_masked_mean_all_entries():
    # (1 + 2 + 4) / 3
    assert masked_mean(X, M).item() == pytest.approx(7 / 3)


def test_masked_mean_along_dim():
    # rows: (1+2)/2 = 1.5, 4/1 = 4
    assert_close(masked_mean(X, M, dim=1), torch.tensor([1.5, 4.0]))
    # columns: (1+4)/2 = 2.5, 2/1 = 2, nothing masked in -> 0
    assert_close(masked_mean(X, M, dim=0), torch.tensor([2.5, 2.0, 0.0]))


def test_masked_mean_all_zero_mask_is_zero():
    out = masked_mean(X, torch.zeros_like(X))
    assert out.item() == 0.0 and not torch.isnan(out)
    assert_close(masked_mean(X, torch.zeros_like(X), dim=1), torch.zeros(2))


def test_masked_mean_bool_mask():
    assert masked_mean(X, M.bool()).item() == pytest.approx(7 / 3)


def test_masked_var_unbiased_and_biased():
    # entries 1, 2, 4; mean 7/3; squared deviations 16/9 + 1/9 + 25/9 = 42/9
    assert masked_var(X, M, unbiased=True).item() == pytest.approx((42 / 9) / 2)  # 7/3
    assert masked_var(X, M, unbiased=False).item() == pytest.approx((42 / 9) / 3)  # 14/9


def test_whiten_values_and_padding():
    out = whiten(X, M)
    std = math.sqrt(7 / 3)  # unbiased masked std of 1, 2, 4
    expected = torch.tensor([[(1 - 7 / 3) / std, (2 - 7 / 3) / std, 0.0], [(4 - 7 / 3) / std, 0.0, 0.0]])
    assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # padding comes out exactly 0 whatever its input value
    assert out[0, 2].item() == 0.0 and out[1, 1].item() == 0.0 and out[1, 2].item() == 0.0
    assert masked_mean(out, M).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_var(out, M).item() == pytest.approx(1.0, rel=1e-5)


def test_whiten_without_shifting_the_mean():
    out = whiten(X, M, shift_mean=False)
    std = math.sqrt(7 / 3)
    mean = 7 / 3
    expected = torch.tensor(
        [[(1 - mean) / std + mean, (2 - mean) / std + mean, 0.0], [(4 - mean) / std + mean, 0.0, 0.0]]
    )
    assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert masked_mean(out, M).item() == pytest.approx(7 / 3, rel=1e-5)  # mean kept
    assert masked_var(out, M).item() == pytest.approx(1.0, rel=1e-5)  # scale fixed


def test_last_token_index():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # sum - 1 = 1, 2, 0, and -1 clamped to 0
    assert last_token_index(mask).tolist() == [1, 2, 0, 0]


def test_kl_penalized_rewards():
    scores = torch.tensor([2.0, -1.0])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, -0.4, 0.7]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    out = kl_penalized_rewards(scores, kl, mask, kl_coef=0.5)
    # row 0: -0.5*0.1, -0.5*0.2 + 2.0 (last real token), padding 0
    # row 1: -0.5*0.5, -0.5*(-0.4), -0.5*0.7 - 1.0 (last real token)
    expected = torch.tensor([[-0.05, 1.9, 0.0], [-0.25, 0.2, -1.35]])
    assert_close(out, expected)
    assert out[0, 2].item() == 0.0


# GAE, gamma = 0.9, lam = 0.8 (gamma * lam = 0.72), worked by hand:
# row A, no padding: r = [0.1, -0.2, 1.0], V = [0.5, 0.4, 0.3]
#   t=2: delta = 1.0 + 0 - 0.3 = 0.7                ; A2 = 0.7
#   t=1: delta = -0.2 + 0.9*0.3 - 0.4 = -0.33       ; A1 = -0.33 + 0.72*0.7 = 0.174
#   t=0: delta = 0.1 + 0.9*0.4 - 0.5 = -0.04        ; A0 = -0.04 + 0.72*0.174 = 0.08528
#   returns = A + V = [0.58528, 0.574, 1.0]
ROW_A = ([0.1, -0.2, 1.0], [0.5, 0.4, 0.3], [1.0, 1.0, 1.0])
ADV_A, RET_A = [0.08528, 0.174, 0.7], [0.58528, 0.574, 1.0]
# row B, last position is padding holding garbage (r=9, V=7) that must not leak in:
#   t=1 (last real token, V after it is 0): delta = 0.5 - 0.1 = 0.4 ; A1 = 0.4
#   t=0: delta = 0.2 + 0.9*0.1 - 0.6 = -0.31        ; A0 = -0.31 + 0.72*0.4 = -0.022
#   returns = [-0.022 + 0.6, 0.4 + 0.1, 0] = [0.578, 0.5, 0]
ROW_B = ([0.2, 0.5, 9.0], [0.6, 0.1, 7.0], [1.0, 1.0, 0.0])
ADV_B, RET_B = [-0.022, 0.4, 0.0], [0.578, 0.5, 0.0]


def _batch(*rows):
    return tuple(torch.tensor([row[i] for row in rows]) for i in range(3))


def test_gae_single_row():
    r, v, m = _batch(ROW_A)
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.8)
    assert_close(adv, torch.tensor([ADV_A]))
    assert_close(ret, torch.tensor([RET_A]))


def test_gae_two_rows_with_padding():
    r, v, m = _batch(ROW_A, ROW_B)
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.8)
    assert_close(adv, torch.tensor([ADV_A, ADV_B]))
    assert_close(ret, torch.tensor([RET_A, RET_B]))
    assert adv[1, 2].item() == 0.0 and ret[1, 2].item() == 0.0


def test_gae_lambda_one_gamma_one_is_monte_carlo():
    # gamma = lam = 1: A_t = sum_{s>=t} r_s - V_t. r = [1, 2, 3], V = [0.5, 1, 2]
    # returns-to-go = [6, 5, 3]; A = [5.5, 4, 1]
    r = torch.tensor([[1.0, 2.0, 3.0]])
    v = torch.tensor([[0.5, 1.0, 2.0]])
    adv, ret = gae(r, v, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert_close(adv, torch.tensor([[5.5, 4.0, 1.0]]))
    assert_close(ret, torch.tensor([[6.0, 5.0, 3.0]]))


def test_gae_bootstraps_a_cut_episode_from_the_next_value():
    # Row A cut after its 3 tokens, the critic's value of the next state b = 2.0 (gamma 0.9, lam 0.8):
    #   t=2: delta = 1.0 + 0.9 * 2.0 - 0.3 = 2.5                       ; A2 = 2.5
    #   t=1: delta = -0.2 + 0.9 * 0.3 - 0.4 = -0.33                    ; A1 = -0.33 + 0.72 * 2.5 = 1.47
    #   t=0: delta = 0.1 + 0.9 * 0.4 - 0.5 = -0.04                     ; A0 = -0.04 + 0.72 * 1.47 = 1.0184
    # Row B keeps bootstrap 0 (it ended): unchanged. As stable-baselines3's buffer bootstraps the last stored
    # transition from the next one's value (RL4LMs 97df0bd rl4lms/envs/text_generation/alg_wrappers.py:353-362).
    r, v, m = _batch(ROW_A, ROW_B)
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.8, bootstrap=torch.tensor([2.0, 0.0]))
    assert_close(adv, torch.tensor([[1.0184, 1.47, 2.5], ADV_B]))
    assert_close(ret, torch.tensor([[1.5184, 1.87, 2.8], RET_B]))
    # the bootstrap lands on the last real token, not on padding
    adv_b, _ = gae(r[1:], v[1:], m[1:], gamma=0.9, lam=0.8, bootstrap=torch.tensor([1.0]))
    #   t=1: delta = 0.5 + 0.9 * 1.0 - 0.1 = 1.3 ; t=0: -0.31 + 0.72 * 1.3 = 0.626
    assert_close(adv_b, torch.tensor([[0.626, 1.3, 0.0]]))


def test_normalize_per_minibatch_like_stable_baselines3():
    # entries 1, 2, 4: mean 7/3, unbiased std sqrt(7/3); (x - mean) / (std + 1e-8)
    # (RL4LMs 97df0bd rl4lms/algorithms/ppo/ppo.py:219-221)
    std = math.sqrt(7 / 3)
    expected = torch.tensor(
        [[(1 - 7 / 3) / (std + 1e-8), (2 - 7 / 3) / (std + 1e-8), 0.0], [(4 - 7 / 3) / (std + 1e-8), 0.0, 0.0]]
    )
    assert_close(normalize(X, M), expected)
    # one entry: std 0, so (x - x) / 1e-8 = 0
    assert_close(normalize(torch.tensor([[5.0, 9.0]]), torch.tensor([[1.0, 0.0]])), torch.zeros(1, 2))


# ---- grouped advantages (GRPO, RLOO) ----------------------------------------------------------
# Two groups of four: [1, 2, 3, 6] (mean 3, deviations -2 -1 0 3, unbiased var (4+1+0+9)/3 = 14/3) and
# [0, 0, 1, 1] (mean 0.5, deviations +-0.5, unbiased var 4 * 0.25 / 3 = 1/3).
GROUPS = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 1.0, 1.0])


def test_group_advantages_centre_and_scale_within_each_group():
    s1, s2 = math.sqrt(14 / 3), math.sqrt(1 / 3)
    expected = [-2 / (s1 + 1e-4), -1 / (s1 + 1e-4), 0.0, 3 / (s1 + 1e-4)] + [
        x / (s2 + 1e-4) for x in (-0.5, -0.5, 0.5, 0.5)
    ]
    assert_close(group_advantages(GROUPS, 4), torch.tensor(expected))
    assert_close(group_advantages(GROUPS, 4, scale=False), torch.tensor([-2.0, -1.0, 0.0, 3.0, -0.5, -0.5, 0.5, 0.5]))
    # groups of two: [1, 2] -> -+0.5 / (sqrt(0.5) + eps), [3, 6] -> -+1.5 / (sqrt(4.5) + eps), ...
    assert group_advantages(GROUPS, 2)[:4].tolist() == pytest.approx(
        [
            -0.5 / (math.sqrt(0.5) + 1e-4),
            0.5 / (math.sqrt(0.5) + 1e-4),
            -1.5 / (math.sqrt(4.5) + 1e-4),
            1.5 / (math.sqrt(4.5) + 1e-4),
        ]
    )


def test_group_of_equal_scores_has_zero_advantage_not_nan():
    out = group_advantages(torch.tensor([0.7, 0.7, 0.7, 0.2, 0.4, 0.6]), 3)
    assert_close(out[:3], torch.zeros(3))
    assert not torch.isnan(out).any()


def test_leave_one_out_advantages_by_hand():
    # [1, 2, 3, 6]: baselines (12 - r) / 3 = 11/3, 10/3, 3, 2 -> -8/3, -4/3, 0, 4 (= 4/3 * (r - 3));
    # [0, 0, 1, 1]: baselines 2/3, 2/3, 1/3, 1/3 -> -2/3, -2/3, 2/3, 2/3
    assert_close(
        leave_one_out_advantages(GROUPS, 4), torch.tensor([-8 / 3, -4 / 3, 0.0, 4.0, -2 / 3, -2 / 3, 2 / 3, 2 / 3])
    )
    # k = 2: each score minus the other one
    assert_close(leave_one_out_advantages(GROUPS, 2), torch.tensor([-1.0, 1.0, -3.0, 3.0, 0.0, 0.0, 0.0, 0.0]))


def test_completion_weights_per_sequence_and_per_token():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert_close(completion_weights(mask, "sequence"), torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    assert_close(completion_weights(mask, "token"), mask)
    # a weighted token sum over the weights' sum: mean of the row means (2 and 5), or of all four tokens
    x = torch.tensor([[1.0, 2.0, 3.0, 9.0], [5.0, 9.0, 9.0, 9.0]])
    w = completion_weights(mask, "sequence")
    assert ((x * w).sum() / w.sum()).item() == pytest.approx(3.5)
    w = completion_weights(mask, "token")
    assert ((x * w).sum() / w.sum()).item() == pytest.approx(11 / 4)
