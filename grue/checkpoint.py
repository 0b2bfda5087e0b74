"""Atomic, resumable checkpoints and atomic file writes.

A checkpoint is a directory ``checkpoint/`` in the run directory:

- the policy and its tokenizer, saved with ``save_pretrained`` (safetensors), so
  ``from_pretrained(run/checkpoint)`` and ``grue train --model run/checkpoint`` load it;
- ``trainer/``: the other trained modules as safetensors (e.g. ``critic.safetensors``),
  the optimizer state (``optimizer.pt``, read back with ``weights_only=True``) and
  ``state.json`` (iteration, KL coefficient, data order, RNG states), written last.

Saving goes to a fresh temporary directory that is renamed into place only when
complete; the previous checkpoint is kept as ``checkpoint.old`` until then. A kill at
any moment leaves either the new or the old checkpoint whole, and ``latest`` picks it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from grue.errors import GrueError
from grue.files import atomic_write_text, settle_tree  # noqa: F401  (atomic_write_text re-exported for callers)

COMPLETE = "trainer/state.json"


def save(run_dir: Path, policy, tokenizer, modules: dict[str, torch.nn.Module], optimizer, state: dict) -> Path:
    """Write a complete checkpoint into ``run_dir/checkpoint`` atomically."""
    run_dir = Path(run_dir)
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".checkpoint-"))
    try:
        policy.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "trainer").mkdir()
        for name, module in modules.items():  # save_model copes with tied weights (e.g. T5's embeddings)
            save_model(module, str(tmp / "trainer" / f"{name}.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "trainer" / "optimizer.pt")
        (tmp / COMPLETE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        settle_tree(tmp)  # mkdtemp and safetensors make owner-only entries; fsync each file
        final, old = run_dir / "checkpoint", run_dir / "checkpoint.old"
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def discard_partial(run_dir: Path) -> list[Path]:
    """Delete the temporary directories of saves that were killed before their rename.

    Only call this when no save can be running into ``run_dir`` (at resume, on the main
    process): such a directory is never complete, and ``latest`` never reads it.
    """
    stale = sorted(p for p in Path(run_dir).glob(".checkpoint-*") if p.is_dir())
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def latest(run_dir: Path) -> Path:
    """The newest complete checkpoint of a run, or a one-line error."""
    for name in ("checkpoint", "checkpoint.old"):
        path = Path(run_dir) / name
        if (path / COMPLETE).is_file():
            return path
    raise GrueError(f"no complete checkpoint in {run_dir}; a run directory to resume holds checkpoint/{COMPLETE}")


def load_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / COMPLETE).read_text(encoding="utf-8"))


def load_module(ckpt: Path, name: str, module: torch.nn.Module) -> None:
    missing, unexpected = load_model(module, str(Path(ckpt) / "trainer" / f"{name}.safetensors"), strict=False)
    if missing or unexpected:
        raise GrueError(f"checkpoint {ckpt}: {name} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def load_optimizer(ckpt: Path, optimizer) -> None:
    optimizer.load_state_dict(torch.load(Path(ckpt) / "trainer" / "optimizer.pt", weights_only=True, map_location="cpu"))


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    """RNG states as JSON-safe lists of bytes: torch's global CPU RNG and named generators."""
    out = {"torch": torch.get_rng_state().tolist()}
    out.update({k: g.get_state().tolist() for k, g in generators.items()})
    return out


def set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    for k, g in generators.items():
        g.set_state(torch.tensor(state[k], dtype=torch.uint8))
