"""Reward functions used by the tests through dotted paths (reward_fixtures:NAME)."""

import math


def letter_e(prompts, completions, references, meta):
    """Share of the completion's characters that are the letter 'e'."""
    return [c.count("e") / max(len(c), 1) for c in completions]


def wrong_length(prompts, completions, references, meta):
    return [0.0] * (len(completions) + 1)


def not_finite(prompts, completions, references, meta):
    return [math.nan for _ in completions]


def raises(prompts, completions, references, meta):
    raise RuntimeError("the scorer is broken")


def exclamations(prompts, completions, references, meta):
    """How many "!" each completion holds (GPT-2's token id 0 is "!")."""
    return [float(c.count("!")) for c in completions]


def sleeps(prompts, completions, references, meta):
    """Hangs for 3 seconds, then scores 0: past a short run.reward_timeout_s."""
    import time

    time.sleep(3)
    return [0.0 for _ in completions]


def breaks_when_told(prompts, completions, references, meta):
    """letter_e, or a RuntimeError while the file named by $GRUE_TEST_BREAK_REWARD exists."""
    import os

    flag = os.environ.get("GRUE_TEST_BREAK_REWARD", "")
    if flag and os.path.exists(flag):
        raise RuntimeError("told to break")
    return letter_e(prompts, completions, references, meta)


_signalled: list[int] = []


def signals_once(prompts, completions, references, meta):
    """letter_e; its first call in a process sends this process the signal named by $GRUE_TEST_SIGNAL
    (default SIGINT), as a user's Ctrl-C in the middle of an iteration."""
    import os
    import signal

    if not _signalled:
        _signalled.append(1)
        os.kill(os.getpid(), getattr(signal, os.environ.get("GRUE_TEST_SIGNAL", "SIGINT")))
    return letter_e(prompts, completions, references, meta)


def huge_when_told(prompts, completions, references, meta):
    """letter_e, or 1e30 per completion (finite, so the reward check lets it through; its square, the value
    loss, overflows float32) while the file named by $GRUE_TEST_HUGE_REWARD exists."""
    import os

    flag = os.environ.get("GRUE_TEST_HUGE_REWARD", "")
    if flag and os.path.exists(flag):
        return [1e30 for _ in completions]
    return letter_e(prompts, completions, references, meta)
