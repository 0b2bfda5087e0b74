"""The test clusters of tests/clusters.py work: a real one-node SLURM runs submitit jobs (with a dependency between
two), and a local Ray runs two subprocess tasks at once. Each prints its start-up and round-trip times (`pytest -s`)."""

import subprocess
import sys
import time

import pytest

from clusters import ray_cluster, slurm_cluster, submitit_result

pytestmark = pytest.mark.slow  # each starts a cluster: about 10 s

# A job that writes when it started and ended (time.time(), so files from two jobs compare) and prints 6*7.
_STAMPED = (
    "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); p.with_suffix('.start').write_text(repr(time.time())); "
    "time.sleep(float(sys.argv[2])); p.with_suffix('.end').write_text(repr(time.time())); print(6 * 7)"
)


def test_slurm_runs_submitit_jobs_in_dependency_order(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit", reason="submitit is not installed: pip install -e '.[slurm]'")
    started = time.monotonic()
    with slurm_cluster(tmp_path) as cluster:
        print(
            f"\nslurm: cluster up in {time.monotonic() - started:.1f} s ({cluster.cpus} CPUs, {cluster.memory_mb} MB)"
        )
        ex = submitit.AutoExecutor(folder=tmp_path / "jobs" / "%j", cluster="slurm")
        ex.update_parameters(slurm_partition=cluster.partition, timeout_min=5, cpus_per_task=1)
        # The submitting process's environment reaches the job (sbatch exports it all by default).
        monkeypatch.setenv("GRUE_TEST_MARKER", "from-the-test")

        submitted = time.monotonic()
        job = ex.submit(
            submitit.helpers.CommandFunction(
                [sys.executable, "-c", "import os; print(6 * 7, os.environ['GRUE_TEST_MARKER'])"], verbose=False
            )
        )
        out = submitit_result(job, timeout_s=60)
        print(f"slurm: trivial job {time.monotonic() - submitted:.2f} s from submit to result")
        assert "42 from-the-test" in out

        first = ex.submit(
            submitit.helpers.CommandFunction([sys.executable, "-c", _STAMPED, str(tmp_path / "first"), "3"])
        )
        ex.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{first.job_id}"})
        second = ex.submit(
            submitit.helpers.CommandFunction([sys.executable, "-c", _STAMPED, str(tmp_path / "second"), "0"])
        )
        # While the first runs (or waits to), the second waits for it, though a CPU is free.
        reason = subprocess.run(
            ["squeue", "-h", "-j", str(second.job_id), "-o", "%T %r"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        assert reason == "PENDING Dependency", reason
        assert "42" in submitit_result(first, timeout_s=60)
        assert "42" in submitit_result(second, timeout_s=60)
        first_end = float((tmp_path / "first.end").read_text())
        second_start = float((tmp_path / "second.start").read_text())
        print(f"slurm: the dependent job started {second_start - first_end:.2f} s after the first ended")
        assert second_start >= first_end
    stopped = subprocess.run(["pgrep", "-f", str(cluster.conf)], capture_output=True, text=True).stdout.split()
    assert not stopped, f"daemons left running: {stopped}"


def test_ray_runs_two_subprocess_tasks_at_once():
    started = time.monotonic()
    with ray_cluster(num_cpus=2) as ray:
        print(f"\nray: init in {time.monotonic() - started:.1f} s")

        @ray.remote(num_cpus=1)
        def run(code: str) -> tuple[float, float, str]:
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            return t0, time.time(), out

        submitted = time.monotonic()
        assert ray.get(run.remote("print(6 * 7)"), timeout=60)[2].strip() == "42"
        print(f"ray: trivial task {time.monotonic() - submitted:.2f} s from submit to result")

        (s1, e1, o1), (s2, e2, o2) = ray.get(
            [run.remote("import time; time.sleep(2); print(1)"), run.remote("import time; time.sleep(2); print(2)")],
            timeout=60,
        )
        assert (o1.strip(), o2.strip()) == ("1", "2")
        assert s1 < e2 and s2 < e1, "the two tasks did not overlap"
