"""The one exception type that the CLI turns into a one-line message and exit code 2."""


class GrueError(Exception):
    """A problem with the user's input (task, config, data, model, reward).

    The message is one line that says what was wrong and what is accepted.
    """
