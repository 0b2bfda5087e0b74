"""The exception types that the CLI turns into messages and exit codes."""


class GrueError(Exception):
    """A problem with the user's input (task, config, data, model, reward).

    The message is one line that says what was wrong and what is accepted.
    """


class ProblemsError(GrueError):
    """Input with several problems at once; ``problems`` lists every one (``<file>: <field>: <what is wrong>``),
    the message is the first one and how many more there are."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(self.problems[0] + more)
