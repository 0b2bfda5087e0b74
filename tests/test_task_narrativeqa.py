"""The NarrativeQA task: UnifiedQA's "question \\n summary" prompt, both answers, both schemas, errors."""

from __future__ import annotations

import json

import pytest

from grue.algorithms import resolve
from grue.errors import GrueError
from grue.data import load_examples
from grue.tasks import narrativeqa
from grue.tasks.common import Example

SUMMARY = "Mara finds an old Map in the attic.\nShe sails North with her brother."
# Hand-computed: lower-cased, the summary's line break removed, a literal backslash-n between spaces.
PROMPT = "where does mara sail? \\n mara finds an old map in the attic.she sails north with her brother."


def hub_row(question: str = "Where does Mara sail?", answers=("North ", "To the north with her brother")) -> dict:
    """An invented question in the full Hugging Face narrativeqa schema."""
    return {
        "document": {
            "id": "0a1b",
            "kind": "gutenberg",
            "url": "http://example.org/mara",
            "file_size": 10,
            "word_count": 2,
            "start": "",
            "end": "",
            "text": "The whole story.",
            "summary": {"text": SUMMARY, "tokens": SUMMARY.split(), "url": "http://example.org/wiki"},
        },
        "question": {"text": question, "tokens": question.split()},
        "answers": [{"text": a, "tokens": a.split()} for a in answers],
    }


def local_row() -> dict:
    """The same question in the GRUE sample's subset of the schema."""
    return {
        "document": {"id": None, "summary": {"text": SUMMARY}},
        "question": {"text": "Where does Mara sail?"},
        "answers": [{"text": "North "}, {"text": "To the north with her brother"}],
    }


def write(tmp_path, split: str, rows: list[dict]) -> str:
    (tmp_path / "narrativeqa").mkdir(parents=True, exist_ok=True)
    (tmp_path / "narrativeqa" / f"{split}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return str(tmp_path)


def test_prompt_is_unifiedqa_format():
    assert narrativeqa.SEPARATOR == " " + chr(92) + "n "  # backslash + "n", not a line break
    assert narrativeqa.build_prompt("Where does Mara sail?", SUMMARY) == PROMPT
    assert "\n" not in PROMPT


def test_both_schemas_give_the_same_examples(tmp_path):
    hub = narrativeqa.load(
        "validation", write(tmp_path / "hub", "validation", [hub_row(), hub_row("Who is with Mara?", ["Her brother"])])
    )
    local = narrativeqa.load("validation", write(tmp_path / "local", "validation", [local_row()]))
    a, c = hub
    assert a == local[0] == Example(PROMPT, ["north", "to the north with her brother"], {"index": 0})
    assert c.prompt.startswith("who is with mara? \\n ") and c.references == ["her brother"]
    assert narrativeqa.load("validation", str(tmp_path / "hub")) == hub  # deterministic


def test_rows_with_the_same_prompt_become_one_example():
    # RL4LMs 97df0bd rl4lms/data_pools/custom_text_generation_pools.py:324-334: answers grouped by prompt text
    a, b = narrativeqa.rows_to_examples(
        [hub_row(), hub_row("Who is with Mara?", ["Her brother"]), hub_row(answers=["north", "By boat"])]
    )
    assert (a.prompt, a.references, a.meta) == (
        PROMPT,
        ["north", "to the north with her brother", "north", "by boat"],
        {"index": 0},
    )
    assert (b.references, b.meta) == (["her brother"], {"index": 1})


def test_supervised_examples_pair_each_answer_with_its_question(tmp_path):
    examples = narrativeqa.load(
        "train", write(tmp_path, "train", [hub_row(), hub_row("Who is with Mara?", ["Her brother"])])
    )
    pairs = narrativeqa.supervised_examples(examples)
    assert [(p.prompt, p.references, p.meta) for p in pairs] == [
        (e.prompt, [r], {"index": e.meta["index"], "reference_index": j})
        for e in examples
        for j, r in enumerate(e.references)
    ]
    assert len(pairs) == 3


def test_bad_input_is_explained(tmp_path):
    d = write(tmp_path, "test", [hub_row(answers=())])
    with pytest.raises(GrueError, match="test.jsonl:1: needs a non-empty list of non-empty answers"):
        narrativeqa.load("test", d)
    d = write(tmp_path, "test", [{"question": {"text": "Why?"}, "answers": []}])
    with pytest.raises(GrueError, match="expected the fields document, question, answers"):
        narrativeqa.load("test", d)
    d = write(tmp_path, "test", [{**local_row(), "question": {"tokens": ["Why", "?"]}}])
    with pytest.raises(GrueError, match="question must be a string or a dict with a 'text' string"):
        narrativeqa.load("test", d)


def test_real_sample(data_dir):
    ex = narrativeqa.load("test", str(data_dir))
    rows = [json.loads(line) for line in (data_dir / "narrativeqa" / "test.jsonl").open(encoding="utf-8")]
    assert len(ex) == len(rows) == 40  # no two questions of the sample share a prompt
    for e, row in zip(ex, rows):
        assert e.prompt == e.prompt.lower() and "\n" not in e.prompt
        question, _, summary = e.prompt.partition(" \\n ")
        assert question == row["question"]["text"].strip().lower() and summary
        assert e.references == [a["text"].strip().lower() for a in row["answers"]] and len(e.references) == 2
    assert narrativeqa.load("test", str(data_dir)) == ex  # deterministic
    assert len(narrativeqa.supervised_examples(ex)) == 80


def test_smoke_preset_trains_and_validates_on_the_only_local_split(data_dir):
    cfg = resolve("narrativeqa", "supervised", preset="smoke", sets=[f"run.data_dir={data_dir}"])
    assert (cfg.run.train_split, cfg.run.validation_split) == ("test", "test")
    assert len(load_examples(cfg, cfg.run.train_split)) == 40
    ppo = resolve("narrativeqa", "ppo")
    assert ppo.run.model == "t5-base"  # RL4LMs narrative_qa/t5_ppo.yml; unifiedqa-t5-base is the *_on_supervised start
    # the paper's Table 27: max new tokens 50 (its Table 28's outputs of 31-32 words need them); RL4LMs 97df0bd's files
    # set none: transformers 4.18's max_length 20, 19 new tokens for T5 (--preset rl4lms-97df0bd)
    assert (ppo.generation.max_new_tokens, ppo.eval.max_new_tokens, ppo.eval.num_beams) == (50, 50, 4)
    old = resolve("narrativeqa", "ppo", preset="rl4lms-97df0bd")
    assert (old.generation.max_new_tokens, old.eval.max_new_tokens) == (19, 19)
