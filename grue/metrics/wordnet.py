"""WordNet for nltk (METEOR's synonym stage), made available offline without a download.

nltk looks for ``corpora/wordnet`` in the folders of ``nltk.data.path``. When it finds
none, ``ensure_wordnet`` builds one from the WordNet 3.0 database that Debian ships
(packages ``wordnet-base`` and ``wordnet-sense-index``, in ``/usr/share/wordnet``, or
``$WNSEARCHDIR``): the database files are copied (nltk refuses symlinked and hard-linked
data files), nltk's extra ``lexnames`` file is written, and the folder is added to
``nltk.data.path``. The data folder is ``$GRUE_NLTK_DATA`` or ``~/.cache/grue/nltk_data``.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from grue.files import settle_tree
from grue.metrics import MetricSkipped

DEBIAN_WORDNET = Path("/usr/share/wordnet")

# The database files nltk's WordNetCorpusReader opens (besides lexnames). index.sense is
# in Debian's wordnet-sense-index, the others in wordnet-base.
WORDNET_FILES = (
    "cntlist.rev", "index.sense",
    "index.adj", "index.adv", "index.noun", "index.verb",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)

# WordNet 3.0's lexicographer files, numbered from 00 in this order: lexnames(5WN), the man
# page of Debian's wordnet-base (/usr/share/man/man5/lexnames.5WN.gz).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)

# lexnames' third field: the syntactic category of the file (lexnames(5WN)).
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

_FIX = ("install Debian's wordnet-base and wordnet-sense-index (apt-get install wordnet-base "
        "wordnet-sense-index), or run `python -m nltk.downloader wordnet`")


def lexnames_text() -> str:
    """The ``lexnames`` file: 45 lines ``NN<TAB>name<TAB>category`` (category 1 noun, 2 verb, 3 adj, 4 adv)."""
    return "".join(f"{i:02d}\t{name}\t{CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def nltk_data_folder() -> Path:
    """Where grue builds its nltk data: ``$GRUE_NLTK_DATA`` or ``~/.cache/grue/nltk_data``."""
    env = os.environ.get("GRUE_NLTK_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "grue" / "nltk_data"


def wordnet_source() -> Path:
    """The WordNet 3.0 database folder to copy from: ``$WNSEARCHDIR`` (WordNet's own variable) or Debian's."""
    return Path(os.environ.get("WNSEARCHDIR") or DEBIAN_WORDNET)


def build_wordnet(folder: Path, source: Path) -> Path:
    """Make ``folder/corpora/wordnet`` from the database in ``source``; returns that path.

    Files are copied into a temporary sibling folder which is then renamed, so a reader
    (or a concurrent builder) sees either no folder or a complete one. An existing
    folder is kept as it is.
    """
    target = folder / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return target
    missing = [f for f in WORDNET_FILES if not (source / f).is_file()]
    if missing:
        raise MetricSkipped(f"WordNet is not available: nltk finds no corpora/wordnet and {source} lacks "
                            f"{', '.join(missing[:3])}; {_FIX}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in WORDNET_FILES:
            shutil.copyfile(source / name, tmp / name)  # a copy, not a link: nltk refuses links
        (tmp / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        settle_tree(tmp)  # mkdtemp's folder is owner-only: give it a plain mkdir's permissions
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "lexnames").is_file():  # not a concurrent builder's success: a real failure
                raise
    except OSError as e:
        raise MetricSkipped(f"could not build nltk's WordNet in {target}: {e}; set GRUE_NLTK_DATA to a "
                            f"writable folder, or {_FIX}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _nltk_has_wordnet() -> bool:
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def ensure_wordnet() -> None:
    """Make ``nltk.corpus.wordnet`` usable, or raise ``MetricSkipped`` saying how to fix it.

    Order: WordNet already on ``nltk.data.path``; else the grue data folder (built from
    the Debian database when absent) is appended to ``nltk.data.path``.
    """
    try:
        import nltk
    except ImportError as e:
        raise MetricSkipped(f"nltk is not installed ({e}); pip install nltk") from e
    if _nltk_has_wordnet():
        return
    folder = nltk_data_folder()
    build_wordnet(folder, wordnet_source())
    if str(folder) not in nltk.data.path:
        nltk.data.path.append(str(folder))
    if not _nltk_has_wordnet():
        raise MetricSkipped(f"nltk does not find corpora/wordnet in {folder} after building it; {_FIX}")


@functools.lru_cache(maxsize=1)
def english_wordnet():
    """nltk's WordNet reader for English lookups (what METEOR asks), without the version map for the
    multilingual (OMW) data that nltk's reader builds on load: that map reads the whole sense index,
    about 10 s per process here, and no English lookup uses it. Calls ``ensure_wordnet`` first."""
    ensure_wordnet()
    import warnings

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):  # only OMW lookups read the map; there are none
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available": none are used
        warnings.simplefilter("ignore")
        return EnglishWordNet(nltk.data.find("corpora/wordnet"), None)
