"""Untrusted input, fuzzed (hypothesis): ``--set`` items, ``--config`` files and results files never end in a
traceback. Every answer is exit 0, or exit 2 with one line ``error: ...`` (``grue leaderboard validate``: also exit
1 with its problem lines). Derandomized, so CI sees the same cases every time; a few deterministic ``--dry-run``
tests come first."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, cli_in_process
from grue.algorithms import ALGORITHMS, NAMES
from grue.algorithms import resolve
from grue.config import EvalConfig, GenerationConfig, RunConfig
from grue.results import Results, ResultsError, from_bytes, load_results

FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
EXAMPLE = REPO / "leaderboard" / "examples" / "tiny-ppo-smoke"
VALID_RESULTS = json.loads((EXAMPLE / "imdb" / "seed0" / "results.json").read_text(encoding="utf-8"))

SECTIONS = {
    "run": RunConfig,
    "generation": GenerationConfig,
    "eval": EvalConfig,
    **{name: ALGORITHMS[name].CONFIG for name in NAMES},
}
FIELDS = sorted({f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)})
KEYS = sorted(f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)) + FIELDS

# Values that YAML reads as something other than plain text, or cannot read at all.
TOKENS = [
    "null",
    "~",
    "[1",
    "{a: ",
    "''",
    '""',
    "true",
    "no",
    "1e3",
    "0x1F",
    "-1",
    "0",
    "1",
    "nan",
    ".inf",
    "-.inf",
    "[]",
    "{}",
    "[1, 2]",
    "{a: 1}",
    "{1: 2}",
    "!!binary aGk=",
    "!!set {a}",
    "&a [*a]",
    "2024-01-01",
    "é",
    "\u202e",
    "1e400",
    "'unclosed",
    "!!python/object/apply:os.system ['true']",
    "- a\n- b",
    "a: b",
    "tokens",
    "completions",
]
VALUES = st.one_of(
    st.sampled_from(TOKENS),
    st.text(max_size=12),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def check_answer(r, *, problems_ok: bool = False) -> None:
    """Exit 0; or 2 with one ``error: `` line; (``problems_ok``) or 1 ending with the problem count."""
    allowed = {0, 2, 1} if problems_ok else {0, 2}
    assert r.returncode in allowed, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    if r.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    if r.returncode == 1:
        assert lines and lines[-1].endswith("how to fix a submission: leaderboard/README.md"), r.stderr


def check_dry_run(r, task: str, algo: str) -> None:
    """A dry run's answer; exit 0 prints the resolved config, whose task and algorithm are those asked for."""
    check_answer(r)
    if r.returncode == 0:
        printed = yaml.safe_load(r.stdout)
        assert (printed["run"]["task"], printed["run"]["algo"]) == (task, algo) and algo in printed


# ---- --dry-run ------------------------------------------------------------------------------------


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    r = cli_in_process(
        "train",
        "imdb",
        "--algo",
        "a2c",
        "--preset",
        "smoke",
        "--set",
        "a2c.lr=3e-5",
        "--seed",
        "7",
        "--iterations",
        "3",
        "--output-dir",
        str(out),
        "--dry-run",
    )
    assert r.returncode == 0, r.stderr
    expected = resolve(
        "imdb",
        "a2c",
        preset="smoke",
        flags={"run.seed": 7, "run.output_dir": str(out), "algo.iterations": 3},
        sets=["a2c.lr=3e-5"],
    ).to_dict()
    assert yaml.safe_load(r.stdout) == expected
    assert (expected["a2c"]["lr"], expected["a2c"]["iterations"], expected["run"]["seed"]) == (3e-5, 3, 7)
    assert list(tmp_path.iterdir()) == []  # no run directory


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "ppo.minibatch_size=0"], "error: ppo.minibatch_size must be at least 1, got 0"),
        (["--algo", "nlpo", "--set", "grad_accum=0"], "error: nlpo.grad_accum must be at least 1, got 0"),
        (
            ["--set", "ppo.minibatch_size=48"],
            "error: ppo.minibatch_size (48) must divide the per-process rollout (1280)",
        ),
        (["--set", "generation.top_p=0"], "error: generation.top_p must be in (0, 1] (1: no limit), got 0.0"),
    ],
)
def test_dry_run_checks_the_config_as_the_run_would(args, message):
    r = cli_in_process("train", "imdb", "--dry-run", *args)
    assert (r.returncode, r.stderr.strip(), r.stdout) == (2, message, "")


def test_dry_run_of_resume_prints_the_saved_config_with_the_options(tmp_path):
    saved = {**resolve("imdb", "ppo", preset="smoke").to_dict(), "world_size": 1}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    before = sorted(tmp_path.rglob("*"))
    r = cli_in_process(
        "train", "imdb", "--resume", str(tmp_path), "--iterations", "9", "--preset", "smoke", "--dry-run"
    )
    assert r.returncode == 0, r.stderr
    printed = yaml.safe_load(r.stdout)
    assert printed["ppo"]["iterations"] == 9 and printed["run"] == saved["run"]
    r = cli_in_process("train", "imdb", "--resume", str(tmp_path), "--set", "ppo.lr=1e-3", "--dry-run")
    assert (
        r.returncode == 2
        and r.stderr.startswith(f"error: --resume {tmp_path}: these options conflict")
        and r.stdout == ""
    )
    r = cli_in_process("train", "imdb", "--resume", str(tmp_path), "--iterations", "0", "--dry-run")
    assert (r.returncode, r.stderr.strip()) == (2, "error: ppo.iterations must be at least 1, got 0")
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_errors_quoting_control_characters_stay_one_line(tmp_path):
    r = cli_in_process("train", "imdb", "--dry-run", "--set", "\x1b[2J\r")
    assert (r.returncode, r.stderr) == (2, "error: --set expects key=value (e.g. ppo.lr=1e-5), got '\\x1b[2J\\r'\n")
    r = cli_in_process("train", "imdb", "--dry-run", "--set", "ppo.\u202ex\ny=1")
    assert (
        r.returncode == 2 and r.stderr.startswith("error: unknown key 'ppo.\\u202ex\\ny'") and r.stderr.count("\n") == 1
    )
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("run:\n  model: caf\xe9\n".encode("latin-1"))
    r = cli_in_process("train", "imdb", "--dry-run", "--config", str(bad))
    assert (r.returncode, r.stderr) == (
        2,
        f"error: {bad} is not UTF-8 text (invalid byte at offset 17); config files are UTF-8 YAML\n",
    )


# ---- --set items --------------------------------------------------------------------------------

SET_ITEMS = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), VALUES),
    st.text(max_size=15),
)


@settings(FUZZ, max_examples=180)
@given(algo=st.sampled_from(NAMES), items=st.lists(SET_ITEMS, min_size=1, max_size=3))
def test_fuzzed_set_items_get_an_answer(algo, items):
    args = [a for item in items for a in ("--set", item)]
    check_dry_run(cli_in_process("train", "imdb", "--algo", algo, "--dry-run", *args), "imdb", algo)


# ---- --config files -----------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8), st.sampled_from(TOKENS)
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=6), SCALARS), inner, max_size=3)
    ),
    max_leaves=8,
)
SECTION = st.one_of(st.dictionaries(st.sampled_from(FIELDS), DATA, max_size=4), DATA)
CONFIG_DATA = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=6)), SECTION, max_size=3), DATA
)


def yaml_text(data) -> str:
    """``data`` as YAML text; a key PyYAML cannot write (a list) is written as its text."""
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return repr(data)


CONFIG_BYTES = st.one_of(
    CONFIG_DATA.map(lambda d: yaml_text(d).encode("utf-8")),
    st.binary(max_size=64),
    st.lists(
        st.sampled_from(TOKENS + ["run:", "  seed: 1", "ppo:", "\t", ":", "- -", "%YAML 9.9", "--- !!map", "? [a]"]),
        max_size=6,
    ).map(lambda t: "\n".join(t).encode()),
)


@settings(FUZZ, max_examples=140)
@given(algo=st.sampled_from(NAMES), raw=CONFIG_BYTES)
def test_fuzzed_config_files_get_an_answer(algo, raw):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        path.write_bytes(raw)
        check_dry_run(cli_in_process("train", "imdb", "--algo", algo, "--config", str(path), "--dry-run"), "imdb", algo)


# ---- results files ------------------------------------------------------------------------------

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)


@st.composite
def mutated_results(draw) -> dict:
    """The example's valid results with a few fields (at any depth) deleted or replaced by random JSON."""
    data = json.loads(json.dumps(VALID_RESULTS))
    for _ in range(draw(st.integers(1, 4))):
        node = data
        while isinstance(node, dict) and node and draw(st.booleans()):
            child = node[draw(st.sampled_from(sorted(node)))]
            if not isinstance(child, dict) or not child:
                break
            node = child
        if not isinstance(node, dict) or not node:
            continue
        key = draw(st.one_of(st.sampled_from(sorted(node)), st.text(max_size=8)))
        if draw(st.booleans()):
            node.pop(key, None)
        else:
            node[key] = draw(JSON)
    return data


RESULTS_BYTES = st.one_of(
    mutated_results().map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    mutated_results()
    .map(lambda d: json.dumps(d).encode())
    .flatmap(  # a valid-looking file cut short
        lambda b: st.integers(0, len(b)).map(lambda n: b[:n])
    ),
)


def leaderboard_validate(raw: bytes):
    """``grue leaderboard validate`` on a copy of the example submission's IMDB result, replaced by ``raw``."""
    with tempfile.TemporaryDirectory() as d:
        sub = Path(d) / "fuzzed"
        (sub / "imdb" / "seed0").mkdir(parents=True)
        shutil.copy(EXAMPLE / "submission.yaml", sub)
        (sub / "imdb" / "seed0" / "results.json").write_bytes(raw)
        assert load_or_error(sub / "imdb" / "seed0" / "results.json") is not None
        return cli_in_process("leaderboard", "validate", str(sub))


def load_or_error(path: Path):
    """``load_results(path)``: Results, or a ResultsError with its problem lines (anything else escapes)."""
    try:
        return load_results(path)
    except ResultsError as e:
        assert e.problems and all(isinstance(p, str) and "\n" not in p for p in e.problems)
        return e


@settings(FUZZ, max_examples=100)
@given(raw=RESULTS_BYTES)
def test_fuzzed_results_files_get_an_answer(raw):
    try:
        assert isinstance(from_bytes(raw), Results)
    except ResultsError as e:
        assert e.problems
    check_answer(leaderboard_validate(raw), problems_ok=True)


def test_a_field_name_with_a_line_break_is_one_problem_line():
    bad = json.dumps({**VALID_RESULTS, "a\nb": 1}).encode()
    with pytest.raises(ResultsError) as e:
        from_bytes(bad)
    assert e.value.problems == ["results.json: a\\nb: unknown field; accepted: " + ", ".join(VALID_RESULTS)]


def test_the_unmutated_example_is_valid():
    """The fuzzed results start from a valid file (else every mutation would be rejected for the same reason)."""
    assert isinstance(from_bytes(json.dumps(VALID_RESULTS).encode()), Results)
    assert leaderboard_validate(json.dumps(VALID_RESULTS).encode()).returncode == 0
