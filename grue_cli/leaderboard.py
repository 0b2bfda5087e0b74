"""``grue leaderboard``: validate submissions and build the static leaderboard site.

A problem with the input prints one line per problem (``file: field: what is wrong``) on
stderr and exits with 1; other bad input (a GrueError) prints ``error: ...`` and exits with 2.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional

import typer

from grue.errors import GrueError, ProblemsError, one_line
from grue_cli.words import WordsCommand

leaderboard_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="The GRUE leaderboard: validate submissions, build the static site.",
)


def problems_exit(fn):
    """Print every problem of a ProblemsError (LeaderboardError, ResultsError) and exit 1; any other GrueError
    as one line, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ProblemsError as e:
            for p in e.problems:
                typer.echo(one_line(p), err=True)
            typer.echo(f"{len(e.problems)} problem(s); how to fix a submission: leaderboard/README.md", err=True)
            raise typer.Exit(1) from None
        except GrueError as e:
            typer.echo(f"error: {one_line(str(e))}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@leaderboard_app.command(cls=WordsCommand)
@problems_exit
def validate(
    paths: List[str] = typer.Argument(
        ...,
        metavar="PATH...",
        help="Submission folders, or files in them (e.g. the files a pull "
        "request changes); each whole submission is checked.",
    ),
    submissions: Optional[Path] = typer.Option(
        None,
        metavar="DIR",
        help="The submissions folder; every PATH must be inside it. "
        "Default: the folder that holds each PATH's submission.",
    ),
):
    """Check submissions against the results schema and the leaderboard's rules."""
    from grue.leaderboard.paths import group_paths
    from grue.leaderboard.submissions import (
        LeaderboardError,
        known_tasks,
        load_submissions,
        submission_names,
    )

    if submissions is not None and not submissions.is_dir():
        raise GrueError(f"--submissions {submissions}: not a folder; pass the folder that holds the submissions")
    groups, problems = group_paths(paths, submissions)
    subs, tasks = [], known_tasks()
    for root, given in groups.items():
        show = str(root).rstrip("/")
        names, more = submission_names(root, given, show)
        loaded, even_more = load_submissions(root, tasks, show, names) if names else ([], [])
        subs += loaded
        problems += more + even_more
    if problems:
        raise LeaderboardError(problems)
    files = sum(len(s.entries) for s in subs)
    typer.echo(f"ok: {len(subs)} submission(s), {files} results file(s): {', '.join(s.name for s in subs) or 'none'}")


@leaderboard_app.command(cls=WordsCommand)
@problems_exit
def build(
    submissions: Optional[Path] = typer.Option(
        None, metavar="DIR", help="The submissions folder. Default: the grue checkout's leaderboard/submissions."
    ),
    reported: Optional[Path] = typer.Option(
        None,
        metavar="DIR",
        help="The paper's numbers (results files of kind reported). Default: the grue checkout's leaderboard/reported.",
    ),
    out: Optional[Path] = typer.Option(
        None,
        metavar="DIR",
        help="Where the site goes (index.html, leaderboard.md, leaderboard.csv, "
        "plots/, submissions/). Default: the grue checkout's leaderboard/site.",
    ),
):
    """Validate everything, then write the static site (the same input gives the same bytes)."""
    from grue.leaderboard.build import build as build_site
    from grue.leaderboard.paths import default_folder

    submissions = submissions or default_folder("submissions")
    reported = reported or default_folder("reported")
    out = out or default_folder("out")
    board = build_site(submissions, reported, out)
    ranked = sum(1 for o in board.ranking if o.kind == "submission" and o.complete)
    typer.echo(
        f"wrote {out / 'index.html'}: {len(board.submissions)} submission(s) ({ranked} complete), "
        f"{sum(1 for r in board.rows if r.kind == 'reported')} reported rows; also leaderboard.md, "
        "leaderboard.csv, plots/"
    )
