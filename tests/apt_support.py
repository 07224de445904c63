"""Debian packages the tests drive (chromium for the browser tests, tesseract-ocr for reading
letters back), installed with apt-get on first use when missing and possible (root with
apt-get). Fails, never skips: the README's test command must run every test on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def ensure_debian_package(binary: str, package: str, why: str) -> str:
    """`binary` (an absolute path), installing Debian's `package` when it is missing.

    Fails the test, naming the package and `why` it is needed, when it cannot be installed.
    """
    if Path(binary).is_file():
        return binary
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.fail(f"{binary} is missing and cannot be installed here (needs root and apt-get): "
                    f"install Debian's {package} package (`apt-get install {package}`); {why}", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", package]

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=env)

    done = run(install)
    if done.returncode != 0:  # a fresh machine has no package lists yet
        updated = run([apt, "update", "-q"])
        done = run(install) if updated.returncode == 0 else updated
    if done.returncode != 0 or not Path(binary).is_file():
        pytest.fail(f"apt-get could not install {package} (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                    f"{done.stderr[-2000:]}", pytrace=False)
    return binary
