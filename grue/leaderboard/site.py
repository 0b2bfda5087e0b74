"""The HTML pages: ``index.html`` (overall and per-task tables) and one page per submission.

Self-contained (inline CSS and JavaScript, no external file or CDN: the site opens
offline). Every string from an input goes through :func:`esc`; a link is written only
for an http(s) URL.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote

from grue.leaderboard.aggregate import HEADLINE, OVERALL_TASKS, Row
from grue.leaderboard.board import (
    DIVERSITY,
    FORMULA,
    OUT_OF_RANGE,
    REPORTED_MARK,
    Board,
    arrow,
    examples_text,
    fmt,
    fmt_cell,
    head,
    out_of_range,
    status,
)
from grue.leaderboard.paper_command import command_html
from grue.leaderboard.provenance import NOT_RECORDED, Benchmark, summary
from grue.leaderboard.submissions import Entry, Submission, is_http_url

CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0 auto;max-width:90rem;padding:1rem;
color:#222;line-height:1.4;overflow-wrap:break-word}h1{margin:.3rem 0}h2{margin:1.6rem 0 .4rem}h3{margin:1rem 0 .3rem}
table{border-collapse:collapse;margin:.3rem 0 1rem;font-size:.8rem}th,td{border:1px solid #ccc;padding:.2rem .3rem;
text-align:right;vertical-align:top}th{background:#f2f2f2;cursor:pointer;user-select:none;vertical-align:bottom}
td.t,th.t{text-align:left}td.name{min-width:6rem;overflow-wrap:anywhere}td.status{min-width:10rem}td.status div{max-width:22rem;overflow-wrap:anywhere}td.row{min-width:8rem}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.wrap{overflow-x:auto;max-width:100%}.reported{background:#fbf7ea}.note{color:#555;font-size:.85rem}
.formula{background:#f6f8fa;padding:.5rem 1rem;border-left:3px solid #888}.bad{color:#a40}.out{color:#a40}
.nw{white-space:nowrap}figure{margin:1rem 0}figure svg{display:block;max-width:100%;height:auto}summary{cursor:pointer}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap}dl.sample{border-top:1px solid #ddd;
padding-top:.3rem}dt{font-weight:bold}dd{white-space:pre-wrap;margin-left:1rem}
table.info th{vertical-align:top;cursor:auto}table.info td{white-space:pre-wrap}"""
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
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
        f"<style>\n{CSS}\n</style>\n</head>\n<body>\n{body}\n<script>\n{SORT_JS}\n</script>\n</body>\n</html>\n"
    )


def breakable(text: str) -> str:
    """Escaped text that may wrap after an underscore or a slash (long metric and task names, file paths in
    narrow columns)."""
    return esc(text).replace("_", "_<wbr>").replace("/", "/<wbr>")


def th(text: str, num: bool = False, title: str = "") -> str:
    attrs = (' data-type="num"' if num else ' class="t"') + (f' title="{esc(title)}"' if title else "")
    return f"<th{attrs}>{breakable(text)}</th>"


def keep(text: str, longest: int = 30) -> str:
    """Escaped text that stays on one line ('t5-base', not 't5-' and 'base') unless longer than ``longest``."""
    return f'<span class="nw">{esc(text)}</span>' if len(text) <= longest else esc(text)


def number(text: str) -> str:
    """Escaped 'mean ± std (n=k)' that wraps, when it must, before the '±' and the '(n=k)', never inside."""
    return esc(text).replace(" ± ", " ±\u00a0")


def td_num(value: float | None, text: str | None = None) -> str:
    v = "" if value is None else repr(float(value))
    return f'<td data-v="{v}">{number(fmt(value) if text is None else text)}</td>'


def td_score(value: float | None) -> str:
    """A task or overall score; one outside [0, 1] is marked † (explained by OUT_OF_RANGE on the page)."""
    if not out_of_range(value):
        return td_num(value)
    return (
        f'<td data-v="{float(value)!r}" class="out" title="outside [0, 1]: see † below the overall tables">'
        f"{esc(fmt(value))}\u00a0†</td>"
    )


def tr(cells: list[str], kind: str = "submission") -> str:
    """A table row; reported rows are shaded."""
    return ('<tr class="reported">' if kind == "reported" else "<tr>") + "".join(cells) + "</tr>"


def table(heads: list[str], rows: list[str], cls: str = "sortable") -> str:
    """A table in a box that scrolls sideways when the table is wider than the screen (a phone), never the page."""
    return (
        f'<div class="wrap"><table class="{cls}">\n<thead><tr>{"".join(heads)}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )


def overall_table(board: Board, kind: str) -> str:
    """Rank, name, overall score and status first (what a phone shows without scrolling), then the models, the
    task scores and, for submissions, their provenance (seeds and device-hours; the detail page has the rest)."""
    entries = [o for o in board.ranking if o.kind == kind]
    tasks = board.overall_tasks()
    name = "Submission" if kind == "submission" else "Algorithm (paper)"
    heads = [th("Rank", True), th(name), th("Overall", True), th("Status"), th("Models")] + [th(t, True) for t in tasks]
    heads += (
        [th("Provenance", title="how grue benchmark run made it; details on the submission's page")]
        if kind == "submission"
        else []
    )
    lines = []
    for o in entries:
        label = (
            f'<a href="submissions/{esc(quote(o.group))}.html">{esc(o.group)}</a>'
            if kind == "submission"
            else keep(o.group)
        )
        cells = [
            td_num(o.rank, str(o.rank) if o.rank else "—"),
            f'<td class="t name">{label}</td>',
            td_score(o.score),
            f'<td class="t status{"" if o.complete else " bad"}"><div>{esc(status(o))}</div></td>',
            f'<td class="t">{", ".join(keep(m) for m in o.models)}</td>',
        ]
        cells += [td_score(o.scores.get(t)) for t in tasks]
        cells += [f'<td class="t">{esc(summary(board.benchmark(o.group)))}</td>'] if kind == "submission" else []
        lines.append(tr(cells, kind))
    if not lines:
        return '<p class="note">No entries yet.</p>'
    return table(heads, lines)


def split_metrics(metrics: list[str]) -> tuple[list[str], list[str]]:
    """(quality metrics, diversity and length statistics), each in the given order."""
    return [m for m in metrics if m not in DIVERSITY], [m for m in metrics if m in DIVERSITY]


def task_table(board: Board, task: str, rows: list[Row], kind: str, metrics: list[str], brief: bool = False) -> str:
    """A task's rows with ``metrics``: who and what first, then the task score (``brief``: only the name and
    model, no score; a task outside the overall score has no task score, nor "In overall")."""
    info = board.tasks[task]
    scored = not brief and task in OVERALL_TASKS
    if kind == "submission":
        heads = (
            [th("Submission"), th("Model")]
            if brief
            else [
                th("Submission"),
                th("Algorithm"),
                th("Model"),
                th("Seeds", True),
                th("Examples", True),
                th("Settings", title="settings fingerprint (grue benchmark run)"),
            ]
        )
    else:
        heads = [th("Algorithm"), th("Row (reward · variant · source)"), th("Model")] + (
            [th("In overall")] if scored else []
        )
    if scored:
        heads.append(th("Task score", True, "normalised headline metric; see the formula under the overall tables"))
    heads += [th(head(m, info.metrics.get(m, board.directions.get(m))), True) for m in metrics]
    lines = []
    for r in rows:
        if kind == "submission":
            cells = [f'<td class="t name"><a href="submissions/{esc(quote(r.ref))}.html">{esc(r.ref)}</a></td>']
            cells += (
                [f'<td class="t">{keep(r.model)}</td>']
                if brief
                else [
                    f'<td class="t">{keep(r.algorithm)}</td>',
                    f'<td class="t">{keep(r.model)}</td>',
                    td_num(len(r.seeds), str(len(r.seeds))),
                    td_num(r.examples, examples_text(r)),
                    settings_td(board.benchmark(r.ref), task),
                ]
            )
            n = len(r.comparable_to)  # under the algorithm; which rows, or what differs: the submission's page
            if not brief:
                cells[1] = (
                    cells[1][:-5]
                    + f'<div class="note">comparable with {n or "no"} paper row{"s" * (n != 1)}</div></td>'
                )
        else:
            command = "" if brief else command_html(r.task, r.algorithm, r.config)  # what reaches its settings
            cells = [
                f'<td class="t">{keep(r.algorithm)}</td>',
                f'<td class="t row">{esc(r.note)}{command}</td>',
                f'<td class="t">{keep(r.model)}</td>',
            ] + ([f'<td class="t">{"yes" if r.in_pool else "no"}</td>'] if scored else [])
        if scored:
            cells.append(td_score(r.score))
        for m in metrics:
            cell = r.cells.get(m)
            title = f' title="skipped: {esc(r.skipped[m])}"' if m in r.skipped else ""
            text = number(fmt_cell(cell, len(r.seeds) if kind == "submission" else None))
            value = "" if cell is None else repr(float(cell.mean))
            cells.append(f'<td data-v="{value}"{title}>{text}</td>')
        lines.append(tr(cells, kind))
    return table(heads, lines) if lines else '<p class="note">None yet.</p>'


def comparable_html(board: Board, r: Row) -> str:
    """The paper rows a submission row is comparable with, else why not (grue.leaderboard.comparable)."""
    names = {p.ref: f"{p.algorithm} · {p.note or p.ref}" for p in board.rows if p.kind == "reported"}
    lines = (
        [names.get(p, p) for p in r.comparable_to] or r.not_comparable or ["no paper row of this task and algorithm"]
    )
    head = "Comparable with these paper rows" if r.comparable_to else "Comparable with no paper row"
    return (
        f"<p>{head} (same task version, algorithm and stated settings):</p><ul>"
        + "".join(f"<li>{esc(x)}</li>" for x in lines)
        + "</ul>"
    )


def settings_text(benchmark: Benchmark | None, task: str) -> str:
    """A submission row's settings fingerprint, from its benchmark block; NOT_RECORDED without one."""
    if benchmark is None:
        return NOT_RECORDED
    return benchmark.settings.get(task, "—")


def settings_td(benchmark: Benchmark | None, task: str) -> str:
    """The Settings cell of a task row: the fingerprint, or 'not recorded' (the reason on hover: it keeps wide
    tables narrow)."""
    if benchmark is None:
        return f'<td class="t" title="{esc(NOT_RECORDED)}">not recorded</td>'
    return f'<td class="t"><code>{esc(settings_text(benchmark, task))}</code></td>'


def task_note(board: Board, task: str) -> str:
    """The task's line under its title: description, version, headline metric, and why it is not in the overall
    score when its benchmark split is not test."""
    info = board.tasks[task]
    headline = HEADLINE.get(task)
    text = f"headline metric {headline} {arrow(board.directions.get(headline))}" if headline else "no headline metric"
    if task not in OVERALL_TASKS:
        text += (
            f"; results on the {info.benchmark_split} split (benchmark_split in its task.yaml), so not part of the "
            "overall score"
        )
    return f"{info.description} Version {info.version}; {text}."


def task_section(board: Board, task: str, svg: str) -> str:
    """A task's tables: submissions, the paper's rows of the task's benchmark split, its rows of the other split
    folded, the diversity statistics folded, the headline chart and the reported rows' sources."""
    info = board.tasks[task]
    split = info.benchmark_split
    other = "validation" if split == "test" else "test"
    subs, reported = board.task_rows(task, "submission"), board.task_rows(task, "reported")
    apart_rows = board.task_rows(task, "reported", other)
    quality, diversity = split_metrics(list(info.metrics))
    apart = (
        f" The diversity and length statistics ({', '.join(diversity)}) have a table of their own below."
        if diversity
        else ""
    )
    parts = [
        f'<section id="task-{esc(task)}">',
        f"<h2>{esc(task)}</h2>",
        f'<p class="note">{esc(task_note(board, task))} Cells: mean ± sample std over seeds (n − 1); — missing '
        f"(hover: why it was skipped).{esc(apart)}</p>",
        f"<h3>Submissions ({esc(split)} split)</h3>",
        task_table(board, task, subs, "submission", quality),
        f"<h3>Paper baselines: {esc(REPORTED_MARK)} ({esc(split)} split)</h3>",
        '<p class="note">Cells as printed, ± the printed std.'
        + (
            " \"In overall\": one of the paper's main-table rows, which count for the paper baselines' overall score."
            if task in OVERALL_TASKS
            else ""
        )
        + "</p>",
        task_table(board, task, reported, "reported", quality),
    ]
    if apart_rows:
        parts += [
            f"<details><summary>Reported on the {esc(other)} split ({len(apart_rows)} rows, {esc(REPORTED_MARK)}; "
            f"not comparable with {esc(split)})</summary>",
            task_table(board, task, apart_rows, "reported", quality),
        ]
        parts += [task_table(board, task, apart_rows, "reported", diversity, brief=True)] if diversity else []
        parts.append("</details>")
    if diversity:
        parts += [
            f"<details><summary>Diversity and length of the generations ({len(diversity)} statistics: "
            f"{esc(', '.join(diversity))})</summary>",
            "<h4>Submissions</h4>",
            task_table(board, task, subs, "submission", diversity, brief=True),
            f"<h4>Paper baselines: {esc(REPORTED_MARK)} ({esc(split)} split)</h4>",
            task_table(board, task, reported, "reported", diversity, brief=True),
            "</details>",
        ]
    if svg:
        parts.append(f"<figure>{svg}</figure>")
    sources = sorted({r.source for r in reported + apart_rows if r.source})
    if sources:
        parts += ["<details><summary>Sources of the reported rows</summary><ul>"]
        parts += [f"<li>{esc(s)}</li>" for s in sources] + ["</ul></details>"]
    parts.append("</section>")
    return "\n".join(parts)


def apart_text(board: Board) -> str:
    """One sentence on the tasks shown apart from the overall score (benchmark split not test), or ''."""
    apart = [t for t in board.tasks if t not in OVERALL_TASKS]
    if not apart:
        return ""
    one = len(apart) == 1
    return (
        f" {', '.join(apart)} {'is' if one else 'are'} shown apart, outside the overall score: {'its' if one else 'their'} "
        "test references are hidden, so results are on the validation split, and a validation number cannot be "
        "normalised against the paper's test-split rows."
    )


def latest_text(board: Board) -> str:
    """When the newest submission was evaluated, or that there is none yet (the paper's files' dates are not results)."""
    return f"Latest result: {esc(board.latest)}" if board.latest else "No submissions yet"


def index_html(board: Board, svgs: dict[str, str]) -> str:
    """The main page; ``svgs`` are inline plots by name (``overall`` and task names). The overall tables come
    first, so that the first screen shows the ranking; the formula follows them."""
    nav = " · ".join(f'<a href="#task-{esc(t)}">{esc(t)}</a>' for t in board.tasks)
    n_reported = sum(1 for r in board.rows if r.kind == "reported")
    body = [
        "<h1>GRUE leaderboard</h1>",
        f'<p class="note">{len(board.submissions)} submission(s) and {n_reported} rows {esc(REPORTED_MARK)}. '
        f'{latest_text(board)}. Also as <a href="leaderboard.md">Markdown</a> and '
        f'<a href="leaderboard.csv">CSV</a>.</p>',
        f'<nav><a href="#overall">overall</a> · {nav}</nav>',
        '<section id="overall"><h2>Overall GRUE score</h2>',
        "<h3>Submissions</h3>",
        overall_table(board, "submission"),
        f"<h3>Paper baselines: {esc(REPORTED_MARK)}</h3>",
        '<p class="note">Ranked apart from submissions. A paper algorithm\'s task score is the mean over its '
        "main-table rows of that task (the paper reports one row per reward function). grue computes every metric "
        'as the paper\'s code did; <a href="fidelity.md">fidelity.md</a> lists each place compared and what still '
        "differs.</p>",
        overall_table(board, "reported"),
        f'<p class="formula">{esc(FORMULA)}.</p>',
        '<p class="note">Headline metrics: '
        + esc(", ".join(f"{t}: {m}" for t, m in HEADLINE.items() if t in board.overall_tasks()))
        + ". An entry without results for a task, or whose results skipped a task's headline metric, is shown with "
        "the mean over the tasks it has and ranked below every complete entry; its status says which task and why."
        + esc(apart_text(board))
        + "</p>",
        f'<p class="note" id="out-of-range">† {esc(OUT_OF_RANGE)}.</p>',
    ]
    if svgs.get("overall"):
        body.append(f"<figure>{svgs['overall']}</figure>")
    body.append("</section>")
    body += [task_section(board, t, svgs.get(t, "")) for t in board.tasks]
    return page("GRUE leaderboard", "\n".join(body))


def samples_html(samples: list[dict]) -> str:
    out = []
    for s in samples:
        refs = "".join(f"<dd>{esc(r[:2000])}</dd>" for r in s["references"][:3])
        out.append(
            f'<dl class="sample"><dt>Prompt</dt><dd>{esc(s["prompt"][:2000])}</dd><dt>Generation</dt>'
            f"<dd>{esc(s['generation'][:2000])}</dd><dt>References</dt>{refs}</dl>"
        )
    return "\n".join(out)


def seeds_table(entries: list[Entry], names: list[str]) -> str:
    """One line per seed (results file) with the metrics ``names``."""
    heads = [th("Seed", True), th("File"), th("Examples", True)] + [th(n, True) for n in names]
    lines = []
    for e in entries:
        r = e.results
        cells = [
            td_num(r.seed, str(r.seed)),
            f'<td class="t">{breakable(e.rel)}</td>',
            td_num(r.samples.evaluated, f"{r.samples.evaluated} of {r.samples.total}"),
        ]
        cells += [td_num(r.metrics[n].value) if n in r.metrics else '<td data-v="">—</td>' for n in names]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return table(heads, lines)


def provenance_html(b: Benchmark | None) -> str:
    """The provenance section of a submission's page: how ``grue benchmark run`` made it (command, versions,
    hardware, seeds, time, per task the settings fingerprint and device-hours, the trained cells folded)."""
    if b is None:
        return f'<h2>Provenance</h2>\n<p class="note">{esc(NOT_RECORDED)}: no benchmark block in submission.yaml.</p>'
    info = [
        ("Command", f"<code>{esc(b.command)}</code>"),
        ("grue", esc(f"{b.grue_version}, commit {b.git_commit or 'unknown'}")),
        ("Hardware", esc(b.hardware)),
        ("Seeds", esc(f"{len(b.seeds)}: {', '.join(map(str, b.seeds))}")),
        ("Time", esc(f"{b.wall_seconds:.1f} s wall-clock, {b.device_hours:.3g} device-hours (sums over the cells)")),
    ]
    tasks = [
        f'<tr><td class="t">{esc(t)}</td><td class="t"><code>{esc(h)}</code></td>{td_num(b.task_hours(t))}</tr>'
        for t, h in sorted(b.settings.items())
    ]
    cells = [
        f'<tr><td class="t">{esc(c.task)}</td>{td_num(c.seed, str(c.seed))}<td class="t">{esc(c.stage)}</td>'
        f'<td class="t"><code>{esc(c.settings)}</code></td>{td_num(c.wall_seconds)}{td_num(c.device_hours)}</tr>'
        for c in b.cells
    ]
    return "\n".join(
        [
            "<h2>Provenance</h2>",
            '<table class="info">'
            + "".join(f'<tr><th class="t">{k}</th><td class="t">{v}</td></tr>' for k, v in info)
            + "</table>",
            table([th("Task"), th("Settings fingerprint"), th("Device-hours", True)], tasks),
            f"<details><summary>Trained cells ({len(cells)}: task, seed, stage)</summary>",
            table(
                [
                    th("Task"),
                    th("Seed", True),
                    th("Stage"),
                    th("Settings"),
                    th("Wall seconds", True),
                    th("Device-hours", True),
                ],
                cells,
            )
            if cells
            else '<p class="note">None (nothing was trained).</p>',
            "</details>",
        ]
    )


def submission_html(board: Board, sub: Submission) -> str:
    """The detail page of one submission: who and what, then per task the seeds, skipped metrics, the
    configuration and sample generations."""
    m = sub.meta
    info = [
        ("Who", esc(m.who)),
        ("Model", esc(m.model)),
        ("Algorithm", esc(m.algorithm)),
        ("Link", link(m.link, m.link) if m.link else "—"),
        ("Notes", esc(m.notes or "—")),
    ]
    body = [
        '<p><a href="../index.html">← GRUE leaderboard</a></p>',
        f"<h1>{esc(sub.name)}</h1>",
        '<table class="info">'
        + "".join(f'<tr><th class="t">{k}</th><td class="t">{v}</td></tr>' for k, v in info)
        + "</table>",
        provenance_html(m.benchmark),
    ]
    for task in sorted({e.results.task for e in sub.entries}):
        entries = [e for e in sub.entries if e.results.task == task]
        body.append(f"<h2>{esc(task)}</h2>")
        body += [
            comparable_html(board, r)
            for r in board.rows
            if r.kind == "submission" and r.ref == sub.name and r.task == task
        ]
        quality, diversity = split_metrics(sorted({n for e in entries for n in e.results.metrics}))
        body += [seeds_table(entries, quality)] if quality else []
        body += (
            ['<p class="note">Diversity and length of the generations:</p>', seeds_table(entries, diversity)]
            if diversity
            else []
        )
        skipped = sorted({(n, why) for e in entries for n, why in e.results.skipped.items()})
        if skipped:
            body.append(
                "<p>Skipped metrics:</p><ul>" + "".join(f"<li>{esc(n)}: {esc(w)}</li>" for n, w in skipped) + "</ul>"
            )
        for e in entries:
            config = json.dumps(e.results.config, indent=2, sort_keys=True, ensure_ascii=False)
            body.append(
                f"<details><summary>Configuration, seed {esc(e.results.seed)} "
                f"(grue {esc(e.results.grue_version)}, {esc(e.results.date)})</summary><pre>{esc(config)}</pre></details>"
            )
            if e.samples:
                body.append(
                    f"<details><summary>Sample generations, seed {esc(e.results.seed)} (first {len(e.samples)})"
                    f"</summary>{samples_html(e.samples)}</details>"
                )
    return page(f"{sub.name} · GRUE leaderboard", "\n".join(body))
