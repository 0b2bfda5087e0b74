"""Sentiment scores shared by the sentiment metrics (grue.metrics.neural) and rewards (grue.rewards): the offline
VADER lexicon score and the positive class of a sentiment classifier. Light: no torch, no model loading."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lexicon_sentiment(prompts, completions, references, meta) -> list[float]:
    """Offline sentiment score in [0, 1]: ``(compound + 1) / 2`` of VADER on the completion.

    Only the completion is scored: VADER's compound score saturates on long texts, so
    on prompt + completion the prompt's sentiment would drown the policy's part.
    """
    analyzer = _vader()
    return [(analyzer.polarity_scores(c)["compound"] + 1.0) / 2.0 for c in completions]


def positive_class(config) -> int:
    """The class id of a sentiment classifier's positive label ("positive", "pos" or "label_1"), else the last class."""
    labels = {str(v).lower(): int(k) for k, v in config.id2label.items()}
    return next((labels[n] for n in ("positive", "pos", "label_1") if n in labels), config.num_labels - 1)
