"""Locust workers look up Locust's default options once per key of every spawn message; chatload
computes them once per process, so a ramp no longer rebuilds Locust's parser a hundred times a
second on every worker (which blocked its hub for up to seconds).

The check runs in a child process: importing Locust gevent-patches the process that imports it, and
the test process must stay unpatched (asyncio tests and child-process waits hang in a patched one)."""

from __future__ import annotations

import subprocess
import sys

CHECK = r'''
from locust import argument_parser

import harness.locust.options  # installs the cache

first = argument_parser.default_args_dict()
builds = []
real_setup = argument_parser.setup_parser_arguments
argument_parser.setup_parser_arguments = lambda parser: (builds.append(1), real_setup(parser))[1]
for _ in range(5):
    again = argument_parser.default_args_dict()
    assert again == first and again is not first, "each caller gets an equal copy of its own"
    again["run_time"] = "mutated"
assert builds == [], f"Locust's parser was rebuilt {len(builds)} times"
assert "chat_target" not in first and "run_time" in first, "Locust's own defaults, not chatload's options"
argument_parser.setup_parser_arguments = real_setup
assert argument_parser.default_args_dict.__wrapped__() == first, "the cached defaults are Locust's own"
print("ok")
'''


def test_default_options_are_built_once_and_each_caller_gets_its_own_copy():
    child = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr[-2000:]
