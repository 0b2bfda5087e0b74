"""The ToTTo task: official sub-table linearisation, PARENT tables, both data schemas, variants, errors."""

from __future__ import annotations

import json

import pytest

from grue.algorithms import resolve
from grue.errors import GrueError
from grue.data import load_examples
from grue.tasks import totto


def cell(value: str, header: bool = False, span: int = 1) -> dict:
    return {"value": value, "is_header": header, "column_span": span, "row_span": 1}


# An invented table: a two-row header whose "League" cell spans two columns, and a row header.
TABLE = [
    [cell("Season", True), cell("Club", True), cell("League", True, span=2)],
    [cell(""), cell(""), cell("Apps", True), cell("Goals", True)],
    [cell("1998", True), cell("Riverton FC"), cell("12"), cell("3")],
]
SENTENCES = [
    "Ann Example scored 3 goals for Riverton FC in 1998.",
    " In 1998 Ann Example scored three times for Riverton FC. ",
]
BASE = {
    "table": TABLE,
    "table_webpage_url": "http://example.org/Ann_Example",
    "table_page_title": "Ann Example",
    "table_section_title": "Career | Club",
    "table_section_text": "",
    "highlighted_cells": [[2, 0], [2, 1], [2, 3]],
}

# Hand-computed from ToTTo's rules: "1998" sits under "Season"; "Riverton FC" under "Club", with the
# row header "1998" before it; "3" (column 3) under "League" (columns 2-3) and "Goals", row header "1998".
CELLS = (
    "<table> <cell> 1998 <col_header> Season </col_header> </cell> "
    "<cell> Riverton FC <col_header> Club </col_header> <row_header> 1998 </row_header> </cell> "
    "<cell> 3 <col_header> League </col_header> <col_header> Goals </col_header> <row_header> 1998 </row_header> </cell> "
    "</table>"
)
TITLES = "<page_title> Ann Example </page_title> <section_title> Career | Club </section_title> "
PARENT = [
    ["header", "1998"],
    ["cell", "Riverton FC"],
    ["cell", "3"],
    ["page_title", "Ann Example"],
    ["section_title", "Career - Club"],
]
# The precision table: every non-empty cell of the whole table, then the titles (language/totto
# get_table_parent_format, RL4LMs 97df0bd .../totto/eval_utils/table_to_text_utils.py:28-65); no section text here.
PRECISION = [
    ["header", "Season"],
    ["header", "Club"],
    ["header", "League"],
    ["header", "Apps"],
    ["header", "Goals"],
    ["header", "1998"],
    ["cell", "Riverton FC"],
    ["cell", "12"],
    ["cell", "3"],
    ["page_title", "Ann Example"],
    ["section_title", "Career - Club"],
]


def original_row(**changes) -> dict:
    """The original ToTTo JSON form: list of annotation dicts, int id, bool overlap flag."""
    anns = [
        {"original_sentence": s, "sentence_after_deletion": s, "sentence_after_ambiguity": s, "final_sentence": s}
        for s in SENTENCES
    ]
    return {**BASE, "example_id": 42, "overlap_subset": True, "sentence_annotations": anns, **changes}


def hub_row(**changes) -> dict:
    """The Hugging Face totto form: dict of annotation lists, string id, "True"/"False"/"none" flag."""
    anns = {
        k: list(SENTENCES)
        for k in ("original_sentence", "sentence_after_deletion", "sentence_after_ambiguity", "final_sentence")
    }
    return {**BASE, "example_id": "42", "overlap_subset": "False", "sentence_annotations": anns, **changes}


def write(tmp_path, split: str, rows: list[dict]) -> str:
    (tmp_path / "totto").mkdir(exist_ok=True)
    (tmp_path / "totto" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(tmp_path)


def test_prompt_is_rl4lms_subtable_form_and_the_variants_its_parts(tmp_path):
    # RL4LMs 97df0bd rl4lms/data_pools/custom_text_generation_pools.py:44-57: subtable_str (no titles)
    # + subtable_metadata_str (with titles), nothing between them
    d = write(tmp_path, "validation", [original_row()])
    (ex,) = totto.load("validation", d)
    assert ex.prompt == CELLS + TITLES + CELLS
    (titled,) = totto.load("validation", d, variant="titles")
    assert titled.prompt == TITLES + CELLS
    (bare,) = totto.load("validation", d, variant="no_titles")
    assert bare.prompt == CELLS
    assert totto.VARIANTS == ("subtable", "titles", "no_titles")


def test_empty_titles_are_left_out():
    row = original_row(table_page_title="", table_section_title="")
    assert totto.linearize(row) == CELLS
    assert totto.parent_table(row) == PARENT[:3]


def test_references_and_meta_from_both_schemas(tmp_path):
    d = write(tmp_path, "validation", [original_row(), hub_row(), hub_row(overlap_subset="True", example_id="7")])
    a, b, c = totto.load("validation", d)
    assert a.prompt == b.prompt == c.prompt
    assert a.references == b.references == SENTENCES  # unchanged, surrounding spaces too (RL4LMs)
    assert a.meta == {
        "table": PARENT,
        "precision_table": PRECISION,
        "overlap_subset": True,
        "example_id": "42",
        "index": 0,
    }
    assert b.meta == {
        "table": PARENT,
        "precision_table": PRECISION,
        "overlap_subset": False,
        "example_id": "42",
        "index": 1,
    }
    with_text = totto.parent_precision_table(original_row(table_section_text="He | she"))
    assert with_text == PRECISION + [["section_text", "He - she"]]
    assert (c.meta["overlap_subset"], c.meta["example_id"], c.meta["index"]) == (True, "7", 2)


def test_train_rows_have_no_overlap_flag(tmp_path):
    row = original_row()
    del row["overlap_subset"]
    d = write(tmp_path, "train", [row, hub_row(overlap_subset="none")])
    assert [e.meta["overlap_subset"] for e in totto.load("train", d)] == [None, None]


def test_unlabeled_test_split_is_refused(tmp_path):
    with pytest.raises(GrueError, match="unlabeled.*'validation'"):
        totto.load("test", None)  # the Hub: refused before any download
    d = write(tmp_path, "test", [{**BASE, "example_id": 1}])
    with pytest.raises(GrueError, match="test.jsonl:1: no reference sentences"):
        totto.load("test", d)


def test_bad_input_is_explained(tmp_path):
    with pytest.raises(GrueError, match="no prompt variant 'full'.*subtable, titles, no_titles"):
        totto.load("validation", str(tmp_path), variant="full")
    d = write(tmp_path, "validation", [original_row(highlighted_cells=[[3, 0]])])
    with pytest.raises(GrueError, match=r"validation.jsonl:1: highlighted cell \[3, 0\] is outside the table"):
        totto.load("validation", d)
    d = write(tmp_path, "validation", [{"table": TABLE}])
    with pytest.raises(GrueError, match="expected the ToTTo fields"):
        totto.load("validation", d)


def test_supervised_examples_pair_each_sentence_with_its_table(tmp_path):
    examples = totto.load("validation", write(tmp_path, "validation", [original_row(), hub_row()]))
    pairs = totto.supervised_examples(examples)
    assert [(p.prompt, p.references, p.meta["index"], p.meta["reference_index"]) for p in pairs] == [
        (e.prompt, [r], e.meta["index"], j) for e in examples for j, r in enumerate(e.references)
    ]


def test_real_sample(data_dir):
    val, train = totto.load("validation", str(data_dir)), totto.load("train", str(data_dir))
    assert (len(val), len(train)) == (43, 3)
    assert totto.load("validation", str(data_dir)) == val  # deterministic
    rows = [json.loads(line) for line in (data_dir / "totto" / "validation.jsonl").open(encoding="utf-8")]
    for e, row in zip(val, rows):
        assert (
            e.prompt.startswith("<table> ") and "</table><page_title> " in e.prompt and e.prompt.endswith(" </table>")
        )
        assert e.prompt.count("<cell> ") == 2 * len(row["highlighted_cells"])
        assert e.references == [a["final_sentence"] for a in row["sentence_annotations"]]
        assert isinstance(e.meta["overlap_subset"], bool) and e.meta["example_id"] == str(row["example_id"])
        assert e.meta["table"][-1][0] in ("page_title", "section_title")
    assert {len(e.references) for e in val} <= {2, 3} and all(e.meta["overlap_subset"] is None for e in train)
    assert len(totto.supervised_examples(val)) == sum(len(e.references) for e in val)


def test_paper_settings_cut_rl_prompts_left_and_supervised_prompts_right():
    # RL4LMs 97df0bd totto/t5_ppo.yml sets no prompt_truncation_side (env and policy default "left");
    # t5_supervised.yml's tokenizer truncation_side "right"; its evaluation's do_sample + num_beams 10 is the preset
    # rl4lms-97df0bd's, the default the paper's Table 22 beam search 5 (Sec. B.6.1)
    ppo, sup = resolve("totto", "ppo"), resolve("totto", "supervised")
    assert (ppo.generation.truncation_side, ppo.generation.min_new_tokens, ppo.eval.num_beams, ppo.eval.do_sample) == (
        "left",
        9,
        5,
        False,
    )
    e = sup.eval
    assert (sup.generation.truncation_side, e.num_beams, e.do_sample, e.min_new_tokens) == ("right", 5, False, 9)
    old = resolve("totto", "supervised", preset="rl4lms-97df0bd").eval
    assert (old.num_beams, old.do_sample, old.top_k, old.min_new_tokens, old.max_new_tokens) == (10, True, 50, 9, 50)
    assert resolve("totto", "ppo", preset="rl4lms-97df0bd").eval == ppo.eval  # supervised.eval: supervised runs only


def test_run_config_chooses_the_variant(data_dir):
    cfg = resolve("totto", "ppo", preset="smoke", sets=[f"run.data_dir={data_dir}", "run.prompt_variant=no_titles"])
    assert all(e.prompt.startswith("<table> ") for e in load_examples(cfg, "train"))
    cfg.run.prompt_variant = "fulltable"
    with pytest.raises(GrueError, match="no prompt variant 'fulltable'"):
        load_examples(cfg, "train")
