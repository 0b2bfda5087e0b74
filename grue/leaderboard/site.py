"""The HTML pages: ``index.html`` (overall and per-task tables) and one page per submission.

Self-contained (inline CSS and JavaScript, no external file or CDN: the site opens
offline). Every string from an input goes through :func:`esc`; a link is written only
for an http(s) URL.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote

from grue.leaderboard.aggregate import HEADLINE, Row
from grue.leaderboard.board import (
    FORMULA,
    REPORTED_MARK,
    Board,
    arrow,
    examples_text,
    fmt,
    fmt_cell,
    metric_heads,
    status,
)
from grue.leaderboard.submissions import Submission, is_http_url

CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:80rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;
text-align:right;white-space:nowrap}th{background:#f2f2f2;cursor:pointer;user-select:none}td.t,th.t{text-align:left}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.wrap{overflow-x:auto}.reported{background:#fbf7ea}.note{color:#666;font-size:.85rem}.formula{background:#f6f8fa;
padding:.5rem 1rem;border-left:3px solid #888}.bad{color:#a40}pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;
white-space:pre-wrap}dl.sample{border-top:1px solid #ddd;padding-top:.3rem}dt{font-weight:bold}dd{white-space:pre-wrap}"""
# why hand-written: a few lines of sorting need no library, and a library would need a CDN or a copy
SORT_JS = """document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      var num = th.getAttribute("data-type") === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (!num) { return cell.textContent.trim().toLowerCase(); }
        var v = cell.getAttribute("data-v");
        return v === null || v === "" ? null : parseFloat(v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var c = num ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    });
  });
});"""


def esc(value) -> str:
    """Text made safe for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def link(url: str | None, text: str) -> str:
    """An external link for an http(s) URL; the text alone for anything else (javascript:, data:, ...)."""
    if not url or not is_http_url(url):
        return esc(text)
    return f'<a href="{esc(url)}" rel="nofollow noopener noreferrer">{esc(text)}</a>'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f"<style>\n{CSS}\n</style>\n</head>\n<body>\n{body}\n<script>\n{SORT_JS}\n</script>\n</body>\n</html>\n")


def th(text: str, num: bool = False, title: str = "") -> str:
    attrs = (' data-type="num"' if num else ' class="t"') + (f' title="{esc(title)}"' if title else "")
    return f"<th{attrs}>{esc(text)}</th>"


def td_num(value: float | None, text: str | None = None) -> str:
    v = "" if value is None else repr(float(value))
    return f'<td data-v="{v}">{esc(fmt(value) if text is None else text)}</td>'


def tr(cells: list[str], kind: str = "submission") -> str:
    """A table row; reported rows are shaded."""
    return ('<tr class="reported">' if kind == "reported" else "<tr>") + "".join(cells) + "</tr>"


def table(heads: list[str], rows: list[str], cls: str = "sortable") -> str:
    return (f'<div class="wrap"><table class="{cls}">\n<thead><tr>{"".join(heads)}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>")


def overall_table(board: Board, kind: str) -> str:
    entries = [o for o in board.ranking if o.kind == kind]
    tasks = board.overall_tasks()
    name = "Submission" if kind == "submission" else "Algorithm (paper)"
    heads = [th("Rank", True), th(name), th("Models"), th("Overall", True)] + [th(t, True) for t in tasks] + [th("Status")]
    lines = []
    for o in entries:
        label = (f'<a href="submissions/{esc(quote(o.group))}.html">{esc(o.group)}</a>' if kind == "submission"
                 else esc(o.group))
        cells = [td_num(o.rank, str(o.rank) if o.rank else "—"), f'<td class="t">{label}</td>',
                 f'<td class="t">{esc(", ".join(o.models))}</td>', td_num(o.score)]
        cells += [td_num(o.scores.get(t)) for t in tasks]
        cells.append(f'<td class="t{"" if o.complete else " bad"}">{esc(status(o))}</td>')
        lines.append(tr(cells, kind))
    if not lines:
        return '<p class="note">No entries yet.</p>'
    return table(heads, lines)


def task_table(board: Board, task: str, rows: list[Row], kind: str) -> str:
    metrics = board.tasks[task].metrics
    if kind == "submission":
        heads = [th("Submission"), th("Algorithm"), th("Model"), th("Seeds", True), th("Examples", True)]
    else:
        heads = [th("Algorithm"), th("Row (reward · variant · source)"), th("Model"), th("In overall")]
    heads += [th("Task score", True, "normalised headline metric; see the formula above")]
    heads += [th(h, True) for h in metric_heads(board.tasks[task])]
    lines = []
    for r in rows:
        if kind == "submission":
            cells = [f'<td class="t"><a href="submissions/{esc(quote(r.ref))}.html">{esc(r.ref)}</a></td>',
                     f'<td class="t">{esc(r.algorithm)}</td>', f'<td class="t">{esc(r.model)}</td>',
                     td_num(len(r.seeds), str(len(r.seeds))),
                     td_num(r.examples[1] if r.examples else None, examples_text(r))]
        else:
            cells = [f'<td class="t">{esc(r.algorithm)}</td>', f'<td class="t">{esc(r.note)}</td>',
                     f'<td class="t">{esc(r.model)}</td>', f'<td class="t">{"yes" if r.in_pool else "no"}</td>']
        cells.append(td_num(r.score))
        for m in metrics:
            cell = r.cells.get(m)
            title = f' title="skipped: {esc(r.skipped[m])}"' if m in r.skipped else ""
            text = esc(fmt_cell(cell, len(r.seeds) if kind == "submission" else None))
            value = "" if cell is None else repr(float(cell.mean))
            cells.append(f'<td data-v="{value}"{title}>{text}</td>')
        lines.append(tr(cells, kind))
    return table(heads, lines) if lines else '<p class="note">None yet.</p>'


def task_section(board: Board, task: str, svg: str) -> str:
    info = board.tasks[task]
    headline = HEADLINE.get(task)
    head = (f"headline metric {headline} {arrow(board.directions.get(headline))}" if headline
            else "not part of the overall score")
    subs, reported = board.task_rows(task, "submission"), board.task_rows(task, "reported")
    dev = board.task_rows(task, "reported", "validation")
    parts = [f'<section id="task-{esc(task)}">', f"<h2>{esc(task)}</h2>",
             f'<p class="note">{esc(info.description)} Version {esc(info.version)}; {esc(head)}. Cells: mean ± '
             f"sample std over seeds (n − 1); — missing (hover: why it was skipped).</p>",
             "<h3>Submissions</h3>", task_table(board, task, subs, "submission"),
             f"<h3>Paper baselines: {esc(REPORTED_MARK)} (test split)</h3>",
             '<p class="note">Cells as printed, ± the printed std. "In overall": one of the paper\'s main-table '
             "rows, which count for the paper baselines' overall score.</p>",
             task_table(board, task, reported, "reported")]
    if dev:
        parts += [f"<details><summary>Reported on the validation split ({len(dev)} rows, {esc(REPORTED_MARK)}; not "
                  "comparable with test)</summary>", task_table(board, task, dev, "reported"), "</details>"]
    if svg:
        parts.append(f'<figure>{svg}</figure>')
    sources = sorted({r.source for r in reported + dev if r.source})
    if sources:
        parts += ["<details><summary>Sources of the reported rows</summary><ul>"]
        parts += [f"<li>{esc(s)}</li>" for s in sources] + ["</ul></details>"]
    parts.append("</section>")
    return "\n".join(parts)


def index_html(board: Board, svgs: dict[str, str]) -> str:
    """The main page; ``svgs`` are inline plots by name (``overall`` and task names)."""
    nav = " · ".join(f'<a href="#task-{esc(t)}">{esc(t)}</a>' for t in board.tasks)
    n_reported = sum(1 for r in board.rows if r.kind == "reported")
    body = ["<h1>GRUE leaderboard</h1>",
            f'<p class="note">{len(board.submissions)} submission(s) and {n_reported} rows {esc(REPORTED_MARK)}. '
            f"Latest result: {esc(board.latest or '—')}. Also as <a href=\"leaderboard.md\">Markdown</a> and "
            f'<a href="leaderboard.csv">CSV</a>.</p>',
            f'<nav><a href="#overall">overall</a> · {nav}</nav>',
            '<section id="overall"><h2>Overall GRUE score</h2>',
            f'<p class="formula">{esc(FORMULA)}.</p>',
            '<p class="note">Headline metrics: ' + esc(", ".join(f"{t}: {m}" for t, m in HEADLINE.items() if t in board.tasks))
            + ". An entry missing a task, or with a task evaluated on part of its test split, is shown with the mean "
            "over the tasks it has and ranked below every complete entry.</p>",
            "<h3>Submissions</h3>", overall_table(board, "submission"),
            f"<h3>Paper baselines: {esc(REPORTED_MARK)}</h3>",
            '<p class="note">Ranked apart from submissions. A paper algorithm\'s task score is the mean over its '
            "main-table rows of that task (the paper reports one row per reward function). grue computes every metric "
            'as the paper\'s code did; <a href="fidelity.md">fidelity.md</a> lists each place compared and what still '
            "differs.</p>",
            overall_table(board, "reported")]
    if svgs.get("overall"):
        body.append(f"<figure>{svgs['overall']}</figure>")
    body.append("</section>")
    body += [task_section(board, t, svgs.get(t, "")) for t in board.tasks]
    return page("GRUE leaderboard", "\n".join(body))


def samples_html(samples: list[dict]) -> str:
    out = []
    for s in samples:
        refs = "".join(f"<dd>{esc(r[:2000])}</dd>" for r in s["references"][:3])
        out.append(f'<dl class="sample"><dt>Prompt</dt><dd>{esc(s["prompt"][:2000])}</dd><dt>Generation</dt>'
                   f'<dd>{esc(s["generation"][:2000])}</dd><dt>References</dt>{refs}</dl>')
    return "\n".join(out)


def submission_html(board: Board, sub: Submission) -> str:
    """The detail page of one submission: who and what, then per task the seeds, skipped metrics, the
    configuration and sample generations."""
    m = sub.meta
    info = [("Who", esc(m.who)), ("Model", esc(m.model)), ("Algorithm", esc(m.algorithm)),
            ("Link", link(m.link, m.link) if m.link else "—"), ("Notes", esc(m.notes or "—"))]
    body = ['<p><a href="../index.html">← GRUE leaderboard</a></p>', f"<h1>{esc(sub.name)}</h1>",
            "<table>" + "".join(f'<tr><th class="t">{k}</th><td class="t" style="white-space:pre-wrap">{v}</td></tr>'
                                for k, v in info) + "</table>"]
    for task in sorted({e.results.task for e in sub.entries}):
        entries = [e for e in sub.entries if e.results.task == task]
        names = sorted({n for e in entries for n in e.results.metrics})
        heads = [th("Seed", True), th("File"), th("Examples", True)] + [th(n, True) for n in names]
        lines = []
        for e in entries:
            r = e.results
            cells = [td_num(r.seed, str(r.seed)), f'<td class="t">{esc(e.rel)}</td>',
                     td_num(r.samples.evaluated, f"{r.samples.evaluated} of {r.samples.total}")]
            cells += [td_num(r.metrics[n].value) if n in r.metrics else '<td data-v="">—</td>' for n in names]
            lines.append("<tr>" + "".join(cells) + "</tr>")
        body += [f"<h2>{esc(task)}</h2>", table(heads, lines)]
        skipped = sorted({(n, why) for e in entries for n, why in e.results.skipped.items()})
        if skipped:
            body.append("<p>Skipped metrics:</p><ul>" + "".join(f"<li>{esc(n)}: {esc(w)}</li>" for n, w in skipped) + "</ul>")
        for e in entries:
            config = json.dumps(e.results.config, indent=2, sort_keys=True, ensure_ascii=False)
            body.append(f"<details><summary>Configuration, seed {esc(e.results.seed)} "
                        f"(grue {esc(e.results.grue_version)}, {esc(e.results.date)})</summary><pre>{esc(config)}</pre></details>")
            if e.samples:
                body.append(f"<details><summary>Sample generations, seed {esc(e.results.seed)} (first {len(e.samples)})"
                            f"</summary>{samples_html(e.samples)}</details>")
    return page(f"{sub.name} · GRUE leaderboard", "\n".join(body))
