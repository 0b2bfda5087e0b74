"""The cells of a benchmark: one per (task, seed, stage), with resolved settings, fingerprint, commands and cost.

A single-stage benchmark (``--algo ppo``) has one cell per task and seed: train, then evaluate on the task's
benchmark split. Supervised+RL (``--init-from-algo supervised``) has two: the supervised run of a (task, seed)
first, then the RL run started from its checkpoint (``--init-from``), which alone is evaluated.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from grue.algorithms import NAMES, resolve
from grue.errors import GrueError
from grue.fingerprint import fingerprint
from grue.tasks import find_task, task_names

CRITIC_FREE = ("grpo", "rloo", "supervised")
"""Algorithms without a value model: a rollout is scored by the policy and the reference only."""


@dataclass
class Options:
    """What ``grue benchmark run`` was asked: everything a cell's settings depend on, and where things go."""

    algo: str
    name: str
    model: str | None = None
    tasks: list[str] = field(default_factory=list)
    seeds: int = 5
    preset: str | None = None
    sets: list[str] = field(default_factory=list)
    init_from_algo: str | None = None
    data_dir: str | None = None
    processes: int = 1

    def command(self) -> str:
        """The ``grue benchmark run`` command that reproduces the submission (no paths of this machine)."""
        tasks = None if sorted(self.tasks) == sorted(task_names()) else ",".join(self.tasks)
        return shlex.join(
            [
                "grue",
                "benchmark",
                "run",
                "--algo",
                self.algo,
                "--name",
                self.name,
                *flags(
                    [
                        ("--model", self.model),
                        ("--tasks", tasks),
                        ("--seeds", self.seeds),
                        ("--init-from-algo", self.init_from_algo),
                        ("--preset", self.preset),
                        *(("--set", item) for item in self.sets),
                    ]
                ),
            ]
        )

    def algorithm(self) -> str:
        """The results' algorithm name: ``ppo``, or ``supervised+ppo`` for two stages."""
        return f"{self.init_from_algo}+{self.algo}" if self.init_from_algo else self.algo


@dataclass
class Cell:
    """One trained (task, seed, stage). ``after``: the id of the cell whose checkpoint this one starts from."""

    id: str
    task: str
    seed: int
    stage: str
    final: bool
    """Evaluated and submitted (the last stage of its task and seed)."""
    after: str | None
    config: dict
    """The planned resolved config (Config.to_dict()); a second stage's names its first stage's run as its model."""
    settings: str
    """grue.fingerprint of ``config``."""
    cost: dict
    key: str = ""
    """What the cell's results depend on: its settings, and a second stage's first stage's key too (a first stage
    made with other settings is another starting point). Equal keys: the cell's earlier work is reused."""

    def train_command(self, run_dir: Path, first_run: Path | None, options: Options) -> str:
        """The ``grue train`` command this cell runs (shown by --dry-run and ``status``)."""
        parts = [
            "grue",
            "train",
            self.task,
            "--algo",
            self.stage,
            "--seed",
            str(self.seed),
            *flags(
                [
                    ("--init-from", first_run),
                    ("--model", None if first_run else options.model),
                    ("--preset", options.preset),
                    *(("--set", item) for item in stage_sets(options.sets, self.stage)),
                    ("--data-dir", options.data_dir),
                    ("--output-dir", run_dir),
                ]
            ),
        ]
        if options.processes > 1:
            parts = ["torchrun", "--nproc_per_node", str(options.processes), "-m", "grue_cli.main", *parts[1:]]
        return shlex.join(parts)

    def eval_command(self, run_dir: Path) -> str:
        return shlex.join(["grue", "eval", "--checkpoint", str(run_dir), "--split", benchmark_split(self.task)])


def flags(pairs) -> list[str]:
    """``[("--model", "gpt2"), ("--preset", None)]`` -> ``["--model", "gpt2"]``: the flags whose value is set."""
    return [str(part) for flag, value in pairs if value is not None for part in (flag, value)]


def benchmark_split(task: str) -> str:
    """The split whose results the leaderboard takes for ``task`` (its task.yaml's ``benchmark_split``)."""
    return find_task(task).benchmark_split


def parse_tasks(spec: str) -> list[str]:
    """``all`` or a comma-separated list of built-in task names -> the names, in the given order, once each."""
    known = task_names()
    if spec.strip() == "all":
        return known
    names = [t.strip() for t in spec.split(",") if t.strip()]
    wrong = [t for t in names if t not in known]
    if wrong or not names:
        raise GrueError(
            f"--tasks {spec}: unknown task {', '.join(wrong) or '(none given)'}; accepted: all, or a "
            f"comma-separated list of {', '.join(known)}"
        )
    return list(dict.fromkeys(names))


def check_options(o: Options) -> None:
    """One line for each option that cannot make a benchmark."""
    from grue.leaderboard.submissions import NAME

    if o.algo not in NAMES:
        raise GrueError(f"--algo {o.algo}: unknown algorithm; accepted: {', '.join(NAMES)}")
    if o.init_from_algo is not None and o.init_from_algo not in NAMES:
        raise GrueError(f"--init-from-algo {o.init_from_algo}: unknown algorithm; accepted: {', '.join(NAMES)}")
    if o.init_from_algo == o.algo:
        raise GrueError(
            f"--init-from-algo {o.init_from_algo} equals --algo: a two-stage benchmark trains two algorithms"
        )
    if not NAME.fullmatch(o.name):
        raise GrueError(
            f"--name {o.name!r}: 1 to 80 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(it names the submission folder)"
        )
    if not 1 <= o.seeds <= 100:
        raise GrueError(f"--seeds {o.seeds}: the number of seeds (0 .. N-1), from 1 to 100")
    if o.processes < 1:
        raise GrueError(f"--processes {o.processes}: processes per cell, at least 1")
    for item in o.sets:
        if item.split("=", 1)[0].strip().startswith("eval."):
            raise GrueError(f"--set {item}: the benchmark evaluates with the task's own settings; eval.* cannot be set")
        section = item.split("=", 1)[0].split(".", 1)[0].strip() if "." in item.split("=", 1)[0] else None
        if section in NAMES and section not in (o.algo, o.init_from_algo):
            raise GrueError(
                f"--set {item}: {section} is not trained by this benchmark; accepted sections: run, generation, "
                + ", ".join(s for s in (o.init_from_algo, o.algo) if s)
            )
        if item.split("=", 1)[0].strip() in ("run.seed", "seed", "run.output_dir", "run.data_dir", "run.model"):
            raise GrueError(f"--set {item}: the benchmark sets this itself (--seeds, --data-dir, --model)")


def stage_sets(sets: list[str], stage: str) -> list[str]:
    """The ``--set`` items of one stage: those of its own algorithm's section and of the shared sections (run,
    generation); ``ppo.lr`` is the PPO stage's, not the supervised one's."""
    return [
        item
        for item in sets
        if item.split("=", 1)[0].split(".", 1)[0] not in NAMES
        or "." not in item.split("=", 1)[0]
        or item.split("=", 1)[0].split(".", 1)[0] == stage
    ]


def stage_config(task: str, stage: str, seed: int, options: Options, first: dict | None):
    """The resolved config of one stage (a grue.config.Config). A second stage (``first``: its first stage's
    planned config) names what --init-from would record: the first stage's algorithm and base model."""
    flags = {"run.seed": seed}
    if options.data_dir:
        flags["run.data_dir"] = options.data_dir
    if first is None and options.model:
        flags["run.model"] = options.model
    cfg = resolve(task, stage, preset=options.preset, flags=flags, sets=stage_sets(options.sets, stage))
    if first is not None:
        run = first["run"]
        cfg.run.model = "<first stage's checkpoint>"
        cfg.run.init_algo = "+".join(a for a in (run.get("init_algo", ""), run["algo"]) if a)
        cfg.run.base_model = run.get("base_model") or run["model"]
    from grue.algorithms import ALGORITHMS
    from grue.config import check_config

    check_config(cfg)
    ALGORITHMS[stage].check(cfg.algo, options.processes)
    return cfg


def plan(options: Options) -> list[Cell]:
    """Every cell of the benchmark, first stages before the stages that start from them."""
    check_options(options)
    cells = []
    for task in options.tasks:
        find_task(task)
        for seed in range(options.seeds):
            first = None
            stages = [s for s in (options.init_from_algo, options.algo) if s]
            for i, stage in enumerate(stages):
                cfg = stage_config(task, stage, seed, options, first)
                config = cfg.to_dict()
                settings = fingerprint(config)
                key = chained(settings, cells[-1].key) if i else settings
                cells.append(
                    Cell(
                        f"{task}-s{seed}-{stage}",
                        task,
                        seed,
                        stage,
                        i == len(stages) - 1,
                        cells[-1].id if i else None,
                        config,
                        settings,
                        cost(cfg),
                        key,
                    )
                )
                first = config
    return cells


def chained(settings: str, first_key: str) -> str:
    """A second stage's key: 16 hex digits of the SHA-256 of its settings and its first stage's key."""
    import hashlib

    return hashlib.sha256(f"{settings}:{first_key}".encode()).hexdigest()[:16]


def cost(cfg) -> dict:
    """What one iteration (an epoch for supervised) costs, counted as the README counts it: ``iterations``, generated
    ``tokens`` per iteration (at most: every completion at max_new_tokens), ``episodes`` sampled, and teacher-forced
    ``passes`` (one episode through one model: scoring by the policy, the reference and the critic, then the
    update's forward and backward). Supervised: its examples per epoch are only known once the data is read."""
    a, g, algo = cfg.algo, cfg.generation, cfg.run.algo
    if algo == "supervised":
        return {"iterations": a.epochs, "tokens": 0, "episodes": 0, "passes": None}
    unit = getattr(a, "batch_unit", "completions")
    if unit == "tokens":  # the paper's unit: episodes are sampled until rollout_size tokens are held
        episodes = math.ceil(a.rollout_size / max(1, g.max_new_tokens))
        steps = a.epochs * (a.rollout_size // a.minibatch_size)
        update = steps * min(episodes, a.minibatch_size)  # a minibatch of tokens touches at most this many episodes
    else:
        episodes = a.rollout_size
        epochs = getattr(a, "epochs", 1) if algo != "trpo" else 1 + getattr(a, "n_critic_updates", 0)
        update = epochs * episodes
    scoring = (2 if algo in CRITIC_FREE else 3) * episodes
    return {
        "iterations": a.iterations,
        "tokens": episodes * g.max_new_tokens,
        "episodes": episodes,
        "passes": scoring + update,
    }
