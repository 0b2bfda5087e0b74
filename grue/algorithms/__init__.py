"""Algorithms, looked up by name. Each module has ``CONFIG`` (its config dataclass) and ``train(cfg, resume_dir, show)``."""

from grue.algorithms import a2c, grpo, nlpo, ppo, rloo, supervised, trpo

ALGORITHMS = {
    "ppo": ppo,
    "nlpo": nlpo,
    "a2c": a2c,
    "supervised": supervised,
    "grpo": grpo,
    "rloo": rloo,
    "trpo": trpo,
}
