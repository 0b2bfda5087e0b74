"""Task code, looked up by name. The task definitions (settings, cards) live in tasks/<name>/."""

from grue.tasks import imdb

# name -> module with SPLITS and load(split, data_dir, builtin=False) -> list[Example]
TASKS = {
    "imdb": imdb,
}
