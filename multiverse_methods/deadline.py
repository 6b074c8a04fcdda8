"""A container's own deadline: the second line behind the runner's.

The runner kills a container at its timeout. If the runner is gone (killed,
its machine's session lost) and its watchdog too, the container must still
stop: every entry point calls :func:`start` first, which ends the process with
``EXIT_TIMEOUT`` once ``MULTIVERSE_DEADLINE_S`` seconds have passed. A thread,
not a signal: a signal handler waits for the main thread to leave C code
(a BLAS call can take minutes); ``os._exit`` from a thread does not.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from multiverse_methods import protocol


def start() -> float | None:
    """Arm the deadline from the environment; returns the seconds armed, or None."""
    try:
        seconds = float(os.environ.get(protocol.DEADLINE_ENV, ""))
    except ValueError:
        return None
    if seconds <= 0:
        return None

    def expire() -> None:
        time.sleep(seconds)
        sys.stderr.write(f"multiverse: deadline of {seconds:g} s reached; stopping\n")
        sys.stderr.flush()
        os._exit(protocol.EXIT_TIMEOUT)

    threading.Thread(target=expire, name="deadline", daemon=True).start()
    return seconds
