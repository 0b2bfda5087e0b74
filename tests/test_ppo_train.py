"""PPO end to end in-process on the tiny models: learning, gradient accumulation, frozen reference."""

from __future__ import annotations

import json

import pytest
import torch

from grue.algorithms import ppo
from grue.algorithms import resolve
from grue.onpolicy import collect
from grue.run_setup import start_session


def config(tmp_path, model: str, iterations: int, *sets: str):
    base = [
        f"run.model={model}",
        "run.reward=reward_fixtures:letter_e",
        "ppo.batch_unit=completions",
        "ppo.rollout_size=32",
        "ppo.rollout_batch_size=32",
        "ppo.minibatch_size=16",
        "generation.max_new_tokens=12",
        "generation.min_new_tokens=12",
        "run.checkpoint_every=1000",
    ]
    return resolve(
        "imdb",
        "ppo",
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / "run"), "algo.iterations": iterations},
        sets=base + list(sets),
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_ppo_raises_a_simple_reward(tmp_path, model):
    # tiny-t5 learns this reward more slowly: over 12 iterations its gain was 0.026 to 0.106 across seeds 0-2
    # (with torch's loop AdamW and its fused one alike), over 16 iterations 0.057 at seed 0
    iterations = {"tiny-gpt2": 12, "tiny-t5": 16}[model]
    summary = ppo.train(config(tmp_path, model, iterations), show=False)
    assert summary["reward/last_20pct"] > summary["reward/first_20pct"] + 0.03, summary
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, iterations + 1))
    assert all(r["kl/mean"] >= -1e-6 for r in rows[1:]), "the policy drifts from the reference"


def test_shared_critic_and_clipped_values_run(tmp_path):
    summary = ppo.train(config(tmp_path, "tiny-gpt2", 2, "ppo.critic=shared", "ppo.value_clip=0.2"), show=False)
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss/value"])) for r in rows)
    assert summary["iterations"] == 2


def test_gradient_accumulation_matches_one_big_step(tmp_path):
    """grad_accum=2 sums two half-batch gradients: the same update as one full micro-batch."""
    results = []
    for accum in (1, 2):
        run = tmp_path / f"a{accum}"
        cfg = config(run, "tiny-gpt2", 1, f"ppo.grad_accum={accum}", "ppo.epochs=1")
        ppo.train(cfg, show=False)
        results.append(json.loads((run / "run" / "metrics.jsonl").read_text()))
    a, b = results
    for key in ("loss/policy", "loss/value", "policy/entropy", "policy/grad_norm"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


def test_reference_is_frozen_and_outside_the_optimizer(tmp_path):
    cfg = config(tmp_path, "tiny-t5", 1)
    s = start_session(cfg, None, check=ppo.check)
    ref_params = {id(p) for p in s.ref.parameters()}
    opt_params = {id(p) for g in s.optimizer.param_groups for p in g["params"]}
    assert not ref_params & opt_params
    assert not any(p.requires_grad for p in s.ref.parameters())
    before = [p.clone() for p in s.ref.parameters()]
    policy_before = [p.detach().clone() for p in s.policy.parameters()]
    r = collect(s, [e.prompt for e in s.examples[:32]])
    adv = torch.randn_like(r.values) * r.response_mask
    ppo.update(s, r, adv, r.values + adv)
    assert all(torch.equal(a, b) for a, b in zip(before, s.ref.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(policy_before, s.policy.parameters()))


def test_bad_batch_settings_are_rejected(tmp_path):
    from grue.errors import GrueError

    with pytest.raises(GrueError, match="minibatch_size"):
        ppo.train(config(tmp_path, "tiny-gpt2", 1, "ppo.minibatch_size=24"), show=False)
