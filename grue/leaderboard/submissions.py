"""Leaderboard submissions: loading and validation.

A submission is a folder ``<submissions>/<name>/`` holding ``submission.yaml`` (who, model,
algorithm, link, notes, and the ``benchmark`` block of ``grue benchmark run``: grue.leaderboard.provenance) and
one ``results.json`` per task and seed, each on the whole of the task's benchmark split, in its own
folder (``imdb/seed0/results.json``), optionally with the ``samples.jsonl`` that
``grue eval`` wrote beside it. Every problem reads ``<file>: <field>: <what is wrong>``.
Results files are read only through :func:`grue.results.from_bytes`; nothing from a
submission is executed or unpickled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

from grue.errors import ProblemsError
from grue.leaderboard.safe_files import inside, link_below, read_limited, walk
from grue.leaderboard.provenance import Benchmark, check_benchmark, check_results
from grue.metrics import reported_names
from grue.results import (
    FILENAME,
    MAX_BYTES,
    Results,
    ResultsError,
    from_bytes,
    show_value,
)
from grue.tasks import builtin_tasks

META_FILE = "submission.yaml"
SAMPLES_FILE = "samples.jsonl"
MAX_META_BYTES = 64 * 1024
MAX_SAMPLES_BYTES = MAX_BYTES
SAMPLES_SHOWN = 5
"""Sample generations kept per results file for the detail page."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
"""A submission folder name (it becomes a file name of the site)."""
# submission.yaml field -> (required, longest length)
META_FIELDS = {
    "who": (True, 200),
    "model": (True, 200),
    "algorithm": (True, 200),
    "link": (False, 500),
    "notes": (False, 4000),
}
META_BLOCKS = ("benchmark",)
"""submission.yaml's optional mappings, beside META_FIELDS: the provenance written by ``grue benchmark run``."""
ROOT_FILES = ("README.md", ".gitkeep")
"""Files allowed directly in the submissions folder (beside the submission folders)."""


class LeaderboardError(ProblemsError):
    """Invalid leaderboard input; ``problems`` lists every problem found."""


@dataclass
class Meta:
    """``submission.yaml``: who submitted, the model and algorithm as they want them shown, a paper or code
    link (http or https only), free-text notes."""

    who: str
    model: str
    algorithm: str
    link: str | None = None
    notes: str | None = None
    benchmark: Benchmark | None = None
    """The provenance of a submission made by ``grue benchmark run``; None when it was assembled by hand."""


@dataclass
class Entry:
    """One results file of a submission: ``rel`` its path in the submission, ``samples`` the first
    SAMPLES_SHOWN rows of the samples.jsonl beside it ([] when there is none)."""

    rel: str
    results: Results
    samples: list[dict] = field(default_factory=list)


@dataclass
class Submission:
    name: str
    meta: Meta
    entries: list[Entry]
    """Sorted by (task, seed, path)."""


@dataclass(frozen=True)
class TaskInfo:
    """What a results file must match: the task's version, its reported metric names -> higher_is_better and its
    benchmark split (the split the leaderboard takes); ``description`` the task.yaml's one-line description."""

    version: str
    metrics: dict[str, bool | None]
    description: str = ""
    benchmark_split: str = "test"


def known_tasks() -> dict[str, TaskInfo]:
    """Every built-in task (grue.tasks): its version and reported metric names."""
    return {
        t.name: TaskInfo(t.version, reported_names(t.metrics), t.description, t.benchmark_split)
        for t in builtin_tasks()
    }


def is_http_url(text: str) -> bool:
    """True for an absolute http(s) URL with a host and no spaces or control characters."""
    if any(c.isspace() or ord(c) < 32 for c in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_meta(data, source: str, tasks=()) -> tuple[Meta | None, list[str]]:
    """``submission.yaml`` (parsed) -> (Meta, []) or (None, problems); ``tasks`` the known task names (for the
    ``benchmark`` block's settings)."""
    accepted = ", ".join((*META_FIELDS, *META_BLOCKS))
    if not isinstance(data, dict):
        return None, [f"{source}: (top level): must be a mapping with {accepted}"]
    out = [
        f"{source}: {key}: unknown field; accepted: {accepted}"
        for key in data
        if key not in META_FIELDS and key not in META_BLOCKS
    ]
    for key, (required, longest) in META_FIELDS.items():
        value = data.get(key)
        if value is None:
            if required:
                out.append(f"{source}: {key}: missing (a required field)")
        elif not isinstance(value, str) or not value.strip():
            out.append(f"{source}: {key}: must be a non-empty string, got {show_value(value, yaml=True)}")
        elif len(value) > longest:
            out.append(f"{source}: {key}: at most {longest} characters, got {len(value)}")
    link = data.get("link")
    if isinstance(link, str) and link.strip() and not is_http_url(link):
        out.append(f"{source}: link: must be an http:// or https:// URL, got {show_value(link, yaml=True)}")
    benchmark = None
    if "benchmark" in data:
        benchmark, problems = check_benchmark(data["benchmark"], source, tasks)
        out += problems
    if out:
        return None, out
    return Meta(**{k: data.get(k) for k in META_FIELDS}, benchmark=benchmark), []


def check_entry(results: Results, source: str, tasks: dict[str, TaskInfo]) -> list[str]:
    """The rules a submitted results file must follow beyond the schema: evaluated, a known task at its current
    version, on the whole of the task's benchmark split (never built-in prompts, never ``--limit``), a seed, every
    metric of the task reported or skipped."""
    out = []
    if results.kind != "evaluated":
        out.append(f'kind: must be "evaluated" in a submission (numbers re-run with grue eval), got "{results.kind}"')
    out += check_split(results, tasks)
    if results.seed is None:
        out.append("seed: must be an integer >= 0 in a submission (one results file per seed), got null")
    out += check_task(
        results,
        tasks,
        fix="scores of another task version are not comparable: re-evaluate the run with the current grue",
    )
    info = tasks.get(results.task)
    if info is not None:
        missing = [m for m in info.metrics if m not in results.metrics and m not in results.skipped]
        if missing:
            out.append(
                f"metrics: missing {', '.join(missing)} (task {results.task} reports them); report each, "
                "or list it in skipped with the reason"
            )
        for name, metric in results.metrics.items():
            if name in info.metrics and metric.higher_is_better != info.metrics[name]:
                out.append(
                    f"metrics.{name}.higher_is_better: must be {show_value(info.metrics[name])} for {name}, "
                    f"got {show_value(metric.higher_is_better)}"
                )
    return [f"{source}: {p}" for p in out]


def check_split(results: Results, tasks: dict[str, TaskInfo]) -> list[str]:
    """One line when the file is not a whole benchmark split: built-in prompts (split ``builtin``, or
    ``run.builtin_prompts`` in a file written before that split existed), another split than the task's benchmark
    split, or a ``--limit`` evaluation (fewer examples evaluated than the split holds)."""
    run = results.config.get("run") if isinstance(results.config.get("run"), dict) else {}
    if results.split == "builtin" or run.get("builtin_prompts") is True:
        return [
            "split: results of the task's built-in prompts (a smoke check of the run, not a benchmark result); "
            "evaluate the task's benchmark split with --data-dir DIR (or GRUE_DATA_DIR)"
        ]
    info = tasks.get(results.task)
    if info is not None and results.split != info.benchmark_split:
        return [
            f'split: must be "{info.benchmark_split}", the benchmark split of {results.task} (benchmark_split in '
            f'tasks/{results.task}/task.yaml), got "{results.split}"'
        ]
    if results.samples is not None and results.samples.evaluated < results.samples.total:
        return [
            f"samples.evaluated: evaluated {results.samples.evaluated} of the split's {results.samples.total} "
            "examples (--limit); the leaderboard takes whole splits"
        ]
    return []


def check_task(results: Results, tasks: dict[str, TaskInfo], fix: str = "") -> list[str]:
    """The file's task must be one of ``tasks`` and its task_version that task's current version; ``fix``
    (e.g. how to regenerate the file) ends the version problem. Problems without the file's name."""
    info = tasks.get(results.task)
    if info is None:
        return [f'task: unknown task "{results.task}"; known: {", ".join(sorted(tasks))}']
    if results.task_version != info.version:
        return [
            f'task_version: must be "{info.version}", the version of tasks/{results.task}/task.yaml, '
            f'got "{results.task_version}"' + (f"; {fix}" if fix else "")
        ]
    return []


def check_samples(raw: bytes, source: str) -> tuple[list[dict], list[str]]:
    """samples.jsonl -> (its first SAMPLES_SHOWN rows, problems). Each line is a JSON object with string
    ``prompt`` and ``generation`` and a list of string ``references``."""
    if len(raw) > MAX_SAMPLES_BYTES:
        return [], [f"{source}: (file): larger than {MAX_SAMPLES_BYTES} bytes (5 MB), the limit for samples.jsonl"]
    try:
        lines = raw.decode("utf-8").split("\n")  # JSON Lines: "\n" only (str.splitlines also splits at U+0085, U+2028)
    except UnicodeDecodeError as e:
        return [], [f"{source}: (file): not UTF-8 text (invalid byte at offset {e.start})"]
    rows, out = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:
            out.append(f"{source}: line {number}: invalid JSON: {getattr(e, 'msg', e)}")
            continue
        refs = row.get("references") if isinstance(row, dict) else None
        if not (
            isinstance(row, dict)
            and isinstance(row.get("prompt"), str)
            and isinstance(row.get("generation"), str)
            and isinstance(refs, list)
            and all(isinstance(r, str) for r in refs)
        ):
            out.append(
                f'{source}: line {number}: must be an object with string "prompt" and "generation" and '
                'a list of strings "references"'
            )
        elif len(rows) < SAMPLES_SHOWN:
            rows.append({"prompt": row["prompt"], "generation": row["generation"], "references": refs})
        if len(out) >= 5:  # enough to fix the writer; a broken file would otherwise flood the report
            break
    return rows, out


def load_submission(
    root: Path, name: str, tasks: dict[str, TaskInfo], show_root: str
) -> tuple[Submission | None, list[str]]:
    """Read and check the submission folder ``root/name``; (Submission, []) when it is valid, else (None, problems)."""
    show = f"{show_root}/{name}"
    if not NAME.fullmatch(name):
        return None, [
            f"{show}: (folder): a submission folder name is 1 to 80 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        ]
    folder = root / name
    files, out = walk(folder, show)
    meta, entries, rels = None, [], {f.rel for f in files}  # links included: their problem is already listed
    for f in (f for f in files if not f.link):
        path = PurePosixPath(f.rel)
        if f.rel == META_FILE:
            meta, problems = _read_meta(folder / f.rel, f"{show}/{f.rel}", tasks)
            out += problems
        elif path.name == FILENAME and len(path.parts) >= 2:
            entry, problems = _read_entry(folder, f.rel, show, tasks, samples=str(path.parent / SAMPLES_FILE) in rels)
            out += problems
            if entry:
                entries.append(entry)
        elif not (path.name == SAMPLES_FILE and str(path.parent / FILENAME) in rels):
            out.append(
                f"{show}/{f.rel}: (file): not part of a submission; it holds submission.yaml and folders "
                "with results.json (and the samples.jsonl beside it), e.g. imdb/seed0/results.json"
            )
    if META_FILE not in rels:
        out.append(f"{show}/{META_FILE}: (file): missing; it says who submitted, the model, algorithm, link and notes")
    if not entries and not any(PurePosixPath(r).name == FILENAME for r in rels):
        out.append(f"{show}: (folder): no results.json; put each one in a folder per task and seed, e.g. imdb/seed0/")
    out += check_consistency(entries, show)
    if meta is not None and meta.benchmark is not None:
        out += [
            p
            for e in sorted(entries, key=lambda e: e.rel)
            for p in check_results(meta.benchmark, e.results, f"{show}/{e.rel}")
        ]
    if out:
        return None, out
    entries.sort(key=lambda e: (e.results.task, e.results.seed, e.rel))
    return Submission(name, meta, entries), []


def check_consistency(entries: list[Entry], show: str) -> list[str]:
    """One algorithm per submission, one model per task, and no (task, algorithm, model, seed) twice."""
    out, seen, first_algo, task_model = [], {}, None, {}
    for e in sorted(entries, key=lambda e: e.rel):
        r, source = e.results, f"{show}/{e.rel}"
        key = (r.task, r.algorithm, r.model.name, r.seed)
        if key in seen:
            out.append(
                f"{source}: seed: duplicate of {seen[key]} (same task, algorithm, model and seed {r.seed}); "
                "keep one results file per task and seed"
            )
            continue
        seen[key] = e.rel
        if first_algo is None:
            first_algo = (r.algorithm, e.rel)
        elif r.algorithm != first_algo[0]:
            out.append(
                f'{source}: algorithm: "{r.algorithm}" differs from "{first_algo[0]}" in {first_algo[1]}; '
                "a submission is one algorithm (open one submission per algorithm)"
            )
        model = task_model.setdefault(r.task, (r.model.name, e.rel))
        if r.model.name != model[0]:
            out.append(
                f'{source}: model.name: "{r.model.name}" differs from "{model[0]}" in {model[1]}; all seeds of '
                "a task evaluate one model"
            )
    return out


def _read_meta(path: Path, source: str, tasks) -> tuple[Meta | None, list[str]]:
    try:
        raw = read_limited(path, MAX_META_BYTES)
    except OSError as e:
        return None, [f"{source}: (file): cannot read it: {e.strerror or e}"]
    if len(raw) > MAX_META_BYTES:
        return None, [f"{source}: (file): larger than {MAX_META_BYTES} bytes, the limit for submission.yaml"]
    try:
        data = yaml.safe_load(raw.decode("utf-8"))  # safe_load: plain data only, no Python objects
    except UnicodeDecodeError as e:
        return None, [f"{source}: (file): not UTF-8 text (invalid byte at offset {e.start})"]
    except RecursionError:
        return None, [f"{source}: (file): invalid YAML: nested too deeply"]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        return None, [f"{source}: {where}: invalid YAML: {getattr(e, 'problem', None) or e}"]
    return check_meta(data, source, tasks)


def _read_entry(
    folder: Path, rel: str, show: str, tasks: dict[str, TaskInfo], samples: bool
) -> tuple[Entry | None, list[str]]:
    source = f"{show}/{rel}"
    try:
        results = from_bytes(read_limited(folder / rel, MAX_BYTES), source)
    except ResultsError as e:
        return None, e.problems
    except OSError as e:
        return None, [f"{source}: (file): cannot read it: {e.strerror or e}"]
    out = check_entry(results, source, tasks)
    rows = []
    if samples:
        samples_rel = str(PurePosixPath(rel).parent / SAMPLES_FILE)
        try:
            rows, problems = check_samples(
                read_limited(folder / samples_rel, MAX_SAMPLES_BYTES), f"{show}/{samples_rel}"
            )
            out += problems
        except OSError as e:
            out.append(f"{show}/{samples_rel}: (file): cannot read it: {e.strerror or e}")
    return (None if out else Entry(rel, results, rows)), out


def submission_names(root: Path, paths: list[str], show_root: str) -> tuple[list[str], list[str]]:
    """The submissions that hold ``paths`` (folders or files inside ``root``; ``root`` itself means all of
    them), sorted and once each, and the problems: a path outside ``root``, through a link, or missing."""
    names, out, base = set(), [], inside(root, root)
    for given in paths:
        full = inside(root, given)
        if full == base:
            names.update(p.name for p in Path(root).iterdir())
            continue
        if full is None:
            out.append(
                f"{given}: (path): not inside the submissions folder {show_root}; pass a submission folder "
                "or a file in one"
            )
            continue
        link = link_below(root, full)
        if link is not None:
            out.append(f"{given}: (path): goes through the symbolic link {link.name}; links are not accepted")
        elif not full.exists():
            out.append(f"{given}: (path): no such file or folder")
        else:
            names.add(full.relative_to(base).parts[0])
    folders, problems = root_entries(Path(root), names, show_root)
    return folders, out + problems


def root_entries(root: Path, names, show_root: str) -> tuple[list[str], list[str]]:
    """Names directly in the submissions folder -> (the submission folders among them, sorted; a problem for
    each other one). A real folder is a submission; README.md and .gitkeep may sit beside them as plain files;
    anything else, a symbolic link included, is a problem."""
    folders, out = [], []
    for name in sorted(set(names)):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            folders.append(name)
        elif path.is_symlink() or name not in ROOT_FILES:
            out.append(f"{show_root}/{name}: (file): not a submission folder; put your files in {show_root}/<name>/")
    return folders, out


def load_submissions(
    root: Path, tasks: dict[str, TaskInfo], show_root: str, names: list[str] | None = None
) -> tuple[list[Submission], list[str]]:
    """Load the submissions ``names`` (default: every folder of ``root``), sorted by name, and all problems."""
    if link_below(Path(root).parent, Path(root)) is not None or not Path(root).is_dir():
        return [], [f"{show_root}: (folder): not a folder (or a symbolic link); pass the submissions folder"]
    out = []
    if names is None:
        names, out = root_entries(Path(root), [p.name for p in Path(root).iterdir()], show_root)
    subs = []
    for name in sorted(names):
        sub, problems = load_submission(Path(root), name, tasks, show_root)
        out += problems
        if sub:
            subs.append(sub)
    return subs, out
