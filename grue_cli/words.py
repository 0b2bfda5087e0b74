"""Help in words: ``grue train TASK``, ``--model NAME``, ``--quiet``; not typer's ``{task}``, ``<str>`` and ``<bool>``.

Typer prints each parameter's Python type beside it and wraps required arguments in braces; it
offers no setting to turn that off, so ``WordsCommand`` gives its parameters classes that show
the metavar (a word such as ``TASK`` or ``DIR``) alone, and nothing beside a flag. Use it with
``@app.command(cls=WordsCommand)`` and give every option a ``metavar``.
"""

from __future__ import annotations

from typer.core import TyperArgument, TyperCommand, TyperOption


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


class WordsCommand(TyperCommand):
    """A typer command whose help shows words (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:  # typer builds the parameters before the command; only their display changes
            p.__class__ = _WORDS.get(type(p), type(p))

    def get_help_option(self, ctx):
        opt = super().get_help_option(ctx)
        if opt is not None:
            opt.__class__ = _WORDS.get(type(opt), type(opt))
        return opt
