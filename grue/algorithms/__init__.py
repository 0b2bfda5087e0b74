"""Algorithms, looked up by name. Each module has ``CONFIG`` (its config dataclass) and ``train(cfg, resume_dir, show)``."""

from grue.algorithms import ppo

ALGORITHMS = {
    "ppo": ppo,
}
