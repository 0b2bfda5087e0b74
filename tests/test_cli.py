"""The `grue` CLI end to end, in subprocesses: smoke run, resume, bad input, kills, data parallel."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from conftest import FAST, REPO, cli_env, cli_in_process, run_cli

REQUIRED = (
    "iteration",
    "reward/mean",
    "reward/std",
    "kl/mean",
    "kl/coef",
    "loss/policy",
    "loss/value",
    "policy/entropy",
    "policy/clipfrac",
    "policy/approx_kl",
    "time/rollout_s",
    "time/update_s",
    "tokens_per_s",
    "world_size",
)


def metrics(run) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}


def no_hub_env() -> dict:
    """A `grue` environment as on a fresh machine without the Hugging Face Hub: HF_HUB_OFFLINE is not set, and
    the Hub's address is a closed local port (the sandbox's case: nothing answers)."""
    env = {
        k: v for k, v in cli_env().items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    return env


def warnings_in(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if "Warning" in l or "Retrying" in l or l.startswith("WARNING")]


def mode(path) -> str:
    return oct(path.stat().st_mode & 0o777)


@pytest.mark.slow
def test_quickstart_train_eval_leaderboard_offline(tmp_path):
    """The README's Quickstart on a machine without the Hub, with a 0022 umask: the smoke run learns, names its
    run directory first, and warns of nothing; `grue eval --checkpoint RUN` works as training did (built-in
    prompts, the lexicon stand-in beside the skipped classifier, every skip naming its setting); the leaderboard
    builds; every file grue wrote is 0644 and every folder 0755, as a plain open()/mkdir() would make them."""
    exe = shutil.which("grue")
    cmd = [exe] if exe else [sys.executable, "-m", "grue_cli.main"]
    run, env = tmp_path / "smoke", no_hub_env()

    def grue(*args):
        return subprocess.run(
            cmd + list(args),
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=REPO,
            preexec_fn=lambda: os.umask(0o022),
        )

    p = grue("train", "imdb", "--algo", "ppo", "--preset", "smoke", "--output-dir", str(run))
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[0] == f"run directory {run}"
    assert "reward went up" in p.stdout.splitlines()[-1]
    # the README's sample line is what this deterministic run prints (built-in prompts, torch 2.13.0 on CPU)
    iterations = yaml.safe_load((REPO / "tasks" / "imdb" / "presets" / "smoke.yaml").read_text())["ppo"]["iterations"]
    shown = re.search(
        rf"^done: {iterations} iterations in runs/smoke;.*$", (REPO / "README.md").read_text(encoding="utf-8"), re.M
    )
    assert shown and p.stdout.splitlines()[-1] == shown.group(0).replace("runs/smoke", str(run)), p.stdout.splitlines()[
        -1
    ]
    assert not warnings_in(p.stderr), p.stderr[-2000:]
    rows = metrics(run)
    assert len(rows) == iterations == 15 and all(k in rows[0] for k in REQUIRED)
    raised = {k: sum(1 for r in rows if r[k]) for k in rows[0] if k.startswith("warnings/")}
    assert raised and not any(raised.values()), (
        raised
    )  # the smoke preset trips no stability warning (clipfrac_high did)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reward/last_20pct"] > summary["reward/first_20pct"] + 0.1
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["run"]["model"] == "tiny-gpt2" and cfg["ppo"]["iterations"] == iterations and cfg["world_size"] == 1
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint")
    tok = AutoTokenizer.from_pretrained(run / "checkpoint")
    assert model.config.model_type == "gpt2" and tok.eos_token_id == 1
    assert (run / "checkpoint" / "model.safetensors").is_file() and (
        run / "checkpoint" / "trainer" / "optimizer.pt"
    ).is_file()

    p = grue("eval", "--checkpoint", str(run))
    assert p.returncode == 0, p.stderr[-2000:]
    assert not warnings_in(p.stderr), p.stderr[-2000:]
    res = json.loads((run / "eval" / "builtin" / "results.json").read_text())  # built-in prompts: no split of the data
    from grue.tasks import imdb

    assert res["config"]["run"]["builtin_prompts"] is True and res["samples"]["evaluated"] == len(imdb.BUILTIN_OPENINGS)
    assert res["split"] == "builtin" and not (run / "eval" / "test").exists()
    assert "not a benchmark result" in res["notes"] and "note: prompts: the task's" in p.stdout
    # the classifier's number is never made up: skipped, naming the evaluation's setting (not the training reward's)
    assert "sentiment_score" not in res["metrics"] and 0.0 <= res["metrics"]["sentiment_lexicon"]["value"] <= 1.0
    reason = res["skipped"]["sentiment_score"]
    assert (
        "--set eval.sentiment_model=PATH" in reason and "cannot be reached" in reason and "reward_model" not in reason
    )
    assert "--data-dir" in res["skipped"]["perplexity"]
    samples = [json.loads(l) for l in (run / "eval" / "builtin" / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in samples] == list(imdb.BUILTIN_OPENINGS)

    site = tmp_path / "site"
    p = grue("leaderboard", "build", "--out", str(site))
    assert p.returncode == 0 and (site / "index.html").is_file(), p.stderr[-2000:]

    written = [run, *run.rglob("*"), site, *site.rglob("*")]
    assert {mode(f) for f in written if f.is_file()} == {"0o644"}, [
        (str(f), mode(f)) for f in written if mode(f) != "0o644"
    ][:5]
    assert {mode(d) for d in written if d.is_dir()} == {"0o755"}


@pytest.mark.slow
def test_smoke_preset_reads_grue_data_dir(tmp_path, data_dir):
    run = tmp_path / "real"
    p = run_cli(
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--iterations",
        "2",
        "--output-dir",
        str(run),
        "--quiet",
        *FAST,
        data_dir=str(data_dir),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    from grue.tasks import imdb

    assert samples and not any(s["prompt"] in imdb.BUILTIN_OPENINGS for s in samples)


# tiny-gpt2 resumes in a process of its own, which has only the checkpoint's RNG states to go on; the runs before
# it, and all of tiny-t5's (the seq2seq model's part of the state), run in this process.
@pytest.mark.parametrize("model,cli", [("tiny-gpt2", run_cli), ("tiny-t5", cli_in_process)])
def test_resume_gives_the_same_metrics(tmp_path, model, cli):
    common = ["--preset", "smoke", "--model", model, "--quiet", *FAST]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli_in_process("train", "imdb", *common, "--iterations", "4", "--output-dir", str(straight)).returncode == 0
    assert cli_in_process("train", "imdb", *common, "--iterations", "2", "--output-dir", str(split)).returncode == 0
    p = cli("train", "imdb", "--resume", str(split), "--iterations", "4", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    a, b = metrics(straight), metrics(split)
    assert [r["iteration"] for r in b] == [1, 2, 3, 4]
    assert [comparable(r) for r in a] == [comparable(r) for r in b]


BAD = [
    (
        ["train", "nosuchtask"],
        "unknown task 'nosuchtask'; accepted: cnn_dailymail, commongen, dailydialog, imdb, narrativeqa, totto, wmt16",
    ),
    (["train", "imdb", "--algo", "dqn"], "unknown algorithm 'dqn'; accepted: ppo"),
    (["train", "imdb", "--preset", "huge"], "unknown preset 'huge' for task 'imdb'; accepted: rl4lms-97df0bd, smoke"),
    (["train", "imdb", "--set", "ppo.learning_rate=1"], "unknown key 'ppo.learning_rate'"),
    (["train", "imdb", "--set", "ppo.lr=fast"], "ppo.lr: expected float, got 'fast'"),
    (["train", "imdb", "--set", "ppo.critic=both"], "is not one of: separate, shared"),
    (["train", "imdb", "--set", "novalue"], "--set expects key=value"),
    (["train", "imdb", "--preset", "smoke", "--model", "no/such-model-here"], "could not load"),
    (["train", "imbd"], "unknown task 'imbd' (did you mean 'imdb'?); accepted: cnn_dailymail, commongen"),
    (
        ["train", "imdb", "--algo", "nlp"],
        "unknown algorithm 'nlp' (did you mean 'nlpo'?); accepted: ppo, nlpo, a2c, supervised",
    ),
    (["train", "imdb", "--set", "generation.top_k=-5"], "generation.top_k must be >= 0 (0: no limit), got -5"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    p = cli_in_process(*args, "--output-dir", str(tmp_path / "run"), "--quiet")
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert not (tmp_path / "run").exists(), "a run that failed before its first iteration leaves nothing behind"


@pytest.mark.parametrize("args,message", [BAD[0], BAD[7]])
def test_bad_input_in_a_process_of_its_own(tmp_path, args, message):
    """As above, through the console command's own process: its exit status and all it prints."""
    p = run_cli(*args, "--output-dir", str(tmp_path / "run"), "--quiet")
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [p.stderr.strip()] and message in p.stderr, (
        p.stdout,
        p.stderr,
    )
    assert "Traceback" not in p.stderr + p.stdout and not (tmp_path / "run").exists()


def test_malformed_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo:\n  lr: [1, 2\n")
    p = run_cli("train", "imdb", "--config", str(bad), "--output-dir", str(tmp_path / "run"))
    assert p.returncode == 2 and "malformed YAML" in p.stderr and str(bad) in p.stderr and "Traceback" not in p.stderr


def test_missing_data_without_hub(tmp_path):
    """No data dir, no built-in prompts, and no Hub: a one-line error naming the alternative."""
    p = run_cli(
        "train", "imdb", "--preset", "smoke", "--set", "run.builtin_prompts=false", "--output-dir", str(tmp_path / "r")
    )
    assert p.returncode == 2 and "could not load dataset 'imdb'" in p.stderr and "--data-dir" in p.stderr, p.stderr
    (tmp_path / "empty").mkdir()
    p = run_cli(
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--data-dir",
        str(tmp_path / "empty"),
        "--output-dir",
        str(tmp_path / "r2"),
    )
    assert p.returncode == 2 and "no data file" in p.stderr and "imdb/train.jsonl" in p.stderr, p.stderr


@pytest.mark.parametrize(
    "fn,message",
    [
        ("wrong_length", "returned 17 scores for 16 completions"),
        ("not_finite", "non-finite score"),
        ("raises", "raised RuntimeError: the scorer is broken"),
        ("nope", "cannot import reward"),
    ],
)
def test_broken_rewards_are_named(tmp_path, fn, message):
    p = cli_in_process(
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--set",
        f"run.reward=reward_fixtures:{fn}",
        "--output-dir",
        str(tmp_path / "r"),
        "--quiet",
        *FAST,
    )
    assert p.returncode == 2, p.stderr[-1500:]
    assert f"reward_fixtures:{fn}" in p.stderr and message in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert fn == "nope" or p.stderr.rstrip().endswith(" on the rollout of iteration 1"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "precious.txt").write_text("mine")
    p = cli_in_process("train", "imdb", "--preset", "smoke", "--output-dir", str(run))
    assert p.returncode == 2 and "already exists" in p.stderr and (run / "precious.txt").read_text() == "mine"


def test_a_folder_left_by_a_run_that_never_started_is_reused(tmp_path):
    """What a killed run leaves before its first checkpoint blocks nothing: a new run starts in a folder holding
    only grue's config.yaml, and --resume of one that also logged lines (a torn last one included) starts the same
    run over; a folder with a file of the user's is still refused."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text(
        "grue_version: 0.2.0\ntask_version: '2.0'\nrun: {task: imdb, algo: ppo}\nworld_size: 1\n"
    )
    p = cli_in_process(
        "train", "imdb", "--preset", "smoke", "--iterations", "1", "--output-dir", str(run), "--quiet", *FAST
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert [r["iteration"] for r in metrics(run)] == [1] and yaml.safe_load((run / "config.yaml").read_text())["ppo"][
        "iterations"
    ] == 1

    stopped = (
        tmp_path / "stopped"
    )  # killed after logging iteration 1, mid-way through iteration 2's line, before any checkpoint
    stopped.mkdir()
    (stopped / "config.yaml").write_text((run / "config.yaml").read_text())
    (stopped / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"iteration": 2, "rew')
    p = cli_in_process("train", "imdb", "--resume", str(stopped), "--iterations", "2")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[0] == f"restarting {stopped} from iteration 0 (it has no checkpoint yet)"
    assert [r["iteration"] for r in metrics(stopped)] == [1, 2] and (stopped / "checkpoint").is_dir()

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "config.yaml").write_text((run / "config.yaml").read_text())
    (mixed / "notes.txt").write_text("mine")
    p = cli_in_process("train", "imdb", "--preset", "smoke", "--output-dir", str(mixed))
    assert p.returncode == 2 and "already exists" in p.stderr and (mixed / "notes.txt").read_text() == "mine"


def test_help_is_in_words_and_tasks_starts_without_torch():
    p = run_cli("train", "--help")
    assert p.returncode == 0 and "[OPTIONS] TASK" in p.stdout and "--output-dir" in p.stdout and "DIR" in p.stdout
    assert not any(t in p.stdout for t in ("<bool>", "<str>", "<int>", "{task}", "--no-quiet")), p.stdout
    code = (
        "import sys; from grue_cli.main import app; app(['tasks'], standalone_mode=False); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=120
    )
    assert p.returncode == 0 and "imdb" in p.stdout and "torch imported: False" in p.stdout, p.stdout + p.stderr


def test_live_table_keeps_the_first_iteration_and_labels_its_times():
    from grue.run_log import Display, table_rows

    history = [{"iteration": i} for i in range(1, 31)]
    assert table_rows(history[:10], 10) == history[:10]
    assert table_rows(history, 10) == [history[0], None, *history[22:]]
    labels = [
        c.text_format for c in Display(30, 0, "imdb ppo", enabled=False).progress.columns if hasattr(c, "text_format")
    ]
    assert labels[1:] == ["elapsed", "left"]


def test_resume_refuses_a_run_of_another_release(tmp_path):
    """A 0.1 run's config.yaml names no batch_unit: resumed by 0.2 it would silently switch to tokens."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text("grue_version: 0.1.0\ntask_version: '1.0'\nrun: {task: imdb, algo: ppo}\n")
    p = run_cli("train", "imdb", "--resume", str(run))
    assert p.returncode == 2 and "was started with grue 0.1.0" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_tasks_lists_imdb():
    p = run_cli("tasks")
    assert p.returncode == 0 and "imdb" in p.stdout and "ppo" in p.stdout and "smoke" in p.stdout
    assert all(a in p.stdout for a in ("grpo", "rloo", "trpo"))


# grue's own algorithms, each once through the CLI: tiny rollouts of whole groups, 2 iterations.
OWN = {
    "grpo": ["grpo.rollout_size=8", "grpo.rollout_batch_size=8", "grpo.group_size=4", "grpo.minibatch_size=8"],
    "rloo": ["rloo.rollout_size=8", "rloo.rollout_batch_size=8", "rloo.group_size=2", "rloo.minibatch_size=8"],
    "trpo": [
        "trpo.rollout_size=8",
        "trpo.rollout_batch_size=8",
        "trpo.minibatch_size=8",
        "trpo.cg_max_steps=3",
        "trpo.n_critic_updates=1",
    ],
}


@pytest.mark.parametrize("algo", sorted(OWN))
def test_grues_own_algorithms_train_from_the_cli(tmp_path, algo):
    sets = [x for s in OWN[algo] + ["generation.max_new_tokens=4", "generation.min_new_tokens=4"] for x in ("--set", s)]
    run = tmp_path / algo
    p = run_cli(
        "train",
        "imdb",
        "--algo",
        algo,
        "--preset",
        "smoke",
        "--iterations",
        "2",
        "--output-dir",
        str(run),
        "--quiet",
        *sets,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[-1].startswith(f"done: 2 iterations in {run}")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["run"]["algo"] == algo and algo in cfg and "ppo" not in cfg
    assert [r["iteration"] for r in metrics(run)] == [1, 2]
    critic = (run / "checkpoint" / "trainer" / "critic.safetensors").is_file()
    assert critic == (algo == "trpo"), "only TRPO has a critic to save"
    if algo != "trpo":
        return
    # its evaluation records the algorithm, and the results file is valid for the leaderboard (once: the same code for all)
    p = run_cli("eval", "--checkpoint", str(run), "--limit", "4", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    from grue.results import load_results

    assert load_results(run / "eval" / "builtin" / "results.json").algorithm == algo


@pytest.mark.slow
def test_two_process_data_parallel(tmp_path):
    """torchrun, 2 gloo processes on CPU: different prompts per rank, identical parameters at the end. The
    rollout is counted in tokens (the paper's unit): 128 tokens, 64 per rank, 8 episodes of 8 tokens each."""
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "grue_cli.main",
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--quiet",
        "--iterations",
        "2",
        "--output-dir",
        str(run),
        *FAST,
        "--set",
        "run.log_samples=8",
        "--set",
        "ppo.batch_unit=tokens",
        "--set",
        "ppo.rollout_size=128",
    ]
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["policy_sha256_per_rank"]) == 2
    assert len(set(summary["policy_sha256_per_rank"])) == 1, "ranks ended with different parameters"
    assert yaml.safe_load((run / "config.yaml").read_text())["world_size"] == 2
    assert all(r["world_size"] == 2 for r in metrics(run))
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    for it in (1, 2):
        by_rank = {r: {s["index"] for s in samples if s["iteration"] == it and s["rank"] == r} for r in (0, 1)}
        assert len(by_rank[0]) == len(by_rank[1]) == 8 and not by_rank[0] & by_rank[1], by_rank
