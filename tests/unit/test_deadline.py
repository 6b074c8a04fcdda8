"""A method's entry point stops itself at MULTIVERSE_DEADLINE_S, even when stuck (the second line behind the runner)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_method_stuck_on_its_input_stops_itself_at_its_deadline(tmp_path):
    stuck = tmp_path / "input.h5mu"
    os.mkfifo(stuck)  # opening it blocks for ever: nothing ever writes to it
    command = [sys.executable, "-m", "multiverse_methods", "control_random", "--input", str(stuck),
               "--output", str(tmp_path / "out"), "--modalities", '{"rna": "rna"}']

    proc = subprocess.run(command, env={**os.environ, "MULTIVERSE_DEADLINE_S": "2"}, capture_output=True, text=True,
                          timeout=30)

    assert proc.returncode == 124, proc.stderr[-2000:]
    assert "deadline of 2 s reached" in proc.stderr
