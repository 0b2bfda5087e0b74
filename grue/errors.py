"""The exception types that the CLI turns into messages and exit codes, and how messages name the caller's options."""

import contextlib
import contextvars


class GrueError(Exception):
    """A problem with the user's input (task, config, data, model, reward).

    The message is one line that says what was wrong and what is accepted.
    """


class ProblemsError(GrueError):
    """Input with several problems at once; ``problems`` lists every one (``<file>: <field>: <what is wrong>``),
    the message is the first one and how many more there are."""

    def __init__(self, problems: list[str]):
        self.problems = [one_line(p) for p in problems]  # a field name from the input may hold a line break
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(self.problems[0] + more)


def one_line(text: str) -> str:
    """``text`` with every character a terminal would not print as itself (line breaks, tabs, escape sequences,
    bidirectional overrides) written as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``): an error message that
    quotes the user's input stays one line and cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def did_you_mean(word: str, choices, prefix: str = "") -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to a mistyped ``word`` (difflib's ratio >= 0.6),
    shown after ``prefix`` (e.g. the section of a key), else ``""``: for error messages, before the list of
    what is accepted."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


SPELLING = contextvars.ContextVar("grue_spelling", default="cli")
"""How messages name the caller's options: ``cli`` (``--resume RUN``), or ``api`` while a function of grue.api runs
(``resume=RUN``)."""

CLI_FLAGS = {"overrides": "--set", "config_file": "--config"}
"""API arguments whose command-line option has another name."""


def option(name: str, value: str | bool = "") -> str:
    """The option ``name`` (a grue.api argument name) as the caller wrote it, with ``value``: ``--init-from RUN`` from
    the command line, ``init_from='RUN'`` from Python (a placeholder in capitals, such as ``N``, stays unquoted;
    without a value, the argument's name alone); ``value`` True is a switch: ``--overwrite``, ``overwrite=True``."""
    if SPELLING.get() == "api":
        if value == "":
            return name
        return f"{name}={value if value is True or value.isupper() or value.isdigit() else repr(value)}"
    flag = CLI_FLAGS.get(name, "--" + name.replace("_", "-"))
    return flag if value is True else f"{flag} {value}".rstrip()


def resume_command(task: str, run_dir: str) -> str:
    """How the caller continues a stopped run: ``grue train TASK --resume RUN``, or ``grue.train('TASK', resume='RUN')``."""
    if SPELLING.get() == "api":
        return f"grue.train({task!r}, resume={str(run_dir)!r})"
    return f"grue train {task} --resume {run_dir}"


@contextlib.contextmanager
def api_spelling():
    """Inside: messages name options as grue.api's arguments (``resume=``), not as command-line flags."""
    token = SPELLING.set("api")
    try:
        yield
    finally:
        SPELLING.reset(token)
