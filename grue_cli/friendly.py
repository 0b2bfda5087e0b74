"""The commands' handling of bad input, shared by ``grue`` and its sub-apps (grue_cli.main, grue_cli.benchmark)."""

from __future__ import annotations

import functools

import typer

from grue.errors import GrueError, one_line


def friendly(fn):
    """Turn GrueError into a one-line message and exit code 2; a run stopped by a signal after its checkpoint
    (grue.interrupt) into its message and 128 + the signal's number; Ctrl-C elsewhere into exit 130."""
    from grue.interrupt import Interrupted

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GrueError as e:
            typer.echo(f"error: {one_line(str(e))}", err=True)
            raise typer.Exit(2) from None
        except Interrupted as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; the last checkpoint is intact (resume with --resume RUN_DIR)", err=True)
            raise typer.Exit(130) from None

    return wrapper
