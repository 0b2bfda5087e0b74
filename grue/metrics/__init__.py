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
from dataclasses import dataclass, field
from typing import Any, Callable


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
class MetricOptions:
    """Models and resources that some metrics need. Every model is a Hub id or a local path."""

    bertscore_lang: str = "en"
    """Language of the texts BERTScore reads: picks bert-score's model for it when ``bertscore_model`` is empty."""
    bertscore_model: str = ""
    """BERTScore's model (bert-score's ``model_type``); empty: bert-score's model for ``bertscore_lang``."""
    bertscore_layers: int | None = None
    """Layer BERTScore reads; None keeps bert-score's default for a known model (required for others)."""
    sentiment_model: str = "lvwerra/distilbert-imdb"
    """IMDB's sentiment classifier."""
    intent_model: str = "rajkumarrrk/roberta-daily-dialog-intent-classifier"
    """DailyDialog's intent classifier."""
    policy: Any = None
    """The evaluated model (for perplexity), or None."""
    tokenizer: Any = None
    """The evaluated model's tokenizer (for perplexity), or None."""
    perplexity_text: str = "reference"
    """``reference``, or ``prompt_and_reference`` (each prompt, a space, its reference): what perplexity reads."""
    perplexity_stride: int = 512
    """Sliding-window stride of perplexity, in tokens."""
    sacrebleu_tokenize: str = "13a"
    """sacrebleu's tokenizer for the ``sacrebleu`` metric (the paper: ``intl`` for dialogue and translation)."""
    rouge_references: str = "first"
    """What ROUGE scores each generation against: ``first``, ``stringified_list`` or ``best`` (see grue.metrics.text.rouge_targets)."""
    device: str = "cpu"
    batch_size: int = 32


@dataclass
class MetricResult:
    values: dict[str, float]
    """Corpus-level numbers by reported name."""
    per_sample: dict[str, list[float]] = field(default_factory=dict)
    """Per-example scores by reported name, where the metric has them (written to samples.jsonl)."""


class MetricSkipped(Exception):
    """Raised by a metric that cannot run here; its message is the reason, recorded in the results file."""


@dataclass(frozen=True)
class Metric:
    function: str
    """``module:function`` implementing the group."""
    names: dict[str, bool | None]
    """Reported name -> higher_is_better (None: descriptive, e.g. mean output length)."""


_DIVERSITY = {"distinct_1": True, "distinct_2": True, "unique_1": True, "unique_2": True, "h1": True, "h2": True,
              "msttr": True, "vocab_size": True, "mean_output_length": None}

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
    "parent": Metric("grue.metrics.parent:parent", {"parent_overall": True, "parent_overlap": True, "parent_nonoverlap": True}),
    "totto_sacrebleu": Metric("grue.metrics.totto:totto_sacrebleu",
                              {"sacrebleu_overall": True, "sacrebleu_overlap": True, "sacrebleu_nonoverlap": True}),
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


def metric_function(group: str, table: dict[str, Metric] | None = None) -> Callable[[EvalBatch, MetricOptions], MetricResult]:
    """The function of metric group ``group`` of ``table`` (default ``METRICS``), imported on first use."""
    module, _, attr = (METRICS if table is None else table)[group].function.partition(":")
    return getattr(importlib.import_module(module), attr)


def reported_names(groups) -> dict[str, bool | None]:
    """Every reported name of ``groups`` with its higher_is_better, in order."""
    out: dict[str, bool | None] = {}
    for g in groups:
        out.update(METRICS[g].names)
    return out
