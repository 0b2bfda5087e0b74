"""The benchmark's plan without training: cells, stages, costs, the settings fingerprint, --dry-run and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from grue.benchmark.plan import Options, parse_tasks, plan, stage_sets
from grue.errors import GrueError
from grue.fingerprint import differences, fingerprint, scoring_settings
from grue.tasks import task_names


def test_fingerprint_ignores_places_logging_processes_and_seed():
    base = {
        "grue_version": "0.2.0",
        "task_version": "1.0",
        "world_size": 1,
        "evaluated_weights": "/a/checkpoint",
        "run": {
            "model": "gpt2",
            "seed": 0,
            "output_dir": "/a",
            "data_dir": "/d",
            "report_to": "none",
            "log_samples": 4,
            "checkpoint_every": 1,
            "warn_clipfrac": 0.3,
            "init_from": "",
            "base_model": "",
        },
        "ppo": {"lr": 1e-6},
    }
    other = {
        **base,
        "grue_version": "0.2.1",
        "world_size": 2,
        "evaluated_weights": "/b/checkpoint",
        "run": {
            **base["run"],
            "seed": 3,
            "output_dir": "/b",
            "data_dir": "/e",
            "report_to": "wandb",
            "log_samples": 0,
            "checkpoint_every": 5,
            "warn_clipfrac": 0.9,
        },
    }
    assert fingerprint(base) == fingerprint(other)
    assert len(fingerprint(base)) == 16 and all(c in "0123456789abcdef" for c in fingerprint(base))
    changed = {**base, "ppo": {"lr": 1e-5}}
    assert fingerprint(changed) != fingerprint(base)
    assert differences(base, changed) == ["ppo.lr: 1e-06 -> 1e-05"]
    assert fingerprint({**base, "task_version": "2.0"}) != fingerprint(base)
    # a run started from a checkpoint: the checkpoint's path is a place; its lineage is a setting
    a = {
        **base,
        "run": {
            **base["run"],
            "model": "/x/run/checkpoint",
            "init_from": "/x/run",
            "base_model": "gpt2",
            "init_algo": "supervised",
        },
    }
    b = {**a, "run": {**a["run"], "model": "/y/run/checkpoint", "init_from": "/y/run"}}
    assert fingerprint(a) == fingerprint(b) != fingerprint(base)
    assert "model" not in scoring_settings(a)["run"] and scoring_settings(a)["run"]["init_algo"] == "supervised"


def test_plan_orders_stages_and_the_cost_is_counted_as_the_readme_counts_it():
    cells = plan(Options(algo="ppo", name="x", tasks=["imdb", "wmt16"], seeds=2, init_from_algo="supervised"))
    assert [c.id for c in cells] == [
        "imdb-s0-supervised",
        "imdb-s0-ppo",
        "imdb-s1-supervised",
        "imdb-s1-ppo",
        "wmt16-s0-supervised",
        "wmt16-s0-ppo",
        "wmt16-s1-supervised",
        "wmt16-s1-ppo",
    ]
    assert [c.after for c in cells[:2]] == [None, "imdb-s0-supervised"] and [c.final for c in cells[:2]] == [
        False,
        True,
    ]
    assert (
        cells[1].config["run"]["init_algo"] == "supervised"
        and cells[1].config["run"]["base_model"] == cells[0].config["run"]["model"]
    )
    assert cells[0].settings != cells[2].settings or cells[0].config["run"]["seed"] != cells[2].config["run"]["seed"]
    # the paper's IMDB PPO: 1280 tokens of 48 per completion -> 27 episodes; 5 epochs x 20 minibatches of 64 tokens,
    # each touching at most 27 episodes; scoring by policy, reference and critic
    k = cells[1].cost
    assert k == {"iterations": 50, "tokens": 27 * 48, "episodes": 27, "passes": 3 * 27 + 100 * 27}
    smoke = plan(Options(algo="grpo", name="x", tasks=["imdb"], seeds=1, preset="smoke"))[0]
    a = smoke.config["grpo"]
    assert smoke.cost["passes"] == 2 * a["rollout_size"] + a["epochs"] * a["rollout_size"]  # no critic


def test_sets_go_to_their_stage():
    sets = ["ppo.lr=1e-5", "supervised.lr=1e-4", "run.reward=lexicon", "generation.top_k=10", "kl_coef=0.2"]
    assert stage_sets(sets, "ppo") == ["ppo.lr=1e-5", "run.reward=lexicon", "generation.top_k=10", "kl_coef=0.2"]
    assert stage_sets(sets, "supervised") == [
        "supervised.lr=1e-4",
        "run.reward=lexicon",
        "generation.top_k=10",
        "kl_coef=0.2",
    ]
    options = Options(
        algo="ppo",
        name="x",
        tasks=["imdb"],
        seeds=1,
        preset="smoke",
        init_from_algo="supervised",
        sets=["ppo.lr=1e-5", "supervised.lr=1e-4"],
    )
    first, second = plan(options)
    assert (
        first.train_command(Path("/w/a"), None, options)
        == "grue train imdb --algo supervised --seed 0 --preset smoke --set supervised.lr=1e-4 --output-dir /w/a"
    )
    assert (
        second.train_command(Path("/w/b"), Path("/w/a"), options)
        == "grue train imdb --algo ppo --seed 0 --init-from /w/a --preset smoke --set ppo.lr=1e-5 --output-dir /w/b"
    )
    assert options.command() == (
        "grue benchmark run --algo ppo --name x --tasks imdb --seeds 1 --init-from-algo supervised "
        "--preset smoke --set ppo.lr=1e-5 --set supervised.lr=1e-4"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(algo="ppo", name="x", sets=["eval.num_beams=4"]), "evaluates with the task's own settings"),
        (dict(algo="ppo", name="x", sets=["nlpo.lr=1"]), "nlpo is not trained by this benchmark"),
        (dict(algo="ppo", name="x", sets=["run.seed=3"]), "the benchmark sets this itself"),
        (dict(algo="ppo", name="a b"), "--name 'a b'"),
        (dict(algo="ppo", name="x", seeds=0), "--seeds 0"),
        (dict(algo="ppo", name="x", init_from_algo="ppo"), "equals --algo"),
        (dict(algo="ppx", name="x"), "unknown algorithm"),
    ],
)
def test_bad_options_are_one_line(options, message):
    with pytest.raises(GrueError, match=message):
        plan(Options(tasks=["imdb"], **options))


def test_parse_tasks():
    assert parse_tasks("all") == task_names()
    assert parse_tasks("wmt16, imdb,wmt16") == ["wmt16", "imdb"]
    with pytest.raises(GrueError, match="unknown task imbd"):
        parse_tasks("imbd")


def test_dry_run_prints_the_paper_ppo_plan_for_all_seven_tasks(tmp_path):
    done = run_cli("benchmark", "run", "--algo", "ppo", "--name", "paper-ppo", "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for task in task_names():
        for seed in range(5):
            assert f"{task}-s{seed}-ppo" in done.stdout
    assert "grue train imdb --algo ppo --seed 0 --output-dir" in done.stdout
    assert "--split validation" in done.stdout and "35 cells" in done.stdout and "in all:" in done.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "leaderboard").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--launcher", "kube"], "--launcher kube: accepted: local, slurm, ray"),
        (["--tasks", "imbd"], "--tasks imbd: unknown task imbd"),
        (["--jobs", "0"], "--jobs 0"),
        (["--set", "eval.batch_size=2"], "eval.* cannot be set"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    done = run_cli("benchmark", "run", "--algo", "ppo", "--name", "x", *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_status_of_a_folder_that_is_no_benchmark(tmp_path):
    done = run_cli("benchmark", "status", str(tmp_path))
    assert done.returncode == 2 and "not a benchmark work folder" in done.stderr
