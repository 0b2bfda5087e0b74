"""LoRA adapters (the ``peft`` package): the policy trains low-rank adapters on frozen base weights.

With ``run.lora_rank > 0`` (grue.config.RunConfig) one copy of the base weights serves every model of a run:

- the policy: the base model with LoRA layers injected (``peft.get_peft_model``); only the adapters train;
- the reference: the same model inside peft's ``disable_adapter()`` (``AdapterDisabled``), i.e. the base;
- a separate critic: a copy of the policy's trunk that shares its frozen base weights and has adapters of
  its own (grue.models.copy_sharing_frozen); a shared critic is a value head on the adapted policy;
- NLPO's masking policy: likewise a copy with its own adapters, a snapshot of the policy's.

A checkpoint holds the policy's adapter as peft saves it (``adapter_config.json``,
``adapter_model.safetensors``), and of the other modules only their own tensors (``own_state``).
``grue.models.load_adapted`` rebuilds a model from such a directory: the base named in its adapter config, plus the
adapter, merged into plain weights (evaluation, ``--init-from``, ``grue export --merge``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from grue.errors import GrueError

ADAPTER_CONFIG = "adapter_config.json"


def require_peft():
    """The ``peft`` module, or a one-line error naming the package to install."""
    try:
        import peft
    except ImportError:
        raise GrueError(
            "run.lora_rank > 0 needs the peft package: pip install 'grue[lora]' (or pip install peft)"
        ) from None
    return peft


def check_lora(run, trains_with_dropout: bool) -> None:
    """Reject LoRA settings that cannot run; ``trains_with_dropout``: whether the algorithm keeps dropout on
    (supervised with ``supervised.dropout: true``; RL policies never do)."""
    if run.lora_rank < 0:
        raise GrueError(f"run.lora_rank must be 0 (full fine-tuning) or a positive rank, got {run.lora_rank}")
    if run.lora_rank == 0:
        return
    if run.lora_alpha <= 0:
        raise GrueError(f"run.lora_alpha must be positive, got {run.lora_alpha}")
    if not 0.0 <= run.lora_dropout < 1.0:
        raise GrueError(f"run.lora_dropout must be in [0, 1), got {run.lora_dropout}")
    if run.lora_dropout > 0 and not trains_with_dropout:
        raise GrueError(
            "run.lora_dropout applies only where the model trains with dropout (supervised.dropout=true); "
            "RL policies run without dropout, so leave it at 0"
        )


def target_modules(text: str) -> list[str] | str | None:
    """``run.lora_target_modules`` for peft: "" -> None (peft's default for the architecture), ``all-linear`` as is,
    else the comma-separated module names."""
    text = text.strip()
    if not text:
        return None
    if text == "all-linear":
        return text
    return [name.strip() for name in text.split(",") if name.strip()]


def base_name(name: str) -> str:
    """How an adapter names its base model: a local directory as an absolute path, anything else as given."""
    return os.path.abspath(name) if os.path.isdir(name) else name


def add_lora(base: torch.nn.Module, run, checkpoint: Path | None = None):
    """The model ``base`` with LoRA adapters (in place): ``(model, peft_model)``, ``model`` being the transformers
    model with the adapters injected (what the loops call) and ``peft_model`` its peft wrapper (save, disable). The
    adapter is new (``run.lora_*``) or ``checkpoint``'s, trainable (grue.models.lora_policy loads the base)."""
    peft = require_peft()
    base.eval()
    with warnings.catch_warnings():  # e.g. GPT-2's Conv1D: peft switches fan_in_fan_out on itself, and says so
        warnings.simplefilter("ignore")
        if checkpoint is not None:
            wrapped = peft.PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True)
        else:
            seq2seq = bool(getattr(base.config, "is_encoder_decoder", False))
            config = peft.LoraConfig(
                r=run.lora_rank,
                lora_alpha=run.lora_alpha,
                lora_dropout=run.lora_dropout,
                target_modules=target_modules(run.lora_target_modules),
                task_type="SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM",
            )
            try:
                wrapped = peft.get_peft_model(base, config)
            except ValueError as e:
                raise GrueError(
                    f"run.lora_target_modules={run.lora_target_modules!r}: {str(e).splitlines()[0]}"
                ) from None
    wrapped.peft_config["default"].base_model_name_or_path = base_name(run.model)
    return wrapped.get_base_model(), wrapped


class AdapterDisabled:
    """The reference of a LoRA run: calling it runs the policy with its adapters disabled (the base model).

    ``module`` is the policy, so that ``grue.rollout.policy_forward`` reads the policy's signature;
    no weights of its own (``to`` and ``modules`` have nothing to move or visit).
    """

    def __init__(self, peft_model):
        self.peft_model = peft_model
        self.module = peft_model.get_base_model()

    def __call__(self, **kwargs):
        with self.peft_model.disable_adapter():
            return self.module(**kwargs)

    def to(self, *_args, **_kwargs) -> "AdapterDisabled":
        return self

    def modules(self):
        return iter(())


def frozen_ids(model: torch.nn.Module) -> set[int]:
    """Ids of ``model``'s frozen parameters: with LoRA, the base weights that copies share."""
    return {id(p) for p in model.parameters() if not p.requires_grad}


def own_state(module: torch.nn.Module, shared: set[int]) -> dict[str, torch.Tensor]:
    """``module``'s parameters that are not the shared base weights (ids in ``shared``): adapters, heads."""
    return {n: p.detach().contiguous() for n, p in module.named_parameters() if id(p) not in shared}


def load_own(path: Path, module: torch.nn.Module, shared: set[int]) -> None:
    """Copy the tensors of ``own_state`` (saved by grue.checkpoint.save) into ``module``; the names must be exactly its own parameters."""
    saved = load_file(str(path))
    own = dict((n, p) for n, p in module.named_parameters() if id(p) not in shared)
    if set(saved) != set(own):
        missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
        raise GrueError(f"{path} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    with torch.no_grad():
        for n, p in own.items():
            p.copy_(saved[n])


def is_adapter_dir(path: str | Path) -> bool:
    return os.path.isfile(os.path.join(str(path), ADAPTER_CONFIG)) and not os.path.isfile(
        os.path.join(str(path), "config.json")
    )


def base_model_of(path: str | Path) -> str:
    """The base model an adapter directory names (``base_model_name_or_path`` of its adapter config)."""
    name = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
    if not name:
        raise GrueError(f"{path}: its {ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    return name


def merge_into(base: torch.nn.Module, path: str | Path, own: str | None = None) -> torch.nn.Module:
    """``base`` with the adapter saved in ``path`` merged into plain weights. ``own``: a file of ``path/trainer/``
    whose tensors (``own_state``, e.g. NLPO's masking policy) replace the adapter's before merging."""
    peft = require_peft()
    base.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = peft.PeftModel.from_pretrained(
            base, str(path), is_trainable=own is not None
        )  # trainable: own tensors
    if own is not None:
        load_own(
            Path(path) / "trainer" / f"{own}.safetensors",
            wrapped.get_base_model(),
            frozen_ids(wrapped.get_base_model()),
        )
    return wrapped.merge_and_unload()
