"""docs/scenarios.md is generated from the reader's own key declarations, and stays true."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from harness.files.toml_tables import Problems, TableReader
from harness.scenario import reader as s
from harness.scenario.docs import render
from harness.services import registry

from .locust_run import ROOT

DOC = ROOT / "docs" / "scenarios.md"


def test_the_committed_reference_is_what_the_reader_declares():
    assert DOC.read_text() == render(), "regenerate it: python -m harness.scenario.docs > docs/scenarios.md"


def _all_keys():
    yield from s.SCENARIO_KEYS + s.TARGET_KEYS + s.POPULATION_KEYS + s.MESSAGES_KEYS + s.EXPECTATIONS_KEYS
    yield from s.TRAFFIC_KEYS
    yield from s.FAULT_KEYS
    yield from s.FAULT_PARAMETERS.values()
    for name in registry.names():
        service = registry.get(name)
        yield from service.target_keys + service.room_keys
        yield from service.fault_parameters.values()


@pytest.mark.parametrize("key", list(_all_keys()), ids=lambda key: key.name)
def test_every_documented_example_is_a_value_the_reader_accepts(key):
    value = tomllib.loads(f"value = {key.example}")["value"]
    problems = Problems("doc")
    TableReader("doc", "table", {key.name: value}, problems).read(key)
    assert not problems, problems.messages()


# One interpreter checks them all through the real command line (`chatload run --check FILE` each):
# a process per file cost a second and a half of start-up apiece.
CHECK_ALL = """
import contextlib, io, sys
from harness.cli import main
for path in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "--check", path])
    print(path, code, "valid" in out.getvalue(), err.getvalue().replace(chr(10), " | "), sep=chr(9))
"""


def test_every_shipped_scenario_passes_check():
    # capacity files are read by `chatload capacity`
    paths = [str(p) for p in sorted((ROOT / "scenarios").glob("*.toml")) if not p.name.startswith("capacity-")]
    proc = subprocess.run([sys.executable, "-c", CHECK_ALL, *paths], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [line[0] for line in lines] == paths, proc.stdout
    for path, code, valid, errors in lines:
        assert code == "0" and valid == "True", (path, errors)
