"""The ``grue`` command line: thin wrappers over the grue library.

Bad input (a GrueError) prints one line ``error: ...`` on stderr and exits with 2.
"""

from __future__ import annotations

import atexit
import gc
import sys
from pathlib import Path
from typing import List, Optional

import typer

from grue.algorithms import NAMES
from grue.errors import GrueError
from grue_cli.friendly import friendly
from grue_cli.words import WordsCommand, WordsGroup

# A command's work is done when the interpreter shuts down; its shutdown then clears every module and runs the
# cycle collector over the million objects torch and transformers made, about 1.2 s of a CPU for nothing (the
# process's memory goes back to the system anyway). Frozen objects are skipped by the collector, so the last atexit
# handler (registered first: handlers run last-in first-out) freezes them: the other handlers (trackers, thread
# pools, temporary folders) have run, and objects still die as their last reference goes. 1.2 s -> 0.2 s.
atexit.register(gc.freeze)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=WordsGroup,
    help="Reinforcement learning for language models, and the GRUE benchmark.",
)


def show_version(value: bool) -> None:
    if value:
        from grue import __version__

        typer.echo(f"grue {__version__}")
        raise typer.Exit()


@app.callback()
def grue_options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=show_version, help="Print grue's version and exit."
    ),
) -> None:
    """Reinforcement learning for language models, and the GRUE benchmark."""


@app.command(cls=WordsCommand)
@friendly
def train(
    task: str = typer.Argument(..., metavar="TASK", help="GRUE task, e.g. imdb (see `grue tasks`)."),
    algo: Optional[str] = typer.Option(
        None, "--algo", metavar="NAME", help=f"Algorithm: {', '.join(NAMES)} (default ppo)."
    ),
    model: Optional[str] = typer.Option(
        None, metavar="NAME", help="Policy: Hub id, local directory, tiny-gpt2 or tiny-t5."
    ),
    init_from: Optional[str] = typer.Option(
        None,
        "--init-from",
        metavar="RUN",
        help="Start from this run directory's checkpoint (same as --model RUN/checkpoint), e.g. a supervised run.",
    ),
    preset: Optional[str] = typer.Option(None, metavar="NAME", help="A preset of the task, e.g. smoke."),
    config: Optional[Path] = typer.Option(None, metavar="FILE", help="YAML file with run/generation/<algo> sections."),
    set_: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override: section.key=value or key=value (repeatable)."
    ),
    iterations: Optional[int] = typer.Option(
        None, metavar="N", help="Number of iterations (epochs for --algo supervised)."
    ),
    seed: Optional[int] = typer.Option(None, metavar="N", help="Random seed."),
    data_dir: Optional[str] = typer.Option(
        None, metavar="DIR", help="Directory with <task>/<split>.jsonl (default: $GRUE_DATA_DIR, else the Hub)."
    ),
    output_dir: Optional[str] = typer.Option(
        None, metavar="DIR", help="Run directory (default: runs/<task>-<algo>-s<seed>-<time>)."
    ),
    resume: Optional[str] = typer.Option(
        None, metavar="RUN", help="Continue the run in this directory from its last checkpoint."
    ),
    report_to: Optional[str] = typer.Option(
        None,
        "--report-to",
        metavar="NAME",
        help="Also send metrics and sample generations to "
        "an experiment tracker: tensorboard, wandb or none (default none; pip install 'grue[trackers]').",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Check what the run checks before it loads a model (configuration, "
        "reward, metrics, data files, tracker, run directory), print the configuration as YAML and "
        "stop: no run directory made, no model loaded.",
    ),
):
    """RL fine-tuning of a language model on a GRUE task (all its weights, or LoRA adapters with --set run.lora_rank=8)."""
    from grue.training import train_run, training_config

    cfg = training_config(
        task,
        algo,
        model=model,
        init_from=init_from,
        preset=preset,
        config_file=str(config) if config else None,
        sets=set_,
        iterations=iterations,
        seed=seed,
        data_dir=data_dir,
        output_dir=output_dir,
        report_to=report_to,
        resume=resume,
    )
    if dry_run:
        return print_config(cfg, resume)
    summary = train_run(cfg, resume, show=not quiet)
    if summary:
        first, last = summary["reward/first_20pct"], summary["reward/last_20pct"]
        verdict = "reward went up" if last > first else "reward did not go up"
        typer.echo(
            f"done: {summary['iterations']} iterations in {summary['run_dir']}; mean reward first 20% "
            f"{first:.4f} -> last 20% {last:.4f} ({last - first:+.4f}): {verdict}"
        )


def print_config(cfg, resume: str | None = None) -> None:
    """``--dry-run``: check ``cfg`` as a one-process run would (grue.config's rules, the algorithm's, then
    grue.preflight's: reward, metrics, data, tracker, run directory) and print it as config.yaml would hold it."""
    import yaml

    from grue.algorithms import ALGORITHMS
    from grue.config import check_config

    check_config(cfg)
    ALGORITHMS[cfg.run.algo].check(cfg.algo, 1)
    from grue.preflight import preflight

    preflight(cfg, resume)
    typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False), nl=False)


@app.command("eval", cls=WordsCommand)
@friendly
def eval_(
    checkpoint: Optional[str] = typer.Option(
        None, metavar="RUN", help="Run directory made by `grue train` (uses its config and checkpoint)."
    ),
    task: Optional[str] = typer.Option(
        None, metavar="TASK", help="Task, for a zero-shot evaluation of --model or for --predictions."
    ),
    model: Optional[str] = typer.Option(
        None, metavar="NAME", help="Zero-shot model: Hub id, local directory, tiny-gpt2 or tiny-t5."
    ),
    predictions: Optional[str] = typer.Option(
        None,
        metavar="FILE",
        help="Score generations made elsewhere: a JSONL file, one object "
        'with a "generation" string per example of the split, in order (with --task and --model-name).',
    ),
    model_name: Optional[str] = typer.Option(
        None,
        "--model-name",
        metavar="NAME",
        help="With --predictions: the model that made them, as the results name it.",
    ),
    split: str = typer.Option(
        "test",
        metavar="SPLIT",
        help="Split to evaluate: train, validation or test (a run "
        "trained on built-in prompts is evaluated on them, as split builtin).",
    ),
    limit: Optional[int] = typer.Option(None, metavar="N", help="Evaluate only the first N examples."),
    batch_size: Optional[int] = typer.Option(
        None, metavar="N", help="Prompts decoded at once (default: the task's eval.batch_size)."
    ),
    data_dir: Optional[str] = typer.Option(
        None,
        metavar="DIR",
        help="Directory with <task>/<split>.jsonl (default: the run's, "
        "$GRUE_DATA_DIR, the built-in prompts a smoke run trained on, else the Hub).",
    ),
    output_dir: Optional[str] = typer.Option(
        None,
        metavar="DIR",
        help="Where results.json and samples.jsonl go (default: RUN/eval/<split>/, "
        "RUN/eval/builtin/ for built-in prompts).",
    ),
    seed: Optional[int] = typer.Option(
        None,
        metavar="N",
        help="Seed of sampled decoding (default: the run's seed); with --predictions, the seed recorded.",
    ),
    set_: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a run/generation/eval key, e.g. eval.num_beams=4 (repeatable)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing results.json in the output directory."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
):
    """Evaluate a trained run, a zero-shot model or generations made elsewhere on a task split; writes results.json and samples.jsonl."""
    if task is not None:
        from grue.algorithms import check_names

        check_names(task)
    from grue.models import quiet_libraries

    quiet_libraries()
    from grue.evaluation import evaluate, summary_lines

    path, results = evaluate(
        checkpoint=checkpoint,
        task=task,
        model=model,
        split=split,
        limit=limit,
        batch_size=batch_size,
        data_dir=data_dir,
        output_dir=output_dir,
        seed=seed,
        sets=set_,
        overwrite=overwrite,
        show=not quiet,
        predictions=predictions,
        model_name=model_name,
    )
    for line in summary_lines(results):
        typer.echo(line)
    typer.echo(f"wrote {path} and {path.parent / 'samples.jsonl'}")


@app.command(cls=WordsCommand)
@friendly
def plot(
    runs: List[Path] = typer.Argument(
        ..., metavar="RUN...", help="Run directories made by `grue train` (their metrics.jsonl)."
    ),
    out: Path = typer.Option(Path("curves.png"), "--out", metavar="FILE.png", help="Where the picture goes."),
):
    """Draw the training curves of one or more runs, overlaid: reward, KL, KL coefficient, entropy, clip fraction, response length."""
    from grue.plots import plot_runs

    typer.echo(f"wrote {plot_runs(runs, out)}")


@app.command(cls=WordsCommand)
@friendly
def export(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory made by `grue train`."),
    merge: str = typer.Option(
        ...,
        "--merge",
        metavar="OUT",
        help="New directory for the model and its tokenizer: a LoRA "
        "run's adapter merged into its base (run.lora_rank), a full fine-tuning run's weights as trained.",
    ),
):
    """Write a run's trained policy as a plain model that from_pretrained loads (e.g. AutoModelForCausalLM)."""
    from grue.models import quiet_libraries

    quiet_libraries()
    from grue.model_export import export as export_model

    typer.echo(f"wrote {export_model(run, merge)}")


@app.command(cls=WordsCommand)
@friendly
def tasks(
    path: List[str] = typer.Option(
        [], "--path", metavar="DIR", help="Also list the task folders in DIR (repeatable; $GRUE_TASKS_PATH adds more)."
    ),
):
    """List the GRUE tasks (and your task folders) with their versions and algorithms."""
    import os

    from rich.console import Console
    from rich.table import Table

    from grue.tasks import all_tasks

    table = Table(title="GRUE tasks" + (" and yours" if path or os.environ.get("GRUE_TASKS_PATH") else ""))
    for col in ("task", "version", "algorithms", "presets", "description"):
        table.add_column(col)
    for t in all_tasks(path):
        table.add_row(
            t.name if t.builtin else f"{t.name} ({t.folder})",
            t.version,
            ", ".join(t.algorithms(NAMES)),
            ", ".join(t.presets()),
            t.description,
        )
    Console().print(table)


# ---- task folders (issue 11): a working skeleton of a user's task --------------------------------------------


@app.command("new-task", cls=WordsCommand)
@friendly
def new_task(
    name: str = typer.Argument(..., metavar="NAME", help="Folder to create (its name is the task's), e.g. my_task."),
):
    """Write a working task folder with comments: JSON Lines data, a reward, metrics and a smoke preset."""
    from grue.tasks.skeleton import write_skeleton

    folder = write_skeleton(Path(name))
    shown = folder if folder.is_absolute() or name.startswith(".") else f"./{folder}"
    typer.echo(f"wrote {folder}; try: grue train {shown} --algo ppo --preset smoke")


# ---- results files side by side (issue 11) -------------------------------------------------------------------


@app.command("results", cls=WordsCommand)
@friendly
def results_(
    paths: List[str] = typer.Argument(
        ..., metavar="PATH...", help="results.json files, or directories searched for them."
    ),
    csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table instead."),
):
    """Compare results files side by side: a column per file, a row per field and metric (--csv and --markdown: a row per
    file, as grue.load_results's DataFrame)."""
    from grue.frames import markdown_table, results_frame

    if csv and markdown:
        raise GrueError("--csv and --markdown both choose the output; pass one of them")
    frame = results_frame(paths)
    if csv:
        return typer.echo(frame.to_csv(index=False), nl=False)
    if markdown:
        return typer.echo(markdown_table(frame))
    from rich.console import Console
    from rich.table import Table

    # One column per file, one row per field: a few runs side by side fit a terminal however many metrics they have.
    table = Table(title=f"{len(frame)} results file{'s' if len(frame) != 1 else ''}")
    table.add_column("field")
    for i in range(1, len(frame) + 1):
        table.add_column(f"#{i}", justify="right")
    for col in frame.columns.drop("path"):
        table.add_row(col, *(cell_text(v) for v in frame[col]))
    Console().print(table)
    typer.echo("\n".join(f"#{i}: {p}" for i, p in enumerate(frame["path"], 1)))  # whole, unwrapped: paths to copy


def cell_text(value) -> str:
    """A table cell: a float with 4 decimals, a missing value as "–", anything else as is."""
    if isinstance(value, float):
        return "–" if value != value else f"{value:.4f}"
    return str(value)


from grue_cli.leaderboard import leaderboard_app  # noqa: E402  (the sub-app lives in its own module)

from grue_cli.benchmark import benchmark_app  # noqa: E402

app.add_typer(leaderboard_app, name="leaderboard", cls=WordsGroup)
app.add_typer(benchmark_app, name="benchmark", cls=WordsGroup)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
