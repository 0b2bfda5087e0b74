"""The package's layering, read from the source: every ``import`` of every module (also those inside functions).

Rules (issue 11): the library never imports the CLI; the math modules import no grue module outside the math
layer; metrics and rewards import no algorithm, rollout or training session; ``grue.results`` and the leaderboard
import neither torch, transformers nor grue.models (statically, and in a fresh interpreter); no import circle.
Issue 25: the engine (session, on-policy and grouped steps, rollouts, the config bases) never imports an algorithm;
grue.config names none; the algorithms' configs are the engine's config bases.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MATH = {"grue.advantages", "grue.kl", "grue.losses", "grue.sampling", "grue.trust_region"}
SESSION = {"grue.rollout", "grue.session", "grue.run_setup", "grue.onpolicy", "grue.grouped"}  # rollouts, the session
ENGINE = SESSION | {"grue.engine_config", "grue.stability", "grue.data"}  # what an algorithm is written against
LIGHT_ROOTS = ("grue.results", "grue.leaderboard", "grue.frames")
HEAVY = ("torch", "transformers", "grue.models")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, anywhere in the file: ``from a.b import c`` is ``a.b.c`` when that is a
    module of the package, else ``a.b``; relative imports are resolved against the module's package."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            out.update(dynamic_targets(node, known))
    return out


def dynamic_targets(call: ast.Call, known: set[str]) -> set[str]:
    """The package modules an ``importlib.import_module(...)`` call can import: the named one for a constant, every
    module under the f-string's constant prefix (e.g. ``f"grue.algorithms.{n}"``); nothing for other arguments."""
    arg = call.args[0] if call.args else None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value} & known
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = arg.values[0].value
        return {m for m in known if m.startswith(prefix) and prefix.endswith(".")}
    return set()


def graph() -> dict[str, set[str]]:
    files = [p for d in ("grue", "grue_cli") for p in (REPO / d).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) for p in files}


GRAPH = graph()


def reach(start: str, only_grue: bool = True, skip: str = "") -> set[str]:
    """Modules imported by ``start``, directly or through other grue modules (not through ``skip``: the facade, whose
    ``__version__`` every module may read)."""
    seen, todo = set(), [start]
    while todo:
        for m in GRAPH.get(todo.pop(), ()):
            if m not in seen and m != skip and (m.startswith("grue") or not only_grue):
                seen.add(m)
                todo.append(m)
    return seen


def test_the_graph_is_read():
    assert "grue.config" in GRAPH["grue.evaluation"] and "torch" in GRAPH["grue.kl"]
    assert "grue.algorithms.ppo" in GRAPH["grue.algorithms"]  # importlib.import_module(f"grue.algorithms.{n}")


def test_library_never_imports_the_cli():
    bad = sorted(
        f"{m} -> {i}"
        for m, deps in GRAPH.items()
        if m.startswith("grue.") or m == "grue"
        for i in deps
        if i.split(".")[0] == "grue_cli"
    )
    assert not bad


def test_math_modules_import_only_math():
    bad = sorted(f"{m} -> {i}" for m in MATH for i in GRAPH[m] if i.split(".")[0] == "grue" and i not in MATH)
    assert not bad


def test_metrics_and_rewards_import_no_training():
    scoring = [m for m in GRAPH if m == "grue.rewards" or m == "grue.metrics" or m.startswith("grue.metrics.")]
    forbidden = lambda i: i in SESSION or i == "grue.algorithms" or i.startswith("grue.algorithms.")  # noqa: E731
    bad = sorted(f"{m} -> {i}" for m in scoring for i in reach(m) if forbidden(i))
    assert not bad


def test_results_and_leaderboard_are_light_statically():
    light = [m for m in GRAPH if m.startswith(LIGHT_ROOTS)]
    bad = sorted(f"{m} -> {i}" for m in light for i in reach(m, only_grue=False) if i.startswith(HEAVY))
    assert not bad


def test_results_and_leaderboard_are_light_at_run_time():
    code = (
        "import sys, grue.results, grue.leaderboard.build, grue.leaderboard.board; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers') or m == 'grue.models'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


FACADE = "grue"
"""The package's __init__: ``__version__`` and the re-exported Python API (grue.api). Every module may read
``grue.__version__``, so the facade is left out of the circle search; test_the_facade_is_thin keeps it so."""


def test_the_facade_is_thin():
    assert GRAPH[FACADE] == {"grue.api"}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module of ``g`` (Tarjan's algorithm), each sorted."""
    grue_graph = {m: {i for i in deps if i in g} for m, deps in g.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in grue_graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in grue_graph[v]:
                out.append(sorted(group))

    for v in sorted(grue_graph):
        if v not in index:
            visit(v)
    return out


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c", "x"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert circles({m: deps - {FACADE} for m, deps in GRAPH.items() if m != FACADE}) == []


def test_results_name_the_algorithms_train_accepts():
    from grue.algorithms import NAMES
    from grue.results import TRAINING_ALGORITHMS

    assert sorted(TRAINING_ALGORITHMS) == sorted(NAMES)


def test_the_engine_never_imports_an_algorithm():
    """The contract runs one way: algorithms import the engine, the engine reads their settings only through its
    config bases (grue.engine_config), never by importing them."""
    bad = sorted(
        f"{m} -> {i}"
        for m in ENGINE
        for i in reach(m, skip=FACADE)
        if i == "grue.algorithms" or i.startswith("grue.algorithms.")
    )
    assert not bad


def test_the_config_module_names_no_algorithm():
    """grue.config sits below the algorithms: it imports none, and no name or string of its code is an algorithm's."""
    import ast

    from grue.algorithms import NAMES

    assert not [i for i in reach("grue.config", skip=FACADE) if i.startswith("grue.algorithms")]
    tree = ast.parse((REPO / "grue" / "config.py").read_text(encoding="utf-8"))
    named = [
        getattr(n, "value", getattr(n, "id", getattr(n, "attr", None)))
        for n in ast.walk(tree)
        if isinstance(n, (ast.Constant, ast.Name, ast.Attribute))
    ]
    assert not [x for x in named if isinstance(x, str) and x in NAMES]


def test_every_rl_algorithm_config_is_an_engine_config():
    """Each RL algorithm's config subclasses OnPolicyConfig, so the engine reads typed settings (no getattr defaults),
    and its YAML section is its class name's (OnPolicyConfig.section)."""
    from grue.algorithms import NAMES, config_class
    from grue.engine_config import OnPolicyConfig

    for name in NAMES:
        cls = config_class(name)
        assert (name == "supervised") != issubclass(cls, OnPolicyConfig), name
        assert name == "supervised" or cls.section() == name


def test_the_engine_reads_no_config_setting_by_getattr_with_a_default():
    import ast

    found = []
    for module in sorted(ENGINE):
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        found += [
            f"{module}:{n.lineno}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
            and getattr(n.func, "id", "") == "getattr"
            and len(n.args) == 3
            and "algo" in ast.unparse(n.args[0])
        ]
    assert not found
