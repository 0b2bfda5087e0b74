"""The CommonGen task: prompts, RL4LMs' examples (one per train row, one per concept set elsewhere), GEM rows, the test split, real sample."""

from __future__ import annotations

import json

import pytest

from grue.algorithms import resolve
from grue.errors import GrueError
from grue.tasks import TASKS, commongen

# Hand-written rows in the Hugging Face common_gen schema (invented sentences), two concept
# sets interleaved: set 7 first appears before set 3.
HUB_ROWS = [
    {"concept_set_idx": 7, "concepts": ["kite", "fly", "beach"], "target": "Children fly a red kite on the beach."},
    {"concept_set_idx": 3, "concepts": ["bake", "bread", "oven"], "target": "She bakes bread in a stone oven."},
    {"concept_set_idx": 7, "concepts": ["kite", "fly", "beach"], "target": "A kite flies high above the beach."},
    {"concept_set_idx": 3, "concepts": ["bake", "bread", "oven"], "target": "The oven is hot enough to bake bread."},
    {"concept_set_idx": 7, "concepts": ["kite", "fly", "beach"], "target": "We flew kites at the beach all day."},
]


def write_split(tmp_path, split: str, rows: list[dict]) -> str:
    (tmp_path / "commongen").mkdir(exist_ok=True)
    (tmp_path / "commongen" / f"{split}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return str(tmp_path)


def test_registered():
    assert TASKS["commongen"] is commongen and commongen.SPLITS == ("train", "validation", "test")


def test_prompt_is_rl4lms_commongen_form():
    # RL4LMs datapool args: prefix "generate a sentence with: ", separator " ", end token "."
    assert commongen.build_prompt(["dog", "frisbee", "catch"]) == "generate a sentence with: dog frisbee catch."


def test_train_has_one_example_per_sentence():
    # RL4LMs 97df0bd custom_text_generation_pools.py:123-141: one sample per GEM row, references=[target]
    ex = commongen.rows_to_examples(HUB_ROWS, "train")
    assert [e.prompt for e in ex] == [
        "generate a sentence with: kite fly beach.",
        "generate a sentence with: bake bread oven.",
        "generate a sentence with: kite fly beach.",
        "generate a sentence with: bake bread oven.",
        "generate a sentence with: kite fly beach.",
    ]
    assert [e.references for e in ex] == [[r["target"]] for r in HUB_ROWS]
    assert ex[1].meta == {"concepts": ["bake", "bread", "oven"], "concept_set_idx": 3, "index": 1}


def test_evaluation_splits_have_one_example_per_concept_set_with_its_first_sentence():
    # GEM common_gen (datasets 2.5.1 datasets/gem/gem.py:957-967): one validation row per set,
    # target = scene[0]; RL4LMs reads only that target.
    ex = commongen.rows_to_examples(HUB_ROWS, "validation")
    assert [(e.prompt, e.references) for e in ex] == [
        ("generate a sentence with: kite fly beach.", [HUB_ROWS[0]["target"]]),
        ("generate a sentence with: bake bread oven.", [HUB_ROWS[1]["target"]]),
    ]
    assert ex[1].meta == {"concepts": ["bake", "bread", "oven"], "concept_set_idx": 3, "index": 1}


def test_gem_schema_rows_give_the_same_examples():
    gem = [
        {
            "gem_id": "common_gen-validation-0",
            "gem_parent_id": "common_gen-validation-0",
            "concept_set_id": 7,
            "concepts": ["kite", "fly", "beach"],
            "target": HUB_ROWS[0]["target"],
            "references": [HUB_ROWS[0]["target"], HUB_ROWS[2]["target"], HUB_ROWS[4]["target"]],
        }
    ]
    assert commongen.rows_to_examples(gem, "validation") == commongen.rows_to_examples(HUB_ROWS[:1], "validation")


def test_local_file_loads_the_same_and_deterministically(tmp_path):
    d = write_split(tmp_path, "validation", HUB_ROWS)
    ex = commongen.load("validation", d)
    assert ex == commongen.rows_to_examples(HUB_ROWS, "validation") == commongen.load("validation", d)


def test_supervised_examples_are_the_train_examples():
    ex = commongen.rows_to_examples(HUB_ROWS, "train")
    sup = commongen.supervised_examples(ex)
    assert [(e.prompt, e.references) for e in sup] == [(e.prompt, e.references) for e in ex]
    assert all(e.meta["concepts"] for e in sup)


def test_hub_test_split_is_refused_before_any_download():
    # HF common_gen v1.1's test targets are all "": the error says so and names the alternatives.
    with pytest.raises(GrueError, match=r"GEM's common_gen test split has empty targets.*'validation'.*v1\.0"):
        commongen.load("test", None)


def test_empty_target_in_a_file_is_an_error(tmp_path):
    rows = [dict(HUB_ROWS[0]), {**HUB_ROWS[1], "target": ""}]
    with pytest.raises(GrueError, match=r"test.jsonl:2: concept set 3 has an empty target.*validation"):
        commongen.load("test", write_split(tmp_path, "test", rows))


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"concepts": ["a", "b"], "target": "x"}],
            r"expected the fields concept_set_idx \(or GEM's concept_set_id\), concepts, target",
        ),
        ([{"concept_set_idx": 1, "concepts": [], "target": "x"}], "'concepts' must be a non-empty list"),
        ([HUB_ROWS[0], {**HUB_ROWS[2], "concepts": ["kite", "beach"]}], "concept set 7 has concepts"),
    ],
)
def test_malformed_rows_are_explained(rows, message):
    with pytest.raises(GrueError, match=message):
        commongen.rows_to_examples(rows, "train")


def test_paper_settings_resolve():
    ppo, nlpo = resolve("commongen", "ppo"), resolve("commongen", "nlpo")
    assert (ppo.run.model, ppo.run.reward, ppo.algo.lr, ppo.algo.kl_coef, ppo.algo.kl_target) == (
        "t5-base",
        "commongen_meteor",
        2e-6,
        0.001,
        2.0,
    )
    assert (ppo.generation.top_k, ppo.generation.max_new_tokens, nlpo.generation.top_k) == (0, 20, 50)
    assert (ppo.eval.num_beams, ppo.eval.do_sample, ppo.eval.max_new_tokens) == (5, False, 20)
    # RL4LMs 97df0bd common_gen/t5_ppo.yml min_length 5 counts T5's decoder start token: 4 new tokens; the paper's
    # Table 11: 1280 steps per update (97df0bd's file: 2560, in --preset rl4lms-97df0bd)
    assert (ppo.generation.min_new_tokens, ppo.eval.min_new_tokens, ppo.algo.rollout_size, ppo.algo.ent_coef) == (
        4,
        4,
        1280,
        0.01,
    )
    assert resolve("commongen", "ppo", preset="rl4lms-97df0bd").algo.rollout_size == 2560
    # common_gen/t5_nlpo.yml: max_prompt_length 15 cut on the left (no side set), min_length 10; the paper's Table 11
    # (Sec. B.4.1): entropy coefficient 0.01 and beam search 5 in evaluation, where the file has 0.0 and sampling
    g, e = nlpo.generation, nlpo.eval
    assert (g.max_prompt_tokens, g.truncation_side, g.min_new_tokens, nlpo.algo.rollout_size) == (15, "left", 9, 1280)
    assert (e.do_sample, e.num_beams, e.min_new_tokens, e.max_new_tokens, e.batch_size) == (False, 5, 4, 20, 100)
    assert nlpo.algo.ent_coef == 0.01
    old = resolve("commongen", "nlpo", preset="rl4lms-97df0bd")
    e = old.eval
    assert (e.do_sample, e.num_beams, e.top_k, e.min_new_tokens, e.batch_size) == (True, 1, 50, 9, 100)
    assert old.algo.ent_coef == 0.0
    assert resolve("commongen", "ppo", preset="rl4lms-97df0bd").eval == ppo.eval  # nlpo.eval: NLPO runs only


def test_real_sample(data_dir):
    d = str(data_dir)
    for split in commongen.SPLITS:
        rows = [
            json.loads(line)
            for line in (data_dir / "commongen" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        ex = commongen.load(split, d)
        sets = {r["concept_set_idx"] for r in rows}
        assert len(ex) == (len(rows) if split == "train" else len(sets))
        assert [e.meta["index"] for e in ex] == list(range(len(ex)))
        assert all(e.prompt == "generate a sentence with: " + " ".join(e.meta["concepts"]) + "." for e in ex)
        assert all(len(e.references) == 1 and e.references[0].strip() for e in ex)
        first = {}
        for r in rows:
            first.setdefault(r["concept_set_idx"], r["target"])
        if split != "train":
            assert all(e.references == [first[e.meta["concept_set_idx"]]] for e in ex)
    val = commongen.load("validation", d)
    assert val == commongen.load("validation", d)  # deterministic
    assert len(commongen.load("train", d)) == 1000  # the sample's train rows
