"""SPICE (Anderson et al., ECCV 2016) through the SPICE 1.0 jar, as pycocoevalcap runs it.

SPICE parses candidate and references into scene graphs with Stanford CoreNLP 3.6.0 and
reports the F-score of matched (object, attribute, relation) tuples. It needs:

* ``java`` on PATH;
* ``spice-1.0.jar`` with, in its ``lib/`` folder, ``stanford-corenlp-3.6.0.jar`` and
  ``stanford-corenlp-3.6.0-models.jar`` (the jar's manifest loads them from there).

They are looked for in ``$GRUE_SPICE_DIR`` and then in pycocoevalcap's installed ``spice``
folder, which ships the SPICE jar but downloads the two CoreNLP jars at first use (from
https://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip), impossible offline:
when something is missing the metric is skipped with a reason that says what.

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
import tempfile
from pathlib import Path

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricResult, MetricSkipped
from grue.metrics.spacy_tokens import spacy_tokens
from grue.metrics.text import check_batch, check_texts

SPICE_JAR = "spice-1.0.jar"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
JAVA_MEMORY = "-Xmx8G"  # pycocoevalcap's setting
HOW_TO = ("put spice-1.0.jar and a lib/ folder holding SPICE's jars and Stanford CoreNLP 3.6.0's "
          f"{CORENLP_JARS[0]} and {CORENLP_JARS[1]} (from stanford-corenlp-full-2015-12-09.zip) "
          "in one folder and set GRUE_SPICE_DIR to it")


def candidate_dirs() -> list[Path]:
    """Folders that may hold the SPICE jar: $GRUE_SPICE_DIR (if set), then pycocoevalcap's spice folder."""
    dirs = []
    if os.environ.get("GRUE_SPICE_DIR"):
        dirs.append(Path(os.environ["GRUE_SPICE_DIR"]))
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p) / "spice" for p in spec.submodule_search_locations)
    return dirs


def missing_files(folder: Path) -> list[str]:
    """The files SPICE needs that ``folder`` lacks (relative paths; empty when complete)."""
    needed = [SPICE_JAR] + [f"lib/{name}" for name in CORENLP_JARS]
    return [name for name in needed if not (folder / name).is_file()]


def find_spice() -> tuple[str, Path]:
    """``(java executable, SPICE jar path)``, or MetricSkipped naming what is missing and how to provide it."""
    java = shutil.which("java")
    if java is None:
        raise MetricSkipped("SPICE needs Java: no 'java' on PATH (install a JRE, e.g. openjdk-17-jre-headless)")
    looked = []
    for folder in candidate_dirs():
        missing = missing_files(folder)
        if not missing:
            return java, folder / SPICE_JAR
        looked.append(f"{folder} lacks {', '.join(missing)}")
    where = "; ".join(looked) if looked else "GRUE_SPICE_DIR is not set and pycocoevalcap is not installed"
    raise MetricSkipped(f"SPICE jars not found ({where}); {HOW_TO}")


def spaced_tokens(text: str) -> str:
    """``text`` as spaCy's tokens joined by single spaces: ``"The boy's cat."`` -> ``"The boy 's cat ."``."""
    return " ".join(spacy_tokens(text))


def spice_input(generations: list[str], references: list[list[str]]) -> list[dict]:
    """SPICE's input records: ``[{"image_id": i, "test": generation_i, "refs": references_i}]``, i = 0..N-1,
    every text as ``spaced_tokens``."""
    check_texts(generations, references)
    return [{"image_id": i, "test": spaced_tokens(gen), "refs": [spaced_tokens(r) for r in refs]}
            for i, (gen, refs) in enumerate(zip(generations, references))]


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
            raise GrueError(f"SPICE output record {str(item)[:200]} has no image_id or scores.All.f; "
                            "expected SPICE 1.0's -out format") from None
    lacking = [i for i in range(n) if i not in by_id]
    if lacking:
        raise GrueError(f"SPICE output has no score for examples {lacking[:5]} (of {n}); "
                        "expected one record per input example")
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
