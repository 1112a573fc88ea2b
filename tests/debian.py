"""Debian packages the tests use (chromium, prometheus, faketime): installed by the test setup itself
when missing, so a clean CI image needs nothing beyond the README's command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def debian_program(path: Path, package: str) -> Path:
    """`path`, installing the Debian `package` that provides it first if it is missing; the test is
    skipped, saying why, only where apt-get itself is unavailable."""
    if path.exists():
        return path
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(f"{path} is not installed and apt-get is unavailable to install the Debian package `{package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run([apt, "install", "-y", package], capture_output=True, text=True, env=env)
    if install.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run([apt, "update"], capture_output=True, text=True, env=env)
        install = subprocess.run([apt, "install", "-y", package], capture_output=True, text=True, env=env)
    if install.returncode != 0 or not path.exists():
        pytest.fail(f"`apt-get install -y {package}` failed (exit {install.returncode}):\n"
                    f"{(install.stdout + install.stderr)[-3000:]}")
    return path
