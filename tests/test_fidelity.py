"""docs/fidelity.md: every option it names exists, every "option" row names one, and the leaderboard links it."""

from __future__ import annotations

import dataclasses
import re

from grue.algorithms import ALGORITHMS
from grue.config import EvalConfig, GenerationConfig, RunConfig
from conftest import REPO

DOC = REPO / "docs" / "fidelity.md"
SECTIONS = {
    "run": RunConfig,
    "generation": GenerationConfig,
    "eval": EvalConfig,
    **{name: module.CONFIG for name, module in ALGORITHMS.items()},
}
NAME = re.compile(r"`(" + "|".join(SECTIONS) + r")\.([a-z_][a-z0-9_]*)`")


def test_every_option_named_exists():
    text = DOC.read_text(encoding="utf-8")
    named = {(s, k) for s, k in NAME.findall(text) if k not in ("yaml", "yml", "py", "md")}  # not file names
    assert len(named) >= 25, "the page names the options that reproduce or change the paper's behaviour"
    missing = [f"{s}.{k}" for s, k in sorted(named) if k not in {f.name for f in dataclasses.fields(SECTIONS[s])}]
    assert not missing, f"docs/fidelity.md names options that do not exist: {missing}"


def status_cells() -> list[str]:
    """The last cell of every row of every table whose last column is ``status``."""
    cells, header = [], None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        last = line.rstrip(" |").rsplit("|", 1)[-1].strip()
        if header is None:
            header = last
        elif header == "status" and not set(line) <= set("|- "):
            cells.append(last)
    return cells


def test_every_row_has_a_status_and_option_rows_name_their_option():
    cells = status_cells()
    assert len(cells) > 100
    bad = [c for c in cells if not c.startswith(("matched", "option: ", "deliberate: ", "fixed: ", "changed: "))]
    assert not bad, bad[:5]
    for cell in cells:
        if cell.startswith("option: "):
            assert NAME.match(cell[len("option: ") :]) and "(default " in cell, cell


def test_readme_and_leaderboard_point_to_it(tmp_path):
    from grue.leaderboard.build import fidelity_text
    from grue.leaderboard.site import index_html

    assert "docs/fidelity.md" in (REPO / "README.md").read_text(encoding="utf-8")
    assert fidelity_text() == DOC.read_text(encoding="utf-8")
    import inspect

    assert 'href="fidelity.md"' in inspect.getsource(index_html)


def test_which_settings_made_which_rows_and_the_97df0bd_preset():
    """Section 6 says which settings made the paper's rows; the defaults follow the paper's tables, and every task
    offers RL4LMs 97df0bd's file values as --preset rl4lms-97df0bd."""
    from grue.algorithms import resolve

    text = DOC.read_text(encoding="utf-8")
    assert "## 6. Which settings made which rows" in text and "`--preset rl4lms-97df0bd`" in text
    for task in ("cnn_dailymail", "commongen", "dailydialog", "imdb", "narrativeqa", "totto", "wmt16"):
        assert resolve(task, "nlpo", preset="rl4lms-97df0bd").algo.mask_refresh == "paper", task
    assert (
        resolve("imdb", "ppo").algo.kl_target == 0.5
        and resolve("imdb", "ppo", preset="rl4lms-97df0bd").algo.kl_target == 0.1
    )
