"""Gradient checkpointing: layers are recomputed in the backward pass, and the gradients are those of the plain backward."""

from __future__ import annotations

import pytest
import torch

from grue.algorithms import ppo
from grue.algorithms import resolve
from grue.memory import checkpointable, enable_checkpointing, training_forward
from grue.models import load_policy
from grue.onpolicy import backward_step, collect_iteration, minibatches, score_and_advantages
from grue.run_setup import start_session


def counting(module: torch.nn.Module) -> list[int]:
    """Calls of ``module.forward`` (wrapped on the instance: forward hooks do not run in a checkpoint's recompute)."""
    calls, forward = [0], module.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return forward(*args, **kwargs)

    module.forward = counted
    return calls


def test_a_checkpointed_backward_recomputes_the_layers_and_gives_the_same_gradients():
    """The supervised path: a training-mode forward and backward of tiny-gpt2, with and without checkpointing."""
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    grads, calls = [], []
    for on in (False, True):
        model = load_policy("tiny-gpt2")
        if on:
            enable_checkpointing(model)
        n = counting(model.transformer.h[0].mlp)  # inside the layer: the backward recomputes it
        model.train()  # dropout on, as in supervised training: the recompute replays the same masks
        torch.manual_seed(1)
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
        calls.append(n[0])
    assert calls == [1, 2]  # checkpointed: the layer runs again in the backward pass
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=0, atol=1e-7)


@pytest.mark.usefixtures("fresh_accelerator")
def test_ppo_update_with_gradient_checkpointing_takes_the_same_gradients(tmp_path):
    """One PPO backward step of the same rollout (same seed) on tiny-gpt2 with a separate critic: policy and critic
    layers recomputed, gradients equal to 1e-7, and the models back in eval mode after the update's forward."""
    grads, calls = [], []
    for on in (False, True):
        cfg = resolve(
            "imdb",
            "ppo",
            preset="smoke",
            flags={"run.output_dir": str(tmp_path / f"run{on}")},
            sets=[
                "run.model=tiny-gpt2",
                "run.reward=reward_fixtures:letter_e",
                "generation.max_new_tokens=8",
                "generation.min_new_tokens=8",
                "ppo.batch_unit=completions",
                "ppo.rollout_size=8",
                "ppo.rollout_batch_size=8",
                "ppo.minibatch_size=8",
                "ppo.critic=separate",
                f"ppo.gradient_checkpointing={str(on).lower()}",
                "run.checkpoint_every=1000",
            ],
        )
        s = start_session(cfg, None, check=ppo.check)
        n_policy = counting(checkpointable(s.policy).transformer.h[0].mlp)
        n_critic = counting(checkpointable(s.critic).h[0].mlp)
        b = collect_iteration(s)
        sc = score_and_advantages(s, b, 0.1)
        before = n_policy[0], n_critic[0]
        rows, sel = minibatches(b.rollout.response_mask, "completions", 8, s.shuffle_rng)[0]
        backward_step(s, b.rollout, rows, sel, sc.advantages, sc.returns, ppo.minibatch_loss, 1)
        calls.append((n_policy[0] - before[0], n_critic[0] - before[1]))
        assert not s.policy.training and not s.critic.training
        grads.append([p.grad.clone() for m in (s.policy, s.critic) for p in m.parameters()])
    assert calls == [(1, 1), (2, 2)]
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-7)


def test_training_forward_is_a_no_op_when_off():
    m = torch.nn.Linear(2, 2).eval()
    with training_forward([m, None], False):
        assert not m.training
    with training_forward([m, None], True):
        assert m.training
    assert not m.training
