"""``grue eval``: decode a task's split with a trained run or a zero-shot model, score it, write the results.

Reads top to bottom:

1. ``eval_config`` resolves what to evaluate: a run directory (its saved config.yaml and
   its checkpoint), a task and model (zero-shot, the task's own settings), or a task and a
   file of generations made elsewhere (``--predictions``, recorded as algorithm ``external``).
2. ``decode`` generates with the task's evaluation settings (``eval`` section: beam search
   or sampling), through transformers' ``generate``; an NLPO checkpoint decodes inside its
   masking policy's top-p sets (grue.action_mask). ``read_predictions`` instead reads the
   generations of ``--predictions``.
3. ``score`` runs the task's metric groups (``metrics`` in tasks/<task>/task.yaml). A metric
   that cannot run here (no model, no WordNet, no Java) is recorded as skipped with its
   reason, never dropped and never given a made-up number.
4. ``evaluate`` writes ``samples.jsonl`` and the typed ``results.json`` (grue.results), both
   atomically, into ``<run>/eval/<split>/`` (``<run>/eval/builtin/`` for a run's built-in prompts) or the chosen
   output directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import time
from pathlib import Path

import torch

from grue import __version__, eval_progress
from grue.algorithms import from_dict
from grue.checkpoint import latest
from grue.files import atomic_write_text
from grue.config import Config, check_decoding, resolve_untrained
from grue.errors import GrueError, option
from grue.metrics import FALLBACKS, METRICS, EvalBatch, MetricOptions, MetricSkipped, metric_function
from grue.metrics.diversity import MSTTR_SEGMENT
from grue.models import load_policy, load_tokenizer
from grue.predictions import read_predictions
from grue.yamlfile import load_yaml
from grue.eval_progress import set_rng_state
from grue.rollout import MaskSettings, decode_texts, tokenize_prompts
from grue.data import load_examples
from grue.tasks import find_task
from grue.tasks.common import Example, data_dir_from

BUILTIN_SPLIT = "builtin"
"""The ``split`` of results made on a task's built-in prompts (a smoke run's, no data directory): never a benchmark
result; ``grue eval`` writes them under ``RUN/eval/builtin/``."""
NON_FINITE = {
    "msttr": f": MSTTR needs at least {MSTTR_SEGMENT} tokens of generations (evaluate more examples: a larger "
    "--limit, or none)"
}
"""Metric name -> why it can come out non-finite, appended to its skip reason."""


def task_metrics(task: str) -> list[str]:
    """The metric groups of ``task`` (its task.yaml ``metrics`` list, checked against grue.metrics.METRICS when the
    folder is read: grue.tasks.check_card)."""
    return find_task(task).metrics


def check_sources(
    checkpoint: str | None, task: str | None, model: str | None, predictions: str | None, model_name: str | None
) -> None:
    """One line for a wrong combination of what to evaluate: a run, a zero-shot model, or generations."""
    if predictions is not None:
        given = [option(name) for name, v in (("checkpoint", checkpoint), ("model", model)) if v is not None]
        if given:
            raise GrueError(
                f"{option('predictions')} scores generations made elsewhere; it cannot be combined with {' and '.join(given)} "
                f"(which generate them): pass {option('task', 'TASK')} {option('predictions', 'FILE')} {option('model_name', 'NAME')}"
            )
        if not task:
            raise GrueError(
                f"{option('predictions')} needs {option('task', 'TASK')}: the task whose split the generations answer"
            )
        if not (model_name or "").strip():
            raise GrueError(
                f"{option('predictions')} needs {option('model_name', 'NAME')}: the model that made the generations, as the results name it"
            )
    elif model_name is not None:
        raise GrueError(
            f"{option('model_name')} names the model of {option('predictions')}; a {option('checkpoint')} or {option('model')} "
            "evaluation takes the model's own name"
        )


def eval_config(
    checkpoint: str | None, task: str | None, model: str | None, sets: list[str], model_name: str | None = None
) -> tuple[Config, str, str, str | None]:
    """(config, algorithm name, model name for the results, weights to load) of a run directory, a zero-shot
    model, or (``model_name`` given) generations made elsewhere: algorithm ``external``, no weights.

    The model name of a trained run is the model it started from; a run started with
    ``--init-from`` takes the name of its first run's model and names both algorithms
    (``supervised+ppo``), as its own config.yaml records them (``run.base_model``, ``run.init_algo``).
    ``eval.action_mask`` stays on only for an NLPO checkpoint (the others have no masking policy: they record
    false, and an explicit true is refused).
    """
    from grue.config import parse_set, set_field

    if model_name is not None:
        cfg = resolve_untrained(task, "external", model_name)
        algo, name, weights = "external", model_name, None
    elif checkpoint:
        run_dir = Path(checkpoint)
        cfg_file = run_dir / "config.yaml"
        if not cfg_file.is_file():
            raise GrueError(
                f"{option('checkpoint', checkpoint)}: not a grue run directory (no config.yaml); "
                f"pass a run directory made by grue train, or use {option('task', 'TASK')} {option('model', 'NAME_OR_PATH')}"
            )
        cfg = from_dict(load_yaml(cfg_file), str(cfg_file))
        if task and find_task(task).ref != cfg.run.task:
            raise GrueError(f"{option('checkpoint', checkpoint)} is a run of task '{cfg.run.task}', not '{task}'")
        weights = str(latest(run_dir))
        algo, name = lineage_name(cfg.run), cfg.run.base_model or cfg.run.model
    else:
        if not task or not model:
            raise GrueError(
                f"an evaluation needs {option('checkpoint', 'RUN_DIR')}, or {option('task', 'TASK')} with "
                f"{option('model', 'NAME_OR_PATH')} (zero-shot)"
            )
        cfg = resolve_untrained(task, "zero-shot", model)
        algo, name, weights = "zero-shot", model, model
    masked = checkpoint is not None and model_name is None and cfg.run.algo == "nlpo"
    for item in sets:
        named = item.split("=", 1)[0].split(".", 1)[0] if "." in item.split("=", 1)[0] else None
        if named is not None and named not in ("run", "generation", "eval"):  # e.g. ppo.lr: no algorithm section here
            raise GrueError(
                f"{option('overrides', item)}: grue eval accepts keys of run, generation and eval, not '{named}'"
            )
        sec, key, value = parse_set(item, cfg)
        if sec not in ("run", "generation", "eval"):
            raise GrueError(
                f"{option('overrides', item)}: grue eval accepts keys of run, generation and eval, not '{sec}'"
            )
        set_field(cfg.sections()[sec], sec, key, value)
        if (sec, key) == ("eval", "action_mask") and cfg.eval.action_mask and not masked:
            what = {"zero-shot": "a zero-shot model", "external": f"generations from {option('predictions')}"}.get(
                algo, f"this {cfg.run.algo} run"
            )
            raise GrueError(
                f"{option('overrides', item)}: eval.action_mask applies an NLPO checkpoint's masking policy; {what} has none "
                "(leave the key out)"
            )
    if not masked:
        cfg.eval.action_mask = False  # record what was applied: no mask
    check_decoding(cfg)
    return cfg, algo, name, weights


def lineage_name(run) -> str:
    """The algorithm name of a trained run for its results: its lineage's algorithms then its own, joined by "+"
    (``supervised+ppo``); an algorithm that continues its own kind's run is named once (``ppo``, not ``ppo+ppo``)."""
    chain = [a for a in run.init_algo.split("+") if a] + [run.algo]
    return "+".join(a for i, a in enumerate(chain) if i == 0 or a != chain[i - 1])


def generation_kwargs(cfg: Config, tokenizer) -> dict:
    """Arguments of transformers' ``generate`` from the eval section."""
    e = cfg.eval
    kw = dict(
        max_new_tokens=e.max_new_tokens,
        min_new_tokens=e.min_new_tokens,
        num_beams=e.num_beams,
        do_sample=e.do_sample,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if e.num_beams > 1:
        kw["length_penalty"] = e.length_penalty
    if e.do_sample:
        kw.update(top_k=e.top_k, top_p=e.top_p, temperature=e.temperature)
    else:  # greedy / beam: say so explicitly, so a model's own generation_config cannot turn sampling on
        kw.update(top_k=None, top_p=None, temperature=None)
    return kw


@torch.no_grad()
def decode(
    policy,
    tokenizer,
    prompts: list[str],
    cfg: Config,
    device,
    progress=None,
    action_mask: MaskSettings | None = None,
    done: tuple[list[str], dict | None] = ([], None),
    on_batch=None,
) -> list[str]:
    """Generations for ``prompts`` (in order), decoded with the eval settings, batch by batch; with ``action_mask``
    (an NLPO checkpoint's), every step keeps only the masking policy's top-p set (grue.action_mask).

    ``done``: the generations of the first prompts already made by a stopped evaluation, and the random state
    after them (grue.eval_progress); decoding continues from there. ``on_batch(generations)`` is called after
    each batch."""
    from transformers import LogitsProcessorList

    from grue.action_mask import ActionMask

    seq2seq = bool(policy.config.is_encoder_decoder)
    kw = generation_kwargs(cfg, tokenizer)
    g = cfg.generation
    out: list[str] = list(done[0])
    if done[1] is not None:
        set_rng_state(done[1])
    else:
        torch.manual_seed(cfg.run.seed)
    task = progress.add_task("decode", total=len(prompts), completed=len(out)) if progress else None
    for i in range(len(out), len(prompts), cfg.eval.batch_size):
        batch = prompts[i : i + cfg.eval.batch_size]
        ids, mask = tokenize_prompts(tokenizer, batch, g.max_prompt_tokens, seq2seq, device, g.truncation_side)
        processors = LogitsProcessorList(
            [ActionMask(action_mask, ids, mask, cfg.eval.num_beams)] if action_mask else []
        )
        seqs = policy.generate(input_ids=ids, attention_mask=mask, logits_processor=processors, **kw)
        new = seqs if seq2seq else seqs[:, ids.shape[1] :]
        texts = decode_texts(tokenizer, new.tolist(), cfg.run.clean_up_tokenization_spaces)
        out += texts
        if on_batch:
            on_batch(texts)
        if progress:
            progress.advance(task, len(batch))
    return out


def score(groups: list[str], batch: EvalBatch, opts: MetricOptions, progress=None):
    """Run the metric groups: (metrics {name: (value, higher_is_better)}, skipped {name: reason}, per-sample scores).

    A skipped group with a ``FALLBACKS`` entry (the sentiment classifier: the offline lexicon) has that run
    instead, under the fallback's own names; the skip reason says so.
    """
    metrics: dict[str, tuple[float, bool | None]] = {}
    skipped: dict[str, str] = {}
    per_sample: dict[str, list[float]] = {}
    task = progress.add_task("metrics", total=len(groups)) if progress else None
    for group in groups:
        reason = run_group(group, METRICS, batch, opts, metrics, skipped, per_sample)
        if reason is not None and group in FALLBACKS:  # kept only when it runs: no task lists its names
            values, reasons, scores = {}, {}, {}
            if run_group(group, FALLBACKS, batch, opts, values, reasons, scores) is None and not reasons:
                metrics.update(values)
                per_sample.update(scores)
                instead = ", ".join(FALLBACKS[group].names)
                for name in METRICS[group].names:
                    skipped[name] += f" ({instead}, an offline stand-in that is not this metric, is reported instead)"
        if progress:
            progress.advance(task)
    return metrics, skipped, per_sample


def run_group(
    group: str, table: dict, batch: EvalBatch, opts: MetricOptions, metrics: dict, skipped: dict, per_sample: dict
) -> str | None:
    """Run metric group ``group`` of ``table`` and add its values (or reasons) to ``metrics`` (or ``skipped``)
    and ``per_sample``; returns the reason when the whole group was skipped, else None."""
    names = table[group].names
    try:
        result = metric_function(group, table)(batch, opts)
    except MetricSkipped as e:
        reason = str(e) or "skipped"
    except GrueError as e:
        reason = f"could not be computed: {e}"
    else:
        for name, hib in names.items():
            value = result.values.get(name)
            if value is None:
                skipped[name] = f"the {group} metric returned no value for it (e.g. no examples in that subset)"
            elif not math.isfinite(float(value)):
                skipped[name] = f"the {group} metric gave a non-finite value ({value})" + NON_FINITE.get(name, "")
            else:
                metrics[name] = (float(value), hib)
        per_sample.update({k: v for k, v in result.per_sample.items() if len(v) == len(batch.generations)})
        return None
    skipped.update({n: reason for n in names})
    return reason


def resolved_bertscore(e, groups: list[str]) -> tuple[str, int | None]:
    """The BERTScore model and layer this evaluation uses (``eval.bertscore_model`` / ``bertscore_layers``, or
    bert-score's for ``eval.bertscore_lang``), recorded in results.json; the settings unchanged when the task
    has no BERTScore or bert-score cannot resolve them (the metric then records why it was skipped)."""
    if "bertscore" not in groups:
        return e.bertscore_model, e.bertscore_layers
    from grue.metrics.neural import bertscore_model_and_layer

    try:
        return bertscore_model_and_layer(e.bertscore_model, e.bertscore_layers, e.bertscore_lang)
    except MetricSkipped:
        return e.bertscore_model, e.bertscore_layers


def git_commit() -> str | None:
    """The commit of the grue source checkout this runs from, if it is one.

    An installed grue inside some other repository (a virtualenv in a project checkout)
    records None, not that repository's commit.
    """
    source = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != source:
        return None
    return lines[1]


def _jsonable(value):
    """Meta values as JSON (tables, flags, labels); anything else as its string."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def write_samples(
    path: Path, examples: list[Example], generations: list[str], per_sample: dict[str, list[float]]
) -> None:
    lines = []
    for i, (ex, gen) in enumerate(zip(examples, generations)):
        row = {
            "index": i,
            "prompt": ex.prompt,
            "generation": gen,
            "references": ex.references,
            "scores": {k: v[i] for k, v in sorted(per_sample.items())},
            "meta": {k: _jsonable(v) for k, v in ex.meta.items()},
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + "\n")


def recorded_config(cfg: Config, algo: str, weights: str | None, predictions: str | None) -> dict:
    """The ``config`` of results.json: the resolved sections, and the weights evaluated or the file scored."""
    config = cfg.to_dict()
    if algo == "external":  # no decoding here: the scoring settings and the file scored
        config = {k: v for k, v in config.items() if k != "generation"}
        sha = hashlib.sha256(Path(predictions).read_bytes()).hexdigest()
        return {**config, "predictions": {"file": str(predictions), "sha256": sha}}
    return {**config, "evaluated_weights": weights}


def model_info(name: str, policy):
    """The results' ``model``: without a model (``--predictions``) its revision and size are unknown (null)."""
    from grue.results import ModelInfo

    if policy is None:
        return ModelInfo(name=name, revision=None, parameters=None)
    return ModelInfo(
        name=name,
        revision=getattr(policy.config, "_commit_hash", None) or None,
        parameters=sum(p.numel() for p in policy.parameters()),
    )


def evaluate(
    *,
    checkpoint: str | None = None,
    task: str | None = None,
    model: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int | None = None,
    data_dir: str | None = None,
    output_dir: str | None = None,
    seed: int | None = None,
    sets: list[str] | None = None,
    overwrite: bool = False,
    show: bool = True,
    predictions: str | None = None,
    model_name: str | None = None,
):
    """Evaluate and write results.json + samples.jsonl; returns (the results.json path, the Results written).

    With ``predictions`` (a JSONL file, see ``read_predictions``) and ``model_name``, the generations are
    read, not decoded: algorithm ``external``, the model's revision and size unknown (null), metrics that
    need the evaluated model (perplexity) skipped with the reason."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from grue.results import SCHEMA_VERSION, MetricValue, Results, SampleCounts, utc_now, write_results

    t0 = time.time()
    # 1. What to evaluate, and where the results go (never over an earlier evaluation unless asked).
    if limit is not None and limit < 1:
        raise GrueError(f"{option('limit')} must be >= 1, got {limit}")
    check_sources(checkpoint, task, model, predictions, model_name)
    cfg, algo, name, weights = eval_config(checkpoint, task, model, list(sets or []), model_name)
    if data_dir is not None:
        cfg.run.data_dir = data_dir
    if seed is not None:
        cfg.run.seed = seed
    if batch_size is not None:
        if batch_size < 1:
            raise GrueError(f"{option('batch_size')} must be >= 1, got {batch_size}")
        cfg.eval.batch_size = batch_size
    for key in ("batch_size", "perplexity_stride"):
        if getattr(cfg.eval, key) < 1:
            raise GrueError(f"eval.{key} must be >= 1, got {getattr(cfg.eval, key)}")
    # The prompts come from where the run's came from: a data directory (--data-dir, the run's, $GRUE_DATA_DIR);
    # else the task's built-in prompts for a run trained on them (the smoke presets); else the Hub.
    cfg.run.builtin_prompts = builtin = bool(cfg.run.builtin_prompts and not data_dir_from(cfg.run.data_dir))
    scored = BUILTIN_SPLIT if builtin else split  # what results.json records: built-in prompts are no split of the data
    task_name = find_task(cfg.run.task).name  # run.task of a user's task is its folder's path
    if output_dir:
        out = Path(output_dir)
    elif checkpoint:
        out = Path(checkpoint) / "eval" / scored
    elif predictions:
        out = Path("runs") / f"{task_name}-external-{Path(name).name or 'model'}" / "eval" / scored
    else:
        out = Path("runs") / f"{task_name}-zero-shot-{Path(str(model)).name or 'model'}" / "eval" / scored
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise GrueError(
            f"{out} cannot be the results folder: {blocker} is a file; pass {option('output_dir', 'DIR')} (a folder)"
        )
    if (out / "results.json").exists() and not overwrite:
        raise GrueError(
            f"{out / 'results.json'} already exists; pass {option('overwrite', True)} to replace it or {option('output_dir', 'DIR')}"
        )
    groups = task_metrics(cfg.run.task)
    examples = load_examples(cfg, split)
    total = len(examples)
    examples = examples[:limit] if limit else examples
    if not builtin and not any(r.strip() for ex in examples for r in ex.references):
        raise GrueError(f"split '{split}' of task '{cfg.run.task}' has no references to evaluate against")
    given = read_predictions(predictions, len(examples), total, limit) if predictions else None

    # 2. Decode (or take the given generations: no model, so no model-based metric).
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    trust = cfg.run.trust_remote_code
    policy = tokenizer = action_mask = None
    if given is None:
        from grue.action_mask import load_mask

        tokenizer = load_tokenizer(weights, trust_remote_code=trust)
        policy = load_policy(weights, trust_remote_code=trust).to(device).eval()
        action_mask = load_mask(cfg, weights, tokenizer, device) if checkpoint else None
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    partial = None
    with Progress(*columns, disable=not show, transient=False) as progress:
        if given is None:
            # A stopped evaluation with the same fingerprint continues where it stopped (grue.eval_progress).
            prompts = [e.prompt for e in examples]
            fp = eval_progress.fingerprint(prompts, weights, cfg.to_dict())
            made, rng, batches = eval_progress.read(out, fp)
            if made:
                print(
                    f"continuing the stopped evaluation in {out}: {len(made)} of {len(prompts)} generations were made",
                    flush=True,
                )
            partial = eval_progress.Writer(out, fp, batches)
            generations = decode(policy, tokenizer, prompts, cfg, device, progress, action_mask, (made, rng), partial)
        else:
            generations = given
        # 3. Score.
        batch = EvalBatch(
            [e.prompt for e in examples], generations, [e.references for e in examples], [e.meta for e in examples]
        )
        e = cfg.eval
        bert_model, bert_layers = resolved_bertscore(e, groups)
        opts = MetricOptions.of(
            e,
            bertscore_model=bert_model,
            bertscore_layers=bert_layers,
            policy=policy,
            tokenizer=tokenizer,
            device=str(device),
        )
        metrics, skipped, per_sample = score(groups, batch, opts, progress)

    # 4. Write samples.jsonl, then results.json (the contract the leaderboard reads).
    out.mkdir(parents=True, exist_ok=True)
    write_samples(out / "samples.jsonl", examples, generations, per_sample)
    cfg.eval.bertscore_model, cfg.eval.bertscore_layers = bert_model, bert_layers  # record what was used
    results = Results(
        schema_version=SCHEMA_VERSION,
        kind="evaluated",
        grue_version=__version__,
        git_commit=git_commit(),
        date=utc_now(),
        task=task_name,
        task_version=cfg.task_version,
        algorithm=algo,
        model=model_info(name, policy),
        seed=cfg.run.seed,
        config=recorded_config(cfg, algo, weights, predictions),
        split=scored,
        samples=SampleCounts(total=total, evaluated=len(examples)),
        metrics={k: MetricValue(value=v, higher_is_better=h) for k, (v, h) in metrics.items()},
        skipped=skipped,
        runtime_seconds=round(time.time() - t0, 3),
        source=None,
        notes=builtin_note(len(examples)) if builtin else None,
    )
    path = out / "results.json"
    write_results(results, path)
    if partial is not None:
        partial.done()
    return path, results


def builtin_note(n: int) -> str:
    """The results' ``notes`` of an evaluation on the task's built-in prompts (``run.builtin_prompts``, split
    ``builtin``)."""
    return (
        f"prompts: the task's {n} built-in prompts, as the run trained on them (no data directory given), not a "
        "split of the task's data; they have no references. A check that the run works, not a benchmark result "
        "(the leaderboard refuses it): evaluate with --data-dir DIR (or GRUE_DATA_DIR) for one"
    )


def summary_lines(results) -> list[str]:
    """A short human summary of a Results: one line per metric, then the skipped ones, then the notes."""
    where = "built-in prompts" if results.split == BUILTIN_SPLIT else results.split
    lines = [f"{results.task} ({where}, {results.samples.evaluated} of {results.samples.total} examples)"]
    for name, m in sorted(results.metrics.items()):
        arrow = {True: "↑", False: "↓"}.get(m.higher_is_better, " ")
        lines.append(f"  {name:<20} {m.value:.4f} {arrow}")
    for name, reason in sorted(results.skipped.items()):
        lines.append(f"  {name:<20} skipped: {reason}")
    if results.notes:
        lines.append(f"note: {results.notes}")
    return lines
