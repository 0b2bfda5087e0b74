"""``run.mixed_precision: auto``: bf16 where the device has bf16 arithmetic, else fp32; the resolved value is recorded."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from grue.algorithms import nlpo, ppo
from grue.algorithms import resolve
from grue.precision import cpu_flags, cpu_native_bf16, native_bf16, resolve_precision
from grue.onpolicy import collect_iteration
from grue.rollout import lm_inputs, policy_forward, token_logprobs
from grue.run_setup import start_session

# /proc/cpuinfo excerpts: an AVX2-only x86 (AMD EPYC, no bf16), a Sapphire Rapids x86 (AMX), an Arm Neoverse V1.
AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx fma avx2\nbugs\t\t: sysret_ss_attrs\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


def test_cpu_flags_name_bf16_only_when_the_instructions_exist():
    assert cpu_flags(AVX2) == {"fpu", "sse2", "avx", "fma", "avx2"}  # "bugs" is not a flags line
    assert not cpu_native_bf16(cpu_flags(AVX2))
    assert cpu_native_bf16(cpu_flags(AMX))
    assert cpu_native_bf16(cpu_flags(ARM))
    assert not cpu_native_bf16(set())  # no /proc/cpuinfo: fp32


def test_auto_resolves_to_bf16_or_no_and_the_other_choices_stay():
    assert resolve_precision("auto", native=True) == "bf16"
    assert resolve_precision("auto", native=False) == "no"
    for choice in ("no", "bf16", "fp16"):
        assert resolve_precision(choice, native=True) == choice == resolve_precision(choice, native=False)


@pytest.mark.usefixtures("fresh_accelerator")
def test_a_run_with_auto_records_what_it_resolved_to(tmp_path):
    cfg = resolve(
        "imdb",
        "ppo",
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / "run")},
        sets=["run.model=tiny-gpt2", "run.reward=reward_fixtures:letter_e", "run.mixed_precision=auto"],
    )
    s = start_session(cfg, None, check=ppo.check)
    expected = "bf16" if native_bf16() else "no"
    assert s.cfg.run.mixed_precision == expected
    assert s.accelerator.mixed_precision == expected
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["run"]["mixed_precision"] == expected


def frozen_session(tmp_path, precision: str, *sets: str, algo: str = "nlpo"):
    cfg = resolve(
        "imdb",
        algo,
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / "run")},
        sets=[
            "run.model=tiny-gpt2",
            "run.reward=reward_fixtures:letter_e",
            f"run.mixed_precision={precision}",
            "generation.max_new_tokens=8",
            "generation.min_new_tokens=8",
            f"{algo}.rollout_size=8",
            f"{algo}.rollout_batch_size=8",
            f"{algo}.minibatch_size=8",
            *sets,
        ],
    )
    return nlpo.start(cfg, None)


def dtypes(model) -> set:
    return {p.dtype for p in model.parameters()}


@pytest.mark.usefixtures("fresh_accelerator")
@pytest.mark.parametrize(
    "precision,frozen,expected",
    [("bf16", "true", torch.bfloat16), ("bf16", "false", torch.float32), ("no", "true", torch.float32)],
)
def test_a_bf16_run_stores_its_frozen_models_in_bf16(tmp_path, precision, frozen, expected):
    """The reference and NLPO's masking policy: bf16 under bf16 (run.frozen_bf16, on by default); the policy and the
    critic keep fp32 master weights; fp32 runs, and frozen_bf16=false, keep everything fp32."""
    s, mask = frozen_session(tmp_path, precision, f"run.frozen_bf16={frozen}")
    assert dtypes(s.ref) == dtypes(mask.model) == {expected}
    assert dtypes(s.policy) == dtypes(s.critic) == {torch.float32}
    with torch.no_grad():  # a re-sync rounds the current policy's weights into the masking policy's dtype
        next(s.policy.parameters()).add_(0.5)
    nlpo.refresh(s, mask)
    for (name, p), q in zip(s.policy.named_parameters(), mask.model.parameters()):
        assert torch.equal(q, p.detach().to(expected)), name


@pytest.mark.usefixtures("fresh_accelerator")
def test_a_bf16_reference_gives_the_log_probs_of_an_fp32_one_to_bf16_rounding(tmp_path):
    """The same rollout scored by the bf16-stored reference and by an fp32 copy of it under the same autocast:
    per-token log-probs within 0.05 nats (bf16 keeps 8 bits of mantissa), mean difference below 0.01; the
    policy's own fp32-weight log-probs and the bf16 reference's agree as closely before any update (KL ~ 0)."""
    s, mask = frozen_session(tmp_path, "bf16", "generation.top_k=0")
    r = collect_iteration(s, mask=mask).rollout
    fp32_ref = copy.deepcopy(s.ref).float()
    inputs = lm_inputs(r.query_ids, r.query_mask, r.response_ids, r.response_mask, False, None)
    with torch.no_grad(), s.accelerator.autocast():
        logits, _ = policy_forward(fp32_ref, inputs, r.response_ids.shape[1], False)
    exact = token_logprobs(logits, r.response_ids)
    diff = (r.ref_logprobs - exact).abs()
    assert diff.max().item() < 0.05 and diff.mean().item() < 0.01, diff
    assert (r.raw_logprobs - r.ref_logprobs).abs().mean().item() < 0.01
