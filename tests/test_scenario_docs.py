"""docs/scenarios.md is generated from the reader's own key declarations, and stays true."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from harness import scenario as s
from harness.scenario_docs import render
from harness.services import registry
from harness.tables import Problems, TableReader

from .locust_run import ROOT

DOC = ROOT / "docs" / "scenarios.md"


def test_the_committed_reference_is_what_the_reader_declares():
    assert DOC.read_text() == render(), "regenerate it: python -m harness.scenario_docs > docs/scenarios.md"


def _all_keys():
    yield from s.SCENARIO_KEYS + s.TARGET_KEYS + s.POPULATION_KEYS + s.MESSAGES_KEYS + s.EXPECTATIONS_KEYS
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


def test_every_shipped_scenario_passes_check():
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        if path.name.startswith("capacity-"):
            continue  # capacity files are read by `chatload capacity`
        proc = subprocess.run([sys.executable, "-m", "harness", "run", "--check", str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "valid" in proc.stdout, (path, proc.stderr)
