"""Stability warnings (grue.stability): each check on hand-made histories at its threshold, one real run that raises
a warning through the loop (metrics.jsonl and the display), and a non-finite loss that stops a run at its iteration
with the last checkpoint intact and resumable."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from grue import stability as st
from grue.errors import GrueError
from grue.checkpoint import latest, load_state
from grue_cli.main import app


def rows(**series) -> list[dict]:
    """A history: ``rows(a=[1, 2])`` -> ``[{"iteration": 1, "a": 1}, {"iteration": 2, "a": 2}]``."""
    n = len(next(iter(series.values())))
    return [{"iteration": i + 1, **{k: v[i] for k, v in series.items()}} for i in range(n)]


def test_negative_kl_below_minus_one_hundredth():
    assert st.negative_kl(rows(**{"kl/mean": [0.0, -0.011]})) is not None
    assert st.negative_kl(rows(**{"kl/mean": [-0.5, -0.009]})) is None  # only the latest iteration counts
    assert st.negative_kl(rows(**{"kl/mean": [-0.011]}), limit=-0.02) is None


def test_negative_kl_from_mass_outside_the_sampled_support_is_named():
    # the README's Supervised+NLPO smoke run: k1 -0.93 = E_q[log q - log r] 1.49 + support log-mass -2.42
    msg = st.negative_kl(rows(**{"kl/mean": [0.0, -0.93], "kl/support_logmass": [-1.1, -2.42]}))
    assert msg == (
        "mean KL -0.93 < -0.01: the raw policy puts only 8.9% (geometric mean) of its probability on the tokens "
        "it samples from, so the KL estimate on them is biased low"
    )
    # below what the support explains: the log-probs themselves disagree
    assert "sampling and scoring log-probs disagree" in st.negative_kl(
        rows(**{"kl/mean": [-0.5], "kl/support_logmass": [-0.1]})
    )


def test_a_run_logs_the_support_log_mass(tmp_path):
    from conftest import FAST, cli_in_process

    run = tmp_path / "run"
    r = cli_in_process(
        "train", "imdb", "--preset", "smoke", "--iterations", "1", "--output-dir", str(run), "--quiet", *FAST
    )
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert abs(row["kl/mean"]) < 1e-6  # the first rollout's policy is the reference
    assert -10 < row["kl/support_logmass"] < 0  # top-k 50 of tiny-gpt2's 4096 tokens holds part of the mass


def test_kl_over_ten_times_its_target():
    assert st.kl_over_target(rows(**{"kl/mean": [1.01]}), target=0.1) is not None
    assert st.kl_over_target(rows(**{"kl/mean": [0.99]}), target=0.1) is None
    assert st.kl_over_target(rows(**{"kl/mean": [50.0]}), target=None) is None  # fixed beta: no target, no check
    assert st.kl_over_target(rows(**{"kl/mean": [0.5]}), target=0.1, factor=4) is not None


def test_entropy_below_a_fraction_of_its_start():
    assert st.entropy_collapse(rows(**{"policy/entropy": [4.0, 3.0, 0.99]})) is not None  # 0.99 < 0.25 * 4
    assert st.entropy_collapse(rows(**{"policy/entropy": [4.0, 1.01]})) is None
    assert st.entropy_collapse(rows(**{"policy/entropy": [4.0, 1.9]}), fraction=0.5) is not None
    assert st.entropy_collapse(rows(**{"policy/entropy": [0.5]})) is None  # one iteration: nothing to compare


def test_clip_fraction_above_three_tenths():
    assert st.clipfrac_high(rows(**{"policy/clipfrac": [0.31]})) is not None
    assert st.clipfrac_high(rows(**{"policy/clipfrac": [0.3]})) is None
    assert st.clipfrac_high([{"iteration": 1}]) is None  # an algorithm without a ratio logs none


@pytest.mark.parametrize(
    "reward,length,raised",
    [
        ([0.1, 0.2, 0.3, 0.4, 0.5], [30, 20, 10, 3, 1], True),  # reward up, length onto the minimum (1)
        ([0.1, 0.2, 0.3, 0.4, 0.5], [20, 30, 40, 45, 47.6], True),  # onto the maximum (48), within half a token
        ([0.5, 0.4, 0.3, 0.2, 0.1], [30, 20, 10, 3, 1], False),  # reward fell
        ([0.1, 0.2, 0.3, 0.4, 0.5], [1, 1, 1, 1, 1], False),  # always at the minimum: nothing collapsed
        ([0.1, 0.2, 0.3, 0.4, 0.5], [30, 25, 20, 15, 10], False),  # shorter, but not at a limit
        ([0.1, 0.5], [30, 1], False),  # fewer iterations than the window
    ],
)
def test_reward_rising_while_length_collapses_to_a_limit(reward, length, raised):
    found = st.length_hacking(
        rows(**{"reward/mean": reward, "response/length": length}), min_length=1, max_length=48, window=5
    )
    assert (found is not None) == raised, found
    # min_new_tokens == max_new_tokens (the paper's IMDB): every response has one length, no check
    assert st.length_hacking(rows(**{"reward/mean": reward, "response/length": length}), 48, 48) is None


def test_value_loss_growing_ten_iterations_in_a_row():
    growing = [float(i) for i in range(11)]  # 10 rises
    assert st.value_loss_growing(rows(**{"loss/value": growing})) is not None
    assert st.value_loss_growing(rows(**{"loss/value": growing[1:]})) is None  # 9 rises
    assert st.value_loss_growing(rows(**{"loss/value": [*growing[:5], 4.0, *growing[6:]]})) is None  # one dip breaks it
    assert st.value_loss_growing(rows(**{"loss/value": [5.0, 1.0, 2.0, 3.0]}), rises=2) is not None


def test_all_warnings_become_metrics_and_the_raised_ones_are_named():
    found = st.warnings_of(rows(**{"kl/mean": [-0.5], "policy/clipfrac": [0.9]}), st.Thresholds(kl_target=0.1))
    assert list(found) == list(st.NAMES)
    metrics = st.as_metrics(found)
    assert metrics == {f"warnings/{n}": int(n in ("negative_kl", "clipfrac_high")) for n in st.NAMES}
    assert st.raised({"iteration": 3, **metrics}) == ["negative_kl", "clipfrac_high"]


TINY = [
    x
    for s in (
        "ppo.batch_unit=completions",
        "ppo.rollout_size=8",
        "ppo.rollout_batch_size=8",
        "ppo.minibatch_size=4",
        "ppo.epochs=2",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
    )
    for x in ("--set", s)
]


def test_a_real_run_raises_the_clip_fraction_warning_in_metrics_and_display(tmp_path, monkeypatch):
    monkeypatch.setenv("GRUE_PLOTS", "1")  # and it draws its curves at the end (the suite turns that off)
    # A clip range of 1e-4: after the first minibatch step nearly every token's ratio leaves [1 - 1e-4, 1 + 1e-4].
    run = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "imdb",
            "--preset",
            "smoke",
            *TINY,
            "--set",
            "ppo.clip=0.0001",
            "--set",
            "run.reward=reward_fixtures:letter_e",
            "--iterations",
            "1",
            "--output-dir",
            str(run),
        ],
    )
    assert r.exit_code == 0, r.output
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert row["policy/clipfrac"] > 0.3 and row["warnings/clipfrac_high"] == 1, row
    assert {k for k in row if k.startswith("warnings/")} == {f"warnings/{n}" for n in st.NAMES}
    assert "warnings: clipfrac_high" in r.stdout  # the display's line of the iteration (not a terminal: plain lines)
    assert (run / "plots" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # drawn at the end of the run


def test_a_non_finite_loss_stops_the_run_naming_the_iteration_and_the_checkpoint_resumes(tmp_path, monkeypatch):
    run, flag = tmp_path / "run", tmp_path / "huge"
    monkeypatch.setenv("GRUE_TEST_HUGE_REWARD", str(flag))
    cmd = [
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--quiet",
        *TINY,
        "--set",
        "run.reward=reward_fixtures:huge_when_told",
        "--output-dir",
        str(run),
    ]
    assert CliRunner().invoke(app, [*cmd, "--iterations", "1"]).exit_code == 0
    before = (run / "checkpoint" / "model.safetensors").read_bytes()
    flag.touch()  # scores of 1e30: the value loss (their square) overflows float32 at iteration 2
    r = CliRunner().invoke(app, [*cmd, "--resume", str(run), "--iterations", "2"])
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: iteration 2: loss/value, loss/total") and "not finite" in line, line
    assert f"the last checkpoint (iteration 1) is intact: resume with `grue train imdb --resume {run}`" in line, line
    assert (
        load_state(latest(run))["iteration"] == 1 and (run / "checkpoint" / "model.safetensors").read_bytes() == before
    )
    flag.unlink()
    r = CliRunner().invoke(app, [*cmd, "--resume", str(run), "--iterations", "2"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert load_state(latest(run))["iteration"] == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_finite_reads_the_gradients_only_without_a_norm_that_covers_them(tmp_path, bad):
    """A nan or inf gradient makes the gradient norm over the parameters nan or inf, so with that norm named the
    gradients are not read again and the error names the norm and the gradients; without it every gradient is read."""
    import accelerate
    import torch
    from torch import nn

    acc = accelerate.Accelerator(cpu=True)
    model = nn.Linear(3, 2)
    model(torch.ones(1, 3)).sum().backward()
    st.check_finite(acc, {"loss/x": torch.tensor(1.0)}, model.parameters(), "step 1", tmp_path, "imdb")  # all finite
    model.weight.grad[0, 1] = bad
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    assert not torch.isfinite(norm)
    for kwargs, values in (
        ({}, {"loss/x": torch.tensor(1.0)}),
        ({"norm": "grad_norm"}, {"loss/x": torch.tensor(1.0), "grad_norm": norm}),
    ):
        with pytest.raises(GrueError) as e:
            st.check_finite(acc, values, model.parameters(), "step 1", tmp_path, "imdb", **kwargs)
        want = "grad_norm, gradients" if kwargs else "gradients"
        assert str(e.value).startswith(f"step 1: {want} not finite"), str(e.value)
