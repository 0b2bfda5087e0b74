"""``run.mixed_precision: auto``: bf16 where the device has bf16 arithmetic, else fp32; the resolved value is recorded."""

from __future__ import annotations

import pytest
import yaml

from grue.algorithms import ppo
from grue.algorithms import resolve
from grue.precision import cpu_flags, cpu_native_bf16, native_bf16, resolve_precision
from grue.session import start_session

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
    cfg = resolve("imdb", "ppo", preset="smoke", flags={"run.output_dir": str(tmp_path / "run")},
                  sets=["run.model=tiny-gpt2", "run.reward=reward_fixtures:letter_e", "run.mixed_precision=auto"])
    s = start_session(cfg, None, check=ppo.check)
    expected = "bf16" if native_bf16() else "no"
    assert s.cfg.run.mixed_precision == expected
    assert s.accelerator.mixed_precision == expected
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["run"]["mixed_precision"] == expected
