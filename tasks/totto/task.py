"""ToTTo controlled table-to-text generation (GRUE task ``totto``).

Given a Wikipedia table with some cells highlighted, write one sentence that states
exactly what the highlighted cells say. The prompt is the highlighted sub-table in
ToTTo's official linearisation (the baseline preprocessing of google-research/language
``language/totto/baseline_preprocessing``): optional page and section titles, then
each highlighted cell with the column and row headers its heuristic finds::

    <page_title> P </page_title> <section_title> S </section_title> <table> <cell> v
    <col_header> h </col_header> <row_header> r </row_header> </cell> ... </table>

The default prompt (variant ``subtable``) is RL4LMs' ``subtable`` representation (97df0bd
rl4lms/data_pools/custom_text_generation_pools.py ``ToTTo``): the linearisation without titles
immediately followed by the one with titles, ``<table> ... </table><page_title> P ...
</table>``. Other variants (``run.prompt_variant``): ``titles`` (the titled one alone) and
``no_titles`` (the bare one alone).

Data: Hugging Face ``totto``, or local JSON Lines ``<data-dir>/totto/<split>.jsonl`` in
the original ToTTo format. The Hub changes three fields, and both forms are accepted:
``sentence_annotations`` is a dict of lists (original: a list of dicts), ``example_id`` a
string (original: an int) and ``overlap_subset`` the string "True"/"False"/"none"
(original: a bool, absent in train). The ToTTo test split is unlabeled, so it cannot be
scored: loading it from the Hub is an error, and so is any row without annotations.
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.metrics.text import overlap_flag
from grue.tasks.common import Example, one_per_reference, place, source_rows

SPLITS = ("train", "validation", "test")
VARIANTS = ("subtable", "titles", "no_titles")
HUB_NAME, HUB_CONFIG = "totto", None
FIELDS = ("table", "table_page_title", "table_section_title", "highlighted_cells")
UNLABELED = (
    "the ToTTo test split is unlabeled (no reference sentences), so it cannot be scored; evaluate on split 'validation'"
)


def column_spans(row: list[dict]) -> list[tuple[int, int]]:
    """The [start, end) table columns of each cell of ``row``, counting ``column_span``.

    ``start_j = sum(column_span_i for i < j)``, ``end_j = start_j + column_span_j``
    (ToTTo's "adjusted column offsets").
    """
    spans, start = [], 0
    for cell in row:
        end = start + int(cell.get("column_span", 1))
        spans.append((start, end))
        start = end
    return spans


def row_headers(table: list[list[dict]], r: int, c: int) -> list[str]:
    """Values of the header cells before cell (r, c) in its row (positions 0..c-1), left to right.

    ToTTo's heuristic counts cells by position in the row, not by spanned columns.
    """
    return [cell["value"] for cell in table[r][:c] if cell["is_header"]]


def col_headers(table: list[list[dict]], spans: list[list[tuple[int, int]]], r: int, c: int) -> list[str]:
    """Values of the header cells in rows above r whose column range overlaps cell (r, c)'s, top to bottom.

    ``spans[i]`` is ``column_spans(table[i])``; a cell [s, e) overlaps [s0, e0) when
    ``s < e0 and e > s0``. Row spans are ignored, as in ToTTo's heuristic.
    """
    s0, e0 = spans[r][c]
    return [
        cell["value"]
        for i in range(r)
        for cell, (s, e) in zip(table[i], spans[i])
        if s < e0 and e > s0 and cell["is_header"]
    ]


def highlighted_cells(row: dict, where: str) -> list[tuple[dict, list[str], list[str]]]:
    """(cell, column headers, row headers) of each highlighted cell, in the row's ``highlighted_cells`` order."""
    table = row["table"]
    spans = [column_spans(r) for r in table]
    out = []
    for pair in row["highlighted_cells"]:
        r, c = (int(x) for x in pair)
        if not (0 <= r < len(table) and 0 <= c < len(table[r])):
            raise GrueError(
                f"{where}: highlighted cell {list(pair)} is outside the table "
                f"({len(table)} rows); highlighted_cells must be [row, column] positions of table cells"
            )
        out.append((table[r][c], col_headers(table, spans, r, c), row_headers(table, r, c)))
    return out


def linearize(row: dict, titles: bool = True, where: str = "totto") -> str:
    """The highlighted sub-table as one string (ToTTo's ``linearize_subtable``; see the module docstring).

    ``<page_title> P </page_title> `` and ``<section_title> S </section_title> `` come
    first when ``titles`` is true and the title is not empty; each cell is
    ``<cell> v `` + ``<col_header> h </col_header> `` per column header +
    ``<row_header> h </row_header> `` per row header + ``</cell> ``; then ``</table>``.
    """
    out = ""
    if titles and row.get("table_page_title"):
        out += f"<page_title> {row['table_page_title']} </page_title> "
    if titles and row.get("table_section_title"):
        out += f"<section_title> {row['table_section_title']} </section_title> "
    out += "<table> "
    for cell, cols, rows in highlighted_cells(row, where):
        out += f"<cell> {cell['value']} "
        out += "".join(f"<col_header> {h} </col_header> " for h in cols)
        out += "".join(f"<row_header> {h} </row_header> " for h in rows)
        out += "</cell> "
    return out + "</table>"


def _parent_value(text: str) -> str:
    """A PARENT table value: stripped, ``|`` replaced by ``-`` (as ToTTo's conversion writes it)."""
    return text.strip().replace("|", "-")


def parent_table(row: dict, where: str = "totto") -> list[list[str]]:
    """The highlighted sub-table in PARENT's (attribute, value) form, as ToTTo's evaluation builds it.

    language/totto ``get_subtable_parent_format`` (the recall table of ToTTo's PARENT):
    one ``["header" | "cell", value]`` per highlighted cell with a non-empty value, then
    ``["page_title", P]`` and ``["section_title", S]`` when not empty. Returns a list of
    [str, str] pairs, e.g. ``[["cell", "2016"], ["page_title", "Some Page"]]``.
    """
    table = []
    for cell, _, _ in highlighted_cells(row, where):
        value = _parent_value(cell["value"])
        if value:
            table.append(["header" if cell["is_header"] else "cell", value])
    for attribute, key in (("page_title", "table_page_title"), ("section_title", "table_section_title")):
        if row.get(key):
            table.append([attribute, _parent_value(row[key])])
    return table


def parent_precision_table(row: dict) -> list[list[str]]:
    """The whole table in PARENT's (attribute, value) form: the precision (entailment) table of ToTTo's PARENT.

    language/totto ``get_table_parent_format``: ``["header" | "cell", value]`` for every cell of every row
    with a non-empty value, then ``page_title``, ``section_title`` and ``section_text`` when not empty.
    """
    table = [
        ["header" if cell["is_header"] else "cell", _parent_value(cell["value"])]
        for cells in row["table"]
        for cell in cells
        if _parent_value(cell["value"])
    ]
    for attribute, key in (
        ("page_title", "table_page_title"),
        ("section_title", "table_section_title"),
        ("section_text", "table_section_text"),
    ):
        if row.get(key):
            table.append([attribute, _parent_value(row[key])])
    return table


def references(row: dict, where: str = "totto") -> list[str]:
    """The ``final_sentence`` of every annotation, unchanged (RL4LMs' references), from either annotation layout.

    Original ToTTo: a list of dicts; Hugging Face: a dict of lists. A row with none (the
    unlabeled test split) is an error.
    """
    ann = row.get("sentence_annotations")
    if isinstance(ann, dict):
        finals = ann.get("final_sentence") or []
    elif isinstance(ann, list):
        finals = [a.get("final_sentence", "") for a in ann if isinstance(a, dict)]
    else:
        finals = []
    refs = [str(s) for s in finals]
    if not refs or not all(r.strip() for r in refs):
        raise GrueError(f"{where}: no reference sentences: {UNLABELED}")
    return refs


def _check_row(row, where: str) -> None:
    if not isinstance(row, dict) or any(k not in row for k in FIELDS):
        raise GrueError(
            f"{where}: expected the ToTTo fields {', '.join(FIELDS)} (original ToTTo JSON or Hugging Face "
            f"totto), got {sorted(row) if isinstance(row, dict) else type(row).__name__}"
        )
    table, cells = row["table"], row["highlighted_cells"]
    if not isinstance(table, list) or not all(
        isinstance(r, list)
        and all(
            isinstance(c, dict) and isinstance(c.get("value"), str) and isinstance(c.get("is_header"), bool) for c in r
        )
        for r in table
    ):
        raise GrueError(
            f"{where}: 'table' must be a list of rows, each a list of cells "
            f'{{"value": str, "is_header": bool, ...}}, got {table!r:.80}'
        )
    for key in ("table_page_title", "table_section_title"):
        if not isinstance(row[key], str):
            raise GrueError(f"{where}: '{key}' must be a string, got {row[key]!r:.80}")
    if not isinstance(cells, list) or not all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in c)
        for c in cells
    ):
        raise GrueError(
            f"{where}: 'highlighted_cells' must be a list of [row, column] integer pairs, got {cells!r:.80}"
        )
    if not cells:
        raise GrueError(f"{where}: no highlighted cells; every ToTTo example highlights at least one [row, column]")


def build_prompt(row: dict, variant: str = "subtable", where: str = "totto") -> str:
    """The prompt of ``row`` in ``variant``: ``subtable`` = ``linearize(titles=False) + linearize(titles=True)``
    (RL4LMs' representation, no separator), ``titles`` or ``no_titles`` = that one linearisation alone."""
    if variant == "subtable":
        return linearize(row, titles=False, where=where) + linearize(row, titles=True, where=where)
    return linearize(row, titles=variant == "titles", where=where)


def rows_to_examples(rows: list[dict], split: str = "", variant: str = "subtable") -> list[Example]:
    """One Example per row: prompt = ``build_prompt`` in ``variant``, references = the final sentences,
    meta = {table and precision_table (PARENT pairs of the highlighted cells and of the whole table),
    overlap_subset (bool or None), example_id (str), index}."""
    examples = []
    for i, row in enumerate(rows):
        where = place(row, f"totto {split} row {i + 1}")
        _check_row(row, where)
        refs = references(row, where)
        examples.append(
            Example(
                prompt=build_prompt(row, variant, where),
                references=refs,
                meta={
                    "table": parent_table(row, where),
                    "precision_table": parent_precision_table(row),
                    "overlap_subset": overlap_flag(row.get("overlap_subset")),
                    "example_id": str(row.get("example_id", "")),
                    "index": i,
                },
            )
        )
    return examples


def load(split: str, data_dir: str | None, builtin: bool = False, variant: str = "subtable") -> list[Example]:
    """Examples of ``split`` from ``data_dir/totto/<split>.jsonl`` or the Hub, prompts in ``variant``."""
    if variant not in VARIANTS:
        raise GrueError(f"task 'totto' has no prompt variant '{variant}'; accepted: {', '.join(VARIANTS)}")
    if (
        not data_dir and not builtin and split == "test"
    ):  # checked before any download: every Hub test annotation is "none"
        raise GrueError(f"the Hugging Face totto test split: {UNLABELED}")
    rows = source_rows("totto", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return rows_to_examples(rows, split, variant)


supervised_examples = one_per_reference  # one training example per (input, reference), as the paper
