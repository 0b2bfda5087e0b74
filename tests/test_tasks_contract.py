"""One contract over every GRUE task: data, prompts, rewards, metric names, settings files."""

from __future__ import annotations

import math
import re

import pytest

from grue.algorithms import ALGORITHMS
from grue.algorithms import resolve
from grue.tasks import task_names, tasks_root
from grue.yamlfile import load_yaml
from grue.errors import GrueError
from grue.evaluation import task_metrics
from grue.metrics import reported_names
from grue.rewards import resolve_reward, score
from grue.tasks import TASKS

NEEDS_A_MODEL = {"sentiment", "intent_meteor"}  # classifiers from the Hub; tested with local ones in test_rewards
GRUE = task_names()  # the registry's built-in tasks: every test below runs over each


def test_all_seven_tasks_are_there():
    """The benchmark's definition (the paper's seven tasks): the one place that names them."""
    assert GRUE == sorted(["imdb", "commongen", "cnn_dailymail", "totto", "wmt16", "dailydialog", "narrativeqa"])
    assert sorted(TASKS) == GRUE


def card_metric_names(task: str) -> list[str]:
    """Names in backticks in the task card's **Metrics.** paragraph."""
    text = (tasks_root() / task / "README.md").read_text(encoding="utf-8")
    start = text.index("**Metrics.**")
    paragraph = text[start:].split("\n\n", 1)[0]
    return [n for n in re.findall(r"`([^`]+)`", paragraph) if re.fullmatch(r"[a-z][a-z0-9_]*", n)]


def local_split(data_dir, task: str) -> str:
    for split in ("validation", "test", "train"):
        if split in TASKS[task].SPLITS and (data_dir / task / f"{split}.jsonl").is_file():
            return split
    raise AssertionError(f"no local split for {task}")


@pytest.mark.parametrize("task", GRUE)
def test_task_contract(task, data_dir):
    card = load_yaml(tasks_root() / task / "task.yaml")
    assert card["name"] == task and re.fullmatch(r"\d+\.\d+", str(card["version"]))

    # 8 samples from the real data, with prompts and references
    split = local_split(data_dir, task)
    examples = TASKS[task].load(split, str(data_dir))[:8]
    assert len(examples) == 8
    assert all(isinstance(e.prompt, str) and e.prompt.strip() for e in examples)
    assert all(e.references and all(isinstance(r, str) for r in e.references) for e in examples)
    assert TASKS[task].load(split, str(data_dir))[:8] == examples  # deterministic

    # the smoke preset's reward, and every algorithm's paper reward that needs no model download,
    # give one finite float per completion
    rewards = {resolve(task, "ppo", preset="smoke").run.reward} | {resolve(task, a).run.reward for a in ALGORITHMS}
    completions = [e.references[0] for e in examples[:4]] + ["", "the", "a b c d e f", "."]
    for reward in sorted(rewards - NEEDS_A_MODEL):
        name, fn = resolve_reward(reward)
        scores = score(
            name,
            fn,
            [e.prompt for e in examples],
            completions,
            [e.references for e in examples],
            [e.meta for e in examples],
        )
        assert len(scores) == 8 and all(math.isfinite(s) for s in scores), reward

    # the metric names in the task card are exactly the ones the evaluation reports
    assert card_metric_names(task) == list(reported_names(task_metrics(task)))


@pytest.mark.parametrize("task", GRUE)
def test_loader_errors_say_what_is_accepted(task, tmp_path):
    """Every task's loader: an unknown split, a missing local file and (where the task has none) built-in
    prompts are one-line errors naming what is accepted."""
    module = TASKS[task]
    with pytest.raises(GrueError, match=f"task '{task}' has no split 'dev'; accepted: {', '.join(module.SPLITS)}$"):
        module.load("dev", str(tmp_path))
    with pytest.raises(GrueError, match=f"no data file .*; expected JSON Lines at <data-dir>/{task}/test.jsonl"):
        module.load("test", str(tmp_path))
    if hasattr(module, "BUILTIN_OPENINGS"):
        assert [e.prompt for e in module.load("test", None, builtin=True)] == list(module.BUILTIN_OPENINGS)
    else:
        with pytest.raises(GrueError, match=f"task '{task}' has no built-in prompts; pass --data-dir DIR"):
            module.load("test", None, builtin=True)


GRUES_OWN = ("grpo", "rloo", "trpo")  # algorithms the paper has no settings for: their files are grue's


@pytest.mark.parametrize("task", GRUE)
def test_every_algorithm_resolves_with_paper_and_smoke_settings(task):
    papers = {}
    for algo in ALGORITHMS:
        paper = papers[algo] = resolve(task, algo)
        smoke = resolve(task, algo, preset="smoke")
        assert paper.task_version == smoke.task_version != ""
        assert smoke.run.model in ("tiny-gpt2", "tiny-t5")
        assert smoke.run.reward in {
            "lexicon",
            "meteor",
            "commongen_meteor",
            "rouge1",
            "rouge_lmax",
            "one_minus_ter",
            "parent",
        }
        for cfg in (paper, smoke):  # settings that can run, on one process
            ALGORITHMS[algo].check(cfg.algo, 1)
        assert smoke.algo != ALGORITHMS[algo].CONFIG(), f"presets/smoke.yaml has a {algo} section"
    for algo in ALGORITHMS:  # each settings file states its source in its first line
        header = (tasks_root() / task / f"{algo}.yaml").read_text(encoding="utf-8").splitlines()[0]
        sources = ("RL4LMs 97df0bd", "grue's settings, NOT the paper's", "paper Table", "arXiv:2210.01241v2 Table")
        assert header.startswith("# ") and any(s in header for s in sources), (task, algo)
    for preset in (tasks_root() / task / "presets").glob("*.yaml"):
        assert preset.read_text(encoding="utf-8").startswith("# "), preset  # what the preset is for
    for algo in GRUES_OWN:
        header = (tasks_root() / task / f"{algo}.yaml").read_text(encoding="utf-8").splitlines()[0]
        assert "grue's settings, NOT the paper's" in header, (task, algo)
        # they train on the reward of the task's PPO file
        assert papers[algo].run.reward == papers["ppo"].run.reward


# The paper's recipe (RL4LMs 97df0bd rl4lms/algorithms/ppo/ppo.py, nlpo/nlpo.py, a2c/a2c.py defaults and
# envs/text_generation/policy/base_policy.py:_setup_optimizer), written out in every paper settings file.
PAPER_RECIPE = {
    "ppo": {
        "batch_unit": "tokens",
        "normalize_advantage": True,
        "whiten_advantages": False,
        "policy_distribution": "full",
        "adam_eps": 1e-8,
        "weight_decay": 1e-6,
        "clip": 0.2,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "gamma": 0.99,
        "lam": 0.95,
    },
    "nlpo": {
        "batch_unit": "tokens",
        "normalize_advantage": True,
        "whiten_advantages": False,
        "policy_distribution": "sampled",
        "adam_eps": 1e-8,
        "weight_decay": 1e-6,
        "clip": 0.2,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "gamma": 0.99,
        "lam": 0.95,
    },
    "a2c": {
        "batch_unit": "tokens",
        "optimizer": "rmsprop",
        "adam_eps": 1e-5,
        "weight_decay": 1e-6,
        "policy_distribution": "full",
        "whiten_advantages": False,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "gamma": 0.99,
        "lam": 1.0,
    },
}


@pytest.mark.parametrize("task", GRUE)
def test_paper_files_write_out_the_paper_recipe_and_smoke_presets_keep_grues(task):
    for algo, recipe in PAPER_RECIPE.items():
        text = (tasks_root() / task / f"{algo}.yaml").read_text(encoding="utf-8")
        section = load_yaml(tasks_root() / task / f"{algo}.yaml")[algo]
        assert {k: section.get(k) for k in recipe} == recipe, (
            task,
            algo,
        )  # explicit in the file, not dataclass defaults
        assert re.search(r"rollout_size: \d+ +# tokens: (\d+ envs x \d+ steps|paper Table \d+)", text), (task, algo)
        assert resolve(task, algo, preset="smoke").algo.batch_unit == "completions"
    for algo in ("ppo", "nlpo"):
        cfg = resolve(task, algo).algo
        assert cfg.rollout_size % cfg.minibatch_size == 0
    sup = load_yaml(tasks_root() / task / "supervised.yaml")["supervised"]
    assert (sup["adam_eps"], sup["max_grad_norm"]) == (1e-8, 1.0)
