"""The IMDB task: prompts, deterministic disjoint splits, local and built-in data."""

from __future__ import annotations

import pytest

from grue.errors import GrueError
from grue.tasks import imdb


def test_prompt_is_the_first_half_of_the_words():
    prompt, ref = imdb.build_prompt("one two<br />three four five")
    assert (prompt, ref) == ("one two", "three four five")


def test_builtin_openings_need_no_data():
    ex = imdb.load("train", None, builtin=True)
    assert len(ex) == len(imdb.BUILTIN_OPENINGS) >= 30 and all(e.prompt for e in ex)


def test_local_splits_are_deterministic_and_disjoint(data_dir):
    train, val = imdb.load("train", str(data_dir)), imdb.load("validation", str(data_dir))
    test = imdb.load("test", str(data_dir))
    assert (len(train), len(val), len(test)) == (480, 120, 600)
    assert not {e.prompt for e in train} & {e.prompt for e in val}
    assert [e.prompt for e in imdb.load("validation", str(data_dir))] == [e.prompt for e in val]
    assert {e.meta["label"] for e in val} == {0, 1}
    assert all(e.references[0] for e in train)


def test_missing_local_file_is_explained(tmp_path):
    with pytest.raises(GrueError, match="imdb/train.jsonl"):
        imdb.load("train", str(tmp_path))
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "train.jsonl").write_text('{"text": "a b", "label": 1}\nnot json\n')
    with pytest.raises(GrueError, match="train.jsonl:2: not valid JSON"):
        imdb.load("train", str(tmp_path))
