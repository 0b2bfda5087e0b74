"""What `grue --version` and every command's --help show: the version, words (no `<bool>`), and square brackets."""

from __future__ import annotations

import re

import typer

from conftest import cli_in_process, run_cli
from grue import __version__


def _commands():
    """(path, click command) of `grue` and each of its commands and sub-commands."""
    from grue_cli.main import app

    todo = [([], typer.main.get_command(app))]
    while todo:
        path, cmd = todo.pop(0)
        yield path, cmd
        todo += [(path + [name], sub) for name, sub in getattr(cmd, "commands", {}).items()]


def _flat(text: str) -> str:
    """Help output without Rich's box and line breaks: words separated by single spaces."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_version_is_printed():
    p = run_cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"grue {__version__}", (p.returncode, p.stdout, p.stderr)


def test_every_help_shows_its_square_brackets_and_no_types():
    seen = 0
    for path, cmd in _commands():
        r = cli_in_process(*path, "--help")
        assert r.returncode == 0, (path, r.stderr)
        out = _flat(r.stdout)
        assert "<bool>" not in out and "<str>" not in out, (path, r.stdout)
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            for bracketed in re.findall(r"\\?\[[^\]\s]*\]", text):
                seen += 1
                assert bracketed.lstrip("\\") in out, (path, bracketed, r.stdout)
    assert seen >= 1  # `grue train --report-to`: pip install 'grue[trackers]'
