"""tests/support.ProcessPauses: the flaky-CI guard must itself be right, or it hides failures."""

from __future__ import annotations

import re
import time

from support import ProcessPauses

# Catastrophic backtracking: the regex engine holds the GIL for the whole match.
_PATTERN = re.compile(r"(a+)+$")


def _one_long_match(at_least_s: float) -> tuple[int, int]:
    """Hold the GIL in one C call of at least ``at_least_s``; its (start, end) perf ns.

    Each extra "a" doubles the match's time: grow the subject until one match is long enough.
    """
    for length in range(12, 40):
        subject = "a" * length + "b"
        started = time.perf_counter_ns()
        _PATTERN.match(subject)
        ended = time.perf_counter_ns()
        if ended - started >= at_least_s * 1e9:
            return started, ended
    raise AssertionError("no match was long enough")


class TestProcessPauses:
    def test_a_thread_sleeping_is_not_a_pause(self) -> None:
        with ProcessPauses() as pauses:
            time.sleep(0.1)  # releases the GIL: the watcher keeps ticking
        assert pauses.pauses == []

    def test_holding_the_gil_is_a_pause_of_about_its_length(self) -> None:
        with ProcessPauses() as pauses:
            time.sleep(0.01)
            started, ended = _one_long_match(0.06)
            time.sleep(0.01)
        held_ms = (ended - started) / 1e6
        paused_ms = pauses.paused_ns(started, ended) / 1e6
        # The last doubling step is the one measured; the shorter ones before it may also
        # have paused the watcher, but only [started, ended] is asked about.
        assert paused_ms >= held_ms - 5  # the watcher's tick and its wake-up, at most

    def test_explains_only_stalls_the_pause_accounts_for(self) -> None:
        with ProcessPauses() as pauses:
            started_at = time.time()
            origin_ns = time.perf_counter_ns()
            start_ns, end_ns = _one_long_match(0.06)
            time.sleep(0.01)
        held_ms = (end_ns - start_ns) / 1e6
        # A "stall" as a record would give it: from the match's start, in ms from started_at;
        # the pause explains it if it was held up mostly by the pause.
        start_ms = (start_ns - origin_ns) / 1e6
        machine = {"start_ms": start_ms, "duration_ms": held_ms + 10}
        code = {"start_ms": start_ms, "duration_ms": held_ms + 60}
        assert pauses.explains(started_at, machine, threshold_ms=40.0)
        assert not pauses.explains(started_at, code, threshold_ms=40.0)
