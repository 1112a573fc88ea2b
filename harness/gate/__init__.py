"""The CI gate: a metric catalog over results documents, a small rule grammar, the gate's decision and
its outputs (text, Markdown, JUnit XML). The runner uses `parse_rule` and `evaluate` for a scenario's
expectations; `chatload gate` (cli.py) uses all of it. See docs/gate.md."""

from .metrics import describe, lookup
from .outcome import GateOutcome, decide
from .rules import CheckResult, Regression, RulesError, Threshold, evaluate, parse_rule, parse_rules

__all__ = ["CheckResult", "GateOutcome", "Regression", "RulesError", "Threshold", "decide", "describe",
           "evaluate", "lookup", "parse_rule", "parse_rules"]
