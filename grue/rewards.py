"""Reward functions and their lookup.

A reward is any callable ``fn(prompts, completions, references, meta) -> list[float]``
(one float per completion). The config names one from ``REWARDS`` below or gives a
dotted path ``package.module:function``. Model-based rewards also take ``model=``
(a Hub id or local path), filled from the run's ``reward_model`` when set.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import threading
from typing import Callable, Sequence

from grue.errors import GrueError, option
from grue.metrics.sentiment import lexicon_sentiment, positive_class  # noqa: F401  (rewards of REWARDS)

RewardFn = Callable[..., Sequence[float]]
REWARD_MODEL_SETTING = "--set run.reward_model=PATH"
"""What takes a local copy of a model-based reward's model, named when it cannot be loaded."""


def classifier_sentiment(
    prompts,
    completions,
    references,
    meta,
    model: str = "lvwerra/distilbert-imdb",
    batch_size: int = 32,
    device: str | None = None,
) -> list[float]:
    """P(positive) from a sequence classifier on prompt + completion (the GRUE paper's IMDB reward).

    ``device`` None is the current CUDA device when there is one, else the CPU.
    """
    from grue.metrics import MetricSkipped
    from grue.metrics.neural import classifier_probs, load_classifier

    try:
        tok, clf, dev = load_classifier(str(model), device, "sentiment", REWARD_MODEL_SETTING)
    except MetricSkipped as e:
        raise GrueError(f"{e}, or train on the offline lexicon with {option('overrides', 'run.reward=lexicon')}") from e
    texts = [p + c for p, c in zip(prompts, completions)]
    return classifier_probs(tok, clf, texts, batch_size, dev)[:, positive_class(clf.config)].tolist()


def _needs(fn, *args, **kwargs) -> list[float]:
    """Call a metric's per-sample function; a missing resource (WordNet, a model) becomes a clear error."""
    from grue.metrics import MetricSkipped

    try:
        return list(fn(*args, **kwargs))
    except MetricSkipped as e:
        raise GrueError(f"the reward cannot be computed ({e})") from None  # score() may append " on <batch>"


def meteor(prompts, completions, references, meta) -> list[float]:
    """METEOR of each completion as the paper's reward computed it: HF ``meteor`` on that one example.

    RL4LMs ``MeteorRewardFunction`` scores one finished episode at a time against its
    reference list, which HF stringifies (see ``grue.metrics.text.meteor_per_sample``).
    """
    from grue.metrics.text import meteor_per_sample

    return _needs(meteor_per_sample, completions, references)


def commongen_meteor(prompts, completions, references, meta) -> list[float]:
    """METEOR, minus 1 when the completion copies the concept list or the instruction.

    The GRUE paper's CommonGen reward shaping (RL4LMs ``CommonGenPenaltyShapingFunction``):
    a completion that contains the prompt's concept string (``"dog frisbee catch"``), or the
    words "generate" or "sentence" of the instruction, gets a penalty of -1.
    """
    scores = meteor(prompts, completions, references, meta)
    out = []
    for s, c, m in zip(scores, completions, meta):
        text = c.lower()
        concepts = " ".join(m.get("concepts", [])).lower()
        copied = bool(concepts) and concepts in text
        out.append(s - 1.0 if copied or "generate" in text or "sentence" in text else s)
    return out


def rouge1(prompts, completions, references, meta) -> list[float]:
    """ROUGE-1 F-measure (rouge-score, Porter stemming) against the FIRST reference, the paper's CNN/DM reward.

    RL4LMs ``RougeRewardFunction`` (``use_single_ref`` True) ran HF ``rouge`` on one example,
    whose bootstrap "mid" of a single score is that score.
    """
    from grue.metrics.text import rouge_per_sample

    return _needs(rouge_per_sample, completions, references, kind="rouge1", mode="first")


def rouge_lmax(prompts, completions, references, meta) -> list[float]:
    """py-rouge ROUGE-L, the best over the references: the paper's NarrativeQA reward (``grue.metrics.pyrouge``)."""
    from grue.metrics.pyrouge import rouge_l_max

    return _needs(rouge_l_max, completions, references)


def one_minus_ter(prompts, completions, references, meta) -> list[float]:
    """1 - TER of each completion against its references, the paper's translation reward.

    RL4LMs ``TER`` ran HF ``ter`` (sacrebleu TER, defaults) on one example at a time:
    fewest edits over the references / their mean length, so 1 - TER can go below 0.
    """
    from grue.metrics.text import ter_per_sample

    return [1.0 - t for t in _needs(ter_per_sample, completions, references)]


def parent(prompts, completions, references, meta) -> list[float]:
    """PARENT F-score of each completion against its references and its table (ToTTo)."""
    from grue.metrics.parent import parent_per_sample

    full = [m["precision_table"] for m in meta] if all(m.get("precision_table") for m in meta) else None
    return _needs(parent_per_sample, completions, references, [m["table"] for m in meta], precision_tables=full)


def intent_meteor(
    prompts,
    completions,
    references,
    meta,
    model: str = "rajkumarrrk/roberta-daily-dialog-intent-classifier",
    intent_weight: float = 0.75,
    meteor_weight: float = 0.25,
) -> list[float]:
    """``intent_weight`` * (predicted intent == the reference utterance's intent) + ``meteor_weight`` * METEOR, per sample.

    RL4LMs' dialog configs weight them 0.75 / 0.25 (gpt2_ppo.yml, gpt2_nlpo.yml; the ``*_on_supervised`` files
    0.5 / 0.5 and 0.25 / 0.75: ``run.reward_args``). Its METEOR term was the mean over the episodes finished so
    far in the batch; here each sample gets its own METEOR.
    """
    from grue.metrics.neural import intent_match_per_sample

    match = _needs(
        intent_match_per_sample,
        prompts,
        completions,
        [m["intent"] for m in meta],
        model=model,
        setting=REWARD_MODEL_SETTING,
    )
    met = meteor(prompts, completions, references, meta)
    return [intent_weight * a + meteor_weight * b for a, b in zip(match, met)]


# name -> reward function
REWARDS: dict[str, RewardFn] = {
    "sentiment": classifier_sentiment,
    "lexicon": lexicon_sentiment,
    "meteor": meteor,
    "commongen_meteor": commongen_meteor,
    "rouge1": rouge1,
    "rouge_lmax": rouge_lmax,
    "one_minus_ter": one_minus_ter,
    "parent": parent,
    "intent_meteor": intent_meteor,
}


def resolve_reward(name: str, model: str = "", args: dict | None = None) -> tuple[str, RewardFn]:
    """The reward called ``name`` (or at dotted path ``pkg.mod:fn``), with ``model`` and the keyword ``args``
    bound; a keyword the function does not take is a one-line error naming the ones it does."""
    if name in REWARDS:
        fn = REWARDS[name]
    elif ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise GrueError(f"cannot import reward '{name}': {type(e).__name__}: {e}") from e
        if not callable(fn):
            raise GrueError(f"reward '{name}' is not callable")
    else:
        raise GrueError(
            f"unknown reward '{name}'; accepted: {', '.join(sorted(REWARDS))}, or a dotted path package.module:function"
        )
    bound = {**({"model": model} if model else {}), **(args or {})}
    if bound:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        named = [p for p in list(params)[4:] if params[p].kind is not inspect.Parameter.VAR_POSITIONAL]
        unknown = [k for k in bound if k not in named and not takes_any]
        if unknown:
            raise GrueError(
                f"reward '{name}' takes no argument {', '.join(map(repr, unknown))} (from run.reward_model / "
                f"run.reward_args); it takes: {', '.join(named) or 'none'}"
            )
        fn = functools.partial(fn, **bound)
    return name, fn


def call_with_limit(name: str, fn: RewardFn, args: tuple, limit_s: float | None):
    """``fn(*args)``, or a one-line error when it runs past ``limit_s`` seconds (None: no limit, called directly).

    The call runs in a worker thread that is joined with a timeout: this works in any thread, process and
    platform, where SIGALRM works only in the main thread on Unix and a subprocess would have to pickle the
    reward and its models. Python cannot kill a thread, so a hung call's thread is left behind (a daemon: it
    ends with the process, which the error stops). Thread-local torch state (no_grad, autocast) of the caller
    does not reach the worker, so a reward that relies on it must set its own.
    """
    if limit_s is None:
        return fn(*args)
    out: dict = {}

    def work() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which names it
            out["error"] = e

    worker = threading.Thread(target=work, name=f"reward {name}", daemon=True)
    worker.start()
    worker.join(limit_s)
    if worker.is_alive():
        raise GrueError(f"reward function '{name}' ran past run.reward_timeout_s = {limit_s:g} s and was abandoned")
    if "error" in out:
        raise out["error"]
    return out["value"]


def score(
    name: str, fn: RewardFn, prompts, completions, references, meta, batch: str = "", limit_s: float | None = None
) -> list[float]:
    """Call the reward and check its answer: one finite float per completion, else a one-line error naming the
    reward and ``batch`` (e.g. "the rollout of iteration 3"). ``limit_s``: see ``call_with_limit``."""
    on = f" on {batch}" if batch else ""
    try:
        scores = call_with_limit(name, fn, (list(prompts), list(completions), list(references), list(meta)), limit_s)
    except GrueError as e:
        raise GrueError(f"{e}{on}") from None
    except Exception as e:  # noqa: BLE001 - the user's function failed: name it
        raise GrueError(f"reward function '{name}' raised {type(e).__name__}: {' '.join(str(e).split())}{on}") from e
    try:
        scores = [float(s) for s in scores]
    except (TypeError, ValueError) as e:
        raise GrueError(
            f"reward function '{name}' must return a list of floats, got {type(scores).__name__}{on}"
        ) from e
    if len(scores) != len(completions):
        raise GrueError(
            f"reward function '{name}' returned {len(scores)} scores for {len(completions)} completions{on}"
        )
    bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
    if bad:
        raise GrueError(
            f"reward function '{name}' returned a non-finite score (e.g. {scores[bad[0]]}) for completion {bad[0]}{on}"
        )
    return scores
