"""Malformed JSON Lines in a data folder: every task's loader answers with one line ``file:line: what is wrong``,
never a traceback and never a silently dropped row. Tiny files written here; no real data needed."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from grue.errors import GrueError
from grue.tasks import TASKS

# task -> (split to load, a valid row, a required field, the file the split reads)
GOOD = {
    "imdb": ("train", {"text": "a fine film indeed", "label": 1}, "text", "train"),
    "commongen": (
        "validation",
        {"concept_set_idx": 0, "concepts": ["dog", "run"], "target": "A dog runs."},
        "concepts",
        "validation",
    ),
    "cnn_dailymail": (
        "validation",
        {"article": "Some news.", "highlights": "News.", "id": "1"},
        "article",
        "validation",
    ),
    "totto": (
        "validation",
        {
            "table": [[{"value": "2016", "is_header": False, "column_span": 1, "row_span": 1}]],
            "table_page_title": "P",
            "table_section_title": "S",
            "highlighted_cells": [[0, 0]],
            "sentence_annotations": [{"final_sentence": "It was 2016."}],
        },
        "table",
        "validation",
    ),
    "wmt16": ("validation", {"translation": {"en": "Hello.", "de": "Hallo."}}, "translation", "validation"),
    "dailydialog": (
        "validation",
        {"dialog": [f"u{i} ." for i in range(7)], "act": [1] * 7, "emotion": [0] * 7},
        "act",
        "validation",
    ),
    "narrativeqa": (
        "validation",
        {
            "document": {"summary": {"text": "Ann wins."}},
            "question": {"text": "Who wins?"},
            "answers": [{"text": "Ann"}],
        },
        "question",
        "validation",
    ),
}


def write(tmp_path, task: str, second_line: bytes):
    """DIR/<task>/<file>.jsonl with a valid row on line 1 and ``second_line`` on line 2; returns (DIR, path)."""
    _, row, _, name = GOOD[task]
    path = tmp_path / task / f"{name}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(json.dumps(row).encode() + b"\n" + second_line + b"\n")
    return tmp_path, path


def error_of(task: str, data_dir) -> str:
    with pytest.raises(GrueError) as e:
        TASKS[task].load(GOOD[task][0], str(data_dir))
    message = str(e.value)
    assert "\n" not in message, message
    return message


def without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_good_file_loads(task, tmp_path):
    """The baseline of the cases below: the same two-line file with two valid rows loads."""
    data_dir, _ = write(tmp_path, task, json.dumps(GOOD[task][1]).encode())
    assert TASKS[task].load(GOOD[task][0], str(data_dir))


BAD_LINES = {
    "invalid JSON": (lambda row, key: b'{"text": "unterminated', "not valid JSON"),
    "not an object": (lambda row, key: b"[1, 2]", "expected one JSON object per line, got a JSON list"),
    "missing field": (lambda row, key: json.dumps(without(row, key)).encode(), None),
    "wrongly typed field": (lambda row, key: json.dumps({**row, key: 5}).encode(), None),
    "invalid UTF-8": (lambda row, key: b'{"text": "caf\xe9"}', "not valid UTF-8 (byte 0xe9 at column 14)"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_bad_line_is_named_by_file_and_line(task, case, tmp_path):
    _, row, key, _ = GOOD[task]
    make, expected = BAD_LINES[case]
    data_dir, path = write(tmp_path, task, make(row, key))
    message = error_of(task, data_dir)
    assert message.startswith(f"{path}:2: "), message
    assert (expected or f"{key}") in message, message


@pytest.mark.parametrize("task", sorted(TASKS))
def test_an_empty_file_is_an_error(task, tmp_path):
    path = tmp_path / task / f"{GOOD[task][3]}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n  \n")
    assert error_of(task, tmp_path) == f"{path}:1: the file holds no examples; expected one JSON object per line"


def test_blank_lines_are_not_rows_and_line_numbers_count_them(tmp_path):
    """A blank line is skipped (it holds no row), and the line numbers in errors are the file's own."""
    data_dir, path = write(tmp_path, "wmt16", b"\n" + json.dumps({"translation": {"en": "x"}}).encode())
    assert error_of("wmt16", data_dir).startswith(f"{path}:3: expected")


def test_cli_names_the_bad_line_in_one_line(tmp_path):
    data_dir, path = write(tmp_path / "data", "imdb", b"{oops")
    p = run_cli(
        "train",
        "imdb",
        "--preset",
        "smoke",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(tmp_path / "r"),
        "--quiet",
    )
    assert p.returncode == 2, p.stderr[-1500:]
    assert p.stderr.strip().splitlines() == [
        f"error: {path}:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"
    ], p.stderr
    assert not (tmp_path / "r").exists()
