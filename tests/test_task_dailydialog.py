"""The DailyDialog task: one example per turn with 5 earlier turns, the <EOU> context, intent labels, errors."""

from __future__ import annotations

import json

import pytest

from grue.errors import GrueError
from grue.tasks import dailydialog

# Invented dialogues in the Hugging Face daily_dialog schema (utterances keep the source's spaces).
TALK = {
    "dialog": [
        "Good morning . ",
        " Morning ! Is the bakery open ? ",
        " Yes , since seven . ",
        " Give me two rolls , please . ",
        " I will wrap them for you . ",
        " How much is it ? ",
        " Two dollars . ",
    ],
    "act": [1, 2, 1, 3, 4, 2, 1],
    "emotion": [0, 0, 0, 0, 4, 0, 0],
}
SHORT = {"dialog": ["Shall we go ? ", " Sure . "], "act": [3, 4], "emotion": [0, 4]}
LONG = {
    "dialog": ["Shall we go ? ", " Sure . ", " Now ? ", " In a minute . ", " Fine . ", " Ready ? ", " Yes ! "],
    "act": [3, 4, 2, 4, 1, 2, 1],
    "emotion": [0, 4, 0, 0, 0, 0, 4],
}


def write(tmp_path, split: str, rows: list[dict]) -> str:
    (tmp_path / "dailydialog").mkdir(exist_ok=True)
    (tmp_path / "dailydialog" / f"{split}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return str(tmp_path)


def test_prompt_is_the_last_five_raw_turns_joined_by_eou():
    # RL4LMs 97df0bd rl4lms/data_pools/custom_text_generation_pools.py:566-569: EOU.join(contexts[-5:]) + " " + EOU,
    # target = utterance + EOU; nothing is stripped.
    assert dailydialog.build_prompt(["Hi . ", " Hello ! "]) == "Hi . <EOU> Hello !  <EOU>"
    turns = [f" t{i} " for i in range(8)]
    assert dailydialog.build_prompt(turns) == " t3 <EOU> t4 <EOU> t5 <EOU> t6 <EOU> t7  <EOU>"
    assert dailydialog.build_reference(" Fine . ") == " Fine . <EOU>"
    # RL4LMs 97df0bd rl4lms/envs/text_generation/metric.py:685-690: the last non-empty piece of prompt.split(EOU)
    assert dailydialog.last_utterance(" t3 <EOU> t4  <EOU>") == " t4  "


def test_one_example_per_turn_with_five_earlier_turns(tmp_path):
    ex = dailydialog.load("train", write(tmp_path, "train", [TALK, SHORT, LONG]))
    assert len(ex) == 2 + 0 + 2  # turns 6 and 7 of each 7-turn dialogue; none of the 2-turn one
    assert ex[0].prompt == (
        "Good morning . <EOU> Morning ! Is the bakery open ? <EOU> Yes , since seven . <EOU> "
        "Give me two rolls , please . <EOU> I will wrap them for you .  <EOU>"
    )
    assert ex[0].references == [" How much is it ? <EOU>"]
    assert ex[0].meta == {"intent": 1, "emotion": 0, "dialog_index": 0, "index": 0}  # question (act 2) -> 1
    # the 7th turn sees turns 2..6 only (context of 5)
    assert ex[1].prompt == (
        " Morning ! Is the bakery open ? <EOU> Yes , since seven . <EOU> Give me two rolls , please . <EOU> "
        "I will wrap them for you . <EOU> How much is it ?  <EOU>"
    )
    assert ex[1].references == [" Two dollars . <EOU>"]
    assert ex[3].references == [" Yes ! <EOU>"] and ex[3].meta == {
        "intent": 0,
        "emotion": 4,
        "dialog_index": 2,
        "index": 3,
    }
    assert dailydialog.last_utterance(ex[1].prompt) == " How much is it ?  "
    assert dailydialog.load("train", str(tmp_path)) == ex  # deterministic


def test_unlabeled_trailing_turns_are_dropped(tmp_path):
    row = {
        "dialog": ["A . ", " B . ", " C . ", " D . ", " E . ", " F . ", " G . "],
        "act": [1] * 6,
        "emotion": [0] * 6,
    }  # one label short, as one source dialogue
    (only,) = dailydialog.load("validation", write(tmp_path, "validation", [row]))
    assert (only.prompt, only.references) == ("A . <EOU> B . <EOU> C . <EOU> D . <EOU> E .  <EOU>", [" F . <EOU>"])


def test_bad_input_is_explained(tmp_path):
    d = write(tmp_path, "test", [{**SHORT, "act": [0, 1]}])
    with pytest.raises(GrueError, match="test.jsonl:1: dialogue act 0 is not one of 1..4"):
        dailydialog.load("test", d)
    d = write(tmp_path, "test", [{"dialog": ["x"]}])
    with pytest.raises(GrueError, match="expected the lists dialog, act, emotion"):
        dailydialog.load("test", d)


def test_real_sample(data_dir):
    sizes = {}
    for split in dailydialog.SPLITS:
        ex = dailydialog.load(split, str(data_dir))
        rows = [json.loads(line) for line in (data_dir / "dailydialog" / f"{split}.jsonl").open(encoding="utf-8")]
        sizes[split] = len(ex)
        assert len(ex) == sum(max(0, min(len(r["dialog"]), len(r["act"])) - 5) for r in rows)
        assert all(e.prompt.endswith(" <EOU>") and e.prompt.count("<EOU>") == 5 for e in ex)
        assert all(e.references[0].endswith("<EOU>") and e.references[0].count("<EOU>") == 1 for e in ex)
        assert {e.meta["intent"] for e in ex} == {0, 1, 2, 3}
        assert [e.meta["index"] for e in ex] == list(range(len(ex)))
        d = next(
            r for r in rows if min(len(r["dialog"]), len(r["act"])) > 5
        )  # the sixth turn of the first long dialogue
        assert ex[0].prompt == "<EOU>".join(d["dialog"][:5]) + " <EOU>"
        assert ex[0].references == [d["dialog"][5] + "<EOU>"] and ex[0].meta["intent"] == d["act"][5] - 1
    assert sizes == {"train": 2678, "validation": 1325, "test": 1225}


def test_paper_settings():
    # paper Table 32: 128000 steps / 1280 = 100 iterations (RL4LMs 97df0bd gpt2_ppo.yml n_iters 50: the preset
    # rl4lms-97df0bd), gpt2_nlpo.yml 100, gpt2_supervised.yml num_train_epochs 20
    from grue.algorithms import resolve

    ppo, nlpo, sup = resolve("dailydialog", "ppo"), resolve("dailydialog", "nlpo"), resolve("dailydialog", "supervised")
    assert (ppo.algo.iterations, ppo.algo.kl_coef, ppo.algo.kl_target, nlpo.algo.iterations) == (100, 0.2, 0.5, 100)
    assert resolve("dailydialog", "ppo", preset="rl4lms-97df0bd").algo.iterations == 50
    assert (sup.algo.epochs, sup.algo.batch_size, sup.algo.causal_format, sup.generation.max_prompt_tokens) == (
        20,
        32,
        "text",
        128,
    )
    assert (ppo.generation.top_k, ppo.generation.min_new_tokens, ppo.eval.batch_size, sup.eval.batch_size) == (
        20,
        2,
        32,
        256,
    )
