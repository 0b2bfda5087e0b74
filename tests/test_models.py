"""Model loading: built-in tiny models, local directories, critics, bad names."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from grue.errors import GrueError
from grue.models import Critic, freeze, load_policy, load_tokenizer, tiny_tokenizer, trunk_copy


def test_tiny_tokenizer_is_the_same_in_every_process():
    code = "from grue.models import _tiny_tokenizer_json as t; import hashlib; print(hashlib.sha256(t().encode()).hexdigest())"
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1


def test_tiny_tokenizer_round_trips_any_text():
    tok = tiny_tokenizer()
    text = "Ünïcode, émojis 🎬 and <br /> tags: all bytes survive."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert (tok.pad_token_id, tok.eos_token_id, len(tok)) == (0, 1, 4096)
    assert tiny_tokenizer(seq2seq=True)("hi")["input_ids"][-1] == 1, "T5-style inputs end with EOS"


@pytest.mark.parametrize("name,kind", [("tiny-gpt2", "gpt2"), ("tiny-t5", "t5")])
def test_tiny_models_are_fixed_and_round_trip_through_save_pretrained(tmp_path, name, kind):
    a, b = load_policy(name), load_policy(name)
    assert a.config.model_type == kind
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters())), "weights do not depend on global RNG"
    a.save_pretrained(tmp_path)
    load_tokenizer(name).save_pretrained(tmp_path)
    c = load_policy(str(tmp_path))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    assert load_tokenizer(str(tmp_path)).padding_side in ("left", "right")


@pytest.mark.parametrize("name", ["does-not/exist-anywhere", "/no/such/dir"])
def test_unloadable_model_is_a_grue_error(name):
    with pytest.raises(GrueError, match="could not load model"):
        load_policy(name)


def test_directory_without_config_is_explained(tmp_path):
    with pytest.raises(GrueError, match="has no config.json"):
        load_policy(str(tmp_path))


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_critic_copies_the_trunk_and_not_the_head(name):
    policy = load_policy(name)
    critic = Critic(policy)
    trunk = trunk_copy(policy)
    assert not any(n.startswith("lm_head") for n, _ in trunk.named_parameters())
    shared = set(map(id, policy.parameters())) & set(map(id, critic.parameters()))
    assert not shared, "the critic owns its parameters"
    ids = torch.randint(3, 4096, (2, 5))
    mask = torch.ones_like(ids)
    if policy.config.is_encoder_decoder:
        values = critic(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :4], response_len=4)
    else:
        values = critic(input_ids=ids, attention_mask=mask, position_ids=torch.arange(5).expand(2, 5), response_len=3)
    assert values.shape == (2, 4 if policy.config.is_encoder_decoder else 3)


def test_freeze_stops_gradients():
    m = freeze(load_policy("tiny-gpt2"))
    assert not m.training and not any(p.requires_grad for p in m.parameters())


def test_gelu_new_is_swapped_for_torchs_fused_kernel_with_the_same_outputs(tmp_path):
    """GPT-2's ``gelu_new`` becomes one ``gelu(approximate="tanh")`` kernel in every model load_policy returns (a tiny
    name or a saved directory); activations equal to 5e-7, logits and gradients to float rounding, config unchanged."""
    import copy

    from transformers.activations import NewGELUActivation

    from grue.models import fuse_activations

    loaded = load_policy("tiny-gpt2")
    assert loaded.config.activation_function == "gelu_new"
    assert not any(isinstance(m, NewGELUActivation) for m in loaded.modules())
    loaded.save_pretrained(tmp_path / "m")
    assert not any(isinstance(m, NewGELUActivation) for m in load_policy(str(tmp_path / "m")).modules())
    x = torch.linspace(-8, 8, 10001)
    assert (NewGELUActivation()(x) - fuse_activations(torch.nn.Sequential(NewGELUActivation()))(x)).abs().max() < 5e-7
    plain = copy.deepcopy(loaded)
    for block in plain.transformer.h:
        block.mlp.act = NewGELUActivation()
    ids = torch.randint(2, 200, (3, 12))
    for m in (loaded, plain):
        m.eval()  # no dropout
        m.zero_grad()
        m(input_ids=ids).logits.logsumexp(-1).mean().backward()
    torch.testing.assert_close(loaded(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    for (name, p), q in zip(loaded.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)
