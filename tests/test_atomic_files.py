"""The one atomic file writer (harness/files/atomic.py): the intended mode, nothing left behind when
the write fails, an existing file replaced whole."""

from __future__ import annotations

import os
import stat

import pytest

from harness.files.atomic import MODE, write_atomic


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_file_gets_the_intended_mode_whatever_mkstemp_made(tmp_path):
    path = write_atomic(tmp_path / "results.json", lambda f: f.write("{}\n"))
    assert stat.S_IMODE(os.stat(path).st_mode) == MODE == 0o644
    assert path.read_text() == "{}\n"
    other = write_atomic(tmp_path / "private.json", lambda f: f.write("x"), mode=0o600)
    assert stat.S_IMODE(os.stat(other).st_mode) == 0o600


def test_an_exception_while_writing_leaves_no_temporary_file_and_the_old_file_as_it_was(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old\n")

    def fail(f):
        f.write("half of a new")
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError, match="disk is full"):
        write_atomic(path, fail)
    assert _listing(tmp_path) == ["report.json"]
    assert path.read_text() == "old\n"


def test_an_existing_file_is_replaced_whole_and_bytes_are_written_as_they_are(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text("a much longer old content than the new one\n")
    write_atomic(path, lambda f: f.write(b'{"a": 1}\n'), binary=True)
    assert path.read_bytes() == b'{"a": 1}\n'
    assert _listing(tmp_path) == ["bench.json"]


def test_a_missing_directory_is_made(tmp_path):
    path = write_atomic(tmp_path / "run" / "raw" / "trace.jsonl", lambda f: f.write("line\n"))
    assert path.read_text() == "line\n"


def test_the_writers_of_traces_results_reports_and_benchmarks_all_go_through_it(tmp_path, monkeypatch):
    from harness.bench import common
    from harness.files import atomic
    from harness.report import document
    from harness.results import run_results
    from harness.trace import reader

    written: list[str] = []
    real = atomic.write_atomic

    def spy(path, write, **kwargs):
        written.append(os.path.basename(path))
        return real(path, write, **kwargs)

    for module in (atomic, common, run_results, reader):
        monkeypatch.setattr(module, "write_atomic", spy)
    reader.write_trace(tmp_path / "t.jsonl", [])
    run_results.write_json_atomic(tmp_path / "results.json", {"a": 1})
    document.write_atomic(tmp_path / "report.html", lambda f: f.write("<html>"))
    common.write_json_atomically(tmp_path / "bench.json", {"b": 2})
    assert written == ["t.jsonl", "results.json", "report.html", "bench.json"]
    # results.json keeps servers' text verbatim (error samples may carry a token): its owner's only
    assert stat.S_IMODE(os.stat(tmp_path / "results.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "report.html").st_mode) == 0o644
