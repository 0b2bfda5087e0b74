"""What a run reads of a task: its examples of a split, and a deterministic, resumable prompt order, sharded across
processes."""

from __future__ import annotations

import numpy as np

from grue.config import Config
from grue.errors import GrueError, option
from grue.tasks import task_module
from grue.tasks.common import Example, data_dir_from


def load_examples(cfg: Config, split: str) -> list[Example]:
    """The task's examples of ``split``: local files, the Hub, or built-in prompts (see RunConfig)."""
    data_dir = data_dir_from(cfg.run.data_dir)
    task = task_module(cfg.run.task)
    builtin = bool(cfg.run.builtin_prompts and not data_dir)
    if split not in task.SPLITS:
        raise GrueError(f"task '{cfg.run.task}' has no split '{split}'; accepted: {', '.join(task.SPLITS)}")
    if builtin and not hasattr(task, "BUILTIN_OPENINGS"):
        raise GrueError(
            f"task '{cfg.run.task}' has no built-in prompts; pass {option('data_dir', 'DIR')} or set GRUE_DATA_DIR"
        )
    if cfg.run.prompt_variant:
        variants = getattr(task, "VARIANTS", ())
        if cfg.run.prompt_variant not in variants:
            raise GrueError(
                f"task '{cfg.run.task}' has no prompt variant '{cfg.run.prompt_variant}'; "
                f"accepted: {', '.join(variants) or 'none (leave run.prompt_variant empty)'}"
            )
        return task.load(split, data_dir, builtin=builtin, variant=cfg.run.prompt_variant)
    return task.load(split, data_dir, builtin=builtin)


class PromptStream:
    """Epoch ``e`` visits the examples in ``permutation(seed, e)``; a global position moves on.

    Every process walks the same global order and takes every ``world_size``-th index
    from its ``rank``, so the shards are disjoint and together cover each batch.
    The state (epoch, position) is two integers, saved in checkpoints.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise ValueError("no examples to draw prompts from")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch, self.pos = 0, 0

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next_global(self, count: int) -> list[int]:
        """The next ``count`` indices of the global order (all processes)."""
        out: list[int] = []
        while len(out) < count:
            order = self._order(self.epoch)
            take = order[self.pos : self.pos + count - len(out)]
            out.extend(int(i) for i in take)
            self.pos += len(take)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def next(self, count: int) -> list[int]:
        """This process's share of the next ``count`` global indices."""
        return self.next_global(count)[self.rank :: self.world_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
