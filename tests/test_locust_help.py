"""`--chat-*` options are listed where the locustfile says (issue 24, point 8). Locust answers `--help`
before it imports a locustfile, so `chatload locust` registers them first."""

from __future__ import annotations

import re
import subprocess
import sys

from .locust_run import ROOT

# Run in a child (this process must not import Locust): every harness module that adds options to
# Locust's parser is imported, the parser built as Locust builds it, and the --chat-* names read off it.
PARSER_OPTIONS = """
import importlib, pathlib, sys
from locust.argument_parser import get_parser
root = pathlib.Path(sys.argv[1])
for path in sorted((root / "harness").rglob("*.py")):
    if "init_command_line_parser" in path.read_text(encoding="utf-8"):
        importlib.import_module(".".join(path.relative_to(root).with_suffix("").parts))
print(" ".join(o for action in get_parser()._actions for o in action.option_strings if o.startswith("--chat-")))
"""


def declared_options() -> set[str]:
    """Every --chat-* option the harness and the services add to Locust's parser, read from the parser."""
    proc = subprocess.run([sys.executable, "-c", PARSER_OPTIONS, str(ROOT)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def test_the_command_the_locustfile_names_lists_every_chat_option():
    docstring = (ROOT / "locustfiles" / "ivschat.py").read_text(encoding="utf-8").split('"""')[1]
    command = re.search(r"`(chatload locust [^`]*--help)`", docstring)[1].split()
    proc = subprocess.run([sys.executable, "-m", "harness", *command[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = set(re.findall(r"--chat-[a-z0-9-]+", proc.stdout))
    expected = declared_options()
    assert len(expected) > 20 and expected <= listed, sorted(expected - listed)
    assert "--headless" in proc.stdout  # Locust's own help, with ours in it
