"""A run's config.yaml records its lineage when resolved (issue 11); an untrained evaluation has a config of its own."""

from __future__ import annotations

import pytest
import yaml

from grue.algorithms import resolve
from grue.config import resolve_untrained
from grue.errors import GrueError
from grue.evaluation import lineage_name


def fake_run(path, algo: str, **run) -> str:
    """A run directory with a config.yaml and an (empty) checkpoint folder; returns the checkpoint's path."""
    (path / "checkpoint").mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"run": {"algo": algo, **run}}))
    return str(path / "checkpoint")


def test_lineage_is_recorded_from_the_parent_run(tmp_path):
    sft = fake_run(tmp_path / "sft", "supervised", model="gpt2")
    cfg = resolve("imdb", "ppo", flags={"run.model": sft})
    assert (cfg.run.init_from, cfg.run.init_algo, cfg.run.base_model) == (str(tmp_path / "sft"), "supervised", "gpt2")
    assert lineage_name(cfg.run) == "supervised+ppo"
    # a third run carries the whole chain, from its parent's own config.yaml only
    ppo = fake_run(
        tmp_path / "ppo", "ppo", model=sft, init_from=str(tmp_path / "sft"), init_algo="supervised", base_model="gpt2"
    )
    (tmp_path / "sft" / "config.yaml").unlink()
    cfg = resolve("imdb", "nlpo", flags={"run.model": ppo})
    assert (cfg.run.init_algo, cfg.run.base_model) == ("supervised+ppo", "gpt2")
    assert lineage_name(cfg.run) == "supervised+ppo+nlpo"


def test_no_lineage_for_a_named_model_and_none_taken_from_the_command_line(tmp_path):
    cfg = resolve("imdb", "ppo", sets=["run.init_algo=supervised", "run.base_model=x"])
    assert (cfg.run.init_from, cfg.run.init_algo, cfg.run.base_model) == ("", "", "")
    assert lineage_name(cfg.run) == "ppo"
    ppo = fake_run(tmp_path / "a", "ppo", model="gpt2")
    assert lineage_name(resolve("imdb", "ppo", flags={"run.model": ppo}).run) == "ppo"  # continued, named once


def test_zero_shot_config_has_no_algorithm_section():
    cfg = resolve_untrained("cnn_dailymail", "zero-shot", "t5-small")
    assert cfg.algo is None and set(cfg.to_dict()) == {"grue_version", "task_version", "run", "generation", "eval"}
    # task.yaml's own run section, not ppo.yaml's (which trains on rouge1)
    assert (cfg.run.algo, cfg.run.model, cfg.run.reward) == ("zero-shot", "t5-small", "meteor")
    with pytest.raises(GrueError, match="accepted: zero-shot, external"):
        resolve_untrained("imdb", "ppo", "gpt2")
