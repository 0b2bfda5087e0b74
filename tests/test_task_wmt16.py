"""The WMT16 en-de task: prompt, Hub-schema rows, the sample's missing train split, real sample."""

from __future__ import annotations

import json

import pytest

from grue.algorithms import resolve
from grue.errors import GrueError
from grue.tasks import TASKS, wmt16

# Hand-written rows in the Hugging Face wmt16 de-en schema (invented sentences).
HUB_ROWS = [
    {"translation": {"de": "Der Zug kommt heute später an.", "en": "The train arrives later today."}},
    {"translation": {"de": "Wir haben den Garten gegossen.", "en": "We watered the garden."}},
]


def test_registered():
    assert TASKS["wmt16"] is wmt16 and wmt16.SPLITS == ("train", "validation", "test")


def test_prompt_reference_and_meta_from_hub_rows():
    ex = wmt16.rows_to_examples(HUB_ROWS, "train")
    assert [e.prompt for e in ex] == [
        "translate English to German: The train arrives later today.",
        "translate English to German: We watered the garden.",
    ]
    assert [e.references for e in ex] == [["Der Zug kommt heute später an."], ["Wir haben den Garten gegossen."]]
    assert [e.meta for e in ex] == [{"index": 0}, {"index": 1}]


def test_local_file_loads_deterministically(tmp_path):
    (tmp_path / "wmt16").mkdir()
    (tmp_path / "wmt16" / "test.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in HUB_ROWS), encoding="utf-8"
    )
    ex = wmt16.load("test", str(tmp_path))
    assert ex == wmt16.rows_to_examples(HUB_ROWS) == wmt16.load("test", str(tmp_path))


def test_missing_train_split_of_the_sample_is_explained(tmp_path):
    (tmp_path / "wmt16").mkdir()
    with pytest.raises(GrueError, match="no wmt16 training data.*run.train_split=validation"):
        wmt16.load("train", str(tmp_path))


@pytest.mark.parametrize("row", [{"en": "x", "de": "y"}, {"translation": {"en": "only English"}}, {"translation": "x"}])
def test_malformed_rows_are_explained(row):
    with pytest.raises(GrueError, match=r"wmt16 validation row 1: expected \{\"translation\""):
        wmt16.rows_to_examples([row], "validation")


def test_settings():
    ppo, smoke = resolve("wmt16", "ppo"), resolve("wmt16", "supervised", preset="smoke")
    assert (ppo.run.model, ppo.run.reward, ppo.algo.lr, ppo.algo.kl_coef, ppo.algo.kl_target) == (
        "t5-base",
        "one_minus_ter",
        1e-6,
        0.001,
        0.2,
    )
    assert (ppo.generation.top_k, ppo.generation.max_new_tokens) == (10, 128)
    assert (ppo.eval.num_beams, ppo.eval.length_penalty, ppo.eval.max_new_tokens) == (4, 0.6, 128)
    assert (smoke.run.train_split, smoke.run.validation_split) == (
        "validation",
        "validation",
    )  # the sample has no train
    assert resolve("wmt16", "nlpo").algo.top_mask == 0.5
    # RL4LMs 97df0bd iwslt2017/t5_supervised.yml: tokenizer truncation_side left, t5-base's model_max_length 512
    sup = resolve("wmt16", "supervised")
    assert (sup.generation.max_prompt_tokens, sup.generation.truncation_side, ppo.generation.truncation_side) == (
        512,
        "left",
        "right",
    )


def test_real_sample(data_dir):
    d = str(data_dir)
    for split, n in (("validation", 600), ("test", 900)):
        rows = [
            json.loads(line)
            for line in (data_dir / "wmt16" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        ex = wmt16.load(split, d)
        assert len(ex) == n and ex == wmt16.load(split, d)
        assert [e.prompt for e in ex] == ["translate English to German: " + r["translation"]["en"] for r in rows]
        assert [e.references for e in ex] == [[r["translation"]["de"]] for r in rows]
        assert [e.meta["index"] for e in ex] == list(range(n))
    with pytest.raises(GrueError, match="no wmt16 training data"):
        wmt16.load("train", d)
