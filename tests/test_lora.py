"""LoRA adapters (grue.adapters, ``run.lora_*``): every algorithm trains an adapter on causal and seq2seq tiny models,
with the reference being the policy with its adapters disabled (no second copy of the base weights); checkpoints
hold the adapter and resume exactly; ``grue export --merge`` and ``grue eval`` read them."""

from __future__ import annotations

import json

import pytest
import torch

from grue.models import lora_policy
from grue.algorithms import ALGORITHMS, nlpo, ppo
from grue.checkpoint import latest
from grue.algorithms import resolve
from grue.errors import GrueError
from grue.models import load_policy
from grue.rollout import lm_inputs, policy_forward
from conftest import cli_in_process
from test_supervised import write_reviews

LORA = [
    "run.lora_rank=4",
    "run.lora_alpha=8",
    "run.reward=reward_fixtures:letter_e",
    "run.checkpoint_every=1000",
    "generation.max_new_tokens=4",
    "generation.min_new_tokens=4",
    "generation.max_prompt_tokens=16",
]
SIZES = {  # the smallest rollouts each algorithm accepts: completions, 8 per iteration
    "ppo": ["ppo.rollout_size=8", "ppo.rollout_batch_size=8", "ppo.minibatch_size=4", "ppo.epochs=1"],
    "nlpo": [
        "nlpo.rollout_size=8",
        "nlpo.rollout_batch_size=8",
        "nlpo.minibatch_size=4",
        "nlpo.epochs=1",
        "nlpo.mask_update_interval=1",
    ],
    "a2c": ["a2c.rollout_size=8", "a2c.rollout_batch_size=8"],
    "trpo": [
        "trpo.rollout_size=8",
        "trpo.rollout_batch_size=8",
        "trpo.minibatch_size=4",
        "trpo.n_critic_updates=1",
        "trpo.cg_max_steps=3",
    ],
    "grpo": [
        "grpo.rollout_size=8",
        "grpo.rollout_batch_size=8",
        "grpo.group_size=4",
        "grpo.minibatch_size=4",
        "grpo.epochs=1",
    ],
    "rloo": [
        "rloo.rollout_size=8",
        "rloo.rollout_batch_size=8",
        "rloo.group_size=4",
        "rloo.minibatch_size=4",
        "rloo.epochs=1",
    ],
}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def config(tmp_path, algo: str, model: str, iterations: int, *sets: str, name: str = "run"):
    return resolve(
        "imdb",
        algo,
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / name), "algo.iterations": iterations},
        sets=[f"run.model={model}", *LORA, *SIZES.get(algo, []), *sets],
    )


def metrics(run) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


CASES = [(algo, model) for algo in SIZES for model in ("tiny-gpt2", "tiny-t5")]


@pytest.mark.parametrize("algo,model", CASES)
def test_every_algorithm_trains_only_the_adapter(tmp_path, algo, model):
    """One iteration: the adapter moves, the base weights do not, the checkpoint holds the adapter (not the base)."""
    base = dict(load_policy(model).named_parameters())
    cfg = config(tmp_path, algo, model, 1)
    summary = ALGORITHMS[algo].train(cfg, show=False)
    assert summary["iterations"] == 1 and torch.isfinite(torch.tensor(metrics(tmp_path / "run")[0]["reward/mean"]))
    ck = latest(tmp_path / "run")
    assert (ck / "adapter_model.safetensors").is_file() and not (ck / "model.safetensors").is_file()
    policy, _ = lora_policy(cfg.run, ck)
    moved = [n for n, p in policy.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert moved, "the adapter did not train"
    for n, p in policy.named_parameters():
        if "lora_" not in n:
            key = n.replace(".base_layer", "")
            assert torch.equal(p, base[key]), n


def logits(model, seq2seq: bool, ids: torch.Tensor) -> torch.Tensor:
    mask = torch.ones_like(ids)
    inputs = lm_inputs(ids, mask, ids, mask.float(), seq2seq, 0 if seq2seq else None)
    with torch.no_grad():
        return policy_forward(model, inputs, ids.shape[1], seq2seq)[0]


def perturb(model, seed: int = 0) -> None:
    """Move every LoRA tensor of ``model`` (as training would)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_one_copy_of_the_base_serves_policy_reference_critic_and_masking_policy(tmp_path, model):
    """The reference is the policy with its adapter disabled (the base model's logits, whatever the adapter holds);
    the separate critic and NLPO's masking policy share the policy's base weights (same storage) with adapters of
    their own; the optimizer holds adapters and the value head only."""
    s, mask = nlpo.start(config(tmp_path, "nlpo", model, 1, "nlpo.critic=separate"), None)
    policy, seq2seq = s.policy, s.seq2seq
    assert s.ref.module is policy
    base = load_policy(model).eval()
    ids = torch.randint(3, 4000, (2, 5), generator=torch.Generator().manual_seed(0))
    perturb(policy)
    assert torch.allclose(logits(s.ref, seq2seq, ids), logits(base, seq2seq, ids), atol=1e-5)
    assert not torch.allclose(logits(policy, seq2seq, ids), logits(base, seq2seq, ids), atol=1e-3)

    base_storage = {p.data_ptr() for p in policy.parameters() if not p.requires_grad}
    assert sum(p.numel() for p in policy.parameters() if not p.requires_grad) == sum(
        p.numel() for p in base.parameters()
    )
    for other in (s.critic, mask.model):
        frozen = [p for p in other.parameters() if p.data_ptr() in base_storage]
        own = [p for n, p in other.named_parameters() if p.data_ptr() not in base_storage]
        assert frozen and all(
            "lora_" in n or "head" in n for n, p in other.named_parameters() if p.data_ptr() not in base_storage
        )
        assert sum(p.numel() for p in own) < 0.1 * sum(p.numel() for p in base.parameters())
    in_optimizer = {id(p) for g in s.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for m in (policy, s.critic) for p in m.parameters() if p.requires_grad}
    assert all(
        p.data_ptr() not in base_storage for m in (policy, s.critic) for p in m.parameters() if id(p) in in_optimizer
    )


def test_masking_policy_is_a_snapshot_of_the_adapter(tmp_path):
    """NLPO's masking policy keeps the adapter it was given while the policy's moves; a refresh copies it over."""
    s, mask = nlpo.start(config(tmp_path, "nlpo", "tiny-gpt2", 1), None)
    ids = torch.randint(3, 4000, (2, 5), generator=torch.Generator().manual_seed(1))
    before = logits(mask.model, False, ids)
    perturb(s.policy)
    assert torch.equal(logits(mask.model, False, ids), before)
    nlpo.refresh(s, mask)
    assert torch.allclose(logits(mask.model, False, ids), logits(s.policy, False, ids), atol=1e-6)


def test_resume_is_exact(tmp_path):
    """NLPO with a separate critic (policy adapter, critic adapter and head, masking snapshot, optimizer, RNGs):
    2 iterations, then resumed to 3 == 3 straight."""
    sets = ["nlpo.mask_update_interval=2", "nlpo.critic=separate"]
    straight = nlpo.train(config(tmp_path, "nlpo", "tiny-gpt2", 3, *sets, name="straight"), show=False)
    nlpo.train(config(tmp_path, "nlpo", "tiny-gpt2", 2, *sets, name="split"), show=False)
    trainer = sorted(p.name for p in (latest(tmp_path / "split") / "trainer").iterdir())
    assert trainer == ["critic.safetensors", "manifest.json", "mask_policy.safetensors", "optimizer.pt", "state.json"]
    resumed = nlpo.train(
        config(tmp_path, "nlpo", "tiny-gpt2", 3, *sets, name="split"), resume_dir=str(tmp_path / "split"), show=False
    )
    drop = lambda row: {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}  # noqa: E731
    assert [drop(r) for r in metrics(tmp_path / "straight")] == [drop(r) for r in metrics(tmp_path / "split")]
    assert straight["policy_sha256_per_rank"] == resumed["policy_sha256_per_rank"]


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_export_merges_the_adapter_into_a_model_from_pretrained_loads(tmp_path, model):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    cfg = config(tmp_path, "ppo", model, 1, "ppo.critic=shared")
    ppo.train(cfg, show=False)
    r = cli_in_process("export", str(tmp_path / "run"), "--merge", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    seq2seq = model == "tiny-t5"
    merged = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    adapted, _ = lora_policy(cfg.run, latest(tmp_path / "run"))
    ids = torch.randint(3, 4000, (2, 6), generator=torch.Generator().manual_seed(2))
    assert torch.allclose(logits(merged, seq2seq, ids), logits(adapted.eval(), seq2seq, ids), atol=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path / "merged")("a fine film").input_ids
    again = cli_in_process("export", str(tmp_path / "run"), "--merge", str(tmp_path / "merged"))
    assert again.returncode == 2 and "not an empty directory" in again.stderr


def test_export_of_a_full_fine_tuning_run_writes_its_policy(tmp_path):
    from transformers import AutoModelForCausalLM

    ppo.train(config(tmp_path, "ppo", "tiny-gpt2", 1, "run.lora_rank=0", "ppo.critic=shared"), show=False)
    assert cli_in_process("export", str(tmp_path / "run"), "--merge", str(tmp_path / "out")).returncode == 0
    out = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    saved = load_policy(str(latest(tmp_path / "run")))
    assert all(torch.equal(a, b) for a, b in zip(out.state_dict().values(), saved.state_dict().values()))


def test_eval_reads_an_adapter_checkpoint_with_its_action_mask(tmp_path):
    """``grue eval`` of a LoRA NLPO run: the base with the adapter merged, masked by the snapshot adapter."""
    data = write_reviews(tmp_path / "data", n=8)
    nlpo.train(
        config(tmp_path, "nlpo", "tiny-gpt2", 1, f"run.data_dir={data}", "run.builtin_prompts=false"), show=False
    )
    r = cli_in_process(
        "eval",
        "--checkpoint",
        str(tmp_path / "run"),
        "--limit",
        "2",
        "--quiet",
        "--set",
        "eval.max_new_tokens=4",
        "--set",
        "eval.min_new_tokens=4",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "run" / "eval" / "test" / "results.json").read_text())
    assert res["config"]["eval"]["action_mask"] is True
    assert res["model"]["parameters"] == sum(p.numel() for p in load_policy("tiny-gpt2").parameters())


def test_supervised_trains_an_adapter_with_dropout(tmp_path):
    data = write_reviews(tmp_path / "data", n=8)
    cfg = resolve(
        "imdb",
        "supervised",
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / "run"), "run.data_dir": str(data), "algo.epochs": 1},
        sets=[
            "run.model=tiny-t5",
            "run.lora_rank=4",
            "run.lora_dropout=0.1",
            "supervised.batch_size=4",
            "supervised.eval_limit=2",
            "supervised.eval_batch_size=2",
            "generation.max_new_tokens=4",
            "generation.min_new_tokens=4",
            "supervised.max_target_tokens=8",
        ],
    )
    ALGORITHMS["supervised"].train(cfg, show=False)
    ck = latest(tmp_path / "run")
    assert json.loads((ck / "adapter_config.json").read_text())["lora_dropout"] == 0.1
    policy, _ = lora_policy(cfg.run, ck)
    assert any(p.abs().sum() > 0 for n, p in policy.named_parameters() if "lora_B" in n)


def test_bad_settings_and_a_missing_peft_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(GrueError, match="run.lora_dropout applies only"):
        ppo.train(config(tmp_path, "ppo", "tiny-gpt2", 1, "run.lora_dropout=0.1"), show=False)
    with pytest.raises(GrueError, match="run.lora_rank must be"):
        ppo.train(config(tmp_path, "ppo", "tiny-gpt2", 1, "run.lora_rank=-1", name="neg"), show=False)
    monkeypatch.setitem(__import__("sys").modules, "peft", None)  # as if peft were not installed: import fails
    with pytest.raises(GrueError, match=r"needs the peft package: pip install"):
        ppo.train(config(tmp_path, "ppo", "tiny-gpt2", 1, name="nopeft"), show=False)
