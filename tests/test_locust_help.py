"""`--chat-*` options are listed where the locustfile says (issue 24, point 8). Locust answers `--help`
before it imports a locustfile, so `chatload locust` registers them first."""

from __future__ import annotations

import re
import subprocess
import sys

from .locust_run import ROOT


def declared_options() -> set[str]:
    """Every --chat-* option the harness and the services add to Locust's parser (read from the source:
    this process must not import Locust)."""
    declared = set()
    for path in (ROOT / "harness").rglob("*.py"):
        declared |= set(re.findall(r"add_argument\(\s*\"(--chat-[a-z0-9-]+)\"", path.read_text(encoding="utf-8")))
    return declared


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
