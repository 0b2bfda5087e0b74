"""Help in words: ``grue train TASK``, ``--model NAME``, ``--quiet``; not typer's ``{task}``, ``<str>`` and ``<bool>``.

Typer prints each parameter's Python type beside it and wraps required arguments in braces; it
offers no setting to turn that off, so ``WordsCommand`` gives its parameters classes that show
the metavar (a word such as ``TASK`` or ``DIR``) alone, and nothing beside a flag. Use it with
``@app.command(cls=WordsCommand)`` and give every option a ``metavar``; ``WordsGroup`` is the same for a
``typer.Typer(cls=WordsGroup)`` (its ``--help``).

Help texts are plain text: where typer reads them as Rich markup, their square brackets (``pip install
'grue[trackers]'``) are escaped so that they show instead of vanishing as unknown markup tags.
"""

from __future__ import annotations

from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class WordArgument(TyperArgument):
    """An argument shown by its metavar alone (``TASK``)."""

    def display_type_rich(self, ctx):
        return None

    def _usage_display_name(self) -> str:
        return self.display_name_raw if self.required else f"[{self.display_name_raw}]"


class WordOption(TyperOption):
    """An option shown with its metavar, a flag with nothing beside it."""

    def display_type_rich(self, ctx):
        return None if self.is_flag else super().display_type_rich(ctx)


_WORDS = {TyperArgument: WordArgument, TyperOption: WordOption}


def _plain_help(command) -> None:
    """Escape the square brackets of the command's and its parameters' help where typer renders them as Rich markup."""
    if getattr(command, "rich_markup_mode", None) != "rich":
        return
    for item in [command, *command.params]:
        if getattr(item, "help", None):
            item.help = escape(item.help)


def _word_help_option(opt):
    if opt is not None:
        opt.__class__ = _WORDS.get(type(opt), type(opt))
    return opt


class WordsCommand(TyperCommand):
    """A typer command whose help shows words (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:  # typer builds the parameters before the command; only their display changes
            p.__class__ = _WORDS.get(type(p), type(p))
        _plain_help(self)

    def get_help_option(self, ctx):
        return _word_help_option(super().get_help_option(ctx))


class WordsGroup(TyperGroup):
    """A typer group (``grue``, ``grue leaderboard``) whose help shows words, as ``WordsCommand``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:
            p.__class__ = _WORDS.get(type(p), type(p))
        _plain_help(self)

    def get_help_option(self, ctx):
        return _word_help_option(super().get_help_option(ctx))
