"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's kill).

Inside ``graceful()`` a signal only asks: the training loop finishes the iteration in progress, writes
a checkpoint and raises ``Interrupted``, whose message says how to resume. A second signal acts at
once (the previous handler is back), so a stuck run can still be stopped. Outside ``graceful()``
(library use without the CLI) nothing changes. Handlers can only be set in the main thread; elsewhere
``graceful()`` does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_asked: list[int] = []  # the signals received inside graceful(), first first


class Interrupted(Exception):
    """A run stopped by a signal after saving a checkpoint; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def asked() -> int | None:
    """The first signal received inside ``graceful()`` (its number), or None."""
    return _asked[0] if _asked else None


@contextlib.contextmanager
def graceful():
    """While inside, SIGINT and SIGTERM set ``asked()`` (and say so on stderr) instead of stopping the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def ask(signum, _frame) -> None:
        _asked.append(signum)
        signal.signal(signum, previous[signum])  # the next one acts at once
        print(
            f"\n{signal.Signals(signum).name}: finishing this iteration and saving a checkpoint "
            "(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    for s in SIGNALS:
        signal.signal(s, ask)
    try:
        yield
    finally:
        for s in SIGNALS:
            signal.signal(s, previous[s])
        _asked.clear()
