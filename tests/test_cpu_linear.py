"""grue.cpu_linear: the weight-first product for a few rows on CPU, and its swap into loaded models."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from grue import cpu_linear
from grue.models import load_policy, tiny_model


def plain_linear(bias: bool) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(48, 80, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (2, 48), (16, 48), (4, 4, 48), (96, 48), (97, 48), (3, 70, 48)])
def test_rows_linear_equals_linear_and_takes_the_weight_first_product_only_for_a_few_rows(bias, shape):
    ref = plain_linear(bias)
    fast = cpu_linear.swap_in(copy.deepcopy(ref))
    assert type(fast) is cpu_linear.RowsLinear and isinstance(fast, nn.Linear)
    x = torch.randn(*shape)
    y, want = fast(x), ref(x)
    assert y.shape == want.shape and y.is_contiguous()
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    rows = x.numel() // 48
    first = cpu_linear.weight_first(x.reshape(rows, 48), ref.weight, ref.bias).view(want.shape)
    lo, hi = cpu_linear.LINEAR_ROWS
    assert torch.equal(y, first if lo <= rows <= hi else want), "the product used is the one the row count picks"


@pytest.mark.parametrize("rows", [1, 4, 11, 12, 16, 96, 97])
def test_rows_conv1d_equals_conv1d(rows):
    torch.manual_seed(0)
    ref = Conv1D(80, 48)
    nn.init.normal_(ref.bias)
    fast = cpu_linear.swap_in(copy.deepcopy(ref))
    assert isinstance(fast, Conv1D) and type(fast) is not Conv1D
    x = torch.randn(rows, 1, 48)
    y, want = fast(x), ref(x)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    lo, hi = cpu_linear.CONV1D_ROWS
    first = cpu_linear.weight_first(x.reshape(rows, 48), ref.weight.t(), ref.bias).view(want.shape)
    assert torch.equal(y, first if lo <= rows <= hi else want)


def test_gradients_through_the_weight_first_product_match():
    ref = plain_linear(True)
    fast = cpu_linear.swap_in(copy.deepcopy(ref))
    x = torch.randn(16, 48, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    (ref(x) ** 2).sum().backward()
    (fast(x2) ** 2).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-4)


def test_other_dtypes_and_autocast_keep_the_module_s_own_product():
    ref = plain_linear(True).to(torch.bfloat16)
    fast = cpu_linear.swap_in(copy.deepcopy(ref))
    x = torch.randn(16, 48, dtype=torch.bfloat16)
    assert torch.equal(fast(x), ref(x))
    ref32 = plain_linear(True)
    fast32 = cpu_linear.swap_in(copy.deepcopy(ref32))
    x32 = torch.randn(16, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(fast32(x32), ref32(x32))


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_loaded_models_are_swapped_and_save_what_they_loaded(tmp_path, name):
    """load_policy swaps every linear layer; parameters, state dict keys and checkpoints are unchanged, and the
    logits of a decoding-sized batch equal the plain model's to float rounding."""
    loaded, plain = load_policy(name), tiny_model(name)
    kinds = {type(m) for m in loaded.modules()}
    assert nn.Linear not in kinds and Conv1D not in kinds
    assert cpu_linear.RowsLinear in kinds
    assert loaded.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), plain.state_dict().values()))
    loaded.save_pretrained(tmp_path)
    again = load_policy(str(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), plain.state_dict().values()))
    plain.eval(), loaded.eval()
    ids = torch.randint(2, 200, (16, 1))
    kw = {"decoder_input_ids": ids} if plain.config.is_encoder_decoder else {}
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids, **kw).logits, plain(input_ids=ids, **kw).logits, rtol=1e-5, atol=1e-5
        )
    assert type(copy.deepcopy(loaded).lm_head) is cpu_linear.RowsLinear


def test_weights_off_a_16_byte_boundary_are_realigned_so_a_loaded_model_computes_what_the_saved_one_did():
    """safetensors can hand out a weight at any 4-byte offset, where MKL's weight-first product rounds differently
    (a resumed run would not repeat the straight one): swap_in moves such parameters to aligned copies, keeping
    ties, and a weight misaligned later takes the module's own product."""
    torch.manual_seed(0)
    ref = nn.Linear(64, 192)
    x = torch.randn(8, 64)
    want = cpu_linear.swap_in(copy.deepcopy(ref))(x)
    storage = torch.empty(64 * 192 + 1)
    odd = copy.deepcopy(ref)
    odd.weight.data = storage[1:].view(192, 64).copy_(ref.weight.data)  # 4 bytes past an aligned start
    assert odd.weight.data_ptr() % 16
    misaligned = copy.deepcopy(cpu_linear.swap_in(copy.deepcopy(ref)))
    misaligned.weight.data = odd.weight.data
    assert torch.equal(misaligned(x), torch.nn.functional.linear(x, ref.weight, ref.bias)), (
        "off a boundary: nn.Linear's product"
    )
    fixed = cpu_linear.swap_in(odd)
    assert fixed.weight.data_ptr() % cpu_linear.ALIGN == 0
    assert torch.equal(fixed(x), want)
    tied = tiny_model("tiny-gpt2")
    tied.lm_head.weight.data = (
        torch.empty(tied.lm_head.weight.numel() + 1)[1:].view_as(tied.lm_head.weight).copy_(tied.lm_head.weight)
    )
    cpu_linear.swap_in(tied)
    assert tied.lm_head.weight is tied.transformer.wte.weight and tied.lm_head.weight.data_ptr() % cpu_linear.ALIGN == 0
