"""Loading policies, reference models, critics and tokenizers.

``load_policy`` accepts a Hub id (``gpt2``, ``t5-base``), a local directory saved with
``save_pretrained`` (a grue checkpoint is one), or a built-in tiny model
(``tiny-gpt2``, ``tiny-t5``) built from a small config with fixed random weights and a
byte-level BPE tokenizer trained here on text that ships with the project. The
built-ins need no download, so they serve offline work and the tests.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
from pathlib import Path

import torch
from torch import nn

from grue.errors import GrueError

TINY_MODELS = ("tiny-gpt2", "tiny-t5")
_TINY_VOCAB = 4096
_TINY_WEIGHT_SEED = 1234
_SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2: pad, eos, unk (T5's layout)


def _tiny_corpus() -> list[str]:
    """Text for training the tiny tokenizer: vaderSentiment's lexicon words plus the IMDB openings."""
    from vaderSentiment import vaderSentiment

    from grue.tasks import task_module

    lexicon = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")
    words = [line.split("\t", 1)[0] for line in lexicon.read_text(encoding="utf-8").splitlines() if line]
    words = [w for w in words if w.isalpha()]
    return [" ".join(words[i : i + 32]) for i in range(0, len(words), 32)] + list(task_module("imdb").BUILTIN_OPENINGS)


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_TINY_VOCAB,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(seq2seq: bool = False):
    """The built-in byte-level BPE tokenizer (4096 tokens; pad 0, eos 1, unk 2)."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_tiny_tokenizer_json())
    if seq2seq:  # T5 appends EOS to every encoder input
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token=None if seq2seq else "</s>",
        model_max_length=512,
    )


def tiny_model(name: str) -> nn.Module:
    """``tiny-gpt2`` or ``tiny-t5``: a real transformers architecture with fixed random weights."""
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_WEIGHT_SEED)
        if name == "tiny-gpt2":
            cfg = GPT2Config(
                vocab_size=_TINY_VOCAB,
                n_positions=512,
                n_embd=64,
                n_layer=2,
                n_head=4,
                bos_token_id=1,
                eos_token_id=1,
                pad_token_id=0,
            )
            return GPT2LMHeadModel(cfg)
        cfg = T5Config(
            vocab_size=_TINY_VOCAB,
            d_model=64,
            d_kv=16,
            d_ff=128,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
        return T5ForConditionalGeneration(cfg)


def _is_seq2seq(config) -> bool:
    return bool(getattr(config, "is_encoder_decoder", False))


def load_tokenizer(name: str, *, trust_remote_code: bool = False, setting: str = "--model PATH"):
    """The tokenizer for model ``name``; causal ones pad on the left, with EOS as pad if none.

    ``setting`` is what the one-line error names as taking a local copy when ``name`` cannot be loaded offline.
    """
    if name in TINY_MODELS:
        tok = tiny_tokenizer(seq2seq=name == "tiny-t5")
    else:
        from transformers import AutoTokenizer

        tok = _load(
            "the tokenizer of",
            name,
            setting,
            lambda: AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code),
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(name: str, *, trust_remote_code: bool = False, setting: str = "--model PATH") -> nn.Module:
    """A causal or seq2seq LM from a Hub id, a local directory, or a built-in tiny name (``setting``: as in
    ``load_tokenizer``)."""
    if name in TINY_MODELS:
        return speed_up(tiny_model(name))
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from grue.adapters import is_adapter_dir

    if is_adapter_dir(name):  # a LoRA run's checkpoint: its base with the adapter merged in
        return load_adapted(name, trust_remote_code=trust_remote_code)
    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        raise GrueError(
            f"model directory '{name}' has no config.json; accepted: a Hub id, a directory "
            f"saved with save_pretrained (e.g. runs/NAME/checkpoint), {', '.join(TINY_MODELS)}"
        )

    def load():
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
        cls = AutoModelForSeq2SeqLM if _is_seq2seq(config) else AutoModelForCausalLM
        return cls.from_pretrained(name, config=config, trust_remote_code=trust_remote_code)

    return speed_up(
        _load(
            "model",
            name,
            setting,
            load,
            f"; accepted: a Hub id, a local directory saved with save_pretrained, {', '.join(TINY_MODELS)}",
        )
    )


def speed_up(model: nn.Module) -> nn.Module:
    """What ``load_policy`` does to every model it loads, in place: ``fuse_activations``, and the few-row
    product of ``grue.cpu_linear`` for its linear layers. Neither changes the parameters or what is saved."""
    from grue import cpu_linear

    return cpu_linear.swap_in(fuse_activations(model))


def fuse_activations(model: nn.Module) -> nn.Module:
    """Swap transformers' ``NewGELUActivation`` (``gelu_new``: GPT-2's and T5 v1.1's tanh approximation of GELU,
    written as eight elementwise ops, each a pass over the (B,T,4H) activations and a saved tensor for the
    backward) for ``gelu_pytorch_tanh``, torch's one-kernel ``gelu(x, approximate="tanh")``: the same formula, equal
    to 5e-7 (tests/test_models.py), a few percent of a GPT-2 update (benchmarks/README.md). In place; the model's
    config, and so what it saves, still says ``gelu_new``."""
    from transformers.activations import ACT2FN, NewGELUActivation

    if "gelu_pytorch_tanh" not in ACT2FN:
        return model
    swaps = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is NewGELUActivation
    ]
    for parent, name in swaps:
        setattr(parent, name, ACT2FN["gelu_pytorch_tanh"])
    return model


def load_adapted(path: str | Path, *, trust_remote_code: bool = False, own: str | None = None) -> nn.Module:
    """The model saved as a LoRA adapter in ``path`` (grue.adapters): the base its adapter config names, with the
    adapter merged in; ``own``: as in ``grue.adapters.merge_into`` (e.g. NLPO's masking policy's snapshot)."""
    from grue import adapters

    adapters.require_peft()  # before a long load
    name = adapters.base_model_of(path)
    base = load_policy(
        name,
        trust_remote_code=trust_remote_code,
        setting=f"base_model_name_or_path in {Path(path) / adapters.ADAPTER_CONFIG}",
    )
    return adapters.merge_into(base, path, own)


def lora_policy(run, checkpoint: Path | None = None):
    """The policy of a LoRA run (``run.lora_rank > 0``): ``(model, peft_model)`` of ``grue.adapters.add_lora`` on
    the base ``run.model``; the adapter is new or, when resuming, ``checkpoint``'s."""
    from grue import adapters

    adapters.require_peft()  # before a long load
    return adapters.add_lora(load_policy(run.model, trust_remote_code=run.trust_remote_code), run, checkpoint)


def _load(what: str, name: str, setting: str, loader, hint: str = ""):
    """``loader()`` through grue.hub.load; a failure is a GrueError of one line (plus ``hint`` unless the
    model is simply not available offline)."""
    from grue import hub

    try:
        return hub.load(what, name, setting, loader)
    except hub.LoadFailed as e:
        raise GrueError(str(e) if e.offline_missing else str(e) + hint) from None


def first_line(e: BaseException) -> str:
    """``"ExceptionType: first line of its message"``: a loading error in one line for the user."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


_first_line = first_line  # the former private name


def freeze(model: nn.Module) -> nn.Module:
    """Reference models: no gradients, eval mode (no dropout)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability to 0, so that rollout and update see the same function.

    Both ``nn.Dropout`` modules and the float rates that attention layers read in training mode
    (e.g. transformers 5's ``T5Attention.dropout``, ``attention_dropout`` elsewhere).
    """
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        for name, value in vars(m).items():
            if "dropout" in name and isinstance(value, float):
                setattr(m, name, 0.0)


def accepts(model: nn.Module, arg: str) -> bool:
    """Whether ``model.forward`` takes keyword ``arg`` (e.g. ``logits_to_keep``)."""
    return arg in inspect.signature(model.forward).parameters


def copy_sharing_frozen(module: nn.Module, model: nn.Module) -> nn.Module:
    """A deep copy of ``module`` (part of ``model``) whose frozen parameters are ``model``'s own, not copies.

    Without adapters every parameter trains and this is ``copy.deepcopy``; with LoRA the copy shares the
    base weights and has adapters of its own (a separate critic, NLPO's masking policy): no second copy of the base.
    """
    shared = {id(p): p for p in model.parameters() if not p.requires_grad}
    return copy.deepcopy(module, shared)


def trunk_copy(policy: nn.Module) -> nn.Module:
    """A copy of the policy's transformer without its LM head, for a separate critic.

    Causal: the ``base_model`` (e.g. ``GPT2Model``). Seq2seq: ``AutoModel`` of the same
    config (e.g. ``T5Model``: encoder and decoder) with the policy's weights; with LoRA adapters
    (frozen parameters), the whole model, whose decoder's last hidden states the critic reads.
    Frozen (base) weights are shared with the policy (``copy_sharing_frozen``).
    """
    base = policy.base_model
    if base is not policy:
        return copy_sharing_frozen(base, policy)
    if any(not p.requires_grad for p in policy.parameters()):
        return copy_sharing_frozen(policy, policy)
    from transformers import AutoModel

    trunk = AutoModel.from_config(policy.config)
    missing = trunk.load_state_dict(policy.state_dict(), strict=False).missing_keys
    if missing:
        raise GrueError(f"cannot build a critic trunk for {type(policy).__name__}: missing {missing[:3]}")
    return trunk.to(next(policy.parameters()).dtype)


class ValueHead(nn.Module):
    """A scalar value per position from hidden states: (B,T,H) -> (B,T)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.proj.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden.to(self.proj.weight.dtype))[..., 0]


class Critic(nn.Module):
    """A separate value model: its own copy of the policy's trunk and a value head.

    Trade-off against ``critic: shared`` (a value head on the policy's own last hidden
    states): a separate critic doubles the trunk's compute and memory, but its value
    loss cannot disturb the policy's representation (the paper's choice); a shared
    one costs one extra linear layer and reuses the policy's forward pass.
    """

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.trunk = trunk_copy(policy)
        self.is_encoder_decoder = _is_seq2seq(policy.config)
        self.lm_trunk = type(self.trunk) is type(policy)  # a seq2seq LM with adapters (trunk_copy)
        self.head = ValueHead(hidden_size_of(policy.config))

    def forward(self, **inputs) -> torch.Tensor:
        """Values (B,T) at the response positions given by ``inputs`` (see rollout.lm_inputs)."""
        response_len = inputs.pop("response_len")
        if self.lm_trunk:
            hidden = self.trunk(**inputs, output_hidden_states=True).decoder_hidden_states[-1]
        else:
            hidden = self.trunk(**inputs).last_hidden_state
        if not self.is_encoder_decoder:
            hidden = hidden[:, -response_len - 1 : -1]
        return self.head(hidden)


def context_size(config) -> int | None:
    """The number of positions a model reads (``n_positions`` or ``max_position_embeddings``), or None (e.g. T5)."""
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    return None


def hidden_size_of(config) -> int:
    for key in ("hidden_size", "n_embd", "d_model"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise GrueError(f"cannot tell the hidden size of {type(config).__name__}")


OWN_HANDLERS = ("huggingface_hub", "datasets", "spacy")
"""Library loggers that print through a handler of their own; they do not also pass their lines to the root logger,
which absl (through rouge-score) configures on first use: each message is printed once, not twice."""


def quiet_libraries() -> None:
    """Hide transformers' per-file progress bars ("Loading weights", "Writing model shards") and warnings (grue shows
    its own progress), and print each library log line once. Called where a command or grue.api function starts to
    load models."""
    import logging

    from transformers.utils import logging as hf_logging

    for name in OWN_HANDLERS:
        logging.getLogger(name).propagate = False
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
