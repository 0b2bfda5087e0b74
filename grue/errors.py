"""The exception types that the CLI turns into messages and exit codes."""


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
