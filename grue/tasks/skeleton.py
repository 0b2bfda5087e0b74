"""``grue new-task NAME``: a task folder that trains at once (``--preset smoke``, the built-in tiny model, on CPU).

The toy task: name the animal a short sentence mentions. Its examples are written here, made up for the skeleton.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from grue.errors import GrueError

NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # what a results file accepts as a task name (grue.results)

TASK_YAML = """\
# A grue task: this folder is the whole task (see docs/extending.md). Try it:
#   grue train {path} --algo ppo --preset smoke
#   grue eval --checkpoint RUN_DIR --limit 4
# Edit the data, reward and metrics below; add task.py only when a JSON Lines file is not enough.
name: {name}
version: "0.1"                 # bump it when a change moves the numbers
description: Name the animal a short sentence mentions (a toy; replace it with your task).
metrics: [rouge]               # metric groups of grue.metrics.METRICS, e.g. [meteor, rouge, bleu, diversity]
headline: rouge_1              # the one reported metric that ranks runs
data:                          # no task.py: the examples are JSON Lines files, one object per line
  splits:                      # split -> file, relative to this folder
    train: data/train.jsonl
    test: data/test.jsonl
  prompt_field: prompt         # the field with the prompt text
  references_field: references # a reference text, or a list of them; the other fields reach rewards as meta
run:
  model: gpt2                  # the policy: a Hub id or a local directory
  reward: rouge1               # a reward of grue.rewards.REWARDS, or your own: package.module:function
generation:                    # how rollouts are sampled
  max_prompt_tokens: 64
  min_new_tokens: 1
  max_new_tokens: 16
eval:                          # how `grue eval` decodes (greedy by default)
  max_new_tokens: 16
"""

SMOKE_YAML = """\
# A run of a few seconds on CPU: the built-in tiny model and a small PPO rollout.
run:
  model: tiny-gpt2
generation:
  max_prompt_tokens: 32
  min_new_tokens: 2
  max_new_tokens: 6
eval:
  max_new_tokens: 6
  batch_size: 8
ppo:
  batch_unit: completions
  iterations: 2
  rollout_size: 16
  rollout_batch_size: 8
  minibatch_size: 8
  epochs: 1
  lr: 1.0e-3
  kl_target: null
"""

README = """\
# {name}

What the task asks, where its data comes from and how it is scored. (Written by `grue new-task`: replace this.)

- Data: `data/*.jsonl`, one `{{"prompt": ..., "references": [...]}}` object per line.
- Reward: `rouge1` (task.yaml `run.reward`). Metrics: `rouge` (headline `rouge_1`).
"""

ANIMALS = [
    ("cat", "A cat slept on the warm windowsill"),
    ("dog", "The dog barked at the mail van"),
    ("horse", "A horse grazed beside the old fence"),
    ("owl", "An owl called twice from the barn"),
    ("fox", "The fox crossed the road at dusk"),
    ("duck", "A duck paddled across the pond"),
    ("goat", "The goat climbed onto the wall"),
    ("bee", "A bee hummed around the clover"),
    ("frog", "The frog jumped into the ditch"),
    ("crow", "A crow sat on the chimney"),
]


def rows(pairs) -> str:
    """JSON Lines of the toy examples: prompt ``"<sentence>. Animal:"``, reference ``" <animal>"``."""
    return "".join(json.dumps({"prompt": f"{s}. Animal:", "references": [f" {a}"]}) + "\n" for a, s in pairs)


def write_skeleton(folder: Path) -> Path:
    """Write a working task folder at ``folder`` (its name is the task's), or a one-line error when the name is not
    a task name or the folder exists."""
    folder = Path(folder)
    name = folder.name
    if not NAME.match(name):
        raise GrueError(f"task name {name!r}: lower-case letters, digits and _ (starting with a letter) are accepted")
    if folder.exists():
        raise GrueError(f"{folder} already exists; choose a new folder")
    path = str(folder) if folder.is_absolute() or str(folder).startswith(".") else f"./{folder}"
    (folder / "data").mkdir(parents=True)
    (folder / "presets").mkdir()
    (folder / "task.yaml").write_text(TASK_YAML.format(name=name, path=path), encoding="utf-8")
    (folder / "presets" / "smoke.yaml").write_text(SMOKE_YAML, encoding="utf-8")
    (folder / "README.md").write_text(README.format(name=name), encoding="utf-8")
    (folder / "data" / "train.jsonl").write_text(rows(ANIMALS[:8]), encoding="utf-8")
    (folder / "data" / "test.jsonl").write_text(rows(ANIMALS[6:]), encoding="utf-8")
    return folder
