"""ToTTo's PARENT and BLEU (grue/metrics/parent.py, grue/metrics/totto.py) against ToTTo's official scripts,
the paper's ToTTo evaluation (RL4LMs 97df0bd rl4lms/data_pools/task_utils/totto/eval_utils/)."""

from __future__ import annotations

import pytest

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricSkipped, metric_function
from grue.metrics.parent import lcs_length, parent_one, parent_per_sample, tokenize_table
from grue.metrics.totto import totto_bleu_score, totto_prediction, totto_references, totto_sacrebleu, totto_tokens

GENS = [
    "Michael Dahlquist (born December 22, 1965) was a drummer.",
    "The 2004 Summer Olympics were held in Athens, Greece.",
    "",
    "U.S. Senator John Smith (R) won in 2010 with 55.2% of the vote.",
]
REFS = [
    [
        "Michael Dahlquist (born December 22, 1965) was a drummer in the band Silkworm.",
        "Michael Dahlquist, born in 1965, played drums for Silkworm.",
        "Dahlquist was the drummer of Silkworm.",
    ],
    ["The 2004 Summer Olympics were hosted by Athens.", "Athens hosted the Games in 2004."],
    ["Greatest Hits was released in 1999."],
    [
        "In 2010, John Smith won with 120,455 votes (55.2%) over Jane Doe.",
        "Republican John Smith defeated Jane Doe, taking 55.2% of the vote.",
        "John Smith won the U.S. Senate election with 55.2%.",
    ],
]
# The four hand-written ToTTo rows behind these tables, in PARENT's (attribute, value) form as
# table_to_text_utils.py builds it: recall = highlighted cells + page and section titles
# (get_subtable_parent_format), precision = every non-empty cell + titles + section text (get_table_parent_format).
RECALL = [
    [
        ("cell", "Michael Dahlquist"),
        ("cell", "December 22, 1965"),
        ("cell", "Silkworm"),
        ("page_title", "Michael Dahlquist"),
        ("section_title", "Career"),
    ],
    [("cell", "2004"), ("cell", "Athens"), ("page_title", "Summer Olympic Games"), ("section_title", "List of Games")],
    [("cell", "Greatest Hits"), ("cell", "1999"), ("page_title", "Sony Records")],
    [
        ("cell", "John Smith"),
        ("cell", "120,455"),
        ("cell", "55.2"),
        ("cell", "Jane Doe"),
        ("page_title", "2010 U.S. Senate election in Ohio"),
        ("section_title", "Results"),
    ],
]
PRECISION = [
    [
        ("header", "Name"),
        ("header", "Born"),
        ("header", "Band"),
        ("cell", "Michael Dahlquist"),
        ("cell", "December 22, 1965"),
        ("cell", "Silkworm"),
        ("cell", "Tim Midyett"),
        ("cell", "1966"),
        ("cell", "Silkworm - Bottomless Pit"),
        ("page_title", "Michael Dahlquist"),
        ("section_title", "Career"),
        ("section_text", "He played the drums in Seattle."),
    ],
    [
        ("header", "Year"),
        ("header", "Host city"),
        ("header", "Country"),
        ("cell", "2004"),
        ("cell", "Athens"),
        ("cell", "Greece"),
        ("cell", "2008"),
        ("cell", "Beijing"),
        ("cell", "China"),
        ("page_title", "Summer Olympic Games"),
        ("section_title", "List of Games"),
    ],
    [
        ("header", "Title"),
        ("header", "Year"),
        ("cell", "Greatest Hits"),
        ("cell", "1999"),
        ("cell", "2001"),
        ("page_title", "Sony Records"),
        ("section_text", "Albums released by the label."),
    ],
    [
        ("header", "Party"),
        ("header", "Candidate"),
        ("header", "Votes"),
        ("header", "%"),
        ("cell", "Republican"),
        ("cell", "John Smith"),
        ("cell", "120,455"),
        ("cell", "55.2"),
        ("cell", "Democratic"),
        ("cell", "Jane Doe"),
        ("cell", "97,802"),
        ("cell", "44.8"),
        ("page_title", "2010 U.S. Senate election in Ohio"),
        ("section_title", "Results"),
    ],
]
OVERLAP = [True, False, True, False]
# totto_parent_eval.sh and totto_bleu_eval.sh (Moses detokenizer, sacrebleu command line, totto_parent_eval.py)
# run as RL4LMs' eval_utils/__init__.py:9-95 runs them, on those rows and generations (on this machine):
OFFICIAL_F = [0.7484528074404261, 0.6124144949524462, 1.9996440518229387e-05, 0.4718555708441201]
OFFICIAL_PARENT = {
    "parent_overall": 0.4581857174193777,
    "parent_overlap": 0.37423640194047214,
    "parent_nonoverlap": 0.5421350328982831,
}
OFFICIAL_BLEU = {"sacrebleu_overall": 0.605, "sacrebleu_overlap": 0.936, "sacrebleu_nonoverlap": 0.443}
# totto_parent_eval.py parent() (lines 266-445) on the same tokens: lambda_weight 0.5; example 0 with each
# reference alone; and with the recall tables also as precision tables.
OFFICIAL_F_LAMBDA_HALF = [0.7441723580756706, 0.6073593104401951, 0.005987833625911209, 0.4735709101482711]
OFFICIAL_EX0_PER_REFERENCE = [0.7484528074404261, 0.01806126892334614, 0.04197988388761036]
OFFICIAL_F_RECALL_TABLES_ONLY = [0.8657840730409135, 0.5624254397024533, 1.9996440518229387e-05, 0.4545118330577679]


def meta(with_precision: bool = True) -> list[dict]:
    return [
        {"table": t, "overlap_subset": o, **({"precision_table": p} if with_precision else {})}
        for t, p, o in zip(RECALL, PRECISION, OVERLAP)
    ]


def test_parent_matches_the_official_scripts():
    assert parent_per_sample(GENS, REFS, RECALL, precision_tables=PRECISION) == pytest.approx(OFFICIAL_F, abs=1e-12)
    result = metric_function("parent")(EvalBatch([""] * 4, GENS, REFS, meta()), MetricOptions())
    assert result.values == pytest.approx(OFFICIAL_PARENT, abs=1e-12)
    assert result.per_sample["parent_overall"] == pytest.approx(OFFICIAL_F, abs=1e-12)
    assert parent_per_sample(GENS, REFS, RECALL, 0.5, PRECISION) == pytest.approx(OFFICIAL_F_LAMBDA_HALF, abs=1e-12)
    side_tables = tokenize_table(RECALL[0]), tokenize_table(PRECISION[0])
    per_ref = [
        parent_one(totto_tokens(GENS[0]), totto_tokens(r), side_tables[0], precision_table=side_tables[1])[2]
        for r in REFS[0]
    ]
    assert per_ref == pytest.approx(OFFICIAL_EX0_PER_REFERENCE, abs=1e-12)


def test_parent_without_precision_tables_reads_the_recall_tables():
    assert parent_per_sample(GENS, REFS, RECALL) == pytest.approx(OFFICIAL_F_RECALL_TABLES_ONLY, abs=1e-12)
    result = metric_function("parent")(EvalBatch([""] * 4, GENS, REFS, meta(with_precision=False)), MetricOptions())
    assert result.per_sample["parent_overall"] == pytest.approx(OFFICIAL_F_RECALL_TABLES_ONLY, abs=1e-12)


def test_totto_bleu_matches_the_official_script():
    result = totto_sacrebleu(EvalBatch([""] * 4, GENS, REFS, meta()), MetricOptions())
    assert result.values == pytest.approx(OFFICIAL_BLEU, abs=1e-12)
    assert totto_bleu_score(GENS, REFS) == pytest.approx(0.605, abs=1e-12)
    with pytest.raises(MetricSkipped, match="overlap_subset"):
        totto_sacrebleu(EvalBatch(["p"], ["g"], [["r"]], [{}]), MetricOptions())


def test_totto_text_conventions():
    # prepare_predictions_for_eval.py:30-35 (strip, <null> for empty, lower-case);
    # prepare_references_for_eval.py:32-40, 100-120 (first three final sentences, <null> padding, lower-case)
    assert totto_prediction("  The Cat. ") == "the cat." and totto_prediction(" ") == "<null>"
    assert totto_references(["A", "B"]) == ["a", "b", "<null>"]
    assert totto_references(["A", "B", "C", "D"]) == ["a", "b", "c"]
    # totto_parent_eval.py:75-79: sacrebleu's 13a tokenizer on the stripped, lower-cased text
    assert totto_tokens(" U.S. (2005), 1,642 m can't <null>") == [
        "u",
        ".",
        "s",
        ".",
        "(",
        "2005",
        ")",
        ",",
        "1,642",
        "m",
        "can't",
        "<",
        "null",
        ">",
    ]


def test_parent_hand_checked_cases():
    table = tokenize_table([("name", "Michael Dahlquist"), ("occupation", "drummer")])
    # Generation = reference, fully entailed by the table: P = R = 1, F = 2 / (2 + 1e-8).
    text = totto_tokens("Michael Dahlquist was a drummer")
    p, r, f = parent_one(text, text, table)
    assert (p, r) == (1.0, 1.0) and f == pytest.approx(2 / (2 + 1e-8), abs=1e-15)
    # Every generation n-gram is in the table (entailed) though not in the reference: P = 1.
    # The reference mentions nothing from the table: its n-grams weigh 0 (Rr = 1) and
    # lambda = 1 - 0 = 1, so R = table recall = (1 + 2/3) / 2 ("seattle band drummer": LCS 2 of 3).
    table = [("name", "Michael Dahlquist"), ("occupation", "Seattle band drummer")]
    p, r, f = parent_one(
        totto_tokens("michael dahlquist seattle drummer"), totto_tokens("he played drums"), tokenize_table(table)
    )
    assert p == 1.0 and r == pytest.approx(5 / 6, abs=1e-12)
    assert f == pytest.approx(2 * (5 / 6) / (1 + 5 / 6 + 1e-8), abs=1e-12)
    # An empty generation is read as "<null>" (tokens < null >). Against the real reference P_1 = 0 (F = 0);
    # against a padded "<null>": P_1..3 = 1 and P_4 = 1e-5 (no 4-gram), so P = 1e-5 ** (1/4); Rr = 1
    # (no entailed n-gram), lambda = 1 and Rt = 1e-5, so R = 1e-5.
    p = 1e-5**0.25
    assert parent_per_sample([""], [["a drummer"]], [table]) == pytest.approx(
        [2 * p * 1e-5 / (p + 1e-5 + 1e-8)], abs=1e-15
    )


def test_lcs_length():
    assert lcs_length("abcbdab", "bdcaba") == 4
    assert lcs_length([], ["a"]) == 0


def test_parent_subsets_and_skip():
    result = metric_function("parent")(
        EvalBatch([""] * 2, GENS[:2], REFS[:2], [{"table": t, "overlap_subset": True} for t in RECALL[:2]]),
        MetricOptions(),
    )
    assert set(result.values) == {"parent_overall", "parent_overlap"}  # no example in the non-overlap subset
    with pytest.raises(MetricSkipped, match="table"):
        metric_function("parent")(EvalBatch(["p"], ["g"], [["r"]], [{}]), MetricOptions())


def test_parent_subsets_read_none_and_string_flags():
    f = OFFICIAL_F

    def run(flags):
        m = [{"table": t, "precision_table": p, "overlap_subset": flag} for t, p, flag in zip(RECALL, PRECISION, flags)]
        return metric_function("parent")(EvalBatch([""] * 4, GENS, REFS, m), MetricOptions()).values

    # None is no flag (ToTTo train rows): only the overall mean, no subset
    assert run([None] * 4) == pytest.approx({"parent_overall": sum(f) / 4}, abs=1e-12)
    # the string "False" is the non-overlap subset (bool("False") would have been True)
    assert run(["True", "False", "True", "False"]) == pytest.approx(OFFICIAL_PARENT, abs=1e-12)
    with pytest.raises(GrueError, match="overlap_subset None"):
        run([True, None, False, True])


def test_parent_bad_input():
    with pytest.raises(GrueError, match="one of each"):
        parent_per_sample(["a"], [["a"]], [])
    with pytest.raises(GrueError, match="one of each"):
        parent_per_sample(["a"], [["a"]], [[("name", "a")]], precision_tables=[])
    with pytest.raises(GrueError, match="attribute, value"):
        parent_per_sample(["a"], [["a"]], [[("name",)]])
    with pytest.raises(GrueError, match="attribute, value"):
        parent_per_sample(["a"], [["a"]], [[{"name": 1, "value": 2}]])
    with pytest.raises(GrueError, match="non-empty list of str"):
        parent_per_sample(["a"], [[]], [[("name", "a")]])
    with pytest.raises(GrueError, match="non-empty value"):
        parent_per_sample(["a"], [["a"]], [[("name", "  ")]])
    with pytest.raises(GrueError, match="lack meta"):
        metric_function("parent")(
            EvalBatch(["p", "q"], ["g", "h"], [["r"], ["s"]], [{"table": [("a", "b")]}, {}]), MetricOptions()
        )
