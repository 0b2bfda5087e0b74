"""Run configuration: flat dataclasses, YAML files, presets and type-checked ``--set`` overrides.

A resolved config has three sections: ``run`` (RunConfig), ``generation``
(GenerationConfig) and one named after the algorithm (e.g. ``ppo``: its config
dataclass, at the top of grue/algorithms/<algo>.py). Later sources override earlier:

  dataclass defaults < tasks/<task>/task.yaml < tasks/<task>/<algo>.yaml
  < tasks/<task>/presets/<preset>.yaml < --config FILE < CLI flags < --set key=value

(for a user's task folder, the same files in that folder; its <algo>.yaml is optional).

``--set`` takes ``section.field=value`` or a bare ``field=value`` when only one section
has that field. Values are parsed as YAML and checked against the field's type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grue.errors import SPELLING, GrueError, did_you_mean, option
from grue.metrics import MetricSettings
from grue.tasks import Task, find_task
from grue.yamlfile import load_yaml, parse_yaml


@dataclass
class RunConfig:
    """What to train, on what, and where the run goes."""

    task: str = "imdb"
    """GRUE task name (``grue tasks`` lists them), or the absolute path of a task folder (grue.tasks)."""
    algo: str = ""
    """Algorithm: a key of grue.algorithms.ALGORITHMS (``zero-shot`` or ``external`` in the config of an
    evaluation without training, see ``resolve_untrained``)."""
    model: str = "gpt2"
    """Policy: a Hub id, a local directory saved with save_pretrained, or tiny-gpt2 / tiny-t5."""
    init_from: str = ""
    """The grue run whose checkpoint ``model`` is (``--init-from RUN``, or ``--model RUN/checkpoint``); set when
    the run's config is resolved, from ``model``. Empty: ``model`` is not a grue run's checkpoint."""
    init_algo: str = ""
    """The algorithms that trained ``model`` before this run, joined by "+", first first (e.g. ``supervised``):
    read from ``init_from``'s config.yaml when this run's config is resolved. Empty: none."""
    base_model: str = ""
    """The model the first run of this run's lineage started from (read from ``init_from``'s config.yaml when
    this run's config is resolved); empty: ``model`` itself."""
    ref_model: str = ""
    """Frozen reference model for the KL penalty; empty means the same as ``model``."""
    lora_rank: int = 0
    """Rank of the LoRA adapters the policy trains (the ``peft`` package, ``pip install 'grue[lora]'``) instead of
    all its weights; 0: full fine-tuning (the paper's). The reference is then the policy with its adapters disabled
    (no second copy of the weights); a separate critic and NLPO's masking policy get adapters of their own on the
    same base weights. Checkpoints hold the adapters; ``grue export RUN --merge OUT`` writes a merged model."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator: the adapters' update is scaled by ``lora_alpha / lora_rank``."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input; only where the model trains with dropout (``supervised.dropout: true``)."""
    lora_target_modules: str = ""
    """Modules that get adapters: comma-separated names (e.g. ``c_attn,c_proj``), ``all-linear``, or empty for
    peft's default for the architecture (GPT-2: ``c_attn``; T5: ``q,v``)."""
    reward: str = "sentiment"
    """Reward: a key of grue.rewards.REWARDS or a dotted path package.module:function."""
    reward_model: str = ""
    """Hub id or local path of the model a model-based reward uses; empty keeps the reward's default."""
    reward_args: dict = field(default_factory=dict)
    """Keyword arguments of the reward function, e.g. ``{intent_weight: 0.5, meteor_weight: 0.5}`` for
    ``intent_meteor`` (RL4LMs' DailyDialog ``*_on_supervised`` weights); checked against its signature."""
    reward_timeout_s: float | None = None
    """Seconds one call of the reward may take before the run stops with an error naming it; null: no limit."""
    seed: int = 0
    """Seed of weights initialisation, data order and sampling."""
    data_dir: str = ""
    """Directory with <task>/<split>.jsonl; empty means $GRUE_DATA_DIR, else the Hugging Face Hub."""
    builtin_prompts: bool = False
    """With no data directory, use the task's built-in prompts instead of the Hub (offline smoke runs)."""
    train_split: str = "train"
    """Split the policy trains on. Smoke presets of tasks whose local sample has no train split use another."""
    validation_split: str = "validation"
    """Split the supervised baseline evaluates on after each epoch."""
    prompt_variant: str = ""
    """A task's alternative prompt format (e.g. ToTTo's ``no_titles``); empty means the task's default."""
    output_dir: str = ""
    """Run directory; empty means runs/<task>-<algo>-<seed>-<time>."""
    mixed_precision: str = field(default="no", metadata={"choices": ("no", "bf16", "fp16", "auto")})
    """Autocast precision for forward passes, handled by accelerate. ``no`` (the paper's): fp32. ``auto``: bf16 where
    the device computes bf16 natively (CUDA's ``is_bf16_supported``; a CPU with avx512_bf16 / amx_bf16 / Arm bf16),
    else ``no``; config.yaml records the value it resolved to (grue.precision)."""
    frozen_bf16: bool = True
    """Under ``mixed_precision`` bf16, store the frozen models (the reference; NLPO's masking policy) in bf16: half
    their memory and no fp32-to-bf16 cast of their weights in every forward; their log-probs then carry bf16
    rounding in the residual stream too. No effect in fp32 or fp16, or with LoRA (the frozen models are the policy's base)."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own code. Off unless asked for."""
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many iterations (and always at the end)."""
    log_samples: int = 4
    """Generations per process and iteration written to samples.jsonl."""
    report_to: str = field(default="none", metadata={"choices": ("none", "tensorboard", "wandb")})
    """Experiment tracker that also receives metrics.jsonl's rows and the sample generations (grue.trackers):
    TensorBoard (RUN/tensorboard/) or Weights & Biases (``WANDB_MODE=offline`` keeps it off the network)."""
    warn_negative_kl: float = -0.01
    """Stability warning (grue.stability) when the mean KL falls below this: a sampling/scoring mismatch."""
    warn_kl_factor: float = 10.0
    """Stability warning when the mean KL exceeds this many times the algorithm's ``kl_target`` (if it has one)."""
    warn_entropy_fraction: float = 0.25
    """Stability warning when the policy entropy falls below this fraction of its first iteration's."""
    warn_clipfrac: float = 0.3
    """Stability warning when the PPO clip fraction exceeds this."""
    warn_length_window: int = 5
    """Stability warning when over this many iterations the reward rose while the response length moved onto
    ``generation.min_new_tokens`` or ``max_new_tokens`` (likely reward hacking)."""
    warn_value_loss_rises: int = 10
    """Stability warning when the value loss grew this many iterations in a row."""
    clean_up_tokenization_spaces: bool = True
    """Decode generations (rollouts, evaluation) with transformers 4.x's default clean-up of spaces before
    punctuation and contractions (``" ."`` -> ``"."``, ``" n't"`` -> ``"n't"``), as RL4LMs did with transformers
    4.18; false keeps the tokenizer's exact text."""


@dataclass
class GenerationConfig:
    """How rollouts are sampled (see grue.sampling for how warpers enter the loss)."""

    max_prompt_tokens: int = 64
    """Prompts longer than this are cut to this many tokens, on ``truncation_side``."""
    truncation_side: str = field(default="left", metadata={"choices": ("left", "right")})
    """Which end of a long prompt is cut: left keeps its end (continuation, dialogue), right keeps its start (articles, tables)."""
    min_new_tokens: int = 48
    """EOS is banned until this many tokens are generated."""
    max_new_tokens: int = 48
    """Length limit of a response."""
    do_sample: bool = True
    """Sample (true) or decode greedily (false)."""
    top_k: int = 50
    """Sample among the k most likely tokens; 0 means no limit."""
    top_p: float = 1.0
    """Then among the smallest set of tokens whose probability reaches top_p; 1.0 means no limit."""
    temperature: float = 1.0
    """Logits are divided by this before sampling."""


@dataclass
class EvalConfig(MetricSettings):
    """How ``grue eval`` decodes and scores (the task's evaluation settings; see tasks/<task>/task.yaml): the
    metrics' settings (grue.metrics.MetricSettings, with ``batch_size``) and the decoding settings below."""

    num_beams: int = 1
    """Beam search width; 1 means sampling or greedy decoding, per do_sample."""
    length_penalty: float = 1.0
    """Beam search length penalty (exponent on the length), as in transformers' generate."""
    do_sample: bool = False
    """Sample (true) or decode greedily / by beam search (false)."""
    top_k: int = 0
    """With sampling: sample among the k most likely tokens; 0 means no limit."""
    top_p: float = 1.0
    """With sampling: nucleus threshold; 1.0 means no limit."""
    temperature: float = 1.0
    """With sampling: logits are divided by this."""
    min_new_tokens: int = 0
    """EOS is banned until this many tokens are generated."""
    max_new_tokens: int = 48
    """Length limit of a generation."""
    action_mask: bool = True
    """Apply an NLPO checkpoint's action mask during evaluation: every decoding step (greedy, sampling or beam
    search) keeps only the top-p set of the checkpoint's masking policy (``nlpo.top_mask``,
    ``nlpo.min_tokens_to_keep``, special tokens always allowed), as RL4LMs evaluated NLPO. Only NLPO
    checkpoints have a masking policy: other evaluations record false, and refuse an explicit true."""


@dataclass
class Config:
    """A resolved configuration: the sections, and the task's version."""

    run: RunConfig
    generation: GenerationConfig
    algo: Any
    task_version: str = ""
    eval: EvalConfig = field(default_factory=EvalConfig)

    def sections(self) -> dict[str, Any]:
        """Section name -> dataclass; an evaluation without training (``resolve_untrained``) has no algorithm's."""
        algo = {self.run.algo: self.algo} if self.algo is not None else {}
        return {"run": self.run, "generation": self.generation, "eval": self.eval, **algo}

    def to_dict(self) -> dict:
        from grue import __version__

        out = {"grue_version": __version__, "task_version": self.task_version}
        out.update({name: dataclasses.asdict(sec) for name, sec in self.sections().items()})
        return out


def coerce(value: Any, tp: Any, key: str, choices: tuple | None = None) -> Any:
    """``value`` checked (and where lossless converted) against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        tp = next(a for a in args if a is not type(None))
    ok = True
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                ok = False
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            ok = False
        else:
            value = float(value)
    elif tp is dict or typing.get_origin(tp) is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        tp = dict
    elif tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        ok = isinstance(value, str)
    if not ok:
        raise GrueError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
    if choices and value not in choices:
        raise GrueError(f"{key}: {value!r} is not one of: {', '.join(map(str, choices))}")
    return value


def set_field(section_obj: Any, section: str, name: str, value: Any) -> None:
    fields = {f.name: f for f in dataclasses.fields(section_obj)}
    if name not in fields:
        raise GrueError(
            f"unknown key '{section}.{name}'{did_you_mean(name, fields, section + '.')}; "
            f"accepted in {section}: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(type(section_obj))
    setattr(section_obj, name, coerce(value, hints[name], f"{section}.{name}", fields[name].metadata.get("choices")))


def mapping_sections(cfg: Config, data: dict, source: str, other_algos: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """The (section, values) pairs of a {section: {field: value}} mapping that apply to ``cfg``'s run: sections of
    other algorithms are skipped, and a section written ``ALGO.SECTION`` (e.g. ``nlpo.eval``, in a preset whose
    evaluation differs for one algorithm) is ``SECTION`` for runs of ALGO only."""
    sections = cfg.sections()
    out = []
    for sec, values in data.items():
        sec = str(sec)
        algo, dot, sub = sec.partition(".")
        if dot:
            if algo in other_algos:
                continue
            if algo != cfg.run.algo or sub not in sections or sub == algo:
                raise GrueError(
                    f"{source}: unknown section '{sec}'; ALGO.SECTION names an algorithm and one of "
                    f"the sections run, generation, eval"
                )
            sec = sub
        elif sec in other_algos:
            continue
        if sec not in sections:
            raise GrueError(f"{source}: unknown section '{sec}'; accepted: {', '.join(sections)}")
        out.append((sec, values))
    return out


def apply_mapping(cfg: Config, data: dict, source: str, other_algos: tuple[str, ...] = ()) -> None:
    """Apply a {section: {field: value}} mapping; sections of other algorithms are skipped, and ``ALGO.SECTION``
    applies to ALGO's runs only (``mapping_sections``)."""
    sections = cfg.sections()
    for sec, values in mapping_sections(cfg, data, source, other_algos):
        if not isinstance(values, dict):
            raise GrueError(f"{source}: section '{sec}' must be a mapping of keys to values")
        for name, value in values.items():
            try:
                set_field(sections[sec], sec, name, value)
            except GrueError as e:
                raise GrueError(f"{source}: {e}") from None


def parse_set(item: str, cfg: Config) -> tuple[str, str, Any]:
    """``'ppo.lr=1e-5'`` or ``'lr=1e-5'`` -> (section, field, parsed value)."""
    key, eq, raw = item.partition("=")
    if not eq or not key.strip():
        raise GrueError(f"{option('overrides')} expects key=value (e.g. ppo.lr=1e-5), got {item!r}")
    key = key.strip()
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    sections = cfg.sections()
    if "." in key:
        sec, _, name = key.partition(".")
        if sec not in sections:
            raise GrueError(f"unknown key '{key}'; sections: {', '.join(sections)}")
        return sec, name, literal_for_str(sections[sec], name, raw, value)
    owners = [s for s, obj in sections.items() if key in {f.name for f in dataclasses.fields(obj)}]
    if len(owners) == 1:
        return owners[0], key, literal_for_str(sections[owners[0]], key, raw, value)
    if not owners:
        raise GrueError(f"unknown key '{key}'; use section.key with a section of: {', '.join(sections)}")
    raise GrueError(f"key '{key}' is in several sections ({', '.join(owners)}); write section.key")


def literal_for_str(section_obj: Any, name: str, raw: str, value: Any) -> Any:
    """A ``str`` field given on the command line takes the text as typed: ``null``, ``~``, ``true``, ``1e3`` or
    ``0x1F``, which YAML would read as None, a bool or a number, stay that text (a quoted value is unquoted)."""
    hint = typing.get_type_hints(type(section_obj)).get(name)
    return raw.strip() if hint is str and not isinstance(value, str) else value


def resolve(
    task: str,
    algo: str,
    algo_config: type,
    *,
    others: tuple[str, ...] = (),
    preset: str | None = None,
    config_file: str | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> Config:
    """Build the config of a run from its task, algorithm, preset, file, flags and overrides.

    ``algo_config`` is the algorithm's config dataclass and ``others`` the names of the other algorithms (their
    sections in shared files are skipped); ``grue.algorithms.resolve`` passes both."""
    spec = find_task(task)
    algo_file = spec.settings_file(algo)
    if spec.builtin and not algo_file.is_file():  # a GRUE task names the paper's settings for each algorithm
        have = spec.algorithms((algo, *others))
        raise GrueError(f"task '{task}' has no settings for algorithm '{algo}'; accepted: {', '.join(have) or 'none'}")
    cfg = Config(RunConfig(task=spec.ref, algo=algo), GenerationConfig(), algo_config())
    apply_card(cfg, spec)
    if algo_file.is_file():  # a user's task may leave an algorithm at its defaults
        apply_mapping(cfg, load_yaml(algo_file), source_name(spec, algo_file), others)
    if preset:
        preset_file = spec.folder / "presets" / f"{preset}.yaml"
        if not preset_file.is_file():
            have = spec.presets()
            raise GrueError(
                f"unknown preset '{preset}' for task '{task}'{did_you_mean(preset, have)}; "
                f"accepted: {', '.join(have) or 'none'}"
            )
        apply_mapping(cfg, load_yaml(preset_file), f"preset {preset}", others)
    if config_file:
        apply_mapping(cfg, load_yaml(Path(config_file)), str(config_file), others)
    for key, value in (flags or {}).items():
        sec, _, name = key.partition(".")
        set_field(cfg.sections()[algo if sec == "algo" else sec], sec, name, value)
    for item in sets or []:
        sec, name, value = parse_set(item, cfg)
        set_field(cfg.sections()[sec], sec, name, value)
    if cfg.run.task != spec.ref or cfg.run.algo != algo:
        where = "by the task and algo arguments" if SPELLING.get() == "api" else "on the command line"
        raise GrueError(f"run.task and run.algo are chosen {where}, not with {option('overrides')} or a config file")
    record_lineage(cfg.run)
    check_config(cfg)
    return cfg


def source_name(spec: Task, path: Path) -> str:
    """How errors name a file of task ``spec``: ``tasks/<task>/<file>`` for a built-in task, else its path."""
    return f"tasks/{spec.name}/{path.name}" if spec.builtin else str(path)


def apply_card(cfg: Config, spec: Task) -> None:
    """The task's version and the run, generation and eval sections of its task.yaml, applied to ``cfg``."""
    from grue.rewards import REWARDS

    cfg.task_version = spec.version
    sections = {k: v for k, v in spec.card.items() if k in ("run", "generation", "eval")}
    apply_mapping(cfg, sections, source_name(spec, spec.card_file))
    reward = (spec.card.get("run") or {}).get("reward")
    if reward is not None and reward not in REWARDS and ":" not in reward:
        raise GrueError(
            f"{spec.card_file}: run.reward: unknown reward {reward!r}{did_you_mean(reward, REWARDS)}; "
            f"accepted: {', '.join(sorted(REWARDS))}, or package.module:function"
        )


UNTRAINED = ("zero-shot", "external")
"""What an evaluation without a training run evaluates: a model as it is, or generations made elsewhere."""


def resolve_untrained(task: str, kind: str, model: str) -> Config:
    """The config of an evaluation without training (``kind`` in UNTRAINED) of ``model``: the task's run, generation
    and eval sections over the defaults, and no algorithm section (``run.algo`` is ``kind``)."""
    spec = find_task(task)
    if kind not in UNTRAINED:
        raise GrueError(f"unknown kind of evaluation {kind!r}; accepted: {', '.join(UNTRAINED)}")
    cfg = Config(RunConfig(task=spec.ref, algo=kind), GenerationConfig(), None)
    apply_card(cfg, spec)
    set_field(cfg.run, "run", "model", model)
    check_config(cfg)
    return cfg


def record_lineage(run: RunConfig) -> None:
    """Fill ``run.init_from``, ``run.init_algo`` and ``run.base_model`` from ``run.model``: when it is a directory
    whose parent holds a grue run's config.yaml (``RUN/checkpoint``), that run's algorithm is appended to its own
    lineage and its base model carried over; otherwise all three are empty. A run's config.yaml thus names its
    whole lineage, and evaluating it reads no other run's files."""
    model = Path(run.model)
    parent_file = model.parent / "config.yaml"
    if not (run.model and model.is_dir() and parent_file.is_file()):
        run.init_from = run.init_algo = run.base_model = ""
        return
    parent = load_yaml(parent_file).get("run") or {}
    algos = [a for a in str(parent.get("init_algo") or "").split("+") if a] + [str(parent.get("algo") or "")]
    run.init_from = str(model.parent)
    run.init_algo = "+".join(a for a in algos if a)
    run.base_model = str(parent.get("base_model") or parent.get("model") or "")


def check_config(cfg: Config) -> None:
    """The rules of the run and generation sections that no type check catches, as one-line errors."""
    check_decoding(cfg)
    if cfg.run.reward_timeout_s is not None and not cfg.run.reward_timeout_s > 0:
        raise GrueError(f"run.reward_timeout_s must be > 0 seconds (null: no limit), got {cfg.run.reward_timeout_s}")


def check_decoding(cfg: Config) -> None:
    """Reject decoding settings that cannot work, in the ``generation`` (rollouts) and ``eval`` sections: one line
    naming the key, the value and what is accepted."""
    for sec, obj in (("generation", cfg.generation), ("eval", cfg.eval)):
        rules = [
            ("top_k", obj.top_k >= 0, ">= 0 (0: no limit)"),
            ("top_p", 0.0 < obj.top_p <= 1.0, "in (0, 1] (1: no limit)"),
            ("temperature", obj.temperature > 0.0, "> 0 (for greedy decoding set do_sample=false)"),
            ("max_new_tokens", obj.max_new_tokens >= 1, ">= 1"),
            (
                "min_new_tokens",
                0 <= obj.min_new_tokens <= obj.max_new_tokens,
                f">= 0 and <= {sec}.max_new_tokens ({obj.max_new_tokens})",
            ),
        ]
        if sec == "eval":
            rules.append(("num_beams", obj.num_beams >= 1, ">= 1 (1: no beam search)"))
        else:
            rules.append(("max_prompt_tokens", obj.max_prompt_tokens >= 1, ">= 1"))
        for key, ok, accepted in rules:
            if not ok:
                raise GrueError(f"{sec}.{key} must be {accepted}, got {getattr(obj, key)}")


def from_dict(data: dict, source: str, algo_configs: dict[str, type]) -> Config:
    """Rebuild a saved config (a run's config.yaml), type-checked; ``algo_configs``: algorithm name -> its config
    dataclass (``grue.algorithms.from_dict`` passes them all)."""
    algo = (data.get("run") or {}).get("algo")
    if algo not in algo_configs:
        raise GrueError(f"{source}: unknown algorithm {algo!r}; accepted: {', '.join(algo_configs)}")
    cfg = Config(RunConfig(), GenerationConfig(), algo_configs[algo](), str(data.get("task_version", "")))
    cfg.run.algo = algo
    apply_mapping(
        cfg, {k: v for k, v in data.items() if k not in ("grue_version", "task_version", "world_size")}, source
    )
    return cfg
