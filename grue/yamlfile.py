"""YAML files of settings: safe loading with YAML 1.2 booleans, and one-line errors naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from grue.errors import GrueError


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only true/false are booleans, so ``no``, ``yes``, ``on``
    and ``off`` stay strings (``run.mixed_precision: no`` means the string "no", not False)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str):
    """``text`` as YAML data (safe: plain data only), with YAML 1.2 booleans (see ``_Yaml12Loader``)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: Path) -> dict:
    """A YAML mapping from ``path``, or a one-line error."""
    try:
        data = parse_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise GrueError(f"cannot read config file {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise GrueError(
            f"{path} is not UTF-8 text (invalid byte at offset {e.start}); config files are UTF-8 YAML"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise GrueError(f"malformed YAML in {path}{where}: {getattr(e, 'problem', e)}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GrueError(f"{path} must hold a mapping of sections (run, generation, <algo>), not {type(data).__name__}")
    return data
