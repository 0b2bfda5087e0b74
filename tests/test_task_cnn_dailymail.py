"""The CNN/DailyMail task: prompt, highlights kept as the data gives them, right truncation, settings, real sample."""

from __future__ import annotations

import json

import pytest

from grue.algorithms import resolve
from grue.errors import GrueError
from grue.models import load_tokenizer
from grue.rollout import tokenize_prompts
from grue.tasks import TASKS, cnn_dailymail

ARTICLE = "A small town opened its first public library on Monday. Volunteers carried boxes of books all weekend."
# The same invented highlights in the two forms (see the data README): Hugging Face 3.0.0 joins
# bullets with "\n" and ends an unpunctuated bullet with " ."; the local sample joins with " "
# and appends ".". Expected text written by hand.
HUB_HIGHLIGHTS = (
    'Town opens its first public library .\nVolunteers carried books all weekend!\nThe mayor said "read more"'
)
LOCAL_HIGHLIGHTS = (
    'Town opens its first public library. Volunteers carried books all weekend! The mayor said "read more"'
)
HUB_ROW = {"article": ARTICLE, "highlights": HUB_HIGHLIGHTS, "id": "0123456789abcdef0123456789abcdef01234567"}
LOCAL_ROW = {"article": ARTICLE, "highlights": LOCAL_HIGHLIGHTS, "id": None}


def test_registered():
    assert TASKS["cnn_dailymail"] is cnn_dailymail and cnn_dailymail.SPLITS == ("train", "validation", "test")


def test_references_are_the_highlights_unchanged_in_either_form():
    # RL4LMs 97df0bd rl4lms/data_pools/custom_text_generation_pools.py:195-198: references=[item["highlights"]]
    hub, local = cnn_dailymail.rows_to_examples([HUB_ROW, LOCAL_ROW])
    assert (hub.references, local.references) == ([HUB_HIGHLIGHTS], [LOCAL_HIGHLIGHTS])
    assert hub.prompt == local.prompt == "Summarize: " + ARTICLE


def test_meta_and_local_file(tmp_path):
    (tmp_path / "cnn_dailymail").mkdir()
    (tmp_path / "cnn_dailymail" / "test.jsonl").write_text(
        json.dumps(HUB_ROW) + "\n" + json.dumps(LOCAL_ROW) + "\n", encoding="utf-8"
    )
    ex = cnn_dailymail.load("test", str(tmp_path))
    assert [e.meta for e in ex] == [{"id": HUB_ROW["id"], "index": 0}, {"id": None, "index": 1}]
    assert ex == cnn_dailymail.load("test", str(tmp_path))


def test_errors(tmp_path):
    with pytest.raises(GrueError, match="row 1: expected string fields 'article' and 'highlights'"):
        cnn_dailymail.rows_to_examples([{"article": ARTICLE}], "train")


def test_settings_cut_the_article_on_the_right_and_ppo_uses_rouge1():
    ppo, nlpo = resolve("cnn_dailymail", "ppo"), resolve("cnn_dailymail", "nlpo")
    assert (ppo.generation.max_prompt_tokens, ppo.generation.truncation_side) == (512, "right")
    assert (ppo.run.reward, nlpo.run.reward) == ("rouge1", "meteor")
    # RL4LMs min_length 50 counts T5's decoder start token: 49 new tokens
    assert (ppo.generation.min_new_tokens, ppo.generation.max_new_tokens, ppo.generation.top_k) == (49, 100, 50)
    assert (ppo.eval.do_sample, ppo.eval.top_k, ppo.eval.temperature, ppo.eval.min_new_tokens) == (True, 0, 0.7, 49)
    assert (ppo.algo.batch_unit, ppo.algo.rollout_size, nlpo.generation.top_k, nlpo.algo.mask_update_interval) == (
        "tokens",
        5120,
        100,
        20,
    )
    assert (ppo.algo.lr, ppo.algo.kl_coef, ppo.algo.kl_target) == (2e-6, 0.001, 0.2)


def test_truncation_keeps_the_start_of_the_article():
    tok = load_tokenizer("tiny-t5")
    prompt = cnn_dailymail.build_prompt(ARTICLE * 20)
    ids, _ = tokenize_prompts(tok, [prompt], 16, True, "cpu", truncation_side="right")
    full = tok(prompt)["input_ids"]
    assert ids.shape[1] == 16 and ids[0, :15].tolist() == full[:15]  # the start, then EOS


def test_real_sample(data_dir):
    d = str(data_dir)
    sizes = {}
    for split in cnn_dailymail.SPLITS:
        ex = cnn_dailymail.load(split, d)
        sizes[split] = len(ex)
        assert all(e.prompt.startswith("Summarize: ") and len(e.prompt) > 100 for e in ex)
        assert all(len(e.references) == 1 and e.references[0] for e in ex)
        assert [e.meta["index"] for e in ex] == list(range(len(ex)))
        assert ex == cnn_dailymail.load(split, d)  # deterministic
    assert sizes == {"train": 100, "validation": 100, "test": 40}
    val = cnn_dailymail.load("validation", d)
    assert all(isinstance(e.meta["id"], str) and len(e.meta["id"]) == 40 for e in val)
    rows = [
        json.loads(line)
        for line in (data_dir / "cnn_dailymail" / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [e.references[0] for e in val] == [r["highlights"] for r in rows]
