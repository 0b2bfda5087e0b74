"""Throw-away clusters for the launcher tests: a real one-node SLURM and a local Ray, both started by the test.

Not a test file. `slurm_cluster(tmp_path)` and `ray_cluster()` are context managers; each skips the test
(pytest.skip, with the reason) when its software is missing or its daemons do not come up in time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SLURM_START_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    conf: Path  # the slurm.conf; SLURM_CONF points at it while the cluster runs
    partition: str  # the one partition (also the default one)
    node: str  # the one node's name
    cpus: int
    memory_mb: int
    root: Path  # state, spool, logs and pid files all live here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> dict[str, str]:
    """This machine as slurmd sees it (`slurmd -C`): CPUs, topology and RealMemory, so the node is not drained
    for a mismatch."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0] if out else ""))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    if not all(k in fields for k in keys):  # fall back to Python's view: CPUs and memory only
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        return {"CPUs": str(os.cpu_count() or 1), "RealMemory": str(mem)}
    return {k: fields[k] for k in keys}


def _last_log_line(root: Path, daemon: str) -> str:
    """The last line a daemon logged: its log file, else what it printed before it could open one."""
    for path in (root / "log" / f"{daemon}.log", root / "log" / f"{daemon}.stdout"):
        with contextlib.suppress(OSError):
            lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
            if lines:
                return lines[-1]
    return f"{daemon} logged nothing"


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each daemon we started, then SIGKILL what is left after 15 s; reap them all."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


@contextlib.contextmanager
def slurm_cluster(tmp_path: Path, partition: str = "grue", overrides: dict | None = None):
    """A single-node SLURM on this machine for one test: writes slurm.conf under tmp_path, starts slurmctld and
    slurmd in the foreground (-D) as child processes, waits until `sinfo` reports the node idle, points SLURM_CONF
    at it (so sbatch, squeue, scontrol, scancel and submitit use it) and yields a SlurmCluster. On exit: scancel
    every job, stop both daemons, restore SLURM_CONF. Needs root (slurmd starts jobs as their user).
    `overrides` changes slurm.conf settings (a value of None leaves that setting out).

    Slurm 22.05 (Debian 12) still ships auth/none and cred/none, so no munged is needed; newer Slurm releases
    dropped them and would need a munged with its own key and socket here."""
    missing = [b for b in ("slurmctld", "slurmd", "sinfo", "sbatch", "scancel", "srun") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM is not installed (no {', '.join(missing)}): `make system-deps` installs it")
    if os.geteuid() != 0:
        pytest.skip("the test SLURM needs root: slurmd runs jobs as the submitting user")
    root = Path(tmp_path) / "slurm"
    for sub in ("state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    hw = _node_hardware()
    node = "localhost"
    conf = root / "slurm.conf"
    settings = {
        "ClusterName": "grue-test",
        # "localhost" is accepted as the controller's host whatever this machine is called; reached on 127.0.0.1.
        "SlurmctldHost": "localhost(127.0.0.1)",
        # Fresh ports each time: never the system's 6817/6818, never another test's cluster.
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        # No munge: the daemons and commands trust each other. Needed: the default auth/munge fails to register
        # slurmd without a munged, the default cred/munge fails every job step ("Error generating job credential").
        "AuthType": "auth/none",
        "CredType": "cred/none",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        # Everything the daemons write goes under tmp_path.
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "run" / "slurmctld.pid",
        "SlurmdPidFile": root / "run" / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",
        "SlurmctldDebug": "info",
        "SlurmdDebug": "info",
        "MailProg": "/bin/true",  # the default /bin/mail is not installed (slurmctld logs an error)
        # No cgroups (a container may not let us use them): track job processes through /proc, bind nothing.
        # Needed: with the default proctrack/cgroup every task launch fails ("Plugin initialization failed").
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        # No accounting (it needs slurmdbd and a database): sacct does not work here, squeue/scontrol do.
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        "MpiDefault": "none",
        "SwitchType": "switch/none",
        # Cores are the consumable resource, so two 1-CPU jobs run side by side (the default select/linear gives
        # each job the whole node); memory is not scheduled, so jobs need no --mem.
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        # Safety nets, not needed here: a node that went DOWN comes back once slurmd registers, and the node's
        # hardware is taken as written below rather than checked (a mismatch would drain it).
        "ReturnToService": 2,
        "SlurmdParameters": "config_overrides",
        # Finished jobs stay visible to squeue/scontrol for 5 minutes; a cancelled job is killed 2 s after SIGTERM.
        "MinJobAge": 300,
        "KillWait": 2,
        "InactiveLimit": 0,
    }
    settings.update(overrides or {})
    lines = [f"{k}={v}" for k, v in settings.items() if v is not None]
    lines.append(
        f"NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} "
        + " ".join(f"{k}={v}" for k, v in hw.items())
        + " State=UNKNOWN"
    )
    lines.append(f"PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP")
    conf.write_text("\n".join(lines) + "\n")

    env = dict(os.environ, SLURM_CONF=str(conf))
    procs: list[subprocess.Popen] = []
    old_conf = os.environ.get("SLURM_CONF")
    try:
        started = time.monotonic()
        # -D: stay in the foreground (we own the process); -i: ignore state left over from an earlier run.
        for cmd, log in (
            (["slurmctld", "-D", "-i", "-f", str(conf)], "slurmctld"),
            (["slurmd", "-D", "-N", node, "-f", str(conf)], "slurmd"),
        ):
            out = open(root / "log" / f"{log}.stdout", "wb")
            procs.append(
                subprocess.Popen(
                    cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            )
            out.close()
        state = ""
        while time.monotonic() - started < SLURM_START_TIMEOUT_S:
            for p, name in zip(procs, ("slurmctld", "slurmd")):
                if p.poll() is not None:
                    pytest.skip(f"{name} exited with {p.returncode}: {_last_log_line(root, name)}")
            state = subprocess.run(
                ["sinfo", "-h", "-n", node, "-o", "%t"], env=env, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.skip(
                f"the test SLURM's node was not idle after {SLURM_START_TIMEOUT_S} s (sinfo: {state!r}); "
                f"slurmctld: {_last_log_line(root, 'slurmctld')}; "
                f"slurmd: {_last_log_line(root, 'slurmd')}"
            )
        os.environ["SLURM_CONF"] = str(conf)
        yield SlurmCluster(
            conf=conf, partition=partition, node=node, cpus=int(hw["CPUs"]), memory_mb=int(hw["RealMemory"]), root=root
        )
    finally:
        if procs and procs[0].poll() is None:
            subprocess.run(["scancel", "--full", "--partition", partition], env=env, capture_output=True, timeout=30)
            # Give slurmd a moment to kill the jobs' processes before it goes itself.
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and subprocess.run(
                    ["squeue", "-h", "-t", "R,CG,PD"], env=env, capture_output=True, text=True, timeout=10
                ).stdout.strip()
            ):
                time.sleep(0.5)
        _stop(procs[::-1])  # slurmd first, then slurmctld
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf


def submitit_result(job, timeout_s: float = 60):
    """`job.result()` of a submitit job on the test SLURM, bounded: without accounting sacct fails, so submitit never
    learns that a job died before writing its result and would wait forever. This waits for the result file while
    `scontrol` says the job is pending or running, and fails the test (with the job's stderr) otherwise."""
    deadline = time.monotonic() + timeout_s
    state = ""
    while not job.paths.result_pickle.exists():
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", str(job.job_id)], capture_output=True, text=True, timeout=10
        ).stdout
        state = (re.search(r"JobState=(\S+)", out) or [None, "GONE"])[1]
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            break
        if time.monotonic() > deadline:
            subprocess.run(["scancel", str(job.job_id)], capture_output=True, timeout=10)
            break
        time.sleep(0.2)
    else:
        return job.result()
    time.sleep(1)  # a job that just completed may still be writing its result
    if job.paths.result_pickle.exists():
        return job.result()
    pytest.fail(
        f"submitit job {job.job_id} left no result (state {state}, waited up to {timeout_s} s); "
        f"stderr:\n{job.stderr() or ''}"
    )


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2):
    """A local Ray for one test, in this process: `ray.init` starts a head node (GCS, raylet, num_cpus workers)
    on 127.0.0.1 with its files under a fresh /tmp folder, and `ray.shutdown` stops it on exit."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]'")
    if ray.is_initialized():
        pytest.skip("Ray is already initialized in this process")
    # Short path: Ray puts unix sockets under it, which must stay under 107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    # No token authentication: the cluster listens on 127.0.0.1 only, and Ray would write a token to ~/.ray.
    old_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        try:
            ray.init(
                num_cpus=num_cpus,
                num_gpus=0,
                include_dashboard=False,  # no dashboard process, no HTTP port
                log_to_driver=False,  # workers' output stays in temp_dir, not in pytest's
                object_store_memory=80 * 2**20,  # 80 MB of shared memory instead of 30 % of the RAM
                _temp_dir=temp_dir,
                _node_ip_address="127.0.0.1",  # localhost only
                configure_logging=False,
            )
        except Exception as e:  # noqa: BLE001 - any failure to start is a skip, with its reason
            with contextlib.suppress(Exception):
                ray.shutdown()
            pytest.skip(
                f"ray.init failed: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            )
        try:
            yield ray
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
        if old_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old_auth
