"""What a user reads resolves in the clone they have: every link and file reference in README.md
and docs/ names a file of this repository (issue 24, point 10), and the README's set-up commands work
on a stock Debian Python (point 3)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "docs").rglob("*.yml"))]
# Folders a user makes themselves, named in examples: run output, their CI's rules and baselines.
USERS_OWN = {"reports", "baseline", "baselines", "gate", "before", "after", "steps", ".github", ".venv"}
# A code span that names a path from the top of a clone (its first folder is one of the repository's, or
# one a clone lacks, like `shared/`), or a page (`*.md`). Paths inside other projects (a vendor's
# `src/hotsock.js`) and words with slashes (`p50/p95`) are not references to this repository.
TOP = {entry.name for entry in ROOT.iterdir() if not entry.name.startswith(".git")} | {"shared", "spec"}
LINK = re.compile(r"\]\(([^)#\s]+)")
SPAN = re.compile(r"`([^`\s]+)`")


def references(text: str) -> set[str]:
    links = {link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)}
    spans = {span.split(":")[0] for span in SPAN.findall(text) if "/" in span and not re.match(r"[a-z]+://", span)}
    paths = {span for span in spans
             if span.removeprefix("./").split("/")[0] in TOP | USERS_OWN or span.endswith(".md")}
    return links | paths


def resolves(reference: str, page: Path) -> bool:
    if "<" in reference or "…" in reference:
        reference = reference.split("<")[0].split("…")[0].rpartition("/")[0] or "."  # the folder part
    for base in (page.parent, ROOT):
        if "*" in reference:
            if any(base.glob(reference)):
                return True
        elif (base / reference).exists():
            return True
    return False


def unresolved() -> list[str]:
    found = []
    for page in DOCS:
        for reference in sorted(references(page.read_text(encoding="utf-8"))):
            first = reference.removeprefix("./").split("/")[0]
            if first in USERS_OWN or reference.startswith(("http", "//")):
                continue
            if not resolves(reference, page):
                found.append(f"{page.relative_to(ROOT)}: {reference}")
    return found


def test_every_link_and_file_reference_in_readme_and_docs_resolves_in_the_repository():
    assert unresolved() == []


def test_the_checker_finds_a_reference_outside_the_repository(tmp_path):
    page = ROOT / "docs" / "x.md"
    assert references("the spec: `shared/spec/ivschat.md`; [the gate](gate.md); `p50/p95`; `src/x.js`") == {
        "shared/spec/ivschat.md", "gate.md"}
    assert not resolves("shared/spec/ivschat.md", page) and resolves("gate.md", page)
    assert resolves("../README.md", page) and resolves("scenarios/*.toml", page)
    assert not resolves("scenarios/smoke.tmol", page)


# -- point 3: the two set-up commands ---------------------------------------------------------------------

def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_setup_is_two_commands_that_install_into_a_virtual_environment():
    commands = setup_commands()
    assert len(commands) == 2 and all("\n" not in command for command in commands), commands
    for command in commands:
        first, *rest = command.split(" && ")
        # Debian's python3 refuses `pip install` outside a virtual environment (externally-managed-
        # environment): make one, and run everything after from it.
        assert first == "python3 -m venv .venv", command
        assert rest and all(step.startswith(".venv/bin/") for step in rest), command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == commands[1], ".ci/run runs exactly the README's test command"


@pytest.mark.skipif(not Path("/usr/lib/python3/dist-packages").is_dir() or shutil.which("/usr/bin/python3") is None,
                    reason="not a Debian/Ubuntu system Python")
def test_the_first_step_works_on_the_stock_debian_python(tmp_path):
    python = "/usr/bin/python3"
    marker = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    if not (Path(marker) / "EXTERNALLY-MANAGED").exists():
        pytest.skip("this system Python is not externally managed")
    refused = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-index", "chatload"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr + refused.stdout
    first = setup_commands()[0].split(" && ")[0].split()
    subprocess.run([python, *first[1:]], cwd=tmp_path, check=True, timeout=120)
    pip = subprocess.run([str(tmp_path / ".venv" / "bin" / "pip"), "--version"], capture_output=True, text=True,
                         timeout=60)
    assert pip.returncode == 0 and ".venv" in pip.stdout, pip.stdout + pip.stderr
