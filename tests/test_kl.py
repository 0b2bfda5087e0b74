"""grue.kl against hand-computed numbers."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from grue.kl import KLController, adaptive_kl_coef, kl_estimate

LOGP = torch.tensor([[-1.0, -2.0, -0.3]])
REF = torch.tensor([[-1.5, -1.0, -0.3]])  # d = logp - ref = [0.5, -1.0, 0.0]


def test_k1_is_the_log_ratio():
    assert_close(kl_estimate(LOGP, REF, "k1"), torch.tensor([[0.5, -1.0, 0.0]]))
    assert_close(kl_estimate(LOGP, REF), torch.tensor([[0.5, -1.0, 0.0]]))  # default is k1


def test_k2_is_half_the_squared_log_ratio():
    # 0.5 * 0.25, 0.5 * 1.0, 0
    assert_close(kl_estimate(LOGP, REF, "k2"), torch.tensor([[0.125, 0.5, 0.0]]))


def test_k3():
    # exp(-0.5) - 1 + 0.5 = 0.6065306597 - 0.5 = 0.1065306597
    # exp(1.0) - 1 - 1.0 = 2.7182818285 - 2 = 0.7182818285
    # d = 0 -> 0
    assert_close(kl_estimate(LOGP, REF, "k3"), torch.tensor([[0.1065306597, 0.7182818285, 0.0]]))


def test_k3_is_non_negative():
    d = torch.linspace(-5, 5, 101)[None]
    assert (kl_estimate(d, torch.zeros_like(d), "k3") >= 0).all()


def test_unknown_estimator_raises():
    with pytest.raises(ValueError, match="k4"):
        kl_estimate(LOGP, REF, "k4")


@pytest.mark.parametrize(
    "kl, expected",
    [
        (0.5, 0.1 * (1 + 0.1 * 0.2)),  # error (0.5-0.1)/0.1 = 4 -> clipped to 0.2 -> 0.102
        (0.0, 0.1 * (1 - 0.1 * 0.2)),  # error -1 -> clipped to -0.2 -> 0.098
        (0.11, 0.1 * (1 + 0.1 * 0.1)),  # error 0.1 (inside the clip) -> 0.101
        (0.09, 0.1 * (1 - 0.1 * 0.1)),  # error -0.1 -> 0.099
        (0.1, 0.1),  # on target: unchanged
        (0.12, 0.1 * (1 + 0.1 * 0.2)),  # error exactly 0.2 -> 0.102
    ],
)
def test_adaptive_kl_coef(kl, expected):
    assert adaptive_kl_coef(0.1, kl, 0.1) == pytest.approx(expected, rel=1e-12)


def test_adaptive_kl_coef_rate_and_clip_arguments():
    # coef 2, target 1, kl 1.3: error 0.3, clip 0.5 keeps it, rate 0.5 -> 2 * (1 + 0.15) = 2.3
    assert adaptive_kl_coef(2.0, 1.3, 1.0, rate=0.5, clip=0.5) == pytest.approx(2.3)
    # same with clip 0.1: error 0.1 -> 2 * (1 + 0.05) = 2.1
    assert adaptive_kl_coef(2.0, 1.3, 1.0, rate=0.5, clip=0.1) == pytest.approx(2.1)


def test_fixed_controller_never_moves():
    ctl = KLController(0.05)
    for kl in (0.0, 10.0, -3.0, 0.05):
        ctl.update(kl)
    assert ctl.coef == 0.05 and ctl.target is None


def test_adaptive_controller_moves_up_and_down():
    ctl = KLController(0.1, target=0.1)
    ctl.update(0.5)  # 0.1 * 1.02
    assert ctl.coef == pytest.approx(0.102)
    ctl.update(0.5)  # 0.102 * 1.02
    assert ctl.coef == pytest.approx(0.10404)
    ctl.update(0.0)  # 0.10404 * 0.98
    assert ctl.coef == pytest.approx(0.1019592)


def test_controller_state_dict_round_trip():
    ctl = KLController(0.1, target=0.1)
    ctl.update(0.5)
    ctl.update(0.11)  # 0.102 * 1.01 = 0.10302
    state = ctl.state_dict()
    assert state == {"coef": pytest.approx(0.10302), "target": 0.1}

    other = KLController(1.0)  # different coef, fixed
    other.load_state_dict(state)
    assert other.coef == ctl.coef and other.target == 0.1
    other.update(0.0)
    ctl.update(0.0)
    assert other.coef == ctl.coef == pytest.approx(0.10302 * 0.98)

    fixed = KLController(0.2)
    restored = KLController(0.9, target=0.3)
    restored.load_state_dict(fixed.state_dict())
    restored.update(5.0)
    assert restored.coef == 0.2 and restored.target is None
