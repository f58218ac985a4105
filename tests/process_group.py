"""Run a command in its own process group with a timeout: a hung multi-process run is killed whole."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest


def run_process_group(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float, what: str
) -> tuple[int, str, float]:
    """(return code, combined output, wall seconds); fails the test when ``timeout`` passes."""
    start = time.monotonic()
    proc = subprocess.Popen(
        list(command), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{what} still running after {timeout} s:\n{out[-4000:]}")
    return proc.returncode, out, time.monotonic() - start
