"""``run.mixed_precision: auto``: bf16 where the hardware computes in bf16 natively, else fp32.

CUDA: ``torch.cuda.is_bf16_supported()``. CPU: the instruction-set flags the kernel reports in
/proc/cpuinfo (x86 ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``). Without them torch still runs bf16
on the CPU, by converting to fp32 around every matmul, which is slower than fp32 itself: ``auto``
then keeps fp32. torch has no public CPU query for this (``torch.backends.cpu.get_cpu_capability()``
names the vector width, not bf16), so grue reads the flags itself.
"""

from __future__ import annotations

from pathlib import Path

import torch

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of /proc/cpuinfo's text: the words of its ``flags`` (x86) and ``Features`` (Arm) lines."""
    out: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            out.update(value.split())
    return out


def cpu_native_bf16(flags: set[str]) -> bool:
    """Whether a CPU with these flags has bf16 arithmetic instructions."""
    return bool(flags & CPU_BF16_FLAGS)


def native_bf16() -> bool:
    """Whether this process's device (the GPU when there is one, else the CPU) computes bf16 natively."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        return cpu_native_bf16(cpu_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")))
    except OSError:  # not Linux: no flags to read, keep fp32
        return False


def resolve_precision(choice: str, native: bool | None = None) -> str:
    """The accelerate precision of a ``run.mixed_precision`` choice: ``auto`` -> ``bf16`` if ``native`` (default:
    ``native_bf16()``) else ``no``; ``no``, ``bf16``, ``fp16`` unchanged."""
    if choice != "auto":
        return choice
    return "bf16" if (native_bf16() if native is None else native) else "no"


def frozen_dtype(run) -> torch.dtype | None:
    """The dtype the frozen models (reference, NLPO's masking policy) of a run are stored in: bf16 under a resolved
    ``mixed_precision`` of bf16 with ``run.frozen_bf16`` and no LoRA adapters, else None (the policy's own)."""
    return torch.bfloat16 if run.mixed_precision == "bf16" and run.frozen_bf16 and not run.lora_rank else None
