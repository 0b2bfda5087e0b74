"""Algorithms, looked up by name. Each module has ``Config`` (its dataclass) and ``train(cfg, resume_dir, show)``."""

from grue.algorithms import ppo

ALGORITHMS = {
    "ppo": ppo,
}
