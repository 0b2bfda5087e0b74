"""Launchers: run the cells of a plan on an existing engine, each cell as ``python -m grue.benchmark.cell``.

- ``local``: up to ``jobs`` cells at once as subprocesses of this command, the machine's CPU threads divided between
  them. A cell's process gets SIGTERM when this command dies (Linux's parent-death signal), so a killed benchmark
  leaves no orphan training: each cell stops at its next checkpoint.
- ``slurm``: one SLURM job per cell through submitit; a second stage waits for its first with a SLURM dependency
  (``afterok``, and ``kill-on-invalid-dep`` so it is cancelled when the first fails).
- ``ray``: one Ray task per cell with its resource request; a second stage takes its first stage's result as an
  argument, so Ray runs it after.

Each returns {cell id: exit code}; a cell whose first stage failed is not run (exit code None).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from grue.benchmark.state import cell_dir
from grue.errors import GrueError

EXTRAS = {"slurm": ("submitit", "grue[slurm]"), "ray": ("ray", "grue[ray]")}


@dataclass
class Launch:
    """How to launch: the launcher and its options."""

    launcher: str = "local"
    jobs: int = 1
    slurm_partition: str | None = None
    slurm_gpus_per_job: int = 0
    slurm_cpus_per_job: int | None = None
    slurm_time: int = 240
    """Minutes a SLURM job may run."""
    slurm_account: str | None = None
    ray_address: str | None = None
    env: dict = field(default_factory=dict)
    """Environment variables every cell gets on top of this process's."""


def require(launcher: str) -> None:
    """One line naming the extra to install when a launcher's engine is missing."""
    if launcher not in ("local", *EXTRAS):
        raise GrueError(f"--launcher {launcher}: accepted: local, slurm, ray")
    if launcher in EXTRAS:
        import importlib.util

        module, extra = EXTRAS[launcher]
        if importlib.util.find_spec(module) is None:
            raise GrueError(f"--launcher {launcher} needs {module}: pip install '{extra}'")


def command(work: Path, cell_id: str) -> list[str]:
    return [sys.executable, "-m", "grue.benchmark.cell", str(Path(work).resolve()), cell_id]


def threads_per_cell(jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, jobs))


def cell_env(threads: int, extra: dict) -> dict:
    env = {**os.environ, **extra}
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux: prctl PR_SET_PDEATHSIG)
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def run_local(work: Path, cells: list[dict], launch: Launch, say) -> dict[str, int | None]:
    """Run ``cells`` as subprocesses, ``launch.jobs`` at once, each after the cell it starts from."""
    env = cell_env(threads_per_cell(launch.jobs), launch.env)
    waiting, running, codes = list(cells), {}, {}
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    while waiting or running:
        for cell in list(waiting):
            if len(running) >= launch.jobs:
                break
            after = cell.get("after")
            if after in running or (after and after in [c["id"] for c in waiting]):
                continue
            waiting.remove(cell)
            if after and codes.get(after, 0) != 0:
                codes[cell["id"]] = None
                say(f"{cell['id']}: not run, its first stage {after} failed")
                continue
            log = open(cell_dir(work, cell["id"]) / "log.txt", "ab")
            running[cell["id"]] = (
                subprocess.Popen(
                    command(work, cell["id"]), stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec
                ),
                log,
            )
            say(f"{cell['id']}: started")
        for cell_id, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                codes[cell_id] = proc.returncode
                del running[cell_id]
                say(f"{cell_id}: {'done' if proc.returncode == 0 else f'failed (exit {proc.returncode})'}")
        time.sleep(0.2)
    return codes


def run_slurm(work: Path, cells: list[dict], launch: Launch, say) -> dict[str, int | None]:
    """One SLURM job per cell through submitit; waits for all of them."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(Path(work).resolve() / "slurm" / "%j"), cluster="slurm")
    threads = launch.slurm_cpus_per_job or threads_per_cell(1)
    params = dict(
        timeout_min=launch.slurm_time, cpus_per_task=threads, nodes=1, tasks_per_node=1, slurm_job_name="grue-benchmark"
    )
    if launch.slurm_partition:
        params["slurm_partition"] = launch.slurm_partition
    if launch.slurm_gpus_per_job:
        params["gpus_per_node"] = launch.slurm_gpus_per_job
    if launch.slurm_account:
        params["slurm_account"] = launch.slurm_account
    env = cell_env(threads, launch.env)
    jobs = {}
    for cell in cells:
        extra = {}
        if cell.get("after") in jobs:
            extra = {"dependency": f"afterok:{jobs[cell['after']].job_id}", "kill_on_invalid_dep": "yes"}
        executor.update_parameters(**params, slurm_additional_parameters=extra)
        log = str(cell_dir(work, cell["id"]) / "log.txt")
        fn = submitit.helpers.CommandFunction(
            ["sh", "-c", 'exec "$@" >> "$0" 2>&1', log, *command(work, cell["id"])], env=env
        )
        jobs[cell["id"]] = executor.submit(fn)
        say(f"{cell['id']}: SLURM job {jobs[cell['id']].job_id}")
    codes: dict[str, int | None] = {}
    ended: dict[str, float] = {}
    while len(codes) < len(jobs):
        for cell_id, job in jobs.items():
            if cell_id in codes:
                continue
            if Path(job.paths.result_pickle).exists():  # the job's own verdict, pickled by submitit
                try:
                    job.result()
                    codes[cell_id] = 0
                except Exception as e:  # the cell's command failed
                    codes[cell_id] = 1
                    say(f"{cell_id}: failed ({type(e).__name__})")
                    continue
                say(f"{cell_id}: done")
                continue
            state = slurm_state(job.job_id)
            if state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"):
                continue
            # ended without a result (cancelled: its first stage failed; killed; out of time), or forgotten by
            # SLURM: give submitit's result file a few seconds to appear before calling it
            first_seen = ended.setdefault(cell_id, time.time())
            if time.time() - first_seen > 10:
                codes[cell_id] = None if state.startswith("CANCELLED") else 1
                say(f"{cell_id}: SLURM job {job.job_id} ended {state.lower()} without a result")
        time.sleep(1.0)
    return codes


def slurm_state(job_id: str) -> str:
    """A job's state as ``scontrol`` reports it (works without SLURM's accounting database, unlike sacct);
    UNKNOWN once SLURM has forgotten the job."""
    import re

    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "UNKNOWN"
    found = re.search(r"JobState=(\S+)", out.stdout)
    return found.group(1) if found else "UNKNOWN"


def run_ray(work: Path, cells: list[dict], launch: Launch, say) -> dict[str, int | None]:
    """One Ray task per cell (``num_cpus`` = its threads); a second stage runs after its first, and not at all when
    the first failed."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=launch.ray_address, include_dashboard=False, log_to_driver=False)
    threads = threads_per_cell(launch.jobs)
    env = cell_env(threads, launch.env)

    @ray.remote(num_cpus=threads, max_retries=0)
    def run(cmd: list[str], log: str, env: dict, first_code=0):
        if first_code != 0:
            return None
        with open(log, "ab") as f:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode

    refs = {}
    for cell in cells:
        first = refs.get(cell.get("after"), 0)
        refs[cell["id"]] = run.remote(
            command(work, cell["id"]), str(cell_dir(work, cell["id"]) / "log.txt"), env, first
        )
    try:
        codes = {}
        for cell_id, ref in refs.items():
            codes[cell_id] = ray.get(ref)
            say(f"{cell_id}: {'done' if codes[cell_id] == 0 else 'not run' if codes[cell_id] is None else 'failed'}")
        return codes
    finally:
        if started_here:
            ray.shutdown()


LAUNCHERS = {"local": run_local, "slurm": run_slurm, "ray": run_ray}
