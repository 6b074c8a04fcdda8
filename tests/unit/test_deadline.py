"""A method's entry point stops itself at MULTIVERSE_DEADLINE_S, even when stuck (the second line behind the runner).

The method here is stuck in Python (reading its input never returns). A C call that holds Python's lock
(h5py opening a file that never answers, say) delays the deadline until it returns:
multiverse_methods/deadline.py says so, and the runner's own timeout does not depend on it.
"""

from __future__ import annotations

import os
import subprocess
import sys

STUCK = """
import sys, time
from multiverse_methods import contract
contract.load_input = lambda *args, **kwargs: time.sleep(600)  # an input that never finishes loading
from multiverse_methods.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_method_stuck_on_its_input_stops_itself_at_its_deadline(tmp_path, tiny_h5mu):
    command = [sys.executable, "-c", STUCK, "control_labels", "--input", str(tiny_h5mu),
               "--output", str(tmp_path / "out"), "--modalities", '{"rna": "rna", "atac": "atac"}']

    proc = subprocess.run(command, env={**os.environ, "MULTIVERSE_DEADLINE_S": "2"}, capture_output=True, text=True,
                          timeout=60)

    assert proc.returncode == 124, proc.stderr[-2000:]
    assert "deadline of 2 s reached" in proc.stderr
