"""DailyDialog next-utterance generation (GRUE task ``dailydialog``).

Given the last turns of an everyday two-person conversation, write the next turn. The
reward asks for the intent (dialogue act) that the human reply had, plus overlap with
it. The examples are RL4LMs' ``DailyDialog`` data pool (97df0bd
rl4lms/data_pools/custom_text_generation_pools.py): one per utterance that has
``CONTEXT_SIZE`` = 5 earlier ones in its dialogue, and the texts exactly as it built them:

- prompt: the 5 utterances before it, raw (the dataset keeps a space around each), joined
  by the end-of-utterance token, then a space and the token: ``u1<EOU>u2<EOU>...u5 <EOU>``,
  e.g. ``"Hi . <EOU> Hello !  <EOU>"`` for ``["Hi . ", " Hello ! "]``. The intent classifier
  reads the last non-empty piece of the prompt (``last_utterance``) followed by the generation.
- reference: the utterance, raw, followed by the token: ``" How much ? <EOU>"``.
- meta: ``intent`` = its dialogue act - 1 (0 inform, 1 question, 2 directive,
  3 commissive: the intent classifier's labels), ``emotion`` (0..6), ``dialog_index``
  (the dialogue's row in the split) and ``index``.

Data: Hugging Face ``daily_dialog`` (fields ``dialog``, ``act``, ``emotion``; acts 1..4),
or local JSON Lines ``<data-dir>/dailydialog/{train,validation,test}.jsonl`` with the
same fields. Where a dialogue has fewer labels than utterances, the unlabeled utterances
at its end are dropped (RL4LMs zips the three lists the same way).
"""

from __future__ import annotations

from grue.errors import GrueError
from grue.tasks.common import Example, place, source_rows

SPLITS = ("train", "validation", "test")
HUB_NAME, HUB_CONFIG = "daily_dialog", None
EOU = "<EOU>"  # RL4LMs DailyDialog.EOU_TOKEN
CONTEXT_SIZE = 5  # RL4LMs scripts/training/task_configs/dialog/gpt2_*.yml: datapool context_size 5
FIELDS = ("dialog", "act", "emotion")
ACTS = {1: "inform", 2: "question", 3: "directive", 4: "commissive"}


def build_prompt(history: list[str], context_size: int = CONTEXT_SIZE) -> str:
    """The last ``context_size`` utterances joined by ``<EOU>``, then `` <EOU>``; nothing stripped.

    ``build_prompt(["Hi . ", " Hello ! "]) == "Hi . <EOU> Hello !  <EOU>"`` (the second
    utterance's own trailing space, then the one before the final token).
    """
    return EOU.join(history[-context_size:]) + " " + EOU


def build_reference(utterance: str) -> str:
    """The utterance, raw, followed by ``<EOU>``: ``build_reference(" Fine . ") == " Fine . <EOU>"``."""
    return utterance + EOU


def last_utterance(prompt: str) -> str:
    """The last non-empty piece of ``prompt.split("<EOU>")``, not stripped (what RL4LMs' intent metric reads first).

    ``last_utterance("Hi . <EOU> Hello !  <EOU>") == " Hello !  "``.
    """
    return next((t for t in reversed(prompt.split(EOU)) if t), "")


def _check_row(row, where: str) -> None:
    if not isinstance(row, dict) or any(not isinstance(row.get(k), list) for k in FIELDS):
        raise GrueError(
            f"{where}: expected the lists {', '.join(FIELDS)} (Hugging Face daily_dialog schema), "
            f"got {sorted(row) if isinstance(row, dict) else type(row).__name__}"
        )
    if not all(isinstance(u, str) for u in row["dialog"]):
        raise GrueError(f"{where}: 'dialog' must be a list of utterances (strings), got {row['dialog']!r:.80}")
    if not all(isinstance(e, int) and not isinstance(e, bool) for e in row["emotion"]):
        raise GrueError(f"{where}: 'emotion' must be a list of integers, got {row['emotion']!r:.80}")
    bad = [a for a in row["act"] if isinstance(a, bool) or a not in ACTS]
    if bad:
        raise GrueError(
            f"{where}: dialogue act {bad[0]!r} is not one of 1..4 (inform, question, directive, commissive)"
        )


def dialogs_to_examples(rows: list[dict], split: str = "") -> list[Example]:
    """One Example per utterance with ``CONTEXT_SIZE`` earlier ones (see the module docstring), in order.

    rows: dialogues with ``dialog`` (list[str]), ``act`` (list[int], 1..4), ``emotion`` (list[int]).
    Returns ``sum(max(0, min(len(dialog), len(act), len(emotion)) - CONTEXT_SIZE))`` examples.
    """
    examples: list[Example] = []
    for d, row in enumerate(rows):
        _check_row(row, place(row, f"dailydialog {split} dialogue {d + 1}"))
        turns = list(zip(row["dialog"], row["act"], row["emotion"]))
        for t in range(CONTEXT_SIZE, len(turns)):
            utterance, act, emotion = turns[t]
            examples.append(
                Example(
                    prompt=build_prompt([u for u, _, _ in turns[:t]]),
                    references=[build_reference(utterance)],
                    meta={"intent": int(act) - 1, "emotion": int(emotion), "dialog_index": d, "index": len(examples)},
                )
            )
    return examples


def load(split: str, data_dir: str | None, builtin: bool = False) -> list[Example]:
    """Examples of ``split`` from ``data_dir/dailydialog/<split>.jsonl`` or the Hub."""
    rows = source_rows("dailydialog", split, SPLITS, data_dir, builtin, HUB_NAME, HUB_CONFIG)
    return dialogs_to_examples(rows, split)
