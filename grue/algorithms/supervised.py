"""Supervised fine-tuning on the task's references (the GRUE paper's "Supervised" baseline), top to bottom.

Teacher forcing: the loss is the cross-entropy of the reference's tokens, then EOS,
given the prompt; prompt and padding positions carry no loss. A causal model reads
``[prompt | target + EOS]`` with the prompt cut on the left and left-padded exactly as
in a rollout, so it learns to continue prompts the way RL later samples from it; a
seq2seq model encodes the prompt and decodes the target. Its checkpoint starts an RL
run ("Supervised+PPO"): ``grue train TASK --algo ppo --init-from RUN_DIR``.

Units: one *iteration* is one epoch. ``--iterations N`` sets ``epochs`` (the field
named by ``ITERATIONS``, also on ``--resume``); metrics.jsonl has one line per epoch
(``iteration`` = epoch, ``step`` = optimizer steps so far) with the training loss and
an evaluation on the validation split; steps.jsonl has a line every ``log_every``
optimizer steps (its ``iteration`` is the epoch in progress). A checkpoint is saved at
the end of every ``run.checkpoint_every`` epochs and ``--resume`` continues from it
exactly. summary.json's ``reward/*`` learning summary is over the per-epoch
``eval/reward_mean``; ``loss/first_epoch`` and ``loss/last_epoch`` give the loss.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from grue import checkpoint as ckpt
from grue.files import atomic_write_text
from grue import trackers
from grue.config import Config
from grue.errors import GrueError, option
from grue.losses import masked_token_ce
from grue.memory import enable_checkpointing
from grue.models import context_size, disable_dropout
from grue.optim import groups_like_trainer, make_optimizer
from grue.rewards import resolve_reward, score
from grue.rollout import decode_completions, generate, tokenize_prompts
from grue.sft import (  # noqa: F401  (the batch functions are part of this algorithm's interface)
    causal_sft_batch,
    causal_text_batch,
    epoch_batches,
    lr_factor,
    pad_ids,
    seq2seq_sft_batch,
    target_with_eos,
)
from grue.data import load_examples
from grue.run_setup import load_trained_model, open_run_setup, open_tracker
from grue.session import parameter_digest, per_rank, stop_asked, stopped
from grue.stability import check_finite
from grue.tasks import task_module
from grue.tasks.common import Example, data_dir_from
from grue.run_log import append_jsonl, cleans_up_unstarted, learning_summary, read_jsonl


@dataclass
class SupervisedConfig:
    """Supervised fine-tuning hyper-parameters. Defaults are the GRUE paper's IMDB settings (RL4LMs
    scripts/training/task_configs/imdb_text_continuation/gpt2_supervised.yml, with the Hugging Face
    Trainer defaults it inherits where the file is silent)."""

    epochs: int = 10
    """Passes over the training examples; ``--iterations`` sets it (one iteration = one epoch)."""
    batch_size: int = 16
    """Examples per optimizer step, per process."""
    grad_accum: int = 1
    """Micro-batches each batch is split into, to bound memory; the loss stays the batch's token mean."""
    lr: float = 1e-5
    """AdamW peak learning rate."""
    schedule: str = field(default="constant", metadata={"choices": ("constant", "cosine", "linear")})
    """After warm-up: constant, or cosine / linear decay to 0 at the last planned step (raising
    ``epochs`` on ``--resume`` re-plans the rest of the decay; constant resumes exactly)."""
    warmup_steps: int = 0
    """Optimizer steps of linear warm-up from 0 to ``lr``."""
    weight_decay: float = 0.0
    """AdamW weight decay, on every parameter except biases and the weights of ``torch.nn.LayerNorm``
    modules (the Hugging Face Trainer's rule, which the paper's supervised script used)."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    causal_format: str = field(default="text", metadata={"choices": ("text", "prompt_target")})
    """How a causal model is taught (seq2seq models always learn the target given the prompt). ``text``
    (RL4LMs' supervised script, the paper): prompt and reference joined as one text with nothing between
    them and no EOS, loss on every token, cut to ``max_text_tokens`` on ``generation.truncation_side``.
    ``prompt_target`` (grue's choice): ``[prompt | target + EOS]``, the prompt cut and left-padded as in a
    rollout, loss on the target and EOS only."""
    max_text_tokens: int = 1024
    """With ``causal_format: text``: the longest text in tokens (RL4LMs: the tokenizer's model_max_length,
    1024 for GPT-2); capped at the model's context."""
    max_target_tokens: int = 512
    """Target tokens per example, EOS included (seq2seq, and causal ``prompt_target``); a longer reference
    is cut there and gets no EOS."""
    dropout: bool = True
    """Train with the model's own dropout (as the paper's Trainer does); false sets it to 0."""
    gradient_checkpointing: bool = False
    """Recompute each transformer layer's activations in the backward pass instead of storing them: far less
    activation memory for large models, about one more forward of compute; the same gradients (grue.memory)."""
    eval_batch_size: int = 256
    """Prompts per generate call in the evaluation, per process."""
    train_limit: int = 0
    """Training examples used: the first ones, in the split's order after the task's filter; 0 = all."""
    eval_limit: int = 0
    """Validation examples evaluated at the end of each epoch (the first ones); 0 = all."""
    log_every: int = 200
    """Write a steps.jsonl line every this many optimizer steps; 0 = never (paper: logging_steps 200)."""


CONFIG = SupervisedConfig
ITERATIONS = "epochs"  # the field that `grue train --iterations N` sets


def check(cfg: SupervisedConfig, world_size: int) -> None:
    """Reject settings that cannot run, with the rule they break."""
    for name in ("epochs", "batch_size", "grad_accum", "max_target_tokens", "eval_batch_size"):
        if getattr(cfg, name) < 1:
            raise GrueError(f"supervised.{name} must be at least 1")
    for name in ("warmup_steps", "train_limit", "eval_limit", "log_every"):
        if getattr(cfg, name) < 0:
            raise GrueError(f"supervised.{name} must be 0 or more")
    if cfg.batch_size % cfg.grad_accum:
        raise GrueError(
            f"supervised.grad_accum ({cfg.grad_accum}) must divide supervised.batch_size ({cfg.batch_size})"
        )


# ---- the run --------------------------------------------------------------------------------------


@cleans_up_unstarted
def train(cfg: Config, resume_dir: str | None = None, show: bool = True) -> dict:
    """Fine-tune on the task's references; returns the run summary (also written to summary.json)."""
    # 0. Set up: accelerator, run directory and config.yaml (before step 0), data, reward, model, optimizer.
    algo = cfg.algo
    acc, run_dir, ck, resumed = open_run_setup(
        cfg,
        resume_dir,
        check,
        show,
        progress="epoch",
        total=algo.epochs,
        logs=("metrics.jsonl", "steps.jsonl", "samples.jsonl"),
    )
    train_ex, val_ex = supervised_data(cfg)
    if resumed and resumed["examples"] != len(train_ex):
        raise GrueError(
            f"{run_dir} trained on {resumed['examples']} examples, and its data now has {len(train_ex)}; resume with the same data"
        )
    reward_name, reward_fn = resolve_reward(cfg.run.reward, cfg.run.reward_model, cfg.run.reward_args)
    e = val_ex[0]  # a broken reward fails now, not after an epoch
    score(
        reward_name,
        reward_fn,
        [e.prompt],
        [e.references[0]],
        [e.references],
        [e.meta],
        "the first validation reference (checked before training)",
        cfg.run.reward_timeout_s,
    )
    tokenizer, model, adapter = load_trained_model(cfg, ck if resumed else None, trains_with_dropout=algo.dropout)
    if not algo.dropout:
        disable_dropout(model)
    if algo.gradient_checkpointing:
        enable_checkpointing(model)
    seq2seq = bool(model.config.is_encoder_decoder)
    decoder_start = getattr(model.config, "decoder_start_token_id", None)
    max_text = min(algo.max_text_tokens, context_size(model.config) or algo.max_text_tokens)
    items = encode(
        tokenizer, train_ex, seq2seq, algo, cfg.generation.max_prompt_tokens, cfg.generation.truncation_side, max_text
    )
    optimizer = make_optimizer("adamw", groups_like_trainer(model, algo.weight_decay), algo.lr, algo.adam_eps)
    start_epoch, step = (resumed["epoch"], resumed["step"]) if resumed else (0, 0)
    if resumed:
        ckpt.load_optimizer(ck, optimizer)  # also restores each group's initial_lr, which the schedule scales
    raw_optimizer = optimizer
    model, optimizer = acc.prepare(model, optimizer)
    tracker = open_tracker(cfg, acc, run_dir)
    rank, world = acc.process_index, acc.num_processes
    per_epoch = len(epoch_batches(len(train_ex), cfg.run.seed, 1, rank, world, algo.batch_size))
    total = per_epoch * algo.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        raw_optimizer, lambda s: lr_factor(s, algo.schedule, algo.warmup_steps, total), last_epoch=step - 1
    )
    rngs = {"cuda": torch.cuda.default_generators[acc.device.index or 0]} if acc.device.type == "cuda" else {}
    if resumed:
        ckpt.set_rng_state(resumed["rng"][rank], rngs)
    main = acc.is_main_process
    console = Console()  # a progress bar of the steps in a terminal; one line per epoch either way
    progress = Progress(
        TextColumn(f"[bold]{cfg.run.task} supervised"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (show and main and console.is_terminal),
    )
    bar = progress.add_task("steps", total=total, completed=start_epoch * per_epoch)

    with progress:
        for epoch in range(start_epoch + 1, algo.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            losses, norms = [], []
            # 1. This process's shuffled batches of the epoch (seeded by the epoch: resumable).
            for idx in epoch_batches(len(train_ex), cfg.run.seed, epoch, rank, world, algo.batch_size):
                # 2. Teacher-forced loss of the targets (the batch's token mean), micro-batch by micro-batch.
                loss = backward(acc, model, tokenizer, [items[i] for i in idx], seq2seq, decoder_start, algo)
                # 3. Clip, step, schedule.
                lr = scheduler.get_last_lr()[0]
                norm = acc.clip_grad_norm_(model.parameters(), algo.max_grad_norm)
                check_finite(
                    acc,
                    {"loss/sft": loss, "grad_norm": norm},
                    model.parameters(),
                    f"epoch {epoch}, step {step + 1}",
                    run_dir,
                    cfg.run.task,
                    norm="grad_norm",
                )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                losses.append(loss)
                norms.append(torch.as_tensor(norm, device=acc.device, dtype=torch.float32))
                progress.advance(bar)
                # 4. A steps.jsonl line every log_every steps (mean over processes).
                if algo.log_every and step % algo.log_every == 0:
                    row = {
                        "iteration": epoch,
                        "step": step,
                        "loss/sft": acc.reduce(loss, "mean").item(),
                        "lr": lr,
                        "grad_norm": norms[-1].item(),
                    }
                    if main:
                        append_jsonl(run_dir / "steps.jsonl", [row])
            t_train = time.perf_counter() - t0

            # 5. Evaluate on the validation split: sample with the run's generation settings, score
            #    with the task's reward; and the SFT loss of the same examples' references.
            t1 = time.perf_counter()
            ev, samples = evaluate(
                cfg, acc, model, tokenizer, val_ex, (reward_name, reward_fn), epoch, seq2seq, decoder_start
            )
            t_eval = time.perf_counter() - t1

            # 6. Log, show, checkpoint (at once, then stop, when a signal asked: at the end of the epoch).
            metrics = {
                "iteration": epoch,
                "step": step,
                "world_size": world,
                "samples": epoch * len(train_ex),
                "loss/sft": acc.reduce(torch.stack(losses).mean(), "mean").item(),
                "lr": lr,
                "grad_norm": torch.stack(norms).mean().item(),
                **ev,
                "time/train_s": t_train,
                "time/eval_s": t_eval,
            }
            rows = gather_object(samples) if world > 1 else samples
            if main:
                append_jsonl(run_dir / "metrics.jsonl", [metrics])
                append_jsonl(run_dir / "samples.jsonl", rows)
                trackers.log(tracker, metrics, rows)
                if show:
                    console.print(
                        f"epoch {epoch}/{algo.epochs}: "
                        + " ".join(
                            f"{k}={metrics[k]:.4g}" for k in ("loss/sft", "eval/loss_sft", "eval/reward_mean", "lr")
                        )
                        + f" ({t_train + t_eval:.1f}s)",
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
            stop = stop_asked(acc)
            if stop or epoch % cfg.run.checkpoint_every == 0 or epoch == algo.epochs:
                state = {
                    "iteration": epoch,
                    "epoch": epoch,
                    "step": step,
                    "world_size": world,
                    "examples": len(train_ex),
                    "data_order": "numpy default_rng([run.seed, epoch]).permutation(examples)",
                }
                save(acc, run_dir, model if adapter is None else adapter, tokenizer, raw_optimizer, state, rngs)
            if stop and epoch < algo.epochs:
                raise stopped(cfg, run_dir, "epoch", epoch)
    trackers.close(tracker)
    return finish(acc, model, run_dir)


def supervised_data(cfg: Config) -> tuple[list[Example], list[Example]]:
    """Training examples (by the task's ``supervised_examples`` rule, if it has one, then cut to
    ``supervised.train_limit``) and validation examples (with the task's ``supervised_targets`` as references,
    if it has that rule)."""
    if cfg.run.builtin_prompts and not data_dir_from(cfg.run.data_dir):
        raise GrueError(
            f"supervised training needs references, and the built-in prompts have none; pass {option('data_dir', 'DIR')} "
            f"(or set GRUE_DATA_DIR) with DIR/{cfg.run.task}/train.jsonl, or set run.builtin_prompts=false to use the Hub"
        )
    train_ex = load_examples(cfg, cfg.run.train_split)
    rule = getattr(task_module(cfg.run.task), "supervised_examples", None)
    train_ex = rule(train_ex) if rule else train_ex
    train_ex = train_ex[: cfg.algo.train_limit or None]
    if not train_ex:
        raise GrueError(f"no training examples for supervised training of task '{cfg.run.task}'")
    val_ex = load_examples(cfg, cfg.run.validation_split)
    targets = getattr(task_module(cfg.run.task), "supervised_targets", None)  # e.g. IMDB: the review's second half
    val_ex = targets(val_ex) if targets else val_ex
    if not val_ex:
        raise GrueError(f"no validation examples in task '{cfg.run.task}'")
    return train_ex, val_ex


def encode(
    tokenizer,
    examples: list[Example],
    seq2seq: bool,
    algo: SupervisedConfig,
    max_prompt_tokens: int,
    truncation_side: str = "left",
    max_text_tokens: int | None = None,
) -> list[tuple[list[int], list[int]]]:
    """Per example, the (input ids, target ids) ``make_batch`` reads.

    Seq2seq and causal ``prompt_target``: the prompt's ids (cut on ``truncation_side`` to ``max_prompt_tokens``,
    with the tokenizer's special tokens, as in a rollout) and the first reference's (no special tokens); a causal
    target gets a space in front when neither side has one, and an empty causal prompt becomes BOS (or EOS).
    Causal ``text`` (the paper's format): the ids of prompt + first reference joined with nothing between them,
    tokenised as one text and cut on ``truncation_side`` to ``max_text_tokens``; no separate target.
    """
    tokenizer.truncation_side = truncation_side
    refs = [e.references[0] for e in examples]
    if not seq2seq and algo.causal_format == "text":
        ids = tokenizer(
            [e.prompt + r for e, r in zip(examples, refs)],
            truncation=True,
            max_length=max_text_tokens or algo.max_text_tokens,
        )["input_ids"]
        return [(row, []) for row in ids]
    prompts = tokenizer([e.prompt for e in examples], truncation=True, max_length=max_prompt_tokens)["input_ids"]
    if not seq2seq:
        refs = [
            t if not e.prompt or e.prompt[-1].isspace() or t[:1].isspace() else " " + t for e, t in zip(examples, refs)
        ]
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        prompts = [p or [start] for p in prompts]
    return list(zip(prompts, tokenizer(refs, add_special_tokens=False)["input_ids"]))


def make_batch(tokenizer, items, seq2seq: bool, decoder_start, algo: SupervisedConfig, device) -> dict:
    """The teacher-forcing batch of ``encode`` items on ``device`` (grue.sft: seq2seq, causal text or prompt/target)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    inputs, targets = [i for i, _ in items], [t for _, t in items]
    if seq2seq:
        b = seq2seq_sft_batch(inputs, targets, eos, pad, decoder_start, algo.max_target_tokens)
    elif algo.causal_format == "text":
        b = causal_text_batch(inputs, pad)
    else:
        b = causal_sft_batch(inputs, targets, eos, pad, algo.max_target_tokens)
    return {k: v.to(device) for k, v in b.items()}


def label_count(items, seq2seq: bool, eos_id: int, algo: SupervisedConfig) -> int:
    """Tokens that carry loss in ``make_batch(items)``: every text token but the first (causal ``text``), else
    each target with its EOS (``target_with_eos``)."""
    if not seq2seq and algo.causal_format == "text":
        return sum(max(len(i) - 1, 0) for i, _ in items)
    return sum(len(target_with_eos(t, eos_id, algo.max_target_tokens)) for _, t in items)


def backward(acc: Accelerator, model, tokenizer, items, seq2seq: bool, decoder_start, algo) -> torch.Tensor:
    """Gradients of one batch's SFT loss, summed over ``grad_accum`` micro-batches; returns the loss.

    Each micro-batch's summed NLL is divided by the whole batch's labelled token count, so
    the sum is the batch's token mean whatever the split (DDP syncs on the last one only).
    """
    n_tokens = max(label_count(items, seq2seq, tokenizer.eos_token_id, algo), 1)
    micro = -(-len(items) // algo.grad_accum)
    loss = torch.zeros((), device=acc.device)
    for j in range(0, len(items), micro):
        batch = make_batch(tokenizer, items[j : j + micro], seq2seq, decoder_start, algo, acc.device)
        with acc.no_sync(model) if j + micro < len(items) else contextlib.nullcontext():
            with acc.autocast():
                part = sft_loss(model, batch, seq2seq, normalizer=n_tokens)
            acc.backward(part)
        loss += part.detach()
    return loss


def sft_loss(model, batch: dict, seq2seq: bool, normalizer=None) -> torch.Tensor:
    """masked_token_ce of a batch from make_batch (causal logits shifted one position)."""
    out = model(**{k: v for k, v in batch.items() if k != "labels"})
    if seq2seq:
        return masked_token_ce(out.logits, batch["labels"], normalizer)
    return masked_token_ce(out.logits[:, :-1], batch["labels"][:, 1:], normalizer)


@torch.no_grad()
def evaluate(
    cfg: Config,
    acc: Accelerator,
    model,
    tokenizer,
    examples: list[Example],
    reward,
    epoch: int,
    seq2seq: bool,
    decoder_start,
) -> tuple[dict, list[dict]]:
    """Metrics over the first ``eval_limit`` validation examples (all processes), and this process's
    first ``run.log_samples`` generations. Sampling uses a generator seeded by the epoch (resumable)."""
    algo, gen, rank, world = cfg.algo, cfg.generation, acc.process_index, acc.num_processes
    limit = min(algo.eval_limit or len(examples), len(examples))
    mine = list(range(limit))[rank::world]
    policy = acc.unwrap_model(model)
    policy.eval()
    g = torch.Generator(device=acc.device).manual_seed(cfg.run.seed * 1_000_003 + epoch * 7919 + rank)
    completions, nll = [], torch.zeros(2, device=acc.device)
    for i in range(0, len(mine), algo.eval_batch_size):
        batch = [examples[j] for j in mine[i : i + algo.eval_batch_size]]
        q, qm = tokenize_prompts(
            tokenizer, [e.prompt for e in batch], gen.max_prompt_tokens, seq2seq, acc.device, gen.truncation_side
        )
        with acc.autocast():
            r = generate(policy, q, qm, gen, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, generator=g)
            sft = make_batch(
                tokenizer,
                encode(
                    tokenizer,
                    batch,
                    seq2seq,
                    algo,
                    gen.max_prompt_tokens,
                    gen.truncation_side,
                    min(algo.max_text_tokens, context_size(policy.config) or algo.max_text_tokens),
                ),
                seq2seq,
                decoder_start,
                algo,
                acc.device,
            )
            nll += torch.stack([sft_loss(policy, sft, seq2seq, normalizer=1.0), (sft["labels"] != -100).sum().float()])
        completions += decode_completions(
            tokenizer, r.response_ids, r.response_mask, cfg.run.clean_up_tokenization_spaces
        )
    model.train()
    batch = [examples[j] for j in mine]
    scores = (
        score(
            reward[0],
            reward[1],
            [e.prompt for e in batch],
            completions,
            [e.references for e in batch],
            [e.meta for e in batch],
            f"the validation samples of epoch {epoch}",
            cfg.run.reward_timeout_s,
        )
        if batch
        else []
    )
    all_scores = torch.tensor(gather_object(scores) if world > 1 else scores, dtype=torch.float64)
    nll = acc.reduce(nll, "sum")
    metrics = {
        "eval/reward_mean": all_scores.mean().item(),
        "eval/reward_std": all_scores.std().item() if limit > 1 else 0.0,
        "eval/loss_sft": (nll[0] / nll[1].clamp(min=1)).item(),
        "eval/examples": limit,
    }
    samples = [
        {
            "iteration": epoch,
            "rank": rank,
            "index": e.meta.get("index", j),
            "prompt": e.prompt,
            "completion": c,
            "score": s,
        }
        for j, e, c, s in list(zip(mine, batch, completions, scores))[: cfg.run.log_samples]
    ]
    return metrics, samples


def save(acc: Accelerator, run_dir: Path, model, tokenizer, optimizer, state: dict, rngs: dict) -> None:
    """Checkpoint atomically (grue.checkpoint.save); every process's RNG state goes in, so resuming is exact."""
    rng = ckpt.rng_state(rngs)
    all_rng = per_rank(acc, rng)
    if acc.is_main_process:
        ckpt.save(run_dir, acc.unwrap_model(model), tokenizer, {}, optimizer, {**state, "rng": all_rng})
    acc.wait_for_everyone()


def finish(acc: Accelerator, model, run_dir: Path) -> dict:
    """Write summary.json: per-epoch eval reward summary, first and last epoch losses, parameter checksums."""
    digest = parameter_digest(acc.unwrap_model(model))
    digests = per_rank(acc, digest)
    summary: dict = {}
    if acc.is_main_process:
        rows = read_jsonl(run_dir / "metrics.jsonl")
        summary = {
            "iterations": len(rows),
            "epochs": len(rows),
            "steps": rows[-1]["step"],
            "world_size": acc.num_processes,
            **learning_summary([m["eval/reward_mean"] for m in rows]),
            "loss/first_epoch": rows[0]["loss/sft"],
            "loss/last_epoch": rows[-1]["loss/sft"],
            "eval/loss_first_epoch": rows[0]["eval/loss_sft"],
            "eval/loss_last_epoch": rows[-1]["eval/loss_sft"],
            "policy_sha256_per_rank": digests,
            "run_dir": str(run_dir),
        }
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    acc.wait_for_everyone()
    return summary
