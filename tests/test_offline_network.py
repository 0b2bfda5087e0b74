"""Offline means offline: a LoRA smoke run on tiny-gpt2, in a process whose network is cut for real, without
HF_HUB_OFFLINE, attempts no connection at all.

A sitecustomize.py on PYTHONPATH replaces socket.getaddrinfo and socket.socket.connect with functions that
record the attempt in a file and raise. README ("Without the Hugging Face Hub") allows one probe of the Hub per
command, made only when something must come from the Hub; this run needs nothing from it (tiny-gpt2 and its
tokenizer are built locally, the prompts and the reward are built in), so no attempt at all is allowed.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import FAST, cli_env

CUT = """
import os, socket

_LOG = os.environ["GRUE_TEST_NETWORK_LOG"]


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(what + "\\n")
    raise OSError(101, "network cut by the test: " + what)


_connect = socket.socket.connect


def connect(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):  # a local socket file (e.g. multiprocessing): no network
        return _connect(self, address)
    _refuse(f"connect {address!r}")


def getaddrinfo(host, *args, **kwargs):
    _refuse(f"getaddrinfo {host!r}")


socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
"""


def test_a_lora_smoke_run_attempts_no_connection(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CUT)
    log = tmp_path / "network.log"
    env = {
        k: v for k, v in cli_env().items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(PYTHONPATH=os.pathsep.join([str(site), env["PYTHONPATH"]]), GRUE_TEST_NETWORK_LOG=str(log))
    check = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('huggingface.co', 443)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert check.returncode != 0 and "network cut by the test" in check.stderr  # the cut works
    log.unlink()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "grue_cli.main",
            "train",
            "imdb",
            "--preset",
            "smoke",
            "--iterations",
            "2",
            "--set",
            "run.lora_rank=4",
            "--set",
            "run.lora_alpha=8",
            "--output-dir",
            str(tmp_path / "run"),
            "--quiet",
            *FAST,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint" / "adapter_config.json").is_file()
    attempts = log.read_text().splitlines() if log.exists() else []
    assert attempts == [], attempts
    assert "Unable to fetch remote file" not in p.stderr and "silently ignoring" not in p.stderr, p.stderr[-3000:]
