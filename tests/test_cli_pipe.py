"""The CLI stops quietly when the reader of its stdout goes away (``cloudphys ... | head``)."""

from __future__ import annotations

import subprocess
import sys


def test_closed_stdout_pipe_is_no_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudphys", "models", "info", "cloud-debye"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the command writes anything
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert "Traceback" not in text, text
    assert "BrokenPipeError" not in text, text
    assert proc.returncode == 141
