"""Evaluation metrics, looked up by name in ``METRICS`` below.

A metric *group* (e.g. ``rouge``) is one function that reports one or more named numbers
(``rouge_1``, ``rouge_2``, ``rouge_l``, ``rouge_lsum``). Reported names follow the GRUE
paper's tables. Every metric function has the same signature::

    fn(batch: EvalBatch, opts: MetricOptions) -> MetricResult

and raises ``MetricSkipped(reason)`` when something it needs (a model, WordNet, Java)
is not available: the evaluation then records the metric as skipped with that reason,
never a made-up number. Functions live in the modules named in ``METRICS``
(``module:function``) and are imported only when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from collections.abc import Sequence
from typing import Any, Callable

from grue.errors import GrueError


@dataclass
class EvalBatch:
    """What an evaluation scores: one entry per example, all lists of the same length."""

    prompts: list[str]
    generations: list[str]
    references: list[list[str]]
    """One or more reference texts per example."""
    meta: list[dict] = field(default_factory=list)
    """Per-example task metadata (e.g. ToTTo's table and overlap flag, DailyDialog's intent label)."""


@dataclass
class MetricSettings:
    """The settings metrics read: models, resources and batch size. Every model is a Hub id or a local path.
    The ``eval`` section of a run's config (grue.config.EvalConfig) is these plus its decoding settings."""

    batch_size: int = 16
    """Prompts decoded at once, and texts a classifier or BERTScore reads at once."""
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
    perplexity_average: str = field(default="rl4lms", metadata={"choices": ("rl4lms", "scored_tokens")})
    """How perplexity averages the NLL: ``rl4lms`` as the paper's code (each window's mean NLL times its target
    length, summed, over all N tokens; empty texts kept), or ``scored_tokens`` (grue's variant: the summed NLL over
    the N - 1 tokens that have context; empty texts left out)."""
    perplexity_tokenizer: str = ""
    """Tokenizer of the perplexity text: empty for the evaluated model's own (for every paper model, GPT-2's: the
    paper's files name ``gpt2``, the same vocabulary, and the text is never truncated), or a Hub id or local path."""
    sacrebleu_tokenize: str = field(
        default="13a",
        metadata={
            "choices": ("13a", "intl", "none", "zh", "char", "ja-mecab", "ko-mecab", "spm", "flores101", "flores200")
        },
    )
    """sacrebleu's tokenizer for the sacrebleu metric (the paper: intl for DailyDialog and translation, else 13a)."""
    rouge_references: str = field(default="first", metadata={"choices": ("first", "stringified_list", "best")})
    """What the rouge metric scores a generation against: the first reference (the paper's default),
    the Python repr of the reference list (the paper's NarrativeQA and ToTTo configs), or each reference, keeping the best."""


@dataclass
class MetricOptions(MetricSettings):
    """What a metric function receives: the settings, and the evaluated model for the metrics that read it."""

    policy: Any = None
    """The evaluated model (for perplexity), or None."""
    tokenizer: Any = None
    """The evaluated model's tokenizer (for perplexity), or None."""
    device: str = "cpu"
    """Device of the metrics' models."""

    @classmethod
    def of(cls, settings: MetricSettings, **given) -> "MetricOptions":
        """The options of ``settings`` (e.g. a config's ``eval`` section), with the fields ``given`` (the runtime
        ones, or a setting resolved for this evaluation) in their place."""
        return cls(**{**{f.name: getattr(settings, f.name) for f in fields(MetricSettings)}, **given})


@dataclass
class MetricResult:
    values: dict[str, float]
    """Corpus-level numbers by reported name."""
    per_sample: dict[str, list[float]] = field(default_factory=dict)
    """Per-example scores by reported name, where the metric has them (written to samples.jsonl)."""


class MetricSkipped(Exception):
    """Raised by a metric that cannot run here; its message is the reason, recorded in the results file."""


def check_texts(generations: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise GrueError unless ``generations`` (N str) and ``references`` (N non-empty lists of str) match."""
    if len(generations) != len(references):
        raise GrueError(
            f"{len(generations)} generations but {len(references)} reference lists; "
            f"one list of references per generation is accepted"
        )
    for i, (g, refs) in enumerate(zip(generations, references)):
        if not isinstance(g, str):
            raise GrueError(f"generation {i} is a {type(g).__name__}; a str is accepted")
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
            raise GrueError(f"references of example {i} must be a non-empty list of str, got {refs!r:.60}")


def check_batch(batch: EvalBatch, references: bool = True) -> None:
    """One prompt, generation (str) and meta entry (when meta is given) per example; the batch is not empty.

    With ``references`` (metrics that read them) also ``check_texts``; reference-free
    metrics only need as many reference lists as examples.
    """
    n = len(batch.generations)
    if references:
        check_texts(batch.generations, batch.references)
    elif len(batch.references) not in (0, n) or not all(isinstance(g, str) for g in batch.generations):
        raise GrueError(
            f"batch has {n} generations and {len(batch.references)} reference lists; "
            f"str generations and one reference list per example are accepted"
        )
    if len(batch.prompts) != n or (batch.meta and len(batch.meta) != n):
        raise GrueError(
            f"batch has {len(batch.prompts)} prompts, {n} generations and {len(batch.meta)} meta "
            f"entries; one each per example (meta may be empty) is accepted"
        )
    if n == 0:
        raise MetricSkipped("the batch has no examples")


@dataclass(frozen=True)
class Metric:
    function: str
    """``module:function`` implementing the group."""
    names: dict[str, bool | None]
    """Reported name -> higher_is_better (None: descriptive, e.g. mean output length)."""


_DIVERSITY = {
    "distinct_1": True,
    "distinct_2": True,
    "unique_1": True,
    "unique_2": True,
    "h1": True,
    "h2": True,
    "msttr": True,
    "vocab_size": True,
    "mean_output_length": None,
}

# group name -> implementation and reported names
METRICS: dict[str, Metric] = {
    "meteor": Metric("grue.metrics.text:meteor", {"meteor": True}),
    "rouge": Metric("grue.metrics.text:rouge", {"rouge_1": True, "rouge_2": True, "rouge_l": True, "rouge_lsum": True}),
    "rouge_lmax": Metric("grue.metrics.text:rouge_lmax", {"rouge_lmax": True}),
    "bleu": Metric("grue.metrics.text:bleu", {"bleu": True}),
    "sacrebleu": Metric("grue.metrics.text:sacrebleu", {"sacrebleu": True}),
    "chrf": Metric("grue.metrics.text:chrf", {"chrf": True}),
    "ter": Metric("grue.metrics.text:ter", {"ter": False}),
    "cider": Metric("grue.metrics.cider:cider", {"cider": True}),
    "spice": Metric("grue.metrics.spice:spice", {"spice": True}),
    "parent": Metric(
        "grue.metrics.parent:parent", {"parent_overall": True, "parent_overlap": True, "parent_nonoverlap": True}
    ),
    "totto_sacrebleu": Metric(
        "grue.metrics.totto:totto_sacrebleu",
        {"sacrebleu_overall": True, "sacrebleu_overlap": True, "sacrebleu_nonoverlap": True},
    ),
    "bertscore": Metric("grue.metrics.neural:bertscore", {"bertscore": True}),
    "sentiment": Metric("grue.metrics.neural:sentiment", {"sentiment_score": True}),
    "intent": Metric("grue.metrics.neural:intent", {"intent_accuracy": True}),
    "perplexity": Metric("grue.metrics.neural:perplexity", {"perplexity": False}),
    "diversity": Metric("grue.metrics.diversity:diversity", _DIVERSITY),
}


# group -> what an evaluation reports instead when that group is skipped, under its own names (never the group's:
# it is not the paper's measure). No task lists these groups; results name them beside the skipped metric.
FALLBACKS: dict[str, Metric] = {
    "sentiment": Metric("grue.metrics.neural:sentiment_lexicon", {"sentiment_lexicon": True}),
}


def metric_function(
    group: str, table: dict[str, Metric] | None = None
) -> Callable[[EvalBatch, MetricOptions], MetricResult]:
    """The function of metric group ``group`` of ``table`` (default ``METRICS``), imported on first use."""
    module, _, attr = (METRICS if table is None else table)[group].function.partition(":")
    return getattr(importlib.import_module(module), attr)


def reported_names(groups) -> dict[str, bool | None]:
    """Every reported name of ``groups`` with its higher_is_better, in order."""
    out: dict[str, bool | None] = {}
    for g in groups:
        out.update(METRICS[g].names)
    return out
