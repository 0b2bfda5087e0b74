"""LoRA adapters (grue.adapters, ``run.lora_*``): every algorithm trains an adapter on causal and seq2seq tiny models,
with the reference being the policy with its adapters disabled (no second copy of the base weights); checkpoints
hold the adapter and resume exactly; ``grue export --merge`` and ``grue eval`` read them."""

from __future__ import annotations

import json

import pytest
import torch

from grue.adapters import lora_policy
from grue.algorithms import ALGORITHMS, nlpo, ppo
from grue.checkpoint import latest
from grue.config import resolve
from grue.errors import GrueError
from grue.models import load_policy
from grue.rollout import lm_inputs, policy_forward
from grue.setup import start_session
from tests.conftest import cli_in_process
from tests.test_supervised import write_reviews

LORA = ["run.lora_rank=4", "run.lora_alpha=8", "run.reward=reward_fixtures:letter_e", "run.checkpoint_every=1000",
        "generation.max_new_tokens=4", "generation.min_new_tokens=4", "generation.max_prompt_tokens=16"]
SIZES = {  # the smallest rollouts each algorithm accepts: completions, 8 per iteration
    "ppo": ["ppo.rollout_size=8", "ppo.rollout_batch_size=8", "ppo.minibatch_size=4", "ppo.epochs=1"],
    "nlpo": ["nlpo.rollout_size=8", "nlpo.rollout_batch_size=8", "nlpo.minibatch_size=4", "nlpo.epochs=1", "nlpo.mask_update_interval=1"],
    "a2c": ["a2c.rollout_size=8", "a2c.rollout_batch_size=8"],
    "trpo": ["trpo.rollout_size=8", "trpo.rollout_batch_size=8", "trpo.minibatch_size=4", "trpo.n_critic_updates=1", "trpo.cg_max_steps=3"],
    "grpo": ["grpo.rollout_size=8", "grpo.rollout_batch_size=8", "grpo.group_size=4", "grpo.minibatch_size=4", "grpo.epochs=1"],
    "rloo": ["rloo.rollout_size=8", "rloo.rollout_batch_size=8", "rloo.group_size=4", "rloo.minibatch_size=4", "rloo.epochs=1"],
}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def config(tmp_path, algo: str, model: str, iterations: int, *sets: str, name: str = "run"):
    return resolve("imdb", algo, preset="smoke", flags={"run.output_dir": str(tmp_path / name), "algo.iterations": iterations},
                   sets=[f"run.model={model}", *LORA, *SIZES.get(algo, []), *sets])


def metrics(run) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def lora_tensors(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


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
