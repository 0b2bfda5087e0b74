"""Which parameters get weight decay, and the optimizers, as the paper built them."""

from __future__ import annotations

import torch
from torch import nn

from grue.models import disable_dropout, load_policy
from grue.optim import groups_by_name, groups_like_trainer, make_optimizer


class BertLike(nn.Module):
    """Parameter names in the BERT style that RL4LMs' rule was written for."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(2, 2)
        self.LayerNorm = nn.LayerNorm(2)


def names(groups, model):
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [(g["weight_decay"], sorted(by_id[id(p)] for p in g["params"])) for g in groups]


def test_rl4lms_rule_is_by_name():
    # RL4LMs 97df0bd rl4lms/envs/text_generation/policy/base_policy.py:147-160: no decay when the name contains
    # "bias", "LayerNorm.bias" or "LayerNorm.weight"
    m = BertLike()
    assert names(groups_by_name(m.named_parameters(), 1e-6), m) == [
        (1e-6, ["dense.weight"]),
        (0.0, ["LayerNorm.bias", "LayerNorm.weight", "dense.bias"]),
    ]
    gpt2 = load_policy("tiny-gpt2")
    decay, no_decay = names(groups_by_name(gpt2.named_parameters(), 1e-6), gpt2)
    assert "transformer.h.0.ln_1.weight" in decay[1], "GPT-2's layer norms are named ln_*: the rule decays them"
    assert all(n.endswith("bias") for n in no_decay[1]) and "transformer.h.0.ln_1.bias" in no_decay[1]
    frozen = nn.Linear(2, 2)
    frozen.weight.requires_grad_(False)
    assert names(groups_by_name(frozen.named_parameters(), 0.1), frozen) == [(0.0, ["bias"])]


def test_trainer_rule_is_by_module_type():
    # transformers' Trainer (4.18): decay every parameter except biases and nn.LayerNorm parameters
    gpt2 = load_policy("tiny-gpt2")
    decay, no_decay = names(groups_like_trainer(gpt2, 0.01), gpt2)
    assert decay[0] == 0.01 and no_decay[0] == 0.0
    assert "transformer.h.0.ln_1.weight" in no_decay[1] and "transformer.ln_f.weight" in no_decay[1]
    assert "transformer.h.0.attn.c_attn.weight" in decay[1] and not any("ln_" in n or "bias" in n for n in decay[1])


def test_optimizers():
    p = [nn.Parameter(torch.zeros(2))]
    rms = make_optimizer("rmsprop", [{"params": p, "weight_decay": 1e-6}], lr=1e-3, eps=1e-5)
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["alpha"] == 0.99 and rms.param_groups[0]["eps"] == 1e-5
    adam = make_optimizer("adamw", [{"params": p, "weight_decay": 1e-6}], lr=1e-3, eps=1e-8)
    assert isinstance(adam, torch.optim.AdamW) and adam.param_groups[0]["weight_decay"] == 1e-6
    assert adam.defaults["fused"]


def test_fused_adamw_takes_the_steps_of_the_per_parameter_loop():
    """grue's AdamW (fused kernel) against torch's reference loop (foreach=False), same gradients, 5 steps:
    equal to float rounding (each step moves a parameter by about lr, 1e-3; they agree to about 2 ulp)."""
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(32)]
    runs = []
    for fused in (True, False):
        ps = [nn.Parameter(t.clone()) for t in start]
        groups = [{"params": ps[:1], "weight_decay": 1e-2}, {"params": ps[1:], "weight_decay": 0.0}]
        opt = (
            make_optimizer("adamw", groups, lr=1e-3, eps=1e-8)
            if fused
            else torch.optim.AdamW(groups, lr=1e-3, eps=1e-8, foreach=False)
        )
        assert bool(opt.defaults["fused"]) == fused
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        runs.append([p.detach().clone() for p in ps])
    for a, b, s in zip(*runs, start):
        assert (a - s).abs().max() > 4e-3  # the steps moved them
        torch.testing.assert_close(a, b, rtol=2.5e-7, atol=1e-9)  # float32 ulp: 1.2e-7 relative


def test_dropout_is_off_also_where_a_layer_reads_a_float_rate():
    """transformers 5's T5Attention applies attention dropout from a float attribute in training mode."""
    t5 = load_policy("tiny-t5")
    assert any(isinstance(getattr(m, "dropout", None), float) and m.dropout > 0 for m in t5.modules())
    disable_dropout(t5)
    assert not any(isinstance(getattr(m, "dropout", None), float) and m.dropout > 0 for m in t5.modules())
    assert all(m.p == 0.0 for m in t5.modules() if isinstance(m, nn.Dropout))
    ids = torch.tensor([[5, 6, 7]])
    t5.train()
    with torch.no_grad():
        a = t5(input_ids=ids, decoder_input_ids=ids).logits
    t5.eval()
    with torch.no_grad():
        b = t5(input_ids=ids, decoder_input_ids=ids).logits
    torch.testing.assert_close(a, b)


def test_sessions_build_the_papers_optimizers(tmp_path):
    from grue.algorithms import a2c, ppo
    from grue.algorithms import resolve
    from grue.run_setup import start_session

    def opt(algo, *sets):
        cfg = resolve(
            "imdb",
            algo,
            preset="smoke",
            flags={"run.output_dir": str(tmp_path / algo)},
            sets=["run.reward=reward_fixtures:letter_e", *sets],
        )
        return start_session(cfg, None, check=ppo.check if algo == "ppo" else a2c.check).optimizer.optimizer

    adam = opt("ppo", "ppo.adam_eps=1e-8", "ppo.weight_decay=1e-6")
    assert isinstance(adam, torch.optim.AdamW) and [g["weight_decay"] for g in adam.param_groups] == [1e-6, 0.0]
    assert adam.param_groups[0]["eps"] == 1e-8
    rms = opt("a2c", "a2c.optimizer=rmsprop", "a2c.adam_eps=1e-5")
    assert isinstance(rms, torch.optim.RMSprop) and rms.param_groups[0]["eps"] == 1e-5
    # every trainable parameter of policy and critic is in exactly one group
    assert sum(len(g["params"]) for g in rms.param_groups) == len(
        {id(p) for g in rms.param_groups for p in g["params"]}
    )
