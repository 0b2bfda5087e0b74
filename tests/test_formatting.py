"""The tree is as the formatter writes it, and has no undefined or unused names (ruff, pinned in the dev extra;
its settings in pyproject.toml; ``make format`` applies them)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[dev]' installs it)"
)


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]])
def test_ruff_passes(command):
    r = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
