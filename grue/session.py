"""The training session: what an on-policy loop works with, and the chores around it (no trainer class).

``grue.run_setup.start_session`` builds a Session (models, data, reward, KL controller; restored when resuming). The
algorithm's file owns the loop; each of its iterations ends with ``Session.end_iteration`` (KL controller, log,
display, checkpoint), and the run with ``Session.finish``.
"""

from __future__ import annotations

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
from accelerate.utils import gather_object

from grue import adapters
from grue import checkpoint as ckpt
from grue.files import atomic_write_text
from grue import interrupt, stability, trackers
from grue.config import Config
from grue.data import PromptStream
from grue.engine_config import OnPolicyConfig
from grue.errors import GrueError, resume_command
from grue.kl import KLController
from grue.plots import write_curves
from grue.rewards import score
from grue.tasks.common import Example
from grue.run_log import (
    Display,
    append_jsonl,
    learning_summary,
    read_jsonl,
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
    # metrics.jsonl's rows so far (main process; read on the first log), for the stability checks
    history: list | None = None
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
    how = resume_command(cfg.run.task, str(run_dir))
    return interrupt.Interrupted(
        signum, f"stopped by {signal.Signals(signum).name} after {unit} {done}, checkpoint saved; continue with: {how}"
    )
