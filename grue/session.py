"""The training session: setting up a run and the chores around its loop (shared functions, no trainer class).

``open_run_setup`` is every algorithm's first step (precision, accelerator, the algorithm's checks, run directory
with config.yaml written before step 0, seeds); ``load_trained_model`` loads the model a run trains (full or LoRA).
``start_session`` adds what an on-policy algorithm needs (policy, frozen reference, critic, optimizer, data order,
reward, KL controller) and restores a checkpoint when resuming. The algorithm's file owns the loop; each of its
iterations ends with ``Session.end_iteration`` (KL controller, log, display, checkpoint). An algorithm without a
critic (``critic: none``, GRPO and RLOO) gets none: no value model is built, saved or restored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed

from grue import adapters
from grue import checkpoint as ckpt
from grue.files import atomic_write_text
from grue import interrupt, stability, trackers
from grue.config import Config
from grue.data import PromptStream, load_examples
from grue.engine_config import OnPolicyConfig
from grue.errors import SPELLING, GrueError, option
from grue.kl import KLController
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
from grue.plots import write_curves
from grue.precision import frozen_dtype, resolve_precision
from grue.rewards import resolve_reward, score
from grue.tasks import find_task
from grue.tasks.common import Example
from grue.run_log import (
    Display,
    append_jsonl,
    learning_summary,
    new_run_dir,
    read_jsonl,
    truncate_jsonl,
    unstarted,
    write_config,
)


@dataclass
class Session:
    """What an RL loop works with. Plain fields; the algorithm's file does the work."""

    cfg: Config
    accelerator: Accelerator
    run_dir: Path
    tokenizer: Any
    policy: torch.nn.Module
    ref: torch.nn.Module  # with LoRA: grue.adapters.AdapterDisabled, the policy with its adapters off
    critic: torch.nn.Module | None  # None: the algorithm has no critic
    optimizer: torch.optim.Optimizer
    examples: list[Example]
    stream: PromptStream
    reward_name: str
    reward_fn: Callable
    sample_rng: torch.Generator
    shuffle_rng: torch.Generator
    start_iteration: int = 0
    resumed_state: dict | None = None
    extra_modules: dict = field(default_factory=dict)
    adapter: Any = None  # LoRA (run.lora_rank > 0): the policy's peft wrapper (grue.adapters); None: full fine-tuning
    iteration: int = 0  # the iteration in progress (set by the algorithm's loop), named in a reward's errors
    tracker: Any = None  # the main process's experiment tracker (run.report_to; grue.trackers), None for none
    drawn: tuple | None = None  # metrics.jsonl's (size, mtime) when plots/curves.png was last drawn (main process)
    history: list | None = (
        None  # metrics.jsonl's rows so far (main process; read on the first log), for the stability checks
    )
    kl: KLController | None = None  # the KL coefficient (algo.kl_coef, adaptive toward algo.kl_target); made from them
    display: Display | None = None  # the live display of the loop in progress (Session.progress)
    times: dict = field(default_factory=dict)  # this iteration's ``time/<phase>_s`` so far (Session.lap)
    lap_start: float = 0.0

    def __post_init__(self):
        if self.kl is None:
            self.kl = KLController(self.algo.kl_coef, self.algo.kl_target)

    @property
    def algo(self) -> OnPolicyConfig:
        return self.cfg.algo

    gen = property(lambda self: self.cfg.generation)
    device = property(lambda self: self.accelerator.device)
    seq2seq = property(lambda self: bool(self.accelerator.unwrap_model(self.policy).config.is_encoder_decoder))
    decoder_start = property(
        lambda self: getattr(self.accelerator.unwrap_model(self.policy).config, "decoder_start_token_id", None)
    )
    trainable = property(lambda self: [m for m in (self.policy, self.critic) if m is not None])
    params = property(lambda self: [p for m in self.trainable for p in m.parameters() if p.requires_grad])

    def score(self, prompts: list[str], completions: list[str], batch: list[Example]) -> list[float]:
        return score(
            self.reward_name,
            self.reward_fn,
            prompts,
            completions,
            [e.references for e in batch],
            [e.meta for e in batch],
            f"the rollout of iteration {self.iteration}",
            self.cfg.run.reward_timeout_s,
        )

    def log(
        self, metrics: dict, idx: list[int], batch: list[Example], completions: list[str], scores: list[float]
    ) -> None:
        """Append the iteration's metrics and a few of each process's generations (main process writes), with the
        stability warnings (grue.stability) added to ``metrics`` as ``warnings/<name>``; send both to the tracker."""
        k = self.cfg.run.log_samples
        rank = self.accelerator.process_index
        mine = [
            {
                "iteration": metrics["iteration"],
                "rank": rank,
                "index": i,
                "prompt": e.prompt,
                "completion": c,
                "score": sc,
            }
            for i, e, c, sc in list(zip(idx, batch, completions, scores))[:k]
        ]
        rows = gather_object(mine) if self.accelerator.num_processes > 1 else mine
        if self.accelerator.is_main_process:
            if self.history is None:
                path = self.run_dir / "metrics.jsonl"
                self.history = read_jsonl(path) if path.is_file() else []
            self.history.append(metrics)
            metrics.update(stability.as_metrics(stability.warnings_of(self.history, stability.thresholds_of(self.cfg))))
            append_jsonl(self.run_dir / "metrics.jsonl", [metrics])
            append_jsonl(self.run_dir / "samples.jsonl", rows)
            trackers.log(self.tracker, metrics, rows)

    def save(self, iteration: int, extra_state: dict) -> None:
        """Checkpoint atomically; every process's RNG state goes in, so resuming is exact."""
        acc = self.accelerator
        rng = ckpt.rng_state({"sample": self.sample_rng, "shuffle": self.shuffle_rng})
        rngs = per_rank(acc, rng)
        if acc.is_main_process:
            state = {
                "iteration": iteration,
                "world_size": acc.num_processes,
                "stream": self.stream.state_dict(),
                "rng": rngs,
                **extra_state,
            }
            modules = (
                {"critic": self.critic, **self.extra_modules} if self.critic is not None else dict(self.extra_modules)
            )
            modules = {k: acc.unwrap_model(m) for k, m in modules.items()}
            policy = acc.unwrap_model(self.policy)
            if self.adapter is not None:  # LoRA: the adapter as peft saves it; of the other modules, their own tensors
                shared = adapters.frozen_ids(policy)
                modules = {k: adapters.own_state(m, shared) for k, m in modules.items()}
                policy = self.adapter
            ckpt.save(
                self.run_dir,
                policy,
                self.tokenizer,
                modules,
                self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer,
                state,
            )
            self.drawn = curves(self.run_dir)  # the picture keeps up with the checkpoint (about 0.4 s of CPU)
        acc.wait_for_everyone()

    def load_module(self, ck: Path, name: str, module: torch.nn.Module) -> None:
        """Restore ``module`` from the checkpoint file ``trainer/<name>.safetensors`` (with LoRA: its own tensors)."""
        if self.adapter is None:
            ckpt.load_module(ck, name, module)
        else:
            adapters.load_own(
                Path(ck) / "trainer" / f"{name}.safetensors",
                module,
                adapters.frozen_ids(self.accelerator.unwrap_model(self.policy)),
            )

    def checkpoint(self, iteration: int) -> None:
        """Save when due (every ``run.checkpoint_every`` iterations and the last) or when a signal asked the run to
        stop (grue.interrupt), the KL controller with it; then, if one did and iterations remain, raise ``Interrupted``."""
        stop = stop_asked(self.accelerator)
        if stop or iteration % self.cfg.run.checkpoint_every == 0 or iteration == self.algo.iterations:
            self.save(iteration, {"kl": self.kl.state_dict()})
        if stop and iteration < self.algo.iterations:
            raise stopped(self.cfg, self.run_dir, "iteration", iteration)

    def progress(self, show: bool) -> Display:
        """The loop's live display (a progress bar and the recent iterations' metrics; the main process, if ``show``),
        as a context manager; ``end_iteration`` updates it."""
        name = f"{self.cfg.run.task} {self.cfg.run.algo}"
        self.display = Display(
            self.algo.iterations, self.start_iteration, name, enabled=show and self.accelerator.is_main_process
        )
        return self.display

    def iterations(self) -> Iterator[int]:
        """The iterations still to run (1-based), each started on the clock (``lap``) and named in errors (``iteration``)."""
        for it in range(self.start_iteration + 1, self.algo.iterations + 1):
            self.iteration, self.times, self.lap_start = it, {}, time.perf_counter()
            yield it

    def lap(self, phase: str) -> None:
        """Record the seconds since the iteration began or the last lap as ``time/<phase>_s`` (on a GPU, after
        waiting for it: the time covers the work)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.times[f"time/{phase}_s"], self.lap_start = now - self.lap_start, now

    def end_iteration(self, metrics: dict, samples: tuple[list[int], list[Example], list[str], list[float]]) -> None:
        """The tail of every RL iteration: the KL controller moves on ``metrics["kl/mean"]`` (``metrics["kl/coef"]`` is
        the coefficient the rollout used); the metrics and ``samples`` (indices, examples, completions, scores) are
        logged with the stability warnings; the display shows them; the checkpoint is saved when due (then the run
        stops if a signal asked it to)."""
        self.kl.update(metrics["kl/mean"])
        self.log(metrics, *samples)
        if self.display is not None:
            self.display.update(metrics)
        self.checkpoint(self.iteration)

    def finish(self) -> dict:
        """Write summary.json (the learning summary and each process's parameter checksum) and plots/curves.png;
        close the tracker."""
        acc = self.accelerator
        digest = parameter_digest(acc.unwrap_model(self.policy))
        digests = per_rank(acc, digest)
        summary: dict = {}
        if acc.is_main_process:
            rewards = [m["reward/mean"] for m in read_jsonl(self.run_dir / "metrics.jsonl")]
            summary = {
                "iterations": len(rewards),
                "world_size": acc.num_processes,
                **learning_summary(rewards),
                "policy_sha256_per_rank": digests,
                "run_dir": str(self.run_dir),
            }
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=1))
            if self.drawn != metrics_stamp(self.run_dir):  # the last checkpoint drew these rows
                curves(self.run_dir)
            trackers.close(self.tracker)
        acc.wait_for_everyone()
        return summary


def curves(run_dir: Path) -> tuple | None:
    """Redraw RUN/plots/curves.png (grue.plots) and return the ``metrics_stamp`` of the rows drawn (None: nothing
    drawn). A picture that cannot be drawn costs one line on stderr, never the run."""
    stamp = metrics_stamp(run_dir)
    try:
        return stamp if write_curves(run_dir) is not None else None
    except (ImportError, OSError, ValueError, GrueError) as e:
        print(f"warning: could not draw {run_dir / 'plots' / 'curves.png'}: {e}", file=sys.stderr, flush=True)
        return None


def metrics_stamp(run_dir: Path) -> tuple | None:
    """RUN/metrics.jsonl's size and modification time: equal stamps, the same rows (None while there is no file)."""
    try:
        st = (Path(run_dir) / "metrics.jsonl").stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def per_rank(acc: Accelerator, value: Any) -> list:
    """``value`` from every process, in rank order (a one-element list on a single process)."""
    return gather_object([value]) if acc.num_processes > 1 else [value]


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters' bytes, in name order: equal across processes iff in sync."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


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


def stop_asked(acc: Accelerator) -> bool:
    """Whether a signal asked the run to stop (grue.interrupt), on any process: all processes then stop
    after the same iteration (one all-reduce per iteration when there are several)."""
    asked = 1.0 if interrupt.asked() is not None else 0.0
    if acc.num_processes > 1:
        asked = acc.reduce(torch.tensor(asked, device=acc.device), "sum").item()
    return asked > 0


def stopped(cfg: Config, run_dir: Path, unit: str, done: int) -> interrupt.Interrupted:
    """The ``Interrupted`` of a run stopped by a signal after the checkpoint of ``unit`` ``done``."""
    signum = interrupt.asked() or signal.SIGTERM
    how = (
        f"grue.train({cfg.run.task!r}, resume={str(run_dir)!r})"
        if SPELLING.get() == "api"
        else f"grue train {cfg.run.task} --resume {run_dir}"
    )
    return interrupt.Interrupted(
        signum, f"stopped by {signal.Signals(signum).name} after {unit} {done}, checkpoint saved; continue with: {how}"
    )


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
