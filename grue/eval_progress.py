"""A ``grue eval`` that is stopped (killed, Ctrl-C, out of time) continues where it stopped.

While decoding, each finished batch of generations is appended to ``generations.partial.jsonl`` in the
output folder, with the random-number state after it, and flushed to disk. Run again with the same
arguments, the evaluation reads the batches done, restores the random state and decodes the rest: the
generations, and so results.json, are those of an uninterrupted run. The file's first line is a
fingerprint of everything that decides the generations (model weights, prompts, decoding settings,
seed, batch size); a file of another evaluation is set aside, never mixed in. It is removed once
results.json is written.

Line format: ``{"fingerprint": HEX}``, then per batch ``{"generations": [...], "rng": {name: base64}}``.
A last line torn by a kill is ignored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import torch

PARTIAL = "generations.partial.jsonl"


def fingerprint(prompts: list[str], weights: str | None, decoding: dict) -> str:
    """SHA-256 over the prompts, the evaluated weights (a run checkpoint's manifest digest of its weight files
    when it has one, else the name) and the settings that shape decoding (``decoding``: JSON-able)."""
    from grue.checkpoint import MANIFEST

    ident = weights
    manifest = Path(str(weights)) / MANIFEST if weights else None
    if manifest is not None and manifest.is_file():
        files = json.loads(manifest.read_text(encoding="utf-8"))
        ident = {
            k: v for k, v in files.items() if not k.startswith("trainer/") or k == "trainer/mask_policy.safetensors"
        }
    blob = json.dumps({"prompts": prompts, "weights": ident, "decoding": decoding}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def rng_state() -> dict[str, str]:
    """The CPU (and each CUDA device's) random state, base64."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return {k: base64.b64encode(bytes(v.tolist())).decode("ascii") for k, v in states.items()}


def set_rng_state(state: dict[str, str]) -> None:
    def tensor(text: str) -> torch.Tensor:
        return torch.tensor(list(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(tensor(state["cpu"]))
    cuda = [tensor(state[k]) for k in sorted((k for k in state if k.startswith("cuda")), key=lambda k: int(k[4:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def read(out: Path, fp: str) -> tuple[list[str], dict | None, int]:
    """The generations already made by a stopped evaluation with fingerprint ``fp`` in ``out``, the random
    state after them, and the number of batches they came in; ``([], None, 0)`` when there is none. A file
    of another evaluation is renamed ``generations.partial.jsonl.other`` (kept, not used)."""
    path = Path(out) / PARTIAL
    if not path.is_file():
        return [], None, 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # torn by a kill: this line and anything after it are not whole
    if not rows or not isinstance(rows[0], dict) or rows[0].get("fingerprint") != fp:
        os.replace(path, path.with_name(PARTIAL + ".other"))
        return [], None, 0
    generations = [g for row in rows[1:] for g in row["generations"]]
    return generations, (rows[-1]["rng"] if len(rows) > 1 else None), len(rows) - 1


class Writer:
    """Appends one line per decoded batch to ``out/generations.partial.jsonl``, each flushed and fsynced; a new
    file starts with the fingerprint, and a torn last line is cut first (the file ends on a whole line)."""

    def __init__(self, out: Path, fp: str, batches_kept: int = 0):
        self.path = Path(out) / PARTIAL
        Path(out).mkdir(parents=True, exist_ok=True)
        if batches_kept:
            keep = self.path.read_text(encoding="utf-8", errors="replace").splitlines()[: batches_kept + 1]
            self.path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        else:
            self.path.write_text(json.dumps({"fingerprint": fp}) + "\n", encoding="utf-8")

    def __call__(self, generations: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"generations": generations, "rng": rng_state()}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
