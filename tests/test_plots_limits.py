"""plots/curves.png's y axes: a flat series (a fixed KL coefficient) gets a range at its scale, not v +- 4%."""

from __future__ import annotations

import pytest

from grue.plots import PANELS, draw, figure

PANEL = {key: i for i, (key, _) in enumerate(PANELS)}


def rows(**series):
    n = len(next(iter(series.values())))
    return [{"iteration": i + 1, **{k.replace("__", "/"): v[i] for k, v in series.items()}} for i in range(n)]


def ylim(fig, key):
    return tuple(fig.axes[PANEL[key]].get_ylim())


def test_flat_series_get_a_range_from_zero_to_twice_their_value(tmp_path):
    run = rows(
        kl__coef=[0.01] * 5, policy__clipfrac=[0.0] * 5, kl__mean=[-1.3] * 5, reward__mean=[0.1, 0.5, 0.2, 0.9, 0.4]
    )
    fig = figure({"run": run})
    assert ylim(fig, "kl/coef") == pytest.approx((0.0, 0.02))
    assert ylim(fig, "policy/clipfrac") == pytest.approx((-1.0, 1.0))
    assert ylim(fig, "kl/mean") == pytest.approx((-2.6, 0.0))
    lo, hi = ylim(fig, "reward/mean")  # a varying series keeps matplotlib's own range around its values
    assert 0.05 < lo < 0.1 and 0.9 < hi < 0.95
    assert draw({"run": run}, tmp_path / "curves.png").stat().st_size > 0


def test_two_runs_on_one_flat_value_are_flat_two_on_different_values_are_not():
    same = figure({"a": rows(kl__coef=[0.05] * 3), "b": rows(kl__coef=[0.05] * 3)})
    assert ylim(same, "kl/coef") == pytest.approx((0.0, 0.1))
    lo, hi = ylim(figure({"a": rows(kl__coef=[0.05] * 3), "b": rows(kl__coef=[0.2] * 3)}), "kl/coef")
    assert lo < 0.05 and 0.2 < hi < 0.3
