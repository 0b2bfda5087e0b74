"""`grue eval --output-dir X` where X (or a folder above it) is a file: one line, exit 2, nothing evaluated."""

from __future__ import annotations

from conftest import FAST, cli_in_process, run_cli


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path):
    run = tmp_path / "run"
    t = cli_in_process(
        "train", "imdb", "--preset", "smoke", "--iterations", "1", "--output-dir", str(run), "--quiet", *FAST
    )
    assert t.returncode == 0, t.stderr
    afile = tmp_path / "results-file"
    afile.write_text("not a folder\n")
    for out in (afile, afile / "below"):
        p = run_cli("eval", "--checkpoint", str(run), "--output-dir", str(out), "--quiet")
        assert p.returncode == 2, p.stderr[-2000:]
        assert (
            p.stderr.strip()
            == f"error: {out} cannot be the results folder: {afile} is a file; pass --output-dir DIR (a folder)"
        )
        assert afile.read_text() == "not a folder\n"
