"""Linear layers that multiply a few rows at a time faster on a CPU: the decoding step's shape.

A decoding step multiplies each weight matrix by one row per sequence (batch 16: 16 rows). With the
weight as BLAS's second operand (``x @ W.T``, what ``nn.Linear`` and GPT-2's ``Conv1D`` do), MKL on
this project's 2-core CPU ran that product at a third to a half of the speed of the same product
written with the weight first (``(W @ x.T).T``): measured over GPT-2 small's twelve layers with the
weights out of cache, 16 rows, 81 ms against 52 ms (``nn.Linear`` layout) and 100 ms against 66 ms
(``Conv1D`` layout), and on its vocabulary projection 67 ms against 38 ms (benchmarks/README.md).
Many rows (a teacher-forced pass: thousands) run at full speed either way, and are left alone.

``swap_in`` changes the class of a model's ``nn.Linear`` and ``Conv1D`` modules in place, so their
parameters, state dict, checkpoints and ``isinstance`` checks stay what they were; only ``forward``
differs, and only on CPU, in float32, outside autocast, for a row count in the ranges below. The two
orders of summation differ by float rounding (tested: 1e-5).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

LINEAR_ROWS = (2, 96)
"""Row counts for which the weight-first product is used with an ``nn.Linear`` weight (out, in):
faster from 2 rows to 96 in the measurement above; one row is a matrix-vector product either way."""

CONV1D_ROWS = (12, 96)
"""The same for GPT-2's ``Conv1D`` weight (in, out), whose weight-first product reads a transposed
operand: faster from 12 rows, several times slower below 8."""


ALIGN = 64
"""Byte alignment ``swap_in`` gives the parameters (torch's own CPU allocations have it). MKL's weight-first
product rounds differently when the weight or bias starts off a 16-byte boundary, which a tensor read from a
safetensors file can: a run resumed from a checkpoint would then not repeat the run it continues."""


def _applies(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rows: int, limits: tuple[int, int]
) -> bool:
    return (
        limits[0] <= rows <= limits[1]
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and weight.data_ptr() % 16 == 0
        and (bias is None or bias.data_ptr() % 16 == 0)
    )


def weight_first(x2d: torch.Tensor, weight_out_in: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x2d @ weight_out_in.T + bias`` computed as ``(weight_out_in @ x2d.T + bias[:, None]).T``.

    x2d (M,K), weight_out_in (N,K) (any strides), bias (N,) or None -> (M,N), contiguous.
    """
    xt = x2d.t()
    y = torch.mm(weight_out_in, xt) if bias is None else torch.addmm(bias[:, None], weight_out_in, xt)
    return y.t().contiguous()


def _few_rows(
    x: torch.Tensor, weight_out_in: torch.Tensor, bias: torch.Tensor | None, limits: tuple[int, int]
) -> torch.Tensor | None:
    """``x`` (...,K) through the weight-first product -> (...,N), or None where it does not apply (the caller then
    runs its own product)."""
    rows = x.numel() // max(x.shape[-1], 1)
    if x.dim() < 2 or not _applies(x, weight_out_in, bias, rows, limits):
        return None
    return weight_first(x.reshape(rows, x.shape[-1]), weight_out_in, bias).view(*x.shape[:-1], weight_out_in.shape[0])


class RowsLinear(nn.Linear):
    """``nn.Linear`` with the weight-first product for a few rows on CPU (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _few_rows(x, self.weight, self.bias, LINEAR_ROWS)
        return super().forward(x) if y is None else y


@functools.lru_cache(maxsize=1)
def _conv1d_class():
    from transformers.pytorch_utils import Conv1D

    class RowsConv1D(Conv1D):
        """GPT-2's ``Conv1D`` (weight (in, out)) with the weight-first product for a few rows on CPU."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = _few_rows(x, self.weight.t(), self.bias, CONV1D_ROWS)
            return super().forward(x) if y is None else y

    return Conv1D, RowsConv1D


def swap_in(model: nn.Module) -> nn.Module:
    """Make every plain ``nn.Linear`` and ``Conv1D`` of ``model`` a ``RowsLinear``/``RowsConv1D``, in place, and
    move any parameter that starts off an ``ALIGN``-byte boundary to a fresh (aligned) copy of itself (the same
    ``Parameter`` object, so tied weights stay tied)."""
    for p in model.parameters():
        if p.device.type == "cpu" and p.data_ptr() % ALIGN:
            p.data = p.data.clone()
    conv1d, rows_conv1d = _conv1d_class()
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = RowsLinear
        elif type(module) is conv1d:
            module.__class__ = rows_conv1d
    return model
