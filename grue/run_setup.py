"""Setting up a training run: every algorithm's first step, and the session of an on-policy one.

``open_run_setup`` is every algorithm's first step (precision, accelerator, the algorithm's checks, run directory
with config.yaml written before step 0, seeds); ``load_trained_model`` loads the model a run trains (full or LoRA).
``start_session`` adds what an on-policy algorithm needs (policy, frozen reference, critic, optimizer, data order,
reward, KL controller) and restores a checkpoint when resuming: a grue.session.Session, whose loop the algorithm's
file owns. An algorithm without a critic (``critic: none``, GRPO and RLOO) gets none: no value model is built,
saved or restored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from grue import adapters
from grue import checkpoint as ckpt
from grue import trackers
from grue.config import Config
from grue.data import PromptStream, load_examples
from grue.engine_config import OnPolicyConfig
from grue.errors import GrueError, option
from grue.memory import enable_checkpointing
from grue.models import (
    Critic,
    ValueHead,
    disable_dropout,
    freeze,
    hidden_size_of,
    load_policy,
    load_tokenizer,
    lora_policy,
)
from grue.optim import groups_by_name, make_optimizer
from grue.precision import frozen_dtype, resolve_precision
from grue.rewards import resolve_reward
from grue.tasks import find_task
from grue.run_log import (
    new_run_dir,
    truncate_jsonl,
    unstarted,
    write_config,
)
from grue.session import Session, per_rank


def open_run(
    cfg: Config,
    acc: Accelerator,
    resume_dir: str | None,
    *,
    progress: str = "iteration",
    total: int | None = None,
    logs: tuple[str, ...] = ("metrics.jsonl", "samples.jsonl"),
    announce: bool = False,
) -> tuple[Path, Path | None, dict | None]:
    """The run directory, new or resumed (with its latest checkpoint and state), and config.yaml in it.

    ``progress`` names the unit of ``total`` in the checkpoint state ("iteration", or
    "epoch" for supervised); resuming truncates ``logs`` past the checkpoint. config.yaml is
    written before step 0, and rewritten on resume (e.g. with more iterations). With ``announce``,
    the main process prints the run directory (one line) as soon as it is chosen.
    """
    total = cfg.algo.iterations if total is None else total
    ck = resumed = None
    restart = False
    if resume_dir:
        run_dir = Path(resume_dir)
        # Stopped before its first checkpoint (a kill, a failure): nothing to continue, so the same run starts over.
        restart = run_dir.is_dir() and unstarted(run_dir, logs_ok=True)
        if not restart:
            ck = ckpt.latest(run_dir)
            resumed = ckpt.load_state(ck)
            if resumed["world_size"] != acc.num_processes:
                raise GrueError(
                    f"{run_dir} ran on {resumed['world_size']} processes; resume it with the same number (now {acc.num_processes})"
                )
            if resumed[progress] >= total:
                raise GrueError(
                    f"{run_dir} already finished {resumed[progress]} {progress}s; pass {option('iterations', 'N')} with N > {resumed[progress]}"
                )
    else:
        run_dir = (
            new_run_dir(cfg.run.output_dir, find_task(cfg.run.task).name, cfg.run.algo, cfg.run.seed)
            if acc.is_main_process
            else None
        )
        run_dir = Path(per_rank(acc, str(run_dir))[0])  # the main process's choice, for every rank
    if acc.is_main_process:
        write_config(run_dir, {**cfg.to_dict(), "world_size": acc.num_processes})
        if announce:
            print(
                f"resuming {run_dir} after {progress} {resumed[progress]}"
                if resumed
                else f"restarting {run_dir} from {progress} 0 (it has no checkpoint yet)"
                if restart
                else f"run directory {run_dir}",
                flush=True,
            )
        if resumed or restart:
            ckpt.discard_partial(run_dir)
            for name in logs:
                truncate_jsonl(run_dir / name, resumed[progress] if resumed else 0)
    return run_dir, ck, resumed


def make_critic(kind: str, policy: torch.nn.Module) -> torch.nn.Module | None:
    """The value model of kind ``kind`` (an algorithm's ``critic``): a trunk copy with a head (``separate``), a head
    on the policy's hidden states (``shared``), or None (``none``)."""
    if kind == "none":
        return None
    return Critic(policy) if kind == "separate" else ValueHead(hidden_size_of(policy.config))


def open_run_setup(
    cfg: Config,
    resume_dir: str | None,
    check: Callable[[Any, int], None],
    show: bool = False,
    *,
    progress: str = "iteration",
    total: int | None = None,
    logs: tuple[str, ...] = ("metrics.jsonl", "samples.jsonl"),
) -> tuple[Accelerator, Path, Path | None, dict | None]:
    """Every algorithm's first step: the tracker's package is there, the precision is resolved (``auto`` -> bf16 or
    no, as config.yaml records), the accelerator made, the algorithm's ``check`` passed for its number of processes,
    the run directory opened or resumed (``open_run``: config.yaml before step 0; ``show``: name it) and the seeds
    set. Returns (accelerator, run directory, checkpoint to resume from or None, its state or None)."""
    trackers.check_available(cfg.run.report_to)
    cfg.run.mixed_precision = resolve_precision(cfg.run.mixed_precision)
    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.run.mixed_precision)
    check(cfg.algo, acc.num_processes)
    run_dir, ck, resumed = open_run(cfg, acc, resume_dir, progress=progress, total=total, logs=logs, announce=show)
    set_seed(cfg.run.seed + acc.process_index)
    return acc, run_dir, ck, resumed


def load_trained_model(cfg: Config, ck: Path | None, trains_with_dropout: bool) -> tuple[Any, torch.nn.Module, Any]:
    """The tokenizer and the model a run trains, from ``run.model`` or the checkpoint ``ck`` it resumes: all its
    weights, or (``run.lora_rank`` > 0) LoRA adapters on it. Returns (tokenizer, model, the peft wrapper or None)."""
    source = str(ck) if ck is not None else cfg.run.model
    tokenizer = load_tokenizer(source, trust_remote_code=cfg.run.trust_remote_code)
    adapters.check_lora(cfg.run, trains_with_dropout=trains_with_dropout)
    if cfg.run.lora_rank:
        model, adapter = lora_policy(cfg.run, ck)
        return tokenizer, model, adapter
    return tokenizer, load_policy(source, trust_remote_code=cfg.run.trust_remote_code), None


def open_tracker(cfg: Config, acc: Accelerator, run_dir: Path) -> Any:
    """The main process's experiment tracker (``run.report_to``; grue.trackers), None elsewhere or for none."""
    return trackers.open_tracker(cfg.run.report_to, run_dir, cfg.to_dict()) if acc.is_main_process else None


def start_session(
    cfg: Config,
    resume_dir: str | None,
    check: Callable[[Any, int], None],
    optimize: tuple[str, ...] = ("policy", "critic"),
    show: bool = False,
) -> Session:
    """Build the session of an on-policy RL run (see the module docstring). The optimizer holds the
    parameters of the modules named in ``optimize`` (TRPO: the critic only; its policy moves by line search);
    ``show``: name the run directory."""
    acc, run_dir, ck, resumed = open_run_setup(cfg, resume_dir, check, show)
    algo: OnPolicyConfig = cfg.algo

    # Data before models: a missing data file should fail fast.
    examples = load_examples(cfg, cfg.run.train_split)
    reward_name, reward_fn = resolve_reward(cfg.run.reward, cfg.run.reward_model, cfg.run.reward_args)

    tokenizer, policy, adapter = load_trained_model(cfg, ck if resumed else None, trains_with_dropout=False)
    source = str(ck) if resumed else cfg.run.model
    ref_name = cfg.run.ref_model or cfg.run.model
    if adapter is not None and ref_name == cfg.run.model:  # the base: the policy with its adapters off, no copy
        ref = adapters.AdapterDisabled(adapter)
    elif ref_name == source:  # the model just loaded, untrained: copied, not asked for (and read) a second time
        ref = freeze(copy.deepcopy(policy))
    else:
        ref = freeze(
            load_policy(
                ref_name,
                trust_remote_code=cfg.run.trust_remote_code,
                setting="--set run.ref_model=PATH" if cfg.run.ref_model else "--model PATH",
            )
        )
    for m in (policy, ref):
        disable_dropout(m)
    critic = make_critic(algo.critic, policy)
    if algo.gradient_checkpointing:
        enable_checkpointing(policy, critic)
    policy.eval()  # and it stays so: RL4LMs' policies never left eval mode (no dropout anywhere)
    if critic is not None:
        disable_dropout(critic)
        critic.eval()
    named = [
        (f"{prefix}.{n}", p)
        for prefix, m in (("policy", policy), ("critic", critic))
        if m is not None and prefix in optimize
        for n, p in m.named_parameters()
    ]
    optimizer = make_optimizer(algo.optimizer, groups_by_name(named, algo.weight_decay), algo.lr, algo.adam_eps)
    stream = PromptStream(len(examples), cfg.run.seed, acc.process_index, acc.num_processes)
    sample_rng = torch.Generator(device=acc.device).manual_seed(cfg.run.seed * 1_000_003 + acc.process_index)
    shuffle_rng = torch.Generator().manual_seed(cfg.run.seed * 7919 + acc.process_index)
    if resumed:
        if critic is not None and adapter is not None:
            adapters.load_own(Path(ck) / "trainer" / "critic.safetensors", critic, adapters.frozen_ids(policy))
        elif critic is not None:
            ckpt.load_module(ck, "critic", critic)
        ckpt.load_optimizer(ck, optimizer)
        stream.load_state_dict(resumed["stream"])
        ckpt.set_rng_state(resumed["rng"][acc.process_index], {"sample": sample_rng, "shuffle": shuffle_rng})
    ref.to(acc.device, dtype=frozen_dtype(cfg.run))  # bf16 runs keep the reference in bf16 (run.frozen_bf16)
    if critic is None:
        policy, optimizer = acc.prepare(policy, optimizer)
    else:
        policy, critic, optimizer = acc.prepare(policy, critic, optimizer)
    session = Session(
        cfg,
        acc,
        run_dir,
        tokenizer,
        policy,
        ref,
        critic,
        optimizer,
        examples,
        stream,
        reward_name,
        reward_fn,
        sample_rng,
        shuffle_rng,
        start_iteration=resumed["iteration"] if resumed else 0,
        resumed_state=resumed,
        tracker=open_tracker(cfg, acc, run_dir),
        adapter=adapter,
    )
    if resumed and "kl" in resumed:  # GRPO and RLOO checkpoints before the session owned the KL controller have none
        session.kl.load_state_dict(resumed["kl"])
    return session
