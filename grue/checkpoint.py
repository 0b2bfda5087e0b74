"""Atomic, resumable checkpoints and atomic file writes.

A checkpoint is a directory ``checkpoint/`` in the run directory:

- the policy and its tokenizer, saved with ``save_pretrained`` (safetensors), so
  ``from_pretrained(run/checkpoint)`` and ``grue train --model run/checkpoint`` load it (a LoRA run:
  its adapter, as peft saves it, which ``grue train --model`` and ``grue eval`` merge into its base);
- ``trainer/``: the other trained modules as safetensors (e.g. ``critic.safetensors``),
  the optimizer state (``optimizer.pt``, read back with ``weights_only=True``) and
  ``state.json`` (iteration, KL coefficient, data order, RNG states), and ``manifest.json``
  (every other file's size and SHA-256), written last.

Saving goes to a fresh temporary directory that is renamed into place only when
complete; the previous checkpoint stays as ``checkpoint.old``. A kill at any moment
leaves the new or the old checkpoint whole. ``latest`` checks each against its manifest
and picks the newest intact one, naming the files of any that was truncated or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_model, save_file, save_model

from grue.errors import GrueError, option
from grue.files import settle_tree

COMPLETE = "trainer/state.json"
MANIFEST = "trainer/manifest.json"


def save(run_dir: Path, policy, tokenizer, modules: dict[str, torch.nn.Module], optimizer, state: dict) -> Path:
    """Write a complete checkpoint into ``run_dir/checkpoint`` atomically. A write that fails (a full disk,
    say) removes its partial copy and raises a one-line GrueError; the previous checkpoint is untouched."""
    run_dir = Path(run_dir)
    try:
        tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".checkpoint-"))
    except OSError as e:
        raise GrueError(f"could not write a checkpoint in {run_dir}: {e}; the previous checkpoint is intact") from e
    try:
        # A LoRA adapter (peft): save_embedding_layers="auto" would ask the Hub for the base's config.json, to see
        # whether the vocabulary grew; grue never resizes embeddings, so the answer is known: no (offline is offline).
        lora = {"save_embedding_layers": False} if hasattr(policy, "peft_config") else {}
        with warnings.catch_warnings():  # peft (a LoRA adapter) warns when its base is a built-in name, not a Hub id
            warnings.filterwarnings("ignore", message="Could not find a config file")
            policy.save_pretrained(tmp, safe_serialization=True, **lora)
        tokenizer.save_pretrained(tmp)
        (tmp / "trainer").mkdir()
        for name, module in modules.items():  # save_model copes with tied weights (e.g. T5's embeddings)
            if isinstance(module, dict):  # tensors by name (a LoRA run's adapters and heads, grue.adapters.own_state)
                save_file(module, str(tmp / "trainer" / f"{name}.safetensors"))
            else:
                save_model(module, str(tmp / "trainer" / f"{name}.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "trainer" / "optimizer.pt")
        (tmp / COMPLETE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(manifest(tmp), indent=1), encoding="utf-8")
        settle_tree(tmp)  # mkdtemp and safetensors make owner-only entries; fsync each file
        final, old = run_dir / "checkpoint", run_dir / "checkpoint.old"
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)  # the previous one stays as checkpoint.old: the fallback if this one is damaged
        return final
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        step = f" of iteration {state['iteration']}" if "iteration" in state else ""
        raise GrueError(
            f"could not write the checkpoint{step} in {run_dir}: {e}; the previous checkpoint is intact "
            f"(free some space, then {option('resume', str(run_dir))})"
        ) from e
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


def manifest(ckpt: Path) -> dict[str, list]:
    """``{relative path: [size in bytes, SHA-256 hex]}`` of every file of a checkpoint but the manifest itself."""
    out = {}
    for path in sorted(p for p in Path(ckpt).rglob("*") if p.is_file()):
        rel = path.relative_to(ckpt).as_posix()
        if rel != MANIFEST:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out[rel] = [path.stat().st_size, digest.hexdigest()]
    return out


def damage(ckpt: Path) -> list[str]:
    """What differs from the checkpoint's manifest: missing, resized or changed files (empty: intact). A checkpoint
    saved before manifests existed has none and passes."""
    try:
        expected = json.loads((Path(ckpt) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return [f"{MANIFEST} (unreadable)"]
    found = manifest(ckpt)
    out = []
    for rel, (size, sha) in expected.items():
        if rel not in found:
            out.append(f"{rel} (missing)")
        elif found[rel][0] != size:
            out.append(f"{rel} ({found[rel][0]} bytes, saved with {size})")
        elif found[rel][1] != sha:
            out.append(f"{rel} (changed)")
    return out


def latest(run_dir: Path) -> Path:
    """The newest complete and intact checkpoint of a run (``checkpoint``, else ``checkpoint.old``), or a one-line
    error. A damaged one is named with its files on stderr when an older one is used instead."""
    damaged = []
    for name in ("checkpoint", "checkpoint.old"):
        path = Path(run_dir) / name
        if not (path / COMPLETE).is_file():
            continue
        bad = damage(path)
        if not bad:
            if damaged:
                print(
                    f"warning: {'; '.join(damaged)}: using {path} (iteration {load_state(path).get('iteration')})",
                    file=sys.stderr,
                    flush=True,
                )
            return path
        damaged.append(f"{path} does not match its manifest: {', '.join(bad)}")
    if damaged:
        raise GrueError(f"no intact checkpoint in {run_dir}: {'; '.join(damaged)}")
    raise GrueError(f"no complete checkpoint in {run_dir}; a run directory to resume holds checkpoint/{COMPLETE}")


def load_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / COMPLETE).read_text(encoding="utf-8"))


def load_module(ckpt: Path, name: str, module: torch.nn.Module) -> None:
    missing, unexpected = load_model(module, str(Path(ckpt) / "trainer" / f"{name}.safetensors"), strict=False)
    if missing or unexpected:
        raise GrueError(
            f"checkpoint {ckpt}: {name} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def load_optimizer(ckpt: Path, optimizer) -> None:
    optimizer.load_state_dict(
        torch.load(Path(ckpt) / "trainer" / "optimizer.pt", weights_only=True, map_location="cpu")
    )


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    """RNG states as JSON-safe lists of bytes: torch's global CPU RNG and named generators."""
    out = {"torch": torch.get_rng_state().tolist()}
    out.update({k: g.get_state().tolist() for k, g in generators.items()})
    return out


def set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    for k, g in generators.items():
        g.set_state(torch.tensor(state[k], dtype=torch.uint8))
