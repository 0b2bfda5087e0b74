"""``grue benchmark``: run the GRUE protocol as one resumable command, and see where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from grue_cli.friendly import friendly
from grue_cli.words import WordsCommand

benchmark_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="The GRUE protocol as one command: train and evaluate every task x seed, write a submission.",
)


@benchmark_app.command("run", cls=WordsCommand)
@friendly
def run(
    algo: str = typer.Option(
        ..., "--algo", metavar="NAME", help="Algorithm: ppo, nlpo, a2c, supervised, grpo, rloo or trpo."
    ),
    name: str = typer.Option(..., "--name", metavar="NAME", help="The submission's name (its folder's)."),
    model: Optional[str] = typer.Option(
        None, metavar="NAME", help="Starting model for every task (default: each task's own)."
    ),
    tasks: str = typer.Option("all", metavar="all|T1,T2", help="Tasks: all, or a comma-separated list."),
    seeds: int = typer.Option(5, metavar="N", help="Seeds 0 .. N-1 per task (the paper's protocol: 5)."),
    preset: Optional[str] = typer.Option(None, metavar="NAME", help="A preset of every task, e.g. smoke."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a training setting (repeatable)."),
    init_from_algo: Optional[str] = typer.Option(
        None,
        "--init-from-algo",
        metavar="NAME",
        help="Two stages: this algorithm first (e.g. supervised), then --algo from its checkpoint.",
    ),
    out: Optional[Path] = typer.Option(
        None, metavar="DIR", help="The submission folder (default leaderboard/submissions/NAME)."
    ),
    work_dir: Optional[Path] = typer.Option(
        None, "--work-dir", metavar="DIR", help="Runs, logs and state (default runs/benchmark/NAME)."
    ),
    data_dir: Optional[str] = typer.Option(
        None, metavar="DIR", help="Directory with <task>/<split>.jsonl (default: $GRUE_DATA_DIR, else the Hub)."
    ),
    launcher: str = typer.Option(
        "local",
        metavar="local|slurm|ray",
        help="Where cells run: local subprocesses, SLURM "
        "jobs (pip install 'grue[slurm]') or Ray tasks (pip install 'grue[ray]').",
    ),
    jobs: int = typer.Option(
        1, metavar="N", help="local and ray: cells at once (the CPU threads are divided between them)."
    ),
    processes: int = typer.Option(
        1, metavar="N", help="Training processes per cell (DDP under torchrun; one per GPU)."
    ),
    slurm_partition: Optional[str] = typer.Option(
        None, "--slurm-partition", metavar="NAME", help="slurm: the partition."
    ),
    slurm_gpus_per_job: int = typer.Option(0, "--slurm-gpus-per-job", metavar="N", help="slurm: GPUs per job."),
    slurm_cpus_per_job: Optional[int] = typer.Option(
        None, "--slurm-cpus-per-job", metavar="N", help="slurm: CPUs per job."
    ),
    slurm_time: int = typer.Option(240, "--slurm-time", metavar="MINUTES", help="slurm: time limit of a job."),
    slurm_account: Optional[str] = typer.Option(None, "--slurm-account", metavar="NAME", help="slurm: the account."),
    ray_address: Optional[str] = typer.Option(
        None,
        "--ray-address",
        metavar="ADDR",
        help="ray: a cluster's address (default: a local Ray started for this command).",
    ),
    who: Optional[str] = typer.Option(None, "--who", metavar="NAME", help="Who submits (default: git's user.name)."),
    link: Optional[str] = typer.Option(None, "--link", metavar="URL", help="A paper or code link for the submission."),
    force_rerun: bool = typer.Option(False, "--force-rerun", help="Make again the cells made with other settings."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (each cell's commands and cost) and stop."),
):
    """Train and evaluate every task x seed (x stage), resumably, and write a submission the leaderboard validates."""
    from grue.benchmark.launch import Launch
    from grue.benchmark.plan import Options, parse_tasks
    from grue.benchmark.run import run_benchmark

    options = Options(
        algo=algo,
        name=name,
        model=model,
        tasks=parse_tasks(tasks),
        seeds=seeds,
        preset=preset,
        sets=list(set_),
        init_from_algo=init_from_algo,
        data_dir=data_dir,
        processes=processes,
    )
    launch = Launch(
        launcher=launcher,
        jobs=jobs,
        slurm_partition=slurm_partition,
        slurm_gpus_per_job=slurm_gpus_per_job,
        slurm_cpus_per_job=slurm_cpus_per_job,
        slurm_time=slurm_time,
        slurm_account=slurm_account,
        ray_address=ray_address,
    )
    out = out or Path("leaderboard") / "submissions" / name
    work = work_dir or Path("runs") / "benchmark" / name
    code = run_benchmark(
        options,
        launch,
        out,
        work,
        submitter=who,
        link=link,
        force_rerun=force_rerun,
        dry_run=dry_run,
        say=lambda line: typer.echo(line),
    )
    if code:
        raise typer.Exit(code)


@benchmark_app.command("status", cls=WordsCommand)
@friendly
def status(
    work: Path = typer.Argument(..., metavar="DIR", help="The benchmark's work folder (runs/benchmark/NAME)."),
):
    """A table of a benchmark's cells: done, running, failed (the last line of its log), waiting."""
    from grue.benchmark.state import print_status

    print_status(work)
