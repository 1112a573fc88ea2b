"""Locust workers look up Locust's default options once per key of every spawn message; chatload
computes them once per process, so a ramp no longer rebuilds Locust's parser a hundred times a
second on every worker (which blocked its hub for up to seconds)."""

from __future__ import annotations

from locust import argument_parser

import harness.locust.options  # noqa: F401 - installs the cache


def test_default_options_are_built_once_and_each_caller_gets_its_own_copy(monkeypatch):
    first = argument_parser.default_args_dict()
    builds = []
    real_setup = argument_parser.setup_parser_arguments
    monkeypatch.setattr(argument_parser, "setup_parser_arguments",
                        lambda parser: (builds.append(1), real_setup(parser))[1])
    for _ in range(5):
        again = argument_parser.default_args_dict()
        assert again == first and again is not first
        again["run_time"] = "mutated"
    assert builds == [], "Locust's parser was rebuilt"
    assert "chat_target" not in first and "run_time" in first, "Locust's own defaults, not chatload's options"
    monkeypatch.setattr(argument_parser, "setup_parser_arguments", real_setup)
    fresh = argument_parser.default_args_dict.__wrapped__()
    assert fresh == first
