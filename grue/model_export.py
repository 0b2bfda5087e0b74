"""``grue export RUN --merge OUT``: a run's trained policy as a plain model that ``from_pretrained`` loads."""

from __future__ import annotations

from pathlib import Path

from grue.checkpoint import latest
from grue.yamlfile import load_yaml
from grue.errors import GrueError
from grue.models import load_policy, load_tokenizer


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Write the latest checkpoint's policy of ``run_dir`` to ``out`` as a plain model and its tokenizer
    (``from_pretrained(out)`` loads it): a LoRA run's adapter merged into its base, a full run's weights as saved."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GrueError(f"{out} exists and is not an empty directory; pass a new directory to --merge")
    ck = latest(Path(run_dir))
    config = Path(run_dir) / "config.yaml"
    trust = bool(load_yaml(config).get("run", {}).get("trust_remote_code", False)) if config.is_file() else False
    model = load_policy(str(ck), trust_remote_code=trust)
    tokenizer = load_tokenizer(str(ck), trust_remote_code=trust)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
