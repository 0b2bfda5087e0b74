"""RLOO: the sequence-level update (one REINFORCE step is the plain policy gradient), learning on the tiny
models, exact resume. Its baseline and loss are tested by hand in test_advantages and test_losses."""

from __future__ import annotations

import json

import pytest
import torch

from grue.advantages import completion_weights, leave_one_out_advantages
from grue.algorithms import rloo
from grue.algorithms import resolve
from grue.grouped import collect_groups, policy_logprobs, score_groups
from grue.run_setup import start_session


def config(tmp_path, model: str, iterations: int, *sets: str, name: str = "run"):
    base = [
        f"run.model={model}",
        "run.reward=reward_fixtures:letter_e",
        "rloo.rollout_size=32",
        "rloo.rollout_batch_size=32",
        "rloo.group_size=4",
        "rloo.minibatch_size=16",
        "rloo.epochs=1",
        "rloo.lr=5e-3",
        "generation.max_new_tokens=8",
        "generation.min_new_tokens=8",
        "run.checkpoint_every=1000",
    ]
    return resolve(
        "imdb",
        "rloo",
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / name), "algo.iterations": iterations},
        sets=base + list(sets),
    )


def metrics(run) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_one_step_is_the_reinforce_gradient(tmp_path):
    """On a fresh rollout (ratio 1) the loss's gradient equals that of -mean_i A_i * sum_t log pi(a_t), with
    the leave-one-out A_i of R_i = score_i - beta * sum_t log(pi / pi_ref) (k1)."""
    s = start_session(config(tmp_path, "tiny-gpt2", 1, "rloo.kl_coef=0.2"), None, check=rloo.check)
    b = collect_groups(s)
    sc, rewards = score_groups(s, b, 0.2)
    r, mask = b.rollout, b.rollout.response_mask
    assert torch.allclose(rewards, sc.scores - 0.2 * ((r.raw_logprobs - r.ref_logprobs) * mask).sum(-1))
    adv = leave_one_out_advantages(rewards, 4)
    w = completion_weights(mask, "sequence")
    loss, stats = rloo.minibatch_loss(
        s, r, w, adv, None, w.sum()
    )  # one advantage per completion (grue.onpolicy.LossFn)
    assert stats["policy/clipfrac"].item() == 0.0 and abs(stats["policy/approx_kl"].item()) < 1e-5
    got = torch.autograd.grad(loss, list(s.policy.parameters()))
    logp, _, _ = policy_logprobs(s, r)
    reinforce = -(adv * (logp * mask).sum(-1)).mean()
    want = torch.autograd.grad(reinforce, list(s.policy.parameters()))
    for g, h in zip(got, want):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_rloo_raises_a_simple_reward(tmp_path, model):
    summary = rloo.train(config(tmp_path, model, 8), show=False)
    rows = metrics(tmp_path / "run")
    assert summary["reward/last_20pct"] > summary["reward/first_20pct"] + 0.03, [r["reward/mean"] for r in rows]
    assert all(
        k in rows[0] for k in ("loss/policy", "policy/clipfrac", "policy/entropy", "policy/grad_norm", "kl/mean")
    )
    assert "value/mean" not in rows[0]
    assert rows[-1]["kl/mean"] > 0 and rows[-1]["reward/total"] < rows[-1]["reward/mean"], (
        "the KL is paid in the reward"
    )


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}


def test_resume_is_exact(tmp_path):
    """2 iterations, then resumed to 4 == 4 straight."""
    small = [
        "rloo.rollout_size=8",
        "rloo.rollout_batch_size=8",
        "rloo.minibatch_size=4",
        "rloo.epochs=2",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
    ]
    rloo.train(config(tmp_path, "tiny-gpt2", 4, *small, name="straight"), show=False)
    rloo.train(config(tmp_path, "tiny-gpt2", 2, *small, name="split"), show=False)
    rloo.train(config(tmp_path, "tiny-gpt2", 4, *small, name="split"), resume_dir=str(tmp_path / "split"), show=False)
    a, b = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    assert [r["iteration"] for r in b] == [1, 2, 3, 4]
    assert [comparable(r) for r in a] == [comparable(r) for r in b]
