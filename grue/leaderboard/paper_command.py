"""The grue command that reaches the settings a paper row states (``config.paper.settings``), as its page prints it.

A trained row: ``grue train TASK --algo ALGO [--set KEY=VALUE ...] --dry-run``, with a ``--set`` for each stated key
whose value the task's settings files (``tasks/<task>/task.yaml``, then ``<algo>.yaml``) do not already give; a
warm-started row (Supervised+PPO, Supervised+NLPO) first trains the task's supervised run and starts the RL run from
it (``--init-from``, as README "The paper's algorithms" does); ``--dry-run`` prints the resolved config and stops. A
Zero-Shot row: ``grue eval --task TASK --model MODEL [--set eval.KEY=VALUE ...]`` with the task's model.

The defaults are read from the settings files themselves, not resolved through grue.config: a key the files do not
set gets its ``--set`` even when grue's built-in default has the value already (harmless), and the tests resolve the
printed command through grue.algorithms.resolve, as ``grue train --dry-run`` does, to check that it reaches them.
"""

from __future__ import annotations

import html
import json
import shlex

from grue.leaderboard.comparable import UNKNOWN, stated_settings
from grue.leaderboard.paper_settings import NO_GRUE_REWARD
from grue.tasks import find_task
from grue.yamlfile import load_yaml

STAGES = {
    "PPO": ("ppo", False),
    "NLPO": ("nlpo", False),
    "Supervised": ("supervised", False),
    "Supervised+PPO": ("ppo", True),
    "Supervised+NLPO": ("nlpo", True),
}
"""The paper's algorithm -> (grue's --algo, whether a supervised run comes first)."""
SECTIONS = ("run", "generation", "eval")


def file_values(task: str, algo: str | None) -> dict:
    """The dotted keys the task's settings files set: task.yaml's run/generation/eval sections, then (``algo``
    given) ``<algo>.yaml``'s run/generation/eval/``<algo>`` sections over them."""
    folder = find_task(task).folder
    layers = [(load_yaml(folder / "task.yaml"), SECTIONS)]
    if algo is not None and (folder / f"{algo}.yaml").is_file():
        layers.append((load_yaml(folder / f"{algo}.yaml"), SECTIONS + (algo,)))
    out = {}
    for data, sections in layers:
        for section in sections:
            for key, value in (data.get(section) or {}).items():
                out[f"{section}.{key}"] = value
    return out


def set_value(value) -> str:
    """``value`` as ``--set`` reads it back (YAML 1.2): true/false, null, {} and floats with a dot (5.0e-07)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, float):
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    return str(value)


def unreachable(settings: dict) -> str:
    """Why no grue command reaches ``settings``; "" when one does."""
    reward = settings.get("run.reward")
    if isinstance(reward, str) and reward.startswith(NO_GRUE_REWARD):
        return f"grue has no reward that computes the paper's {reward[len(NO_GRUE_REWARD) :]}"
    infinite = sorted(k for k, v in settings.items() if v == "inf")
    if infinite:
        return f"{', '.join(infinite)} inf (no constraint) has no grue value"
    return ""


def sets(task: str, algo: str | None, settings: dict) -> list[str]:
    """``--set KEY=VALUE`` for each stated key the task's files do not give that value."""
    given = file_values(task, algo)
    out = []
    for key, value in sorted(settings.items()):
        if key not in given or given[key] != value or type(given[key]) is not type(value):
            out += ["--set", f"{key}={set_value(value)}"]
    return out


def paper_command(task: str, algorithm: str, settings: dict | str) -> tuple[list[str], str]:
    """(the command's lines, why there is none): one line, two for a warm-started row, or ([], the reason)."""
    if not isinstance(settings, dict):
        return [], "the paper does not state this row's settings"
    why = unreachable(settings)
    if why:
        return [], why
    if algorithm == "Zero-Shot":
        model = (load_yaml(find_task(task).folder / "task.yaml").get("run") or {}).get("model", "")
        return [shlex.join(["grue", "eval", "--task", task, "--model", str(model), *sets(task, None, settings)])], ""
    if algorithm not in STAGES:
        return [], f"{algorithm} is no grue algorithm"
    algo, warm = STAGES[algorithm]
    lines = []
    start = []
    if warm:
        first = f"sft/{task}"  # a folder of the user's choice (not runs/: the site prints no local run path)
        lines.append(shlex.join(["grue", "train", task, "--algo", "supervised", "--output-dir", first]))
        start = ["--init-from", first]
    lines.append(shlex.join(["grue", "train", task, "--algo", algo, *start, *sets(task, algo, settings), "--dry-run"]))
    return lines, ""


def command_html(task: str, algorithm: str, config: dict) -> str:
    """A reported row's command (its results file's ``config``), or why there is none, folded: the site prints it
    under the row's name."""
    settings = stated_settings(config)
    lines, why = paper_command(task, algorithm, settings)
    if not lines:
        paper = config.get("paper") if isinstance(config.get("paper"), dict) else {}
        why = (paper.get("settings_reason") or why) if settings == UNKNOWN else why
        return f'<details class="note"><summary>command</summary>none: {html.escape(why)}</details>'
    return (
        '<details class="note"><summary>command</summary><pre><code>'
        + html.escape("\n".join(lines))
        + "</code></pre></details>"
    )
