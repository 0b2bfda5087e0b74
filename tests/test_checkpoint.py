"""Atomic checkpoints and writes: a failed or interrupted save never damages the last good one."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

from grue import checkpoint as ckpt
from grue.files import atomic_write_text
from grue.errors import GrueError
from grue.models import load_policy, load_tokenizer


class BrokenTokenizer:
    def save_pretrained(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    policy, tok = load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2")
    head = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(head.parameters())
    ckpt.save(tmp_path, policy, tok, {"critic": head}, opt, {"iteration": 1})
    with pytest.raises(GrueError) as e:  # the disk fills up in the middle of the save
        ckpt.save(tmp_path, policy, BrokenTokenizer(), {"critic": head}, opt, {"iteration": 2})
    assert str(e.value) == (
        f"could not write the checkpoint of iteration 2 in {tmp_path}: [Errno 28] No space left on device; "
        f"the previous checkpoint is intact (free some space, then --resume {tmp_path})"
    )
    assert ckpt.load_state(ckpt.latest(tmp_path))["iteration"] == 1
    assert not list(tmp_path.glob(".checkpoint-*"))


def test_crash_between_renames_falls_back_to_old(tmp_path):
    policy, tok = load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2")
    head = torch.nn.Linear(4, 1)
    ckpt.save(tmp_path, policy, tok, {"critic": head}, torch.optim.AdamW(head.parameters()), {"iteration": 3})
    os.replace(tmp_path / "checkpoint", tmp_path / "checkpoint.old")  # as if killed after the first rename
    assert ckpt.latest(tmp_path).name == "checkpoint.old"
    loaded = torch.nn.Linear(4, 1)
    ckpt.load_module(ckpt.latest(tmp_path), "critic", loaded)
    assert torch.equal(loaded.weight, head.weight)


def test_incomplete_checkpoint_is_not_resumed(tmp_path):
    (tmp_path / "checkpoint" / "trainer").mkdir(parents=True)
    with pytest.raises(GrueError, match="no complete checkpoint"):
        ckpt.latest(tmp_path)


def test_optimizer_state_loads_without_unpickling_code(tmp_path):
    head = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(head.parameters(), lr=0.1)
    head(torch.ones(2, 4)).sum().backward()
    opt.step()
    ckpt.save(tmp_path, load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2"), {"critic": head}, opt, {"iteration": 1})
    fresh = torch.optim.AdamW(head.parameters(), lr=0.1)
    ckpt.load_optimizer(tmp_path / "checkpoint", fresh)  # torch.load(weights_only=True) inside
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_rng_state_round_trip():
    g = torch.Generator().manual_seed(5)
    state = json.loads(json.dumps(ckpt.rng_state({"g": g})))
    a = torch.rand(3, generator=g), torch.rand(3)
    ckpt.set_rng_state(state, {"g": g})
    assert torch.equal(torch.rand(3, generator=g), a[0]) and torch.equal(torch.rand(3), a[1])


def test_atomic_write_text_replaces_whole_file(tmp_path):
    f = tmp_path / "results.json"
    atomic_write_text(f, "old")
    atomic_write_text(f, "new")
    assert f.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_partial_save_left_by_a_kill_is_discarded(tmp_path):
    """A save killed before its rename leaves .checkpoint-*; it is never resumed, and discard_partial removes it."""
    policy, tok = load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2")
    head = torch.nn.Linear(4, 1)
    ckpt.save(tmp_path, policy, tok, {"critic": head}, torch.optim.AdamW(head.parameters()), {"iteration": 5})
    partial = tmp_path / ".checkpoint-killed"
    (partial / "trainer").mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half a file")
    assert ckpt.latest(tmp_path).name == "checkpoint"
    assert ckpt.discard_partial(tmp_path) == [partial]
    assert not partial.exists() and ckpt.load_state(ckpt.latest(tmp_path))["iteration"] == 5


@pytest.mark.parametrize(
    "umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)]
)
def test_written_files_get_the_permissions_of_a_plain_open(tmp_path, umask, file_mode, dir_mode):
    """mkstemp, mkdtemp and safetensors make owner-only entries; what grue renames into place has the mode
    open() (0666) and mkdir() (0777) give under the umask."""
    policy, tok = load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2")
    head = torch.nn.Linear(4, 1)
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "results.json", "{}")
        final = ckpt.save(
            tmp_path, policy, tok, {"critic": head}, torch.optim.AdamW(head.parameters()), {"iteration": 1}
        )
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "results.json").st_mode & 0o777 == file_mode
    entries = [final, *final.rglob("*")]
    assert {p.stat().st_mode & 0o777 for p in entries if p.is_file()} == {file_mode}
    assert {p.stat().st_mode & 0o777 for p in entries if p.is_dir()} == {dir_mode}
    assert (final / "model.safetensors").is_file() and (final / "trainer" / "critic.safetensors").is_file()


def test_a_damaged_checkpoint_is_named_and_the_one_before_it_used(tmp_path, capsys):
    policy, tok = load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2")
    head = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(head.parameters())
    for it in (1, 2):
        ckpt.save(tmp_path, policy, tok, {"critic": head}, opt, {"iteration": it})
    new, old = tmp_path / "checkpoint", tmp_path / "checkpoint.old"
    assert ckpt.load_state(old)["iteration"] == 1 and ckpt.damage(new) == [] and ckpt.latest(tmp_path) == new
    listed = json.loads((new / ckpt.MANIFEST).read_text())
    assert {"model.safetensors", "trainer/critic.safetensors", "trainer/optimizer.pt", ckpt.COMPLETE} <= set(listed)

    critic = new / "trainer" / "critic.safetensors"
    size = critic.stat().st_size
    critic.write_bytes(critic.read_bytes()[: size // 2])  # truncated
    assert ckpt.latest(tmp_path) == old
    err = capsys.readouterr().err
    assert (
        f"{new} does not match its manifest: trainer/critic.safetensors ({size // 2} bytes, saved with {size})" in err
    )
    assert f"using {old} (iteration 1)" in err

    weights = old / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte edited, same size
    weights.write_bytes(bytes(data))
    with pytest.raises(GrueError) as e:
        ckpt.latest(tmp_path)
    assert str(e.value).startswith(f"no intact checkpoint in {tmp_path}: ") and "model.safetensors (changed)" in str(
        e.value
    )
    assert "trainer/critic.safetensors" in str(e.value)


def test_a_checkpoint_without_manifest_is_still_read(tmp_path):
    """Checkpoints written before manifests existed (grue 0.2.0) have none: not checked, still resumed."""
    policy, tok = load_policy("tiny-gpt2"), load_tokenizer("tiny-gpt2")
    ckpt.save(tmp_path, policy, tok, {}, torch.optim.AdamW(torch.nn.Linear(2, 1).parameters()), {"iteration": 1})
    (tmp_path / "checkpoint" / ckpt.MANIFEST).unlink()
    assert ckpt.damage(tmp_path / "checkpoint") == [] and ckpt.latest(tmp_path) == tmp_path / "checkpoint"
