"""GRPO: groups on one process, no critic anywhere, the KL in the loss or the reward, learning on the tiny
models, exact resume, the settings it refuses. The advantage formula is tested by hand in test_advantages."""

from __future__ import annotations

import json

import pytest
import torch

from grue.algorithms import grpo
from grue.checkpoint import latest
from grue.algorithms import resolve
from grue.errors import GrueError
from grue.grouped import collect_groups, score_groups
from grue.run_setup import start_session


def config(tmp_path, model: str, iterations: int, *sets: str, name: str = "run"):
    base = [
        f"run.model={model}",
        "run.reward=reward_fixtures:letter_e",
        "grpo.rollout_size=32",
        "grpo.rollout_batch_size=32",
        "grpo.group_size=4",
        "grpo.minibatch_size=16",
        "grpo.epochs=1",
        "grpo.lr=5e-3",
        "generation.max_new_tokens=8",
        "generation.min_new_tokens=8",
        "run.checkpoint_every=1000",
    ]
    return resolve(
        "imdb",
        "grpo",
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / name), "algo.iterations": iterations},
        sets=base + list(sets),
    )


def metrics(run) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "changes,world,message",
    [
        ({"group_size": 1}, 1, "grpo.group_size must be at least 2"),
        (
            {"rollout_size": 32, "group_size": 8},
            8,
            "grpo.rollout_size (32) must be a multiple of grpo.group_size (8) times the number of processes (8)",
        ),
        ({"rollout_size": 30, "group_size": 4}, 1, "must be a multiple of grpo.group_size (4)"),
        (
            {"rollout_size": 32, "group_size": 4, "minibatch_size": 12},
            1,
            "grpo.minibatch_size (12) must divide the per-process rollout (32)",
        ),
        (
            {"rollout_size": 32, "group_size": 4, "minibatch_size": 8, "grad_accum": 3},
            1,
            "grpo.grad_accum (3) must divide grpo.minibatch_size (8)",
        ),
    ],
)
def test_check_rejects_settings_that_cannot_run(changes, world, message):
    with pytest.raises(GrueError) as e:
        grpo.check(grpo.GRPOConfig(**changes), world)
    assert message in str(e.value)
    grpo.check(
        grpo.GRPOConfig(rollout_size=64, group_size=8, minibatch_size=16), 4
    )  # 2 prompts x 8 samples per process


def test_a_group_is_one_prompt_sampled_g_times_and_there_is_no_critic(tmp_path):
    s = start_session(
        config(tmp_path, "tiny-gpt2", 1, "grpo.kl_penalty=reward", "grpo.kl_coef=0.5"), None, check=grpo.check
    )
    assert s.critic is None and s.trainable == [s.policy]
    assert {id(p) for g in s.optimizer.param_groups for p in g["params"]} == {id(p) for p in s.policy.parameters()}
    b = collect_groups(s)
    assert len(b.idx) == 32 and b.rollout.values is None
    groups = [b.idx[i : i + 4] for i in range(0, 32, 4)]
    assert all(len(set(g)) == 1 for g in groups) and len({g[0] for g in groups}) == 8, (
        "8 prompts, each 4 times in a row"
    )
    ids = b.rollout.response_ids
    assert all(len({tuple(ids[i + j].tolist()) for j in range(4)}) > 1 for i in range(0, 32, 4)), (
        "the samples of a prompt differ"
    )
    sc, rewards = score_groups(s, b, 0.5)
    mask = b.rollout.response_mask
    # kl_penalty reward: R_i = score_i - 0.5 * sum_t k3_t (the estimator of the grpo section)
    assert torch.allclose(rewards, sc.scores - 0.5 * (sc.kl * mask).sum(-1))
    assert torch.allclose(sc.rewards.sum(-1), rewards)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_grpo_raises_a_simple_reward(tmp_path, model):
    summary = grpo.train(config(tmp_path, model, 8), show=False)
    rows = metrics(tmp_path / "run")
    assert summary["reward/last_20pct"] > summary["reward/first_20pct"] + 0.03, [r["reward/mean"] for r in rows]
    assert [r["iteration"] for r in rows] == list(range(1, 9)) and rows[-1]["samples"] == 8 * 32
    assert all(
        k in rows[0] for k in ("loss/policy", "loss/kl", "policy/clipfrac", "policy/entropy", "policy/grad_norm")
    )
    assert "value/mean" not in rows[0] and "loss/value" not in rows[0]
    assert rows[-1]["kl/mean"] > 0 and rows[-1]["loss/kl"] > 0, (
        "the policy drifts from the reference, and the k3 term sees it"
    )
    assert not (tmp_path / "run" / "checkpoint" / "trainer" / "critic.safetensors").exists()


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}


def test_resume_is_exact(tmp_path):
    """2 iterations, then resumed to 4 == 4 straight (policy, optimizer, data order and RNGs; no critic)."""
    small = [
        "grpo.rollout_size=8",
        "grpo.rollout_batch_size=8",
        "grpo.minibatch_size=4",
        "generation.max_new_tokens=4",
        "generation.min_new_tokens=4",
        "grpo.epochs=2",
    ]
    grpo.train(config(tmp_path, "tiny-t5", 4, *small, name="straight"), show=False)
    grpo.train(config(tmp_path, "tiny-t5", 2, *small, name="split"), show=False)
    assert sorted(p.name for p in (latest(tmp_path / "split") / "trainer").iterdir()) == [
        "manifest.json",
        "optimizer.pt",
        "state.json",
    ]
    grpo.train(config(tmp_path, "tiny-t5", 4, *small, name="split"), resume_dir=str(tmp_path / "split"), show=False)
    a, b = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    assert [r["iteration"] for r in b] == [1, 2, 3, 4]
    assert [comparable(r) for r in a] == [comparable(r) for r in b]
