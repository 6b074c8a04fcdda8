"""The log read back after a container exits is the whole log.

The engine reports a container as exited while its log copier may still be
storing the last lines; in CI a crash's traceback was once missing from the log
read right after exit, so the reason said only the method's first line. That
race cannot be caused on demand, so a stand-in container plays it here; the real
crash is tests/docker/test_failures.py.
"""

from __future__ import annotations

import threading

from multiverse.backends.docker import _Watch, count_lines

TRACEBACK = "faulty: behaviour=crash\nTraceback (most recent call last):\nRuntimeError: the method blew up on purpose\n"


class _LateLog:
    """A container whose stored log lacks the last lines on the first reads."""

    def __init__(self, full: str, short_reads: int):
        self.full = full
        self.short_reads = short_reads
        self.reads = 0

    def logs(self, stdout=True, stderr=True, stream=False, follow=False):
        self.reads += 1
        if self.reads <= self.short_reads:
            return self.full.split("\n", 1)[0].encode() + b"\n"
        return self.full.encode()


def _watch_that_streamed(container, text: str) -> _Watch:
    watch = _Watch.__new__(_Watch)  # only the log parts of a watch are under test
    watch.container = container
    from collections import deque

    watch.tail = deque(maxlen=40)
    watch.streamed = 0
    for line in text.rstrip("\n").split("\n"):
        watch.streamed += 1
        watch.tail.append(line)
    return watch


def _ended_reader() -> threading.Thread:
    reader = threading.Thread(target=lambda: None)
    reader.start()
    return reader


def test_a_stored_log_shorter_than_the_stream_is_read_again_until_complete():
    container = _LateLog(TRACEBACK, short_reads=2)
    full, tail = _watch_that_streamed(container, TRACEBACK)._final_log(_ended_reader())
    assert container.reads == 3
    assert tail[-1] == "RuntimeError: the method blew up on purpose"
    assert full == TRACEBACK


def test_when_the_engine_never_stores_the_rest_the_streamed_lines_are_kept(monkeypatch):
    import multiverse.backends.docker as docker_backend

    monkeypatch.setattr(docker_backend, "_LOG_SETTLE_S", 0.5)
    container = _LateLog(TRACEBACK, short_reads=10**6)
    full, tail = _watch_that_streamed(container, TRACEBACK)._final_log(_ended_reader())
    assert tail[-1] == "RuntimeError: the method blew up on purpose"
    assert "Traceback" in full


def test_lines_are_counted_as_the_stream_splits_them():
    assert count_lines("") == 0
    assert count_lines("a\nb\n") == 2
    assert count_lines("a\nb") == 2
