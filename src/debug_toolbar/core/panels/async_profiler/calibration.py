"""What recording a task costs in this process, calibrated from timed samples.

Timing every task's bookkeeping would double it; timing one in ``SAMPLE_EVERY`` and multiplying
gives the request an honest figure (labelled as estimated) at a sixteenth of the cost.
"""

from __future__ import annotations

__all__ = ("SAMPLE_EVERY", "TaskCalibration", "calibration")


SAMPLE_EVERY = 16
"""One task creation in this many, and one completion in this many, is timed."""


_WINDOW = 128
"""Samples kept of each kind: the calibration follows the process as it warms up."""


class TaskCalibration:
    """What the recorder's work costs per task in this process, from timed samples.

    Process-wide, so that requests with a few tasks each still add up to a calibration; written
    without a lock from every loop's thread (a lost update loses one sample, nothing more). The
    first creation and the first completion are sampled, so the first request has a figure.
    The figure is a trimmed mean of the last ``_WINDOW`` samples of each kind: a sample that a
    garbage collection or a thread switch landed in, or the cold first one, would otherwise
    weigh on every later request.
    """

    __slots__ = (
        "_cached",
        "_cached_at",
        "_done",
        "_track",
        "done_countdown",
        "done_samples",
        "track_countdown",
        "track_samples",
    )

    def __init__(self) -> None:
        self.track_countdown = 1
        self.track_samples = 0
        self.done_countdown = 1
        self.done_samples = 0
        self._track: list[int] = []
        self._done: list[int] = []
        self._cached = 0.0
        self._cached_at = -1

    def add_track(self, ns: int) -> None:
        """One task's creation, timed."""
        _keep(self._track, self.track_samples, ns)
        self.track_samples += 1

    def add_done(self, ns: int) -> None:
        """One task's completion, timed."""
        _keep(self._done, self.done_samples, ns)
        self.done_samples += 1

    def per_task_ns(self) -> float:
        """What recording one task costs: its creation plus its completion (each a trimmed
        mean; recomputed once 16 new samples came, not for every request)."""
        seen = self.track_samples + self.done_samples
        if self._cached_at < 0 or seen - self._cached_at >= 16:
            self._cached = _trimmed_mean(self._track) + _trimmed_mean(self._done)
            self._cached_at = seen
        return self._cached


def _keep(window: list[int], seen: int, ns: int) -> None:
    if len(window) < _WINDOW:
        window.append(ns)
    else:
        window[seen % _WINDOW] = ns


def _trimmed_mean(samples: list[int]) -> float:
    """The mean without the highest and lowest eighth; the median of fewer than 8."""
    ordered = sorted(samples)
    count = len(ordered)
    if count < 8:
        return float(ordered[count // 2]) if ordered else 0.0
    cut = count // 8
    kept = ordered[cut : count - cut]
    return sum(kept) / len(kept)


calibration = TaskCalibration()
"""The process's one calibration, shared by every recorder."""
