"""Run configuration: flat dataclasses, YAML files, presets and type-checked ``--set`` overrides.

A resolved config has three sections: ``run`` (RunConfig), ``generation``
(GenerationConfig) and one named after the algorithm (e.g. ``ppo``: its config
dataclass, at the top of grue/algorithms/<algo>.py). Later sources override earlier:

  dataclass defaults < tasks/<task>/task.yaml < tasks/<task>/<algo>.yaml
  < tasks/<task>/presets/<preset>.yaml < --config FILE < CLI flags < --set key=value

``--set`` takes ``section.field=value`` or a bare ``field=value`` when only one section
has that field. Values are parsed as YAML and checked against the field's type.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grue.errors import GrueError, did_you_mean


@dataclass
class RunConfig:
    """What to train, on what, and where the run goes."""

    task: str = "imdb"
    """GRUE task name (``grue tasks`` lists them)."""
    algo: str = "ppo"
    """Algorithm: a key of grue.algorithms.ALGORITHMS."""
    model: str = "gpt2"
    """Policy: a Hub id, a local directory saved with save_pretrained, or tiny-gpt2 / tiny-t5."""
    ref_model: str = ""
    """Frozen reference model for the KL penalty; empty means the same as ``model``."""
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
    trust_remote_code: bool = False
    """Allow model repositories to run their own code. Off unless asked for."""
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many iterations (and always at the end)."""
    log_samples: int = 4
    """Generations per process and iteration written to samples.jsonl."""
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
class EvalConfig:
    """How ``grue eval`` decodes and scores (the task's evaluation settings; see tasks/<task>/task.yaml)."""

    batch_size: int = 16
    """Prompts decoded at once."""
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
    bertscore_lang: str = field(default="en", metadata={"choices": ("en", "de")})
    """Language of the texts BERTScore reads (the paper: en, de for translation into German); with
    bertscore_model empty it picks bert-score's model and layer for it, as the paper's HF bertscore
    did (en: roberta-large layer 17, de: bert-base-multilingual-cased layer 9)."""
    bertscore_model: str = ""
    """BERTScore's model: empty for bert-score's model for bertscore_lang, else a Hub id known to
    bert-score, or a local path (then set bertscore_layers). results.json records the model used."""
    bertscore_layers: int | None = None
    """Layer of the BERTScore model to read; null keeps bert-score's default for the model.
    results.json records the layer used."""
    sentiment_model: str = "lvwerra/distilbert-imdb"
    """Classifier of the sentiment metric (IMDB): a Hub id or local path."""
    intent_model: str = "rajkumarrrk/roberta-daily-dialog-intent-classifier"
    """Classifier of the intent metric (DailyDialog): a Hub id or local path."""
    perplexity_text: str = field(default="reference", metadata={"choices": ("reference", "prompt_and_reference")})
    """Text the perplexity metric reads: the references, or each prompt followed by its reference
    (IMDB: the whole review, as in the paper)."""
    perplexity_stride: int = 512
    """Tokens the perplexity metric's sliding window advances by (the paper: 512 on IMDB, 128 on DailyDialog)."""
    sacrebleu_tokenize: str = field(default="13a", metadata={"choices": (
        "13a", "intl", "none", "zh", "char", "ja-mecab", "ko-mecab", "spm", "flores101", "flores200")})
    """sacrebleu's tokenizer for the sacrebleu metric (the paper: intl for DailyDialog and translation, else 13a)."""
    rouge_references: str = field(default="first", metadata={"choices": ("first", "stringified_list", "best")})
    """What the rouge metric scores a generation against: the first reference (the paper's default),
    the Python repr of the reference list (the paper's NarrativeQA and ToTTo configs), or each reference, keeping the best."""
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
        return {"run": self.run, "generation": self.generation, "eval": self.eval, self.run.algo: self.algo}

    def to_dict(self) -> dict:
        from grue import __version__

        out = {"grue_version": __version__, "task_version": self.task_version}
        out.update({name: dataclasses.asdict(sec) for name, sec in self.sections().items()})
        return out


def tasks_root() -> Path:
    """The GRUE task definitions: grue/_tasks in a wheel, tasks/ in a source checkout."""
    packaged = Path(__file__).parent / "_tasks"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "tasks"


def task_names() -> list[str]:
    return sorted(p.name for p in tasks_root().iterdir() if (p / "task.yaml").is_file())


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only true/false are booleans, so ``no``, ``yes``, ``on``
    and ``off`` stay strings (``run.mixed_precision: no`` means the string "no", not False)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_yaml(text: str):
    """``text`` as YAML data (safe: plain data only), with YAML 1.2 booleans (see ``_Yaml12Loader``)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: Path) -> dict:
    """A YAML mapping from ``path``, or a one-line error."""
    try:
        data = parse_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise GrueError(f"cannot read config file {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise GrueError(f"{path} is not UTF-8 text (invalid byte at offset {e.start}); config files are UTF-8 YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise GrueError(f"malformed YAML in {path}{where}: {getattr(e, 'problem', e)}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GrueError(f"{path} must hold a mapping of sections (run, generation, <algo>), not {type(data).__name__}")
    return data


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
        raise GrueError(f"unknown key '{section}.{name}'{did_you_mean(name, fields, section + '.')}; "
                        f"accepted in {section}: {', '.join(fields)}")
    hints = typing.get_type_hints(type(section_obj))
    setattr(section_obj, name, coerce(value, hints[name], f"{section}.{name}", fields[name].metadata.get("choices")))


def apply_mapping(cfg: Config, data: dict, source: str, other_algos: tuple[str, ...] = ()) -> None:
    """Apply a {section: {field: value}} mapping; sections of other algorithms are skipped."""
    sections = cfg.sections()
    for sec, values in data.items():
        if sec in other_algos:
            continue
        if sec not in sections:
            raise GrueError(f"{source}: unknown section '{sec}'; accepted: {', '.join(sections)}")
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
        raise GrueError(f"--set expects key=value (e.g. ppo.lr=1e-5), got {item!r}")
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


def check_names(task: str, algo: str | None = None) -> None:
    """A one-line error (with a "did you mean") for an unknown task or algorithm; imports no algorithm (no torch)."""
    from grue.algorithms import NAMES
    from grue.tasks import TASKS

    known = sorted(set(TASKS) & set(task_names()))
    if task not in known:
        raise GrueError(f"unknown task '{task}'{did_you_mean(task, known)}; accepted: {', '.join(known)}")
    if algo is not None and algo not in NAMES:
        raise GrueError(f"unknown algorithm '{algo}'{did_you_mean(algo, NAMES)}; accepted: {', '.join(NAMES)}")


def resolve(task: str, algo: str, *, preset: str | None = None, config_file: str | None = None,
            flags: dict[str, Any] | None = None, sets: list[str] | None = None) -> Config:
    """Build the config of a run from its task, algorithm, preset, file, flags and overrides."""
    check_names(task, algo)
    from grue.algorithms import ALGORITHMS

    task_dir = tasks_root() / task
    algo_file = task_dir / f"{algo}.yaml"
    if not algo_file.is_file():
        have = sorted(a for a in ALGORITHMS if (task_dir / f"{a}.yaml").is_file())
        raise GrueError(f"task '{task}' has no settings for algorithm '{algo}'; accepted: {', '.join(have)}")
    cfg = Config(RunConfig(task=task, algo=algo), GenerationConfig(), ALGORITHMS[algo].CONFIG())
    others = tuple(a for a in ALGORITHMS if a != algo)
    card = load_yaml(task_dir / "task.yaml")
    cfg.task_version = str(card.get("version", ""))
    apply_mapping(cfg, {k: v for k, v in card.items() if k in ("run", "generation", "eval")}, f"tasks/{task}/task.yaml")
    apply_mapping(cfg, load_yaml(algo_file), f"tasks/{task}/{algo}.yaml", others)
    if preset:
        preset_file = task_dir / "presets" / f"{preset}.yaml"
        if not preset_file.is_file():
            have = sorted(p.stem for p in (task_dir / "presets").glob("*.yaml"))
            raise GrueError(f"unknown preset '{preset}' for task '{task}'{did_you_mean(preset, have)}; "
                            f"accepted: {', '.join(have) or 'none'}")
        apply_mapping(cfg, load_yaml(preset_file), f"preset {preset}", others)
    if config_file:
        apply_mapping(cfg, load_yaml(Path(config_file)), str(config_file), others)
    for key, value in (flags or {}).items():
        sec, _, name = key.partition(".")
        set_field(cfg.sections()[algo if sec == "algo" else sec], sec, name, value)
    for item in sets or []:
        sec, name, value = parse_set(item, cfg)
        set_field(cfg.sections()[sec], sec, name, value)
    if cfg.run.task != task or cfg.run.algo != algo:
        raise GrueError("run.task and run.algo are chosen on the command line, not with --set or a config file")
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """The rules of the run and generation sections that no type check catches, as one-line errors."""
    check_decoding(cfg)
    if cfg.run.reward_timeout_s is not None and not cfg.run.reward_timeout_s > 0:
        raise GrueError(f"run.reward_timeout_s must be > 0 seconds (null: no limit), got {cfg.run.reward_timeout_s}")


def check_decoding(cfg: Config) -> None:
    """Reject decoding settings that cannot work, in the ``generation`` (rollouts) and ``eval`` sections: one line
    naming the key, the value and what is accepted."""
    for sec, obj in (("generation", cfg.generation), ("eval", cfg.eval)):
        rules = [("top_k", obj.top_k >= 0, ">= 0 (0: no limit)"),
                 ("top_p", 0.0 < obj.top_p <= 1.0, "in (0, 1] (1: no limit)"),
                 ("temperature", obj.temperature > 0.0, "> 0 (for greedy decoding set do_sample=false)"),
                 ("max_new_tokens", obj.max_new_tokens >= 1, ">= 1"),
                 ("min_new_tokens", 0 <= obj.min_new_tokens <= obj.max_new_tokens,
                  f">= 0 and <= {sec}.max_new_tokens ({obj.max_new_tokens})")]
        if sec == "eval":
            rules.append(("num_beams", obj.num_beams >= 1, ">= 1 (1: no beam search)"))
        else:
            rules.append(("max_prompt_tokens", obj.max_prompt_tokens >= 1, ">= 1"))
        for key, ok, accepted in rules:
            if not ok:
                raise GrueError(f"{sec}.{key} must be {accepted}, got {getattr(obj, key)}")


def from_dict(data: dict, source: str) -> Config:
    """Rebuild a saved config (a run's config.yaml), type-checked."""
    from grue.algorithms import ALGORITHMS

    algo = (data.get("run") or {}).get("algo")
    if algo not in ALGORITHMS:
        raise GrueError(f"{source}: unknown algorithm {algo!r}; accepted: {', '.join(ALGORITHMS)}")
    cfg = Config(RunConfig(), GenerationConfig(), ALGORITHMS[algo].CONFIG(), str(data.get("task_version", "")))
    cfg.run.algo = algo
    apply_mapping(cfg, {k: v for k, v in data.items() if k not in ("grue_version", "task_version", "world_size")}, source)
    return cfg
