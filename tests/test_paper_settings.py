"""The settings the reported rows state (config.paper.settings) and the command each row's page prints.

The command is read back from the HTML the site prints for the row (grue.leaderboard.paper_command.command_html),
parsed like a shell would, and resolved through grue.algorithms.resolve (what ``grue train --dry-run`` resolves) or
grue.evaluation.eval_config (what ``grue eval`` resolves); the resolved config must hold every stated value. The
stated settings are read from the reported files on disk, not from the code that printed the command.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grue.algorithms import resolve
from grue.evaluation import eval_config
from grue.leaderboard.comparable import differences
from grue.leaderboard.paper_command import command_html
from grue.rewards import REWARDS

REPO = Path(__file__).resolve().parent.parent
REPORTED = sorted((REPO / "leaderboard" / "reported").glob("*/*.json"))
GRUE_ALGO = {"Zero-Shot": "zero-shot", "Supervised": "supervised", "PPO": "ppo", "NLPO": "nlpo"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def printed(data: dict) -> list[str]:
    """The command lines the row's page prints ([] when it prints none)."""
    found = re.search(
        r"<pre><code>(.*?)</code></pre>", command_html(data["task"], data["algorithm"], data["config"]), re.S
    )
    return html.unescape(found.group(1)).split("\n") if found else []


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolved(line: str) -> dict:
    """The flat resolved config of one printed ``grue train ... --dry-run`` or ``grue eval`` line."""
    words = shlex.split(line)
    assert words[:1] == ["grue"] and words[1] in ("train", "eval"), line
    options: dict[str, list[str]] = {}
    i = 3 if words[1] == "train" else 2
    while i < len(words):
        if words[i] == "--dry-run":
            i += 1
            continue
        assert words[i].startswith("--") and i + 1 < len(words), line
        options.setdefault(words[i], []).append(words[i + 1])
        i += 2
    sets = options.pop("--set", [])
    if words[1] == "eval":
        assert set(options) == {"--task", "--model"}, line
        cfg = eval_config(None, options["--task"][0], options["--model"][0], sets)[0]
    else:
        assert "--dry-run" in words, line
        options.pop("--init-from", None)  # the first stage's run: it sets the starting model, which no row states
        assert set(options) <= {"--algo", "--preset"}, line
        preset = options.get("--preset", [None])[0]
        cfg = resolve(words[2], options["--algo"][0], preset=preset, sets=sets)
    return flat(cfg.to_dict())


def same(a, b) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def test_every_reported_row_states_settings_or_why_not():
    assert len(REPORTED) >= 171
    unknown = 0
    for path in REPORTED:
        paper = load(path)["config"]["paper"]
        if paper["settings"] == "unknown":
            unknown += 1
            assert isinstance(paper.get("settings_reason"), str) and paper["settings_reason"].strip(), path
        else:
            assert isinstance(paper["settings"], dict) and paper["settings"], path
            assert "settings_reason" not in paper, path
    assert unknown < 20  # third-party quotes, IMDB ablations, Lead-3, two tasks' Supervised rows


def test_third_party_rows_stay_unknown():
    for path in REPORTED:
        data = load(path)
        if not data["source"].startswith("PAPER ITSELF"):
            assert data["config"]["paper"]["settings"] == "unknown", path
            assert "third party" in data["config"]["paper"]["settings_reason"], path


def test_each_task_states_its_table_values():
    """Spot checks against the PDF, by hand: one value per task's table that grue's defaults do not all share."""

    def settings(task, name):
        return load(REPO / "leaderboard" / "reported" / task / name)["config"]["paper"]["settings"]

    assert settings("commongen", "arxiv-v2-table-12--4-nlpo--meteor.json")["nlpo.ent_coef"] == 0.01  # Table 11
    assert settings("commongen", "arxiv-v2-table-12--6-supervised-nlpo--meteor.json")["nlpo.iterations"] == 100
    assert settings("cnn_dailymail", "arxiv-v2-table-17--5-supervised-ppo--meteor.json")["ppo.kl_coef"] == 0.01
    assert settings("totto", "arxiv-v2-table-23--5-supervised-ppo--meteor.json")["ppo.lr"] == 5e-7  # Table 22
    assert settings("narrativeqa", "arxiv-v2-table-28--6-supervised-nlpo--rouge-l-max.json")["nlpo.iterations"] == 200
    assert settings("wmt16", "arxiv-v2-tables-30-31--4-nlpo--ter.json")["nlpo.top_mask"] == 0.5  # Table 29
    assert "ppo.lr" not in settings("wmt16", "arxiv-v2-tables-30-31--3-ppo--ter.json")  # misprinted "0.0.000001"
    dialog = settings("dailydialog", "arxiv-v2-table-33--3-ppo--meteor-intent.json")
    assert dialog["ppo.kl_coef"] == 0.2 and "eval.max_new_tokens" not in dialog  # Table 32; contradicted by 33


def test_the_printed_command_reaches_every_stated_setting():
    checked, none = 0, set()
    for path in REPORTED:
        data = load(path)
        settings = data["config"]["paper"]["settings"]
        lines = printed(data)
        if settings == "unknown":
            assert not lines, path
            continue
        reward = settings.get("run.reward", "sentiment")
        if reward not in REWARDS or "inf" in settings.values():
            none.add(path)
            assert not lines, path
            continue
        assert lines, path
        if data["algorithm"].startswith("Supervised+"):
            assert len(lines) == 2 and "--algo supervised" in lines[0] and "--init-from" in lines[1], path
        config = resolved(lines[-1])
        wrong = {k: (config.get(k, "missing"), v) for k, v in settings.items() if not same(config.get(k, "missing"), v)}
        assert not wrong, f"{path.name}: {lines[-1]}: resolved vs stated {wrong}"
        checked += 1
        if data["algorithm"] in ("PPO", "NLPO", "Supervised"):  # and the leaderboard calls the run comparable
            why = differences(
                data["task"],
                data["task_version"],
                GRUE_ALGO[data["algorithm"]],
                config_tree(config),
                data["task"],
                data["task_version"],
                data["algorithm"],
                data["config"],
                "the row",
            )
            assert why == [], f"{path.name}: {why}"
    assert checked >= 80 and len(none) >= 70  # 84 and 84 today


def config_tree(config: dict) -> dict:
    out: dict = {}
    for key, value in config.items():
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def test_the_check_can_fail():
    """Without its --set flags the CommonGen Supervised+NLPO row's command gives grue's defaults (Table 11's
    "ppo/ nlpo" block), which Table 11's "supervised+ ppo (or nlpo)" block contradicts."""
    data = load(REPO / "leaderboard" / "reported" / "commongen" / "arxiv-v2-table-12--6-supervised-nlpo--meteor.json")
    line = printed(data)[-1]
    assert "--set nlpo.kl_target=1.0" in line
    bare = resolved(re.sub(r" --set \S+", "", line))
    assert bare["nlpo.kl_target"] != data["config"]["paper"]["settings"]["nlpo.kl_target"]


def test_commongen_nlpo_and_totto_supervised_rows_need_no_set_for_the_tables_values():
    """Table 11's entropy coefficient and beam search, Table 22's beam search: grue's defaults now."""
    nlpo = printed(load(REPO / "leaderboard" / "reported" / "commongen" / "arxiv-v2-table-12--4-nlpo--meteor.json"))
    assert nlpo == ["grue train commongen --algo nlpo --set nlpo.mask_refresh=paper --dry-run"]
    sup = printed(load(REPO / "leaderboard" / "reported" / "totto" / "arxiv-v2-table-23--2-supervised.json"))
    assert sup == ["grue train totto --algo supervised --dry-run"]


@pytest.mark.parametrize(
    "name",
    [
        "commongen/arxiv-v2-table-12--4-nlpo--meteor.json",
        "wmt16/arxiv-v2-tables-30-31--2-supervised.json",
        "totto/arxiv-v2-table-23--3-ppo--parent.json",
    ],
)
def test_the_printed_command_runs(name):
    data = load(REPO / "leaderboard" / "reported" / name)
    words = shlex.split(printed(data)[-1])
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRUE_DATA_DIR": os.environ.get("GRUE_DATA_DIR", "")}
    if shutil.which("grue") is None:  # not installed as a command: the same entry point through Python
        code = "import sys; from grue_cli.main import app; sys.argv[0] = 'grue'; app()"
        words = [sys.executable, "-c", code, *words[1:]]
    out = subprocess.run(words, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    config = flat(yaml.safe_load(out.stdout))
    for key, value in data["config"]["paper"]["settings"].items():
        assert same(config.get(key, "missing"), value), (key, config.get(key, "missing"), value)
