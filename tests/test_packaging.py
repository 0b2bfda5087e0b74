"""The wheel ships the task definitions the code reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_contains_tasks_and_cli(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    wheel = next(tmp_path.glob("grue-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("grue/_tasks/imdb/task.yaml", "grue/_tasks/imdb/ppo.yaml", "grue/_tasks/imdb/presets/smoke.yaml",
                   "grue/_tasks/imdb/README.md", "grue_cli/main.py", "grue/algorithms/ppo.py", "grue/_docs/fidelity.md"):
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "grue = grue_cli.main:app" in zipfile.ZipFile(wheel).read(entry).decode()
