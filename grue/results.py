"""The results file contract: ``results.json``, typed, versioned and validated.

``grue eval`` builds a :class:`Results` and calls :func:`write_results`; the leaderboard
reads files only through :func:`load_results` (or :func:`from_bytes`, for bytes it read
itself). The contract, field by field, is ``leaderboard/RESULTS_SCHEMA.md``. Every problem reads ``"<source>: <field path>: <what is
wrong>"`` (e.g. ``results.json: model.parameters: must be an integer >= 0, got -3``), and
validation collects all of a file's problems, not just the first.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grue.errors import ProblemsError
from grue.files import atomic_write_text

SCHEMA_VERSION = 1
"""Bumped by any change that an older reader would misread; readers accept this version only."""
FILENAME = "results.json"
MAX_BYTES = 5 * 1024 * 1024
"""Larger files are refused unread: a results file is a few kilobytes."""
KINDS = ("evaluated", "reported")
SPLITS = ("train", "validation", "test", "builtin")
"""``builtin``: a task's built-in prompts (a smoke run evaluated without a data directory), not a split of its data."""
TRAINING_ALGORITHMS = ("supervised", "ppo", "nlpo", "a2c", "grpo", "rloo", "trpo")
"""An evaluated file's algorithm is one of ``OTHER_ALGORITHMS``, one of these, or several of these joined by
``+`` in training order for a run started from another (``--init-from``): ``supervised+ppo`` is PPO from a
supervised run."""
OTHER_ALGORITHMS = ("zero-shot", "external")
"""``zero-shot``: a model evaluated untrained; ``external``: generations made elsewhere, scored by
``grue eval --predictions`` (the model's revision and size may then be unknown: null)."""
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_COMMIT = re.compile(r"[0-9a-f]{7,64}(-dirty)?")  # 64: SHA-256 repositories
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


class ResultsError(ProblemsError):
    """A results file that breaks the contract; ``problems`` lists every problem found."""


@dataclass
class ModelInfo:
    """The evaluated model: ``name`` a Hub id, local path or built-in name (``tiny-gpt2``); ``revision`` the
    Hub commit hash, or None for a local or built-in model (or unknown); ``parameters`` its number of
    parameters (>= 0), or None when unknown (only for algorithm ``external``)."""

    name: str
    revision: str | None
    parameters: int | None


@dataclass
class MetricValue:
    """One corpus-level number: ``value`` finite, on the GRUE paper's scale; ``higher_is_better`` None when
    the number is descriptive (e.g. mean output length); ``std`` the standard deviation printed next to a
    reported number (None otherwise: one evaluated file is one seed, the leaderboard computes the spread)."""

    value: float
    higher_is_better: bool | None
    std: float | None = None


@dataclass
class SampleCounts:
    """How much of the split was scored: ``total`` examples in the split, ``evaluated`` of them scored
    (fewer with ``--max-samples``); 1 <= evaluated <= total."""

    total: int
    evaluated: int


@dataclass(kw_only=True)
class Results:
    """One results file: one task, split, model, algorithm and seed. Field order is the file's key order."""

    schema_version: int = SCHEMA_VERSION
    kind: str
    """``evaluated`` (written by ``grue eval``) or ``reported`` (numbers copied from a paper, not re-run)."""
    task: str
    task_version: str
    split: str
    algorithm: str
    model: ModelInfo
    seed: int | None
    metrics: dict[str, MetricValue]
    skipped: dict[str, str] = field(default_factory=dict)
    """Metric name -> why it was not computed."""
    samples: SampleCounts | None
    runtime_seconds: float | None
    date: str
    """When the file was written, UTC, ``YYYY-MM-DDTHH:MM:SSZ`` (see :func:`utc_now`)."""
    grue_version: str
    git_commit: str | None
    source: str | None = None
    """Citation of reported numbers; None for evaluated files."""
    notes: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved run configuration (``Config.to_dict()``); may be empty for reported files."""


def utc_now() -> str:
    """The current time in the file's date format, e.g. ``2024-05-01T12:00:00Z``."""
    return datetime.now(timezone.utc).strftime(DATE_FORMAT)


# ---- checks: each accepts a parsed JSON value and says whether it is allowed


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite int or float (bool excluded: JSON true is not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _matches(pattern: re.Pattern) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


def _is_date(v: Any) -> bool:
    if not _matches(_DATE)(v):
        return False
    try:
        datetime.strptime(v, DATE_FORMAT)  # rejects month 13, February 30, hour 24...
        return True
    except ValueError:
        return False


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _choices(values) -> str:
    return "one of " + ", ".join(json.dumps(v) for v in values)


_METRIC_WHAT = 'a JSON object {"value", "higher_is_better"} (and "std" for a reported number)'
# field -> (accepts, what is accepted); nested objects are checked on their own below
_TOP = {
    "schema_version": (lambda v: True, ""),  # checked first: another version is another contract
    "kind": (lambda v: v in KINDS, _choices(KINDS)),
    "task": (_matches(_NAME), "a task name matching ^[a-z][a-z0-9_]*$"),
    "task_version": (_is_text, "a non-empty string"),
    "split": (lambda v: v in SPLITS, _choices(SPLITS)),
    "algorithm": (_is_text, "a non-empty string"),
    "model": (_is_object, 'a JSON object {"name", "revision", "parameters"}'),
    "seed": (_or_null(lambda v: _is_int(v) and v >= 0), "an integer >= 0 or null"),
    "metrics": (_is_object, "a JSON object {name: " + _METRIC_WHAT + "}"),
    "skipped": (_is_object, "a JSON object {name: reason}"),
    "samples": (_or_null(_is_object), 'a JSON object {"total", "evaluated"} or null'),
    "runtime_seconds": (_or_null(lambda v: _is_number(v) and v >= 0), "a finite number >= 0 or null"),
    "date": (_is_date, 'an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SSZ"'),
    "grue_version": (_is_text, "a non-empty string"),
    "git_commit": (_or_null(_matches(_COMMIT)), "7 to 64 lowercase hex digits (optionally + '-dirty') or null"),
    "source": (_or_null(_is_text), "a non-empty string or null"),
    "notes": (_or_null(_is_text), "a non-empty string or null"),
    "config": (_is_object, "a JSON object (the resolved run configuration)"),
}
_OPTIONAL = ("skipped", "source", "notes", "config")
_MODEL = {
    "name": (_is_text, "a non-empty string (Hub id, local path or built-in name)"),
    "revision": (_or_null(_is_text), "a non-empty string (Hub commit hash) or null"),
    "parameters": (_or_null(lambda v: _is_int(v) and v >= 0), 'an integer >= 0 (or null for algorithm "external")'),
}
_SAMPLES = {
    "total": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "evaluated": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
}
_METRIC = {
    "value": (_is_number, "a finite number"),
    "higher_is_better": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "std": (_or_null(lambda v: _is_number(v) and v >= 0), "a finite number >= 0 or null"),
}
_METRIC_OPTIONAL = ("std",)


def show_value(v: Any, yaml: bool = False) -> str:
    """A value for a message as the file spells it (``NaN``, ``-3``, ``"x"``), cut to 60 characters.

    ``yaml=True`` for a value parsed from YAML: a mapping or list is named by kind only ("a mapping",
    "a list"; YAML aliases can make one huge) and other non-JSON scalars (dates) are shown as text."""
    if yaml and isinstance(v, (dict, list, tuple, set)):
        return "a mapping" if isinstance(v, dict) else "a list"
    try:
        text = json.dumps(v, ensure_ascii=False, default=str if yaml else None)
    except (TypeError, ValueError):  # a Python object that is not JSON, given to from_dict
        text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_object(obj: dict, path: str, spec: dict, out: list[str], optional=()) -> None:
    """Append to ``out`` the unknown, missing and wrong fields of ``obj`` against ``spec``."""
    at = (lambda key: f"{path}.{key}") if path else str
    out += [f"{at(key)}: unknown field; accepted: {', '.join(spec)}" for key in obj if key not in spec]
    for key, (accepts, what) in spec.items():
        if key not in obj:
            if key not in optional:
                out.append(f"{at(key)}: missing (a required field)")
        elif not accepts(obj[key]):
            out.append(f"{at(key)}: must be {what}, got {show_value(obj[key])}")


def _check_json(value: Any, path: str, out: list[str]) -> None:
    """Append a problem for every part of ``value`` that is not plain JSON with finite numbers."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _check_json(item, f"{path}.{key}", out)
            else:
                out.append(f"{path}: keys must be strings, got {show_value(key)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", out)
    elif not (value is None or isinstance(value, (str, bool)) or _is_int(value) or _is_number(value)):
        out.append(
            f"{path}: must be JSON data (object, array, string, finite number, boolean, null), got {show_value(value)}"
        )


def _check_names(names, path: str, out: list[str]) -> None:
    for name in names:
        if not _matches(_NAME)(name):
            out.append(f"{path}.{name}: metric names must match ^[a-z][a-z0-9_]*$ (e.g. rouge_l)")


def _check_kind(data: dict, out: list[str]) -> None:
    """The rules that differ between evaluated and reported files."""
    if data.get("kind") == "reported":
        if data.get("source") is None:  # an empty string is reported by the field check
            out.append('source: required when kind is "reported": where the numbers come from (paper, table)')
    elif data.get("kind") == "evaluated":
        algo = data.get("algorithm")
        if (
            _is_text(algo)
            and algo not in OTHER_ALGORITHMS
            and not all(a in TRAINING_ALGORITHMS for a in algo.split("+"))
        ):
            out.append(
                f'algorithm: must be "zero-shot", "external" or {_choices(TRAINING_ALGORITHMS)}, or several of '
                f'these joined by "+" (e.g. "supervised+ppo") when kind is "evaluated", got {show_value(algo)}'
            )
        for key in ("samples", "runtime_seconds"):
            if key in data and data[key] is None:
                out.append(f'{key}: must not be null when kind is "evaluated"')
        if data.get("source") is not None:
            out.append('source: must be null when kind is "evaluated" (source cites reported numbers)')
        if data.get("config", {}) == {}:
            out.append('config: must hold the resolved run configuration when kind is "evaluated"')
        metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
        for name, metric in metrics.items():
            if isinstance(metric, dict) and metric.get("std") is not None:
                out.append(
                    f'metrics.{name}.std: must be null or left out when kind is "evaluated" (one file is '
                    "one seed; the leaderboard computes the spread over seeds)"
                )


def validate(data: Any, source: str = FILENAME) -> list[str]:
    """Every problem of ``data`` (a parsed results file) as ``"<source>: <path>: <problem>"``; [] when valid."""
    if not isinstance(data, dict):
        return [f"{source}: (top level): must be a JSON object, got {show_value(data)}"]
    version = data.get("schema_version", SCHEMA_VERSION)
    if not (_is_int(version) and version == SCHEMA_VERSION):
        return [
            f"{source}: schema_version: must be {SCHEMA_VERSION}, the only version this grue reads, "
            f"got {show_value(version)}"
        ]
    out: list[str] = []
    _check_object(data, "", _TOP, out, _OPTIONAL)
    if isinstance(data.get("model"), dict):
        _check_object(data["model"], "model", _MODEL, out)
        if (
            "parameters" in data["model"]
            and data["model"]["parameters"] is None
            and data.get("algorithm") != "external"
        ):
            out.append(
                'model.parameters: null (unknown) is allowed only for algorithm "external" (generations scored '
                "without their model); got null for algorithm " + show_value(data.get("algorithm"))
            )
    samples = data.get("samples")
    if isinstance(samples, dict):
        _check_object(samples, "samples", _SAMPLES, out)
        total, evaluated = samples.get("total"), samples.get("evaluated")
        if _is_int(total) and _is_int(evaluated) and total >= 1 and evaluated > total:
            out.append(f"samples.evaluated: must be <= samples.total ({total}), got {evaluated}")
    metrics = data["metrics"] if isinstance(data.get("metrics"), dict) else {}
    if "metrics" in data and data["metrics"] == {}:
        out.append("metrics: must hold at least one metric, got {}")
    _check_names(metrics, "metrics", out)
    for name, metric in metrics.items():
        if isinstance(metric, dict):
            _check_object(metric, f"metrics.{name}", _METRIC, out, _METRIC_OPTIONAL)
        else:
            out.append(f"metrics.{name}: must be {_METRIC_WHAT}, got {show_value(metric)}")
    skipped = data["skipped"] if isinstance(data.get("skipped"), dict) else {}
    _check_names(skipped, "skipped", out)
    for name, reason in skipped.items():
        if not _is_text(reason):
            out.append(
                f"skipped.{name}: must be a non-empty string (why it was not computed), got {show_value(reason)}"
            )
        if name in metrics:
            out.append(f"skipped.{name}: also in metrics; a metric is either computed or skipped")
    if isinstance(data.get("config"), dict):
        _check_json(data["config"], "config", out)
    _check_kind(data, out)
    return [f"{source}: {p}" for p in out]


def to_dict(results: Results) -> dict:
    """``results`` as JSON-ready data: dataclass field order, metrics and skipped sorted by name; a metric's
    ``std`` is written only when it is set."""
    data = asdict(results)  # nested dataclasses become dicts; config is deep-copied
    for key in ("metrics", "skipped"):
        if isinstance(data[key], dict):
            data[key] = dict(sorted(data[key].items(), key=lambda item: str(item[0])))
    for metric in data["metrics"].values() if isinstance(data["metrics"], dict) else ():
        if isinstance(metric, dict) and metric.get("std") is None:
            metric.pop("std", None)
    return data


def from_dict(data: Any, source: str = FILENAME) -> Results:
    """Validate ``data`` (a parsed file) and build its :class:`Results`; :class:`ResultsError` lists all problems."""
    problems = validate(data, source)
    if problems:
        raise ResultsError(problems)
    values = copy.deepcopy(data)
    values["model"] = ModelInfo(**values["model"])
    values["samples"] = None if values["samples"] is None else SampleCounts(**values["samples"])
    values["metrics"] = {
        k: MetricValue(float(m["value"]), m["higher_is_better"], None if m.get("std") is None else float(m["std"]))
        for k, m in sorted(values["metrics"].items())
    }
    values["skipped"] = dict(sorted(values.get("skipped", {}).items()))
    if values["runtime_seconds"] is not None:
        values["runtime_seconds"] = float(values["runtime_seconds"])
    return Results(**values)


def _unique_keys(pairs: list) -> dict:
    """An object of the JSON text; a repeated key raises KeyError (json would silently keep the last one)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise KeyError(key)
        out[key] = value
    return out


def parse(text: str, source: str = FILENAME) -> Any:
    """JSON text -> data, duplicate keys refused.

    NaN and Infinity literals (and overflowing numbers such as 1e999) parse to non-finite floats, which
    :func:`validate` rejects wherever they stand, with their field path.
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        problem = f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
    except KeyError as e:
        problem = f"duplicate key {show_value(e.args[0])} in one JSON object; each key may appear once"
    except RecursionError:
        problem = "invalid results file: JSON nested too deeply"
    raise ResultsError([f"{source}: {problem}"])


def write_results(results: Results, path: str | Path) -> Path:
    """Validate ``results`` and write them to ``path`` atomically (indent 2, UTF-8); an invalid one writes nothing."""
    path = Path(path)
    data = to_dict(results)
    problems = validate(data, str(path))
    if problems:
        raise ResultsError(problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def load_results(path: str | Path) -> Results:
    """Read and validate a results file: at most 5 MB of UTF-8 JSON; every problem says where it is."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # never more than the limit, whatever the file claims
    except OSError as e:
        raise ResultsError([f"{source}: cannot read the results file: {e.strerror or e}"]) from None
    return from_bytes(raw, source)


def from_bytes(raw: bytes, source: str = FILENAME) -> Results:
    """The bytes of a results file (read by the caller, e.g. without following links) -> validated :class:`Results`."""
    if len(raw) > MAX_BYTES:
        raise ResultsError([f"{source}: larger than {MAX_BYTES} bytes (5 MB), the limit for a results file"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ResultsError(
            [f"{source}: not UTF-8 text (invalid byte at offset {e.start}); results files are UTF-8 JSON"]
        ) from None
    return from_dict(parse(text, source), source)
