"""Node.js for the tests that run a vendor's own JavaScript client: `node` on PATH, and a test folder's
`node_modules` installed from its lock file (`npm ci`) when missing or stale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


def installed_version(js_dir: Path, package: str) -> str | None:
    manifest = js_dir / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


def node_with_packages(js_dir: Path, why: str) -> str:
    """Path of `node`, with `js_dir`'s dependencies installed at their pinned versions; skips saying
    `why` Node is needed when node or npm is not on PATH."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(f"node and npm are not on PATH: {why} needs Node.js >= 18 and npm")
    wanted = json.loads((js_dir / "package.json").read_text())["dependencies"]
    if any(installed_version(js_dir, name) != version for name, version in wanted.items()):
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=js_dir, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"npm ci in {js_dir} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    for name, version in wanted.items():
        assert installed_version(js_dir, name) == version, f"{name} {version} not installed in {js_dir}/node_modules"
    return node
