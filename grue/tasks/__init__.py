"""Task code, looked up by name. The task definitions (settings, cards) live in tasks/<name>/.

A task module has ``SPLITS``, ``load(split, data_dir, builtin=False) -> list[Example]``
and optionally ``supervised_examples(examples)``, ``BUILTIN_OPENINGS`` (offline prompts)
and ``VARIANTS`` (prompt formats chosen with ``run.prompt_variant``).
"""

from grue.tasks import cnn_dailymail, commongen, dailydialog, imdb, narrativeqa, totto, wmt16

# name -> task module
TASKS = {
    "imdb": imdb,
    "commongen": commongen,
    "cnn_dailymail": cnn_dailymail,
    "totto": totto,
    "wmt16": wmt16,
    "dailydialog": dailydialog,
    "narrativeqa": narrativeqa,
}
