"""The one way into a training run, for ``grue train`` and ``grue.train`` alike.

``training_config`` turns what the caller asked for (task, algorithm, model or ``init_from``, preset, config file,
overrides, or a run to resume) into the run's resolved config: a new run's config, or a resumed run's saved config
with the checks a resume needs (same grue release, same task, options that agree with the saved ones).
``train_run`` then trains it under ``grue.interrupt.graceful`` (SIGINT/SIGTERM end with a checkpoint). Errors name
the caller's options as the caller wrote them (grue.errors.option: ``--resume`` or ``resume=``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grue.algorithms import NAMES, check_names, from_dict, resolve
from grue.config import Config, mapping_sections, parse_set, set_field
from grue.tasks import find_task
from grue.yamlfile import load_yaml
from grue.errors import GrueError, option


def training_config(
    task: str,
    algo: str | None = None,
    *,
    model: str | None = None,
    init_from: str | None = None,
    preset: str | None = None,
    config_file: str | None = None,
    sets: list[str] | None = None,
    iterations: int | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    output_dir: str | None = None,
    report_to: str | None = None,
    resume: str | None = None,
) -> Config:
    """The resolved config of the run asked for: a new run of ``algo`` (default ppo) on ``task``, or (``resume``: a
    run directory) that run's saved config, where ``iterations`` may raise the iteration count and ``report_to``
    change the tracker, and every other option given must agree with what the run saved."""
    check_names(task, algo)
    sets = list(sets or [])
    if init_from is not None:
        if model is not None:
            raise GrueError(
                f"{option('init_from')} and {option('model')} both choose the starting model; pass one of them"
            )
        model = checkpoint_of(init_from)
    if resume:
        cfg_file = Path(resume) / "config.yaml"
        if not cfg_file.is_file():
            raise GrueError(f"{resume} is not a run directory (no config.yaml)")
        saved = load_yaml(cfg_file)
        check_same_release(str(saved.get("grue_version", "")), resume)
        cfg = from_dict(saved, str(cfg_file))
        if cfg.run.task != find_task(task).ref:
            raise GrueError(f"{resume} is a run of task '{cfg.run.task}', not '{task}'")
        check_resume_agrees(
            cfg,
            resume,
            algo,
            preset,
            config_file,
            sets,
            output_dir,
            {"run.model": model, "run.seed": seed, "run.data_dir": data_dir},
        )
        if iterations is not None:
            setattr(cfg.algo, iteration_field(cfg.run.algo), iterations)
        if report_to is not None:  # where the metrics also go is no training setting: a resumed run may change it
            set_field(cfg.run, "run", "report_to", report_to)
        return cfg
    algo = algo or "ppo"
    iters = "algo." + iteration_field(algo)
    flags = {
        k: v
        for k, v in {
            "run.model": model,
            "run.seed": seed,
            "run.data_dir": data_dir,
            "run.output_dir": output_dir,
            "run.report_to": report_to,
            iters: iterations,
        }.items()
        if v is not None
    }
    return resolve(task, algo, preset=preset, config_file=config_file, flags=flags, sets=sets)


def iteration_field(algo: str) -> str:
    """The config field that ``iterations`` sets: ``iterations``, or an algorithm's ``ITERATIONS`` (supervised: ``epochs``)."""
    from grue.algorithms import ALGORITHMS

    module = ALGORITHMS[algo]
    return module.ITERATIONS if hasattr(module, "ITERATIONS") else "iterations"


def finished(run_dir: str | Path, cfg: Config) -> bool:
    """Whether the run in ``run_dir`` has saved the final checkpoint of ``cfg`` (every iteration, or epoch, of it
    done); False when it has no checkpoint yet."""
    from grue.checkpoint import latest, load_state

    unit = iteration_field(cfg.run.algo)
    try:
        state = load_state(latest(Path(run_dir)))
    except GrueError:
        return False
    return state["epoch" if unit == "epochs" else "iteration"] >= getattr(cfg.algo, unit)


def train_run(cfg: Config, resume: str | None = None, show: bool = True) -> dict:
    """Train ``cfg`` (resuming the run directory ``resume``), stopping at a checkpoint on SIGINT/SIGTERM; returns the
    run's summary (summary.json). transformers' own progress bars and warnings stay out of the run's output."""
    from grue.algorithms import ALGORITHMS
    from grue.interrupt import graceful
    from grue.models import quiet_libraries

    quiet_libraries()
    with graceful():
        return ALGORITHMS[cfg.run.algo].train(cfg, resume_dir=resume, show=show)


def check_resume_agrees(
    saved: Config,
    run_dir: str,
    algo: str | None,
    preset: str | None,
    config_file: str | None,
    sets: list[str],
    output_dir: str | None,
    flags: dict[str, Any],
) -> None:
    """The options given with ``resume`` (the original command's, say) must agree with the run's saved config:
    every key that the algorithm, preset, config file, overrides, model, seed or data directory sets is resolved as
    for a new run and compared with the saved value; ``output_dir`` must name the run. One line lists every conflict."""
    flags = {k: v for k, v in flags.items() if v is not None}
    where = option("resume", run_dir)
    if algo is not None and algo != saved.run.algo:
        raise GrueError(f"{where}: {option('algo', algo)} conflicts with the run's saved algorithm '{saved.run.algo}'")
    if output_dir is not None and Path(output_dir).resolve() != Path(run_dir).resolve():
        raise GrueError(
            f"{where}: {option('output_dir', output_dir)} is another directory; a resumed run stays in {run_dir}"
        )
    if not (preset or config_file or sets or flags):
        return
    task, algo = saved.run.task, saved.run.algo
    asked = resolve(task, algo, preset=preset, config_file=config_file, flags=flags, sets=sets)
    files = ([find_task(task).folder / "presets" / f"{preset}.yaml"] if preset else []) + (
        [Path(config_file)] if config_file else []
    )
    others = tuple(a for a in NAMES if a != algo)
    keys = [
        (sec, name)
        for f in files
        for sec, values in mapping_sections(asked, load_yaml(f), str(f), others)
        if isinstance(values, dict)
        for name in values
    ]
    keys += [tuple(k.split(".", 1)) for k in flags] + [parse_set(item, asked)[:2] for item in sets]
    conflicts = []
    for sec, name in dict.fromkeys(keys):
        mine, theirs = getattr(asked.sections()[sec], name), getattr(saved.sections()[sec], name)
        if mine != theirs and not (sec == algo and name in ("iterations", "epochs")):  # the iterations option's job
            conflicts.append(f"{sec}.{name}={mine!r} (saved: {theirs!r})")
    if conflicts:
        raise GrueError(
            f"{where}: these options conflict with the run's saved config: {', '.join(conflicts)}; "
            "drop them, or start a new run"
        )


def check_same_release(saved: str, run_dir: str) -> None:
    """A run resumes only under the grue release (major.minor) that started it: a release may change what a
    setting the run's config.yaml does not name means (0.2 made the paper's training recipe the default)."""
    from grue import __version__

    if saved.split(".")[:2] != __version__.split(".")[:2]:
        raise GrueError(
            f"{run_dir} was started with grue {saved or 'before 0.1'}, and this is grue {__version__}, whose "
            f"defaults differ; resume it with grue {saved or '0.1'} (pip install 'grue=={saved or '0.1.0'}'), "
            "or start a new run"
        )


def checkpoint_of(run_dir: str) -> str:
    """The checkpoint directory of a grue run (what ``init_from`` starts from), or a one-line error."""
    from grue.checkpoint import latest

    try:
        return str(latest(Path(run_dir)))
    except GrueError:
        raise GrueError(
            f"{option('init_from', run_dir)}: no checkpoint there; expected {Path(run_dir) / 'checkpoint'} "
            f"saved by a grue training run (or pass a save_pretrained directory as {option('model')})"
        ) from None
