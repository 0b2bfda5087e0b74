"""A2C: its loss against hand-computed numbers, the one-step update, learning on the tiny models, the CLI and resume."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from torch.testing import assert_close

from conftest import cli_in_process, run_cli
from grue.algorithms import a2c
from grue.algorithms import resolve
from grue.errors import GrueError
from grue.losses import a2c_policy_loss
from grue.onpolicy import collect
from grue.run_setup import start_session

# ---- a2c_policy_loss -------------------------------------------------------------------------
# Four tokens: A * logp = [2 * -1.0, -1 * -2.0, 1 * -0.5, 0.5 * -3.0] = [-2.0, 2.0, -0.5, -1.5],
# sum -2.0, mean -0.5, loss = -mean = 0.5. Gradient d loss / d logp_t = -A_t / 4.
LOGP = [[-1.0, -2.0, -0.5, -3.0]]
ADV = [[2.0, -1.0, 1.0, 0.5]]


def test_a2c_policy_loss_values_and_gradient():
    logp = torch.tensor(LOGP, requires_grad=True)
    loss = a2c_policy_loss(logp, torch.tensor(ADV), torch.ones(1, 4))
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert_close(logp.grad, torch.tensor([[-0.5, 0.25, -0.25, -0.125]]))


def test_a2c_policy_loss_ignores_padding():
    # second row: one real token (A=0.25, logp=-4.0: product -1.0), then padding with wild values.
    # five real tokens: sum -2.0 - 1.0 = -3.0, loss = 3.0 / 5 = 0.6; gradient -A/5, 0 on padding.
    logp = torch.tensor(LOGP + [[-4.0, 9.0, -50.0, 7.0]], requires_grad=True)
    adv = torch.tensor(ADV + [[0.25, 100.0, -3.0, 8.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    loss = a2c_policy_loss(logp, adv, mask)
    assert loss.item() == pytest.approx(0.6)
    loss.backward()
    assert_close(logp.grad, torch.tensor([[-0.4, 0.2, -0.2, -0.1], [-0.05, 0.0, 0.0, 0.0]]))


# ---- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,world,message",
    [
        ({"rollout_size": 10}, 4, "a2c.rollout_size (10) must be divisible by the number of processes (4)"),
        ({"rollout_size": 16, "grad_accum": 3}, 1, "a2c.grad_accum (3) must divide the per-process rollout (16)"),
        ({"rollout_size": 16, "grad_accum": 16}, 2, "a2c.grad_accum (16) must divide the per-process rollout (8)"),
        ({"grad_accum": 0}, 1, "a2c.grad_accum must be at least 1, got 0"),
        ({"iterations": 0}, 1, "a2c.iterations must be at least 1, got 0"),
        ({"rollout_batch_size": 0}, 1, "a2c.rollout_batch_size must be at least 1, got 0"),
    ],
)
def test_check_rejects_settings_that_cannot_run(changes, world, message):
    with pytest.raises(GrueError) as e:
        a2c.check(a2c.A2CConfig(**changes), world)
    assert str(e.value) == message
    a2c.check(a2c.A2CConfig(rollout_size=16, grad_accum=4), 2)


def test_paper_settings_resolve():
    cfg = resolve("imdb", "a2c")
    assert (cfg.algo.lr, cfg.algo.kl_coef, cfg.algo.kl_target, cfg.algo.lam, cfg.algo.iterations) == (
        1e-6,
        0.1,
        0.5,
        1.0,
        100,
    )
    assert "a2c" in cfg.to_dict() and "ppo" not in cfg.to_dict()


# ---- in-process runs -------------------------------------------------------------------------


def config(tmp_path, model: str, iterations: int, *sets: str):
    base = [
        f"run.model={model}",
        "run.reward=reward_fixtures:letter_e",
        "a2c.batch_unit=completions",
        "a2c.rollout_size=64",
        "a2c.rollout_batch_size=64",
        "a2c.lr=1e-2",
        "generation.max_new_tokens=8",
        "generation.min_new_tokens=8",
        "run.checkpoint_every=1000",
    ]
    return resolve(
        "imdb",
        "a2c",
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / "run"), "algo.iterations": iterations},
        sets=base + list(sets),
    )


def metrics(run) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


STATS = ("loss/policy", "loss/value", "loss/total", "policy/entropy", "policy/grad_norm")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_a2c_raises_a_simple_reward(tmp_path, model):
    summary = a2c.train(config(tmp_path, model, 8), show=False)
    assert summary["reward/last_20pct"] > summary["reward/first_20pct"] + 0.03, summary
    rows = metrics(tmp_path / "run")
    assert [r["iteration"] for r in rows] == list(range(1, 9)) and all(k in r for r in rows for k in STATS)
    assert "policy/clipfrac" not in rows[0]
    assert rows[-1]["kl/mean"] > 0, "the policy drifts from the reference"


def test_update_is_one_optimizer_step_and_accumulation_sums(tmp_path):
    """One AdamW step per rollout; grad_accum=4 (quarter-rollout gradients summed) takes the same step as 1."""
    s = start_session(config(tmp_path, "tiny-gpt2", 1), None, check=a2c.check)
    ref_before = [p.clone() for p in s.ref.parameters()]
    before = [p.detach().clone() for p in s.params]
    opt_before = copy.deepcopy(s.optimizer.state_dict())
    r = collect(s, [e.prompt for e in s.examples[:16]])
    adv = torch.randn(r.values.shape, generator=torch.Generator().manual_seed(0)) * r.response_mask
    results = []
    for accum in (1, 4):
        for p, b in zip(s.params, before):
            p.data.copy_(b)
        s.optimizer.load_state_dict(copy.deepcopy(opt_before))
        s.algo.grad_accum = accum
        stats = a2c.update(s, r, adv, r.values + adv)
        assert set(stats) == set(STATS) and all(torch.isfinite(v) for v in stats.values())
        assert len(s.optimizer.state) == len(s.params) and {int(st["step"]) for st in s.optimizer.state.values()} == {1}
        results.append((stats, [p.detach().clone() for p in s.params]))
    (stats1, params1), (stats4, params4) = results
    for key in STATS:
        assert stats1[key].item() == pytest.approx(stats4[key].item(), rel=1e-4, abs=1e-6), key
    for a, b in zip(params1, params4):  # Adam's first step is ~lr * sign(g): equal up to rounding of tiny g
        assert_close(a, b, rtol=0, atol=1e-3 * s.algo.lr)
    assert all(not torch.equal(a, b) for a, b in zip(before, params1)), "every parameter moved"
    assert all(torch.equal(a, b) for a, b in zip(ref_before, s.ref.parameters())), "the reference is frozen"


def test_bad_setting_stops_before_loading_models(tmp_path):
    with pytest.raises(GrueError, match=r"a2c.grad_accum \(3\) must divide the per-process rollout \(64\)"):
        a2c.train(config(tmp_path, "tiny-gpt2", 1, "a2c.grad_accum=3"), show=False)
    assert not (tmp_path / "run").exists()


# ---- the CLI ---------------------------------------------------------------------------------

FAST = [
    "--set",
    "a2c.batch_unit=completions",
    "--set",
    "a2c.rollout_size=16",
    "--set",
    "a2c.rollout_batch_size=8",
    "--set",
    "generation.max_new_tokens=8",
    "--set",
    "generation.min_new_tokens=8",
]


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}


@pytest.mark.slow
def test_cli_run_and_resume_give_the_same_metrics(tmp_path):
    """`grue train imdb --algo a2c` end to end in subprocesses; 4 iterations straight = 2, then --resume to 4."""
    common = [
        "--algo",
        "a2c",
        "--preset",
        "smoke",
        "--quiet",
        *FAST,
        "--set",
        "a2c.grad_accum=2",
        "--set",
        "a2c.kl_target=0.1",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    p = run_cli("train", "imdb", *common, "--iterations", "4", "--output-dir", str(straight))
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[-1].startswith(f"done: 4 iterations in {straight}")
    cfg = yaml.safe_load((straight / "config.yaml").read_text())
    assert cfg["run"]["algo"] == "a2c" and cfg["a2c"]["grad_accum"] == 2 and "ppo" not in cfg
    assert json.loads((straight / "summary.json").read_text())["iterations"] == 4
    assert (straight / "checkpoint" / "model.safetensors").is_file() and (
        straight / "checkpoint" / "trainer" / "optimizer.pt"
    ).is_file()

    # the first half in this process; the resumed half in a new one, with only the checkpoint to go on
    assert cli_in_process("train", "imdb", *common, "--iterations", "2", "--output-dir", str(split)).returncode == 0
    p = run_cli("train", "imdb", "--resume", str(split), "--iterations", "4", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    a, b = metrics(straight), metrics(split)
    assert [r["iteration"] for r in b] == [1, 2, 3, 4] and all(k in r for r in a for k in STATS)
    assert [comparable(r) for r in a] == [comparable(r) for r in b]
    assert len({r["kl/coef"] for r in a}) == 4, "the adaptive KL coefficient moves, and resumes where it was"
