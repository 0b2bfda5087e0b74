"""The wheel ships the task definitions the code reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_contains_tasks_and_cli(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    wheel = next(tmp_path.glob("grue-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "grue/_tasks/imdb/task.yaml",
        "grue/_tasks/imdb/ppo.yaml",
        "grue/_tasks/imdb/presets/smoke.yaml",
        "grue/_tasks/imdb/README.md",
        "grue/_tasks/imdb/task.py",
        "grue_cli/main.py",
        "grue/algorithms/ppo.py",
        "grue/_docs/fidelity.md",
    ):
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "grue = grue_cli.main:app" in zipfile.ZipFile(wheel).read(entry).decode()


def make_install(tmp_path, *args: str, nvidia_smi: str | None = None) -> list[str]:
    """Run `make install-torch ARGS` (the first step of `make install`) with a stand-in pip that only records its arguments (nothing is installed), and
    with `nvidia-smi` printing ``nvidia_smi`` (None: no such command). Returns the recorded pip calls."""
    import os
    import shutil

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir(parents=True, exist_ok=True)
    pip = bin_dir / "pip"
    pip.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    pip.chmod(0o755)
    if nvidia_smi is not None:
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\necho '{nvidia_smi}'\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    p = subprocess.run(
        ["make", "-s", "install-torch", f"PIP={pip}", f"PYTHON={sys.executable}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return log.read_text().splitlines()


def test_make_install_takes_cpu_wheels_without_a_gpu_and_falls_back_when_unreachable(tmp_path):
    import http.server
    import socket
    import threading

    class Index(http.server.BaseHTTPRequestHandler):  # a package index that has torch
        def do_GET(self):
            self.send_response(200 if self.path.rstrip("/").endswith("/torch") else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_port}/whl/cpu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/whl/cpu"
    try:
        assert make_install(tmp_path / "a", f"TORCH_INDEX={index}")[0] == f"install torch==2.13.0 --index-url {index}"
        assert make_install(tmp_path / "b", f"TORCH_INDEX={closed}")[0] == "install torch==2.13.0"  # unreachable
        assert make_install(tmp_path / "c", "TORCH_INDEX=")[0] == "install torch==2.13.0"
    finally:
        server.shutdown()
    # the default: PyTorch's CPU index on Linux where no nvidia-smi lists a GPU; pip's own indexes where one does
    make_install(tmp_path / "gpu", "TORCH_INDEX=", nvidia_smi="GPU 0: NVIDIA H200 (UUID: GPU-0)")
    plans = {
        name: subprocess.run(
            ["make", "-s", "-n", "install-torch"],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={"PATH": f"{tmp_path / name / 'bin'}:/usr/bin:/bin"},
        ).stdout
        for name in ("c", "gpu")
    }
    if sys.platform.startswith("linux"):
        assert 'if [ -n "https://download.pytorch.org/whl/cpu" ]' in plans["c"]
    assert 'if [ -n "" ]' in plans["gpu"]


def core_dependencies() -> dict[str, str]:
    """pyproject.toml's core dependencies: normalised name -> version specifier (comments dropped)."""
    import re
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    out = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", d.split("#")[0].strip())
        out[m.group(1).lower().replace("_", "-")] = m.group(2).replace(" ", "")
    return out


def test_every_core_dependency_states_its_range():
    """A lower and an upper bound on each (or an exact pin): a new major release cannot break installs unseen."""
    for name, spec in core_dependencies().items():
        parts = spec.split(",")
        assert spec.startswith("==") or (
            any(p.startswith(">=") for p in parts) and any(p.startswith("<") for p in parts)
        ), (name, spec)


def test_lowest_pins_are_the_lower_bounds():
    """.ci/deps-lowest.txt (what `make test-deps-range` installs for its lowest corner) pins each direct
    dependency at exactly pyproject.toml's lower bound, so the bound stated is the one tested."""
    deps = core_dependencies()
    pins = {}
    for line in (REPO / ".ci" / "deps-lowest.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    direct = {n: v for n, v in pins.items() if n in deps}
    assert set(direct) >= {"transformers", "tokenizers", "datasets", "accelerate", "safetensors"}
    for name, version in direct.items():
        lower = next(p[2:] for p in deps[name].split(",") if p.startswith(">="))
        assert version == lower, (name, version, lower)
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "test-deps-range:" in makefile and ".ci/deps-range" in makefile
    assert "make test-deps-range" in (REPO / "README.md").read_text(encoding="utf-8")
