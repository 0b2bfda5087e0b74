"""Tasks, one folder each, read into one ``Task`` by ``load_task`` and looked up by name or path with ``find_task``.

A task folder holds ``task.yaml`` (version, description, metrics, headline metric, and the task's ``run``,
``generation`` and ``eval`` settings), optionally ``task.py`` (its Python: loading rows, building prompts,
task-specific rewards), one ``<algo>.yaml`` of settings per algorithm, ``presets/<name>.yaml`` and the card
``README.md``. The built-in GRUE tasks are such folders: ``tasks/`` in a source checkout, ``grue/_tasks`` in a
wheel. A user's task is a folder anywhere, named by its path (``./my_task``), or by its folder's name when it lies
in a directory of ``$GRUE_TASKS_PATH`` (``os.pathsep``-separated) or of the ``paths`` given. A built-in name wins.

``task.py`` defines ``SPLITS`` and ``load(split, data_dir, builtin=False) -> list[Example]``, and optionally
``supervised_examples``, ``supervised_targets``, ``BUILTIN_OPENINGS`` and ``VARIANTS`` (prompt formats chosen with
``run.prompt_variant``). A folder without ``task.py`` names JSON Lines files in task.yaml's ``data`` section
(``grue.tasks.jsonl``). ``task.py`` is imported by path, on first use only: listing tasks imports no task code.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from grue.errors import GrueError, did_you_mean
from grue.yamlfile import load_yaml

CARD_KEYS = (
    "name",
    "version",
    "description",
    "metrics",
    "headline",
    "benchmark_split",
    "data",
    "run",
    "generation",
    "eval",
)
"""The keys task.yaml accepts."""
DEFAULT_BENCHMARK_SPLIT = "test"
BENCHMARK_SPLITS = ("validation", "test")
"""What task.yaml's ``benchmark_split`` accepts: the split whose results the leaderboard takes."""


def tasks_root() -> Path:
    """The built-in task folders: grue/_tasks in a wheel, tasks/ in a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "_tasks"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent.parent / "tasks"


def search_path(paths=()) -> list[Path]:
    """Directories whose task folders are found by name: ``paths``, then those of ``$GRUE_TASKS_PATH``."""
    env = [p for p in os.environ.get("GRUE_TASKS_PATH", "").split(os.pathsep) if p]
    return [Path(p) for p in (*paths, *env)]


def folders_in(root: Path) -> list[Path]:
    """The task folders (those with a task.yaml) directly in ``root``, by name."""
    return (
        sorted((p for p in root.iterdir() if (p / "task.yaml").is_file()), key=lambda p: p.name)
        if root.is_dir()
        else []
    )


def task_names() -> list[str]:
    """The built-in tasks' names, sorted."""
    return [p.name for p in folders_in(tasks_root())]


@dataclass
class Task:
    """A task folder, read and checked (``load_task``): what config resolution, evaluation, the leaderboard and
    ``grue tasks`` know of a task."""

    name: str
    """The folder's name; results files and run directories are named with it."""
    folder: Path
    card: dict
    """task.yaml, as read."""
    builtin: bool = False

    @property
    def ref(self) -> str:
        """What ``run.task`` records: the name of a built-in task, else the folder's absolute path."""
        return self.name if self.builtin else str(self.folder.resolve())

    @property
    def card_file(self) -> Path:
        return self.folder / "task.yaml"

    @property
    def version(self) -> str:
        return str(self.card.get("version", ""))

    @property
    def description(self) -> str:
        return str(self.card.get("description") or "")

    @property
    def metrics(self) -> list[str]:
        """The metric groups the task reports (grue.metrics.METRICS keys)."""
        return list(self.card.get("metrics") or [])

    @property
    def headline(self) -> str:
        """The one reported metric the leaderboard's overall score reads; empty: the task is not in it."""
        return str(self.card.get("headline") or "")

    @property
    def benchmark_split(self) -> str:
        """The split the leaderboard takes results of (task.yaml ``benchmark_split``, default ``test``); only a
        task whose benchmark split is ``test`` counts for the overall GRUE score."""
        return str(self.card.get("benchmark_split") or DEFAULT_BENCHMARK_SPLIT)

    def settings_file(self, algo: str) -> Path:
        return self.folder / f"{algo}.yaml"

    def algorithms(self, names) -> list[str]:
        """The algorithms of ``names`` this task has a settings file for."""
        return [a for a in names if self.settings_file(a).is_file()]

    def presets(self) -> list[str]:
        return sorted(p.stem for p in (self.folder / "presets").glob("*.yaml"))

    @functools.cached_property
    def module(self):
        """The task's code: its task.py, imported by path, else the JSON Lines loader of task.yaml's ``data``."""
        code = self.folder / "task.py"
        if code.is_file():
            return import_task_code(code, self.name)
        from grue.tasks.jsonl import JsonlTask

        return JsonlTask(self.name, self.folder, self.card.get("data"), self.card_file)


def import_task_code(path: Path, name: str) -> ModuleType:
    """``path`` imported as module ``grue_tasks.<name>`` (another name if a different file has that one), once."""
    key = str(path.resolve())
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == key and module.__name__.startswith("grue_tasks."):
            return module
    modname, n = f"grue_tasks.{name}", 1
    while modname in sys.modules:
        n += 1
        modname = f"grue_tasks.{name}_{n}"
    spec = importlib.util.spec_from_file_location(modname, key)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except GrueError:
        del sys.modules[modname]
        raise
    except Exception as e:
        del sys.modules[modname]
        raise GrueError(f"{path}: cannot import the task's code: {type(e).__name__}: {e}") from e
    return module


def check_card(card: dict, path: Path) -> None:
    """One-line errors, naming ``path`` and the field, for a task.yaml whose fields have the wrong type or name
    an unknown metric group or headline (its reward is checked when a run's config is resolved: grue.config)."""
    from grue.metrics import METRICS, reported_names

    unknown = [k for k in card if k not in CARD_KEYS]
    if unknown:
        raise GrueError(
            f"{path}: unknown key '{unknown[0]}'{did_you_mean(unknown[0], CARD_KEYS)}; accepted: {', '.join(CARD_KEYS)}"
        )
    for key in ("version", "description", "headline"):
        value = card.get(key)
        if key in card and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            raise GrueError(f"{path}: {key}: expected a string, got {value!r}")
    metrics = card.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise GrueError(f"{path}: metrics: expected a list of metric groups (e.g. [meteor, rouge]), got {metrics!r}")
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise GrueError(
            f"{path}: metrics: unknown metric group '{bad[0]}'{did_you_mean(bad[0], METRICS)}; "
            f"accepted: {', '.join(METRICS)}"
        )
    names = reported_names(metrics)
    if card.get("headline") and card["headline"] not in names:
        raise GrueError(
            f"{path}: headline: '{card['headline']}' is not reported by the task's metrics; "
            f"accepted: {', '.join(names)}"
        )
    if "benchmark_split" in card and card["benchmark_split"] not in BENCHMARK_SPLITS:
        raise GrueError(
            f"{path}: benchmark_split: the split the leaderboard takes results of must be one of "
            f"{', '.join(BENCHMARK_SPLITS)}, got {card['benchmark_split']!r}"
        )
    for sec in ("run", "generation", "eval"):
        if sec in card and not isinstance(card[sec], dict):
            raise GrueError(f"{path}: {sec}: expected a mapping of settings, got {card[sec]!r}")


def load_task(folder: Path, builtin: bool = False) -> Task:
    """The task in ``folder``, its task.yaml checked (``check_card``), or a one-line error naming the file."""
    folder = Path(folder)
    card_file = folder / "task.yaml"
    if not folder.is_dir():
        raise GrueError(f"{folder}: no such task folder; a task is a folder with a task.yaml")
    if not card_file.is_file():
        raise GrueError(f"{card_file}: missing; a task folder holds a task.yaml (version, metrics, run settings)")
    card = load_yaml(card_file)
    check_card(card, card_file)
    if not (folder / "task.py").is_file():
        from grue.tasks.jsonl import check_data

        check_data(card.get("data"), folder, card_file)
    return Task(name=folder.resolve().name, folder=folder, card=card, builtin=builtin)


def is_path(spec: str) -> bool:
    """True when ``spec`` names a folder by path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b``) rather than by name."""
    return spec.startswith((".", "~")) or "/" in spec or os.sep in spec


@functools.lru_cache(maxsize=None)
def _builtin(name: str, root: str) -> Task:
    return load_task(Path(root) / name, builtin=True)


def find_task(spec: str, paths=()) -> Task:
    """The task named ``spec`` (built-in, then in the ``search_path(paths)`` directories) or at path ``spec``;
    an unknown name is a one-line error listing the known ones."""
    if is_path(spec):
        return load_task(Path(spec).expanduser())
    root = tasks_root()
    if (root / spec / "task.yaml").is_file():
        return _builtin(spec, str(root))
    for d in search_path(paths):
        if (d / spec / "task.yaml").is_file():
            return load_task(d / spec)
    if spec and (Path(spec) / "task.yaml").is_file():
        return load_task(Path(spec))
    known = task_names() + [p.name for d in search_path(paths) for p in folders_in(d)]
    raise GrueError(
        f"unknown task '{spec}'{did_you_mean(spec, known)}; accepted: {', '.join(known)}, "
        "or the path of a task folder (e.g. ./my_task)"
    )


def builtin_tasks() -> list[Task]:
    """The built-in tasks, by name."""
    return [find_task(n) for n in task_names()]


def all_tasks(paths=()) -> list[Task]:
    """The built-in tasks, then those in the ``search_path(paths)`` directories, by name within each."""
    out = builtin_tasks()
    seen = {t.name for t in out}
    for d in search_path(paths):
        for p in folders_in(d):
            if p.name not in seen:
                seen.add(p.name)
                out.append(load_task(p))
    return out


def task_module(spec: str):
    """The code of task ``spec`` (see ``find_task``): its task.py module, or the JSON Lines loader."""
    return find_task(spec).module


def __getattr__(name: str):
    """``TASKS`` (built-in name -> task code) and ``grue.tasks.<built-in name>``, imported on first use."""
    if name == "TASKS":
        return {n: task_module(n) for n in task_names()}
    if not name.startswith("_") and (tasks_root() / name / "task.py").is_file():
        return task_module(name)
    raise AttributeError(f"module 'grue.tasks' has no attribute '{name}'")
